"""Built-in plugin ``redact``: scrubs secrets from events before anything stores, sends or renders them.

It runs first in the processor chain (``tryfirst``) and looks at every rung of the error ladder
(message, help, notes, details — causes and exception-group members included) and at the
event's ``context``, recursively:

* **Keys.** A value whose key names a secret is replaced whole. Keys are split into words
  (``db_password``, ``X-Api-Key``, ``dbPassword``) and match a denylist entry as a run of words, or
  as the end of the key with separators removed (``mypassword``). Word matching, not raw
  substrings, keeps ``author``, ``total_tokens`` and ``tokenizer`` readable.
* **Values.** Every other string is searched for ``key=value`` / ``key: value`` pairs with a
  denylisted key, ``Bearer``/``Basic`` credentials, passwords in URLs, private-key blocks, JWTs,
  AWS access key ids, well-known token prefixes (``ghp_``, ``xoxb-``, ``sk-``...) and long mixed-case
  base64-like runs. Hex strings, UUIDs and hashes are kept (add a pattern if yours are secret).

Decision on ``session``: it is denylisted (web session cookies), but the core writes the
railgraph session id under ``context.session`` and under ``details.session`` of each rung (a
`RunnerError`'s location), so exactly those keys are exempt from key matching (value patterns
still apply to them). Put web sessions under another key (``session_cookie``, ``session_id``...),
or nested deeper, and they are scrubbed.

Each scrubbed path is listed in the event's ``redacted`` (``context.token``,
``error.cause.message``); the event keeps its ``id``. An event with nothing to scrub is returned
as is (the same object).

Speed: every event passes through here, so ordinary text must be cheap. Each scan is guarded by a
necessary condition that is faster to test than the scan itself: the ``key=value`` scan runs only
when the key before some ``=``/``:`` names a secret (read backwards from each separator), the value
patterns only when a literal one of them needs occurs (one pass over all the literals clears
ordinary text), the long-run pattern only when a 32-character run exists. When a guard says no, the
scan could not have changed anything; ``Redactor(..., prefilter=False)`` skips the guards (the tests
compare the two). Unchanged data is never copied.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from railgraph import ErrorEvent, ErrorLadder, Settings, hookimpl

NAME = "redact"
DENYLIST = ("password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets", "token", "api_key",
            "apikey", "access_key", "secret_key", "authorization", "auth", "cookie", "set_cookie", "session",
            "session_id", "sessionid", "private_key", "client_secret", "credential", "credentials", "jwt",
            "refresh_token", "access_token", "otp", "pin", "ssn")
EXEMPT = re.compile(r"(context|error(\.cause|\.group\.\d+)*\.details)\.session")
# Each value pattern comes with the literals it cannot match without (any one of them, tested on the
# lower-cased string); the last one needs a run of 32 token characters instead, see `_long_run`. It
# stays last: `Redactor.text` rules out all the others at once, before any of them could have run.
VALUE_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("-----begin",), r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    # user:password@ (the user may be empty, `redis://:pw@host`; the password runs to the last '@'
    # before the host, so one holding an unencoded '@' is scrubbed whole)
    (("://",), r"(?<=[A-Za-z0-9+.\-]://)[^\s:/@]*:[^\s/]+(?=@[^\s@/]*)"),
    (("bearer ",), r"(?<=(?i:bearer) )[A-Za-z0-9\-._~+/]+=*"),
    (("basic ",), r"(?<=(?i:basic) )[A-Za-z0-9+/]{8,}=*"),
    (("eyj",), r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    (("akia", "asia"), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (("gh", "xox", "sk-", "sk_live_"),
     r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|sk_live_[A-Za-z0-9]{10,})"),
    ((), r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}"),
)
# pairs nested in pairs' values (`a=b=password=...`) deeper than this are scrubbed whole: recursing
# on would end in a RecursionError, and the event would be replaced by a bare failure notice
MAX_NESTING = 32
# `Redactor.text` remembers strings this short that hold nothing to scrub, up to this many of them
SHORT, SHORT_MEMO = 64, 4096
NEEDLES = tuple(n for needles, _ in VALUE_PATTERNS for n in needles)
# Under ``(?i)`` a few non-ASCII letters match ASCII ones (``ſ`` is an ``s``, ``ı`` an ``i``) where
# lower() keeps them apart: in a non-ASCII string the literals of the two patterns that ignore case are
# looked for by the regex engine itself, from each space backwards (a literal first is fast to find).
CASELESS_LITERALS = re.compile(r" (?:(?<=(?i:bearer) )|(?<=(?i:basic) ))")
# Token characters ([A-Za-z0-9_-]) as b"t", the rest as b" ". In UTF-8 a non-ASCII character is bytes
# >= 0x80, so 32 token characters in a row are exactly b"t" * 32 in the translation of the bytes.
_TOKEN_BYTES = bytes(0x74 if chr(b) in string.ascii_letters + string.digits + "_-" else 0x20 for b in range(256))
# A key before ``=``/``:`` (PAIR's key, quotes aside) read backwards, from the separator: matched on
# the reversed string at each separator, so only the few keys before separators are looked at.
KEY_BEFORE_SEP_REVERSED = re.compile(r"""[=:]\s*["']?([A-Za-z0-9_.\-]+)""")
PAIR = re.compile(r"""(?<![A-Za-z0-9_.\-"'])(?P<key>["']?[A-Za-z][A-Za-z0-9_.\-]*["']?)(?P<sep>\s*[=:]\s*)"""
                  r"""(?P<value>"[^"]*(?:"|\Z)|'[^']*(?:'|\Z)|(?i:(?:bearer|basic|token|digest)\s+)?[^\s,;&"']+)""")


