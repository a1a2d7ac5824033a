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
"""

from __future__ import annotations

import re
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
# Each value pattern comes with a cheap necessary condition (a literal it cannot match without,
# checked on the lower-cased string) so ordinary text costs a few substring tests, not a regex pass.
VALUE_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("-----begin",), r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    (("://",), r"(?<=[a-z0-9+.\-]://)[^\s:/@]+:[^\s@/]+(?=@)"),
    (("bearer ",), r"(?<=(?i:bearer) )[A-Za-z0-9\-._~+/]+=*"),
    (("basic ",), r"(?<=(?i:basic) )[A-Za-z0-9+/]{8,}=*"),
    (("eyj",), r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    (("akia", "asia"), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (("gh", "xox", "sk-", "sk_live_"),
     r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|sk_live_[A-Za-z0-9]{10,})"),
    ((), r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}"),
)
KEY_BEFORE_SEP = re.compile(r"""(?<![A-Za-z0-9_.\-])([A-Za-z][A-Za-z0-9_.\-]*)["']?\s*[=:]""")
_SEPARATORS = str.maketrans("", "", "_.-")
LONG_RUN = re.compile(r"[A-Za-z0-9_-]{32,}")  # the last pattern's necessary condition
PAIR = re.compile(r"""(?<![A-Za-z0-9_.\-"'])(?P<key>["']?[A-Za-z][A-Za-z0-9_.\-]*["']?)(?P<sep>\s*[=:]\s*)"""
                  r"""(?P<value>"[^"]*"|'[^']*'|(?i:(?:bearer|basic|token|digest)\s+)?[^\s,;&"']+)""")


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
    """Scrubs one event; built once from the settings."""

    def __init__(self, keys: tuple[str, ...], patterns: tuple[str, ...], replacement: str) -> None:
        self.deny = [tuple(_words(k)) for k in dict.fromkeys((*DENYLIST, *keys)) if _words(k)]
        self.builtin = [(needles, re.compile(p)) for needles, p in VALUE_PATTERNS]
        self.custom = [re.compile(p) for p in patterns]
        # A key names a secret only if its letters and digits hold some entry's longest word.
        self.hints = tuple(sorted({max(e, key=len) for e in self.deny}))
        self.replacement = replacement
        self._keys: dict[str, bool] = {}

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

    def _may_pair(self, value: str) -> bool:
        """A necessary condition for PAIR to find a secret key: some run of key characters ending in
        ``=`` or ``:`` holds a hint word once lower-cased and stripped of separators."""
        for m in KEY_BEFORE_SEP.finditer(value):
            key = m[1].lower().translate(_SEPARATORS)
            if any(h in key for h in self.hints):
                return True
        return False

    def text(self, value: str) -> str:
        """`value` with every secret-looking substring replaced."""
        def pair(m: re.Match[str]) -> str:
            if m["value"].strip("\"'") == self.replacement:
                return m[0]
            if not self.secret_key(m["key"].strip("\"'")):
                # the value may itself hold a pair: "failed: password=..." matched as key "failed"
                return f"{m['key']}{m['sep']}{PAIR.sub(pair, m['value'])}"
            return f"{m['key']}{m['sep']}{self.replacement}"
        if ("=" in value or ":" in value) and self._may_pair(value):
            value = PAIR.sub(pair, value)
        lower = value.lower()
        for needles, pattern in self.builtin:
            if needles:
                if not any(n in lower for n in needles):
                    continue
            elif not LONG_RUN.search(value):
                continue
            value = pattern.sub(self.replacement, value)
        for pattern in self.custom:
            value = pattern.sub(self.replacement, value)
        return value

    def data(self, value: Any, path: str, found: list[str]) -> Any:
        """Scrub JSON data; record changed paths in `found`."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                sub = f"{path}.{k}"
                if (self.secret_key(str(k)) and not EXEMPT.fullmatch(sub) and v not in (None, "", self.replacement)
                        and not isinstance(v, bool)):
                    out[k] = self.replacement
                    found.append(sub)
                else:
                    out[k] = self.data(v, sub, found)
            return out
        if isinstance(value, list):
            return [self.data(v, f"{path}.{i}", found) for i, v in enumerate(value)]
        if isinstance(value, str):
            new = self.text(value)
            if new != value:
                found.append(path)
            return new
        return value

    def ladder(self, rung: ErrorLadder, path: str, found: list[str]) -> ErrorLadder:
        """Scrub one rung and everything below it (the same object when nothing changed)."""
        before = len(found)
        update: dict[str, Any] = {
            "message": self.data(rung.message, f"{path}.message", found),
            "details": self.data(dict(rung.details), f"{path}.details", found),
            "notes": tuple(self.data(n, f"{path}.notes.{i}", found) for i, n in enumerate(rung.notes)),
            "group": tuple(self.ladder(g, f"{path}.group.{i}", found) for i, g in enumerate(rung.group)),
        }
        if rung.help is not None:
            update["help"] = self.data(rung.help, f"{path}.help", found)
        if rung.cause is not None:
            update["cause"] = self.ladder(rung.cause, f"{path}.cause", found)
        return rung.model_copy(update=update) if len(found) > before else rung

    def __call__(self, event: ErrorEvent) -> ErrorEvent:
        found: list[str] = []
        error = self.ladder(event.error, "error", found)
        context = self.data(dict(event.context), "context", found)
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