def _long_run(value: str) -> bool:
    """True when `value` holds 32 token characters in a row: the last value pattern's precondition,
    exactly what ``[A-Za-z0-9_-]{32}`` finds, at C speed."""
    return len(value) >= 32 and b"t" * 32 in value.encode("utf-8", "surrogatepass").translate(_TOKEN_BYTES)


def _compile(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:  # pydantic reports ValueError with the list index in the key path
        raise ValueError(f"invalid regular expression: {exc}") from None
    return pattern


class RedactSettings(BaseModel):
    """``[plugins.redact]``: scrub secrets from events before they are stored or sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(True, description="Scrub secrets from every event (messages, context, details).")
    keys: list[str] = Field(default_factory=list, description="Key names to scrub besides the built-in denylist "
                            "(password, secret, token, api_key, authorization, cookie, session, private_key, ...).")
    patterns: list[Annotated[str, AfterValidator(_compile)]] = Field(
        default_factory=list, description="Regular expressions whose matches are scrubbed from every string.")
    replacement: str = Field("[REDACTED]", min_length=1, description="Text that replaces a scrubbed value.")


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


class Redactor:
    """Scrubs one event; built once from the settings.

    `prefilter` false skips the cheap necessary conditions in front of each scan (same result, slower:
    the reference the tests compare against).
    """

    def __init__(self, keys: tuple[str, ...], patterns: tuple[str, ...], replacement: str, *,
                 prefilter: bool = True) -> None:
        self.deny = [tuple(_words(k)) for k in dict.fromkeys((*DENYLIST, *keys)) if _words(k)]
        self.builtin = [(needles, "(?i" in p, re.compile(p)) for needles, p in VALUE_PATTERNS]
        self.literal_free = [b for b in self.builtin if not b[0]]
        self.custom = [re.compile(p) for p in patterns]
        self.replacement = replacement
        self.prefilter = prefilter
        self._keys: dict[str, bool] = {}
        self._clean: set[str] = set()  # short strings the scan leaves as they are (see `text`)
        self._exempt_paths: dict[str, bool] = {}

    def secret_key(self, key: str) -> bool:
        """True when `key` names a secret (see the module docstring); memoised, keys repeat."""
        known = self._keys.get(key)
        if known is not None:
            return known
        words = _words(key)
        joined = "".join(words)
        found = False
        for entry in self.deny:
            n = len(entry)
            if any(tuple(words[i:i + n]) == entry for i in range(len(words) - n + 1)):
                found = True
                break
            flat = "".join(entry)
            if len(flat) >= 5 and joined.endswith(flat):
                found = True
                break
        if len(self._keys) >= 4096:
            self._keys.clear()
        self._keys[key] = found
        return found

    def _exempt(self, path: str) -> bool:
        """Whether `path` is one of the core's session keys (`EXEMPT`); memoised, paths repeat."""
        known = self._exempt_paths.get(path)
        if known is None:
            if len(self._exempt_paths) >= 4096:
                self._exempt_paths.clear()
            known = self._exempt_paths[path] = EXEMPT.fullmatch(path) is not None
        return known

    def _may_pair(self, value: str) -> bool:
        """A necessary condition for PAIR to find a secret key: the whole run of key characters before
        some ``=`` or ``:`` (and an optional quote and spaces) is one. Every key PAIR tests, nested
        ones included, is such a run, quotes stripped: its lookbehind forbids a key character before it."""
        if not self.prefilter:
            return True
        backwards = value[::-1]
        for sep in "=:":
            at = value.find(sep)
            while at >= 0:
                key = KEY_BEFORE_SEP_REVERSED.match(backwards, len(value) - 1 - at)
                if key and self.secret_key(key[1][::-1]):
                    return True
                at = value.find(sep, at + 1)
        return False

    def _may_match(self, needles: tuple[str, ...], ignores_case: bool, value: str, lower: str) -> bool:
        """A necessary condition for the built-in pattern with these `needles` to match `value`."""
        if not self.prefilter:
            return True
        if not needles:
            return _long_run(value)
        if any(map(lower.__contains__, needles)):
            return True
        return ignores_case and not value.isascii() and CASELESS_LITERALS.search(value) is not None

    def _pair(self, m: re.Match[str], depth: int = 0) -> str:
        """PAIR's replacement: the value of a secret key scrubbed, other values searched for pairs
        (nested `a=b=c=...` past `MAX_NESTING` levels is scrubbed whole rather than recursed into)."""
        if m["value"].strip("\"'") == self.replacement:
            return m[0]
        if not self.secret_key(m["key"].strip("\"'")):
            if depth >= MAX_NESTING:
                return f"{m['key']}{m['sep']}{self.replacement}"
            # the value may itself hold a pair: "failed: password=..." matched as key "failed"
            return f"{m['key']}{m['sep']}{PAIR.sub(lambda inner: self._pair(inner, depth + 1), m['value'])}"
        return f"{m['key']}{m['sep']}{self.replacement}"

    def text(self, value: str) -> str:
        """`value` with every secret-looking substring replaced.

        Short strings the scan leaves unchanged are remembered (up to `SHORT_MEMO` of them, each at
        most `SHORT` characters): the session id is in every event's context, and node names, codes
        and status words repeat. The answer depends on the string alone. A string the scan changes
        is not remembered, so no secret is kept here after its event is gone.
        """
        if len(value) > SHORT or not self.prefilter:
            return self._scan(value)
        if value in self._clean:
            return value
        scrubbed = self._scan(value)
        if scrubbed == value:
            if len(self._clean) >= SHORT_MEMO:
                self._clean.clear()
            self._clean.add(value)
        return scrubbed

    def _scan(self, value: str) -> str:
        if ("=" in value or ":" in value) and self._may_pair(value):
            value = PAIR.sub(self._pair, value)
        lower = value.lower()
        builtin = self.builtin
        if self.prefilter and not any(map(lower.__contains__, NEEDLES)) and (
                value.isascii() or CASELESS_LITERALS.search(value) is None):
            builtin = self.literal_free  # ordinary text: one pass over all the literals rules out the rest
        for needles, ignores_case, pattern in builtin:
            if self._may_match(needles, ignores_case, value, lower):
                new = pattern.sub(self.replacement, value)
                if new != value:  # the replacement may complete a literal a later pattern needs
                    value, lower = new, new.lower()
        for pattern in self.custom:
            value = pattern.sub(self.replacement, value)
        return value

    def data(self, value: Any, path: str, found: list[str]) -> Any:
        """Scrub JSON data; record changed paths in `found`. Returns `value` itself when nothing
        changed, else a copy (containers are copied only on the way to a change)."""
        if isinstance(value, str):
            new = self.text(value)
            if new == value:
                return value
            found.append(path)
            return new
        if isinstance(value, dict):
            out = value
            for k, v in value.items():
                secret = self.secret_key(str(k))
                if not secret and not isinstance(v, (str, dict, list)):
                    continue  # a number, a boolean or null under an ordinary key
                sub = f"{path}.{k}"
                if (secret and not self._exempt(sub) and v not in (None, "", self.replacement)
                        and not isinstance(v, bool)):
                    new = self.replacement
                    found.append(sub)
                else:
                    new = self.data(v, sub, found)
                if new is not v:
                    if out is value:
                        out = dict(value)
                    out[k] = new
            return out
        if isinstance(value, list):
            items = value
            for i, v in enumerate(value):
                new = self.data(v, f"{path}.{i}", found)
                if new is not v:
                    if items is value:
                        items = list(value)
                    items[i] = new
            return items
        return value

    def ladder(self, rung: ErrorLadder, path: str, found: list[str]) -> ErrorLadder:
        """Scrub one rung and everything below it (the same object when nothing changed)."""
        before = len(found)
        message = self.data(rung.message, f"{path}.message", found)
        details = self.data(rung.details, f"{path}.details", found)
        notes = self.data(list(rung.notes), f"{path}.notes", found) if rung.notes else ()
        group = tuple(self.ladder(g, f"{path}.group.{i}", found) for i, g in enumerate(rung.group)) \
            if rung.group else ()
        help_ = rung.help if rung.help is None else self.data(rung.help, f"{path}.help", found)
        cause = rung.cause if rung.cause is None else self.ladder(rung.cause, f"{path}.cause", found)
        if len(found) == before:
            return rung
        return rung.model_copy(update={"message": message, "details": details, "notes": tuple(notes),
                                       "group": group, "help": help_, "cause": cause})

    def __call__(self, event: ErrorEvent) -> ErrorEvent:
        found: list[str] = []
        error = self.ladder(event.error, "error", found)
        context = self.data(event.context, "context", found)
        if not found:
            return event
        redacted = tuple(dict.fromkeys((*event.redacted, *found)))
        return event.model_copy(update={"error": error, "context": context, "redacted": redacted})


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.redact]``."""
    return RedactSettings


@hookimpl(tryfirst=True)
def event_processor(settings: Settings) -> Callable[[ErrorEvent], ErrorEvent | None] | None:
    """Contribute the redactor, first in the chain (``None`` when ``enabled = false``)."""
    section = settings.plugin(NAME)
    if not isinstance(section, RedactSettings) or not section.enabled:
        return None
    return Redactor(tuple(section.keys), tuple(section.patterns), section.replacement)
