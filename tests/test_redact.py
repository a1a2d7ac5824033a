"""The ``redact`` plugin: no denylisted value survives anywhere in an event's JSON."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import railgraph.plugins.redact as redact
from railgraph import END, START, ConfigError, ErrorEvent, ErrorLadder, GraphBuilder, NodePartial, NodeScope, Settings
from railgraph.manager import make_plugins
from strategies import denied_keys, events, message_leaks, secrets

WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


def processor(**section: Any) -> Any:
    """The processor the plugin contributes for `section`, through a fresh manager with only this plugin."""
    plugins = make_plugins(load_entrypoints=False, plugins=[redact])
    settings = plugins.bind(Settings(plugins={"redact": section}))
    return plugins.first("event_processor", settings=settings)[1]


def event(message: str = "m", *, context: dict[str, Any] | None = None, details: dict[str, Any] | None = None,
          cause: ErrorLadder | None = None, group: tuple[ErrorLadder, ...] = (), notes: tuple[str, ...] = ()
          ) -> ErrorEvent:
    """A node event with the given pieces."""
    return ErrorEvent(id=uuid.UUID(int=7), when=WHEN, scope=NodeScope(node="n", step=1), context=context or {},
                      error=ErrorLadder(type="ValueError", message=message, details=details or {}, cause=cause,
                                        group=group, notes=notes))


@st.composite
def leaky_events(draw: st.DrawFn) -> tuple[ErrorEvent, list[str]]:
    """An event hiding secrets under denied keys (nested) and in messages, notes, causes and group members."""
    planted: list[str] = []

    def secret() -> str:
        planted.append(draw(secrets))
        return planted[-1]

    def leak() -> str:
        return draw(message_leaks).format(secret())

    member = ErrorLadder(type="KeyError", message=leak(), via="group", details={draw(denied_keys): secret()})
    cause = ErrorLadder(type="OSError", message=leak(), via="cause", notes=(leak(),), group=(member,))
    context = {draw(denied_keys): secret(), "nested": {"list": [{draw(denied_keys): secret()}], "ok": "visible"},
               "session": "run-1"}
    ev = event(leak(), context=context, details={"deep": {draw(denied_keys): {"x": secret()}}}, cause=cause,
               notes=(leak(),))
    return ev, planted


@given(leaky_events())
def test_no_denylisted_value_survives_anywhere_in_the_event_json(case: tuple[ErrorEvent, list[str]]) -> None:
    """Every planted secret is gone from the JSON, each scrub is listed in `redacted`, the id is kept."""
    ev, planted = case
    out = processor()(ev)
    text = out.to_json()
    for value in planted:
        assert value not in text
    assert out.id == ev.id and out.redacted
    assert {"error.message", "error.cause.message", "error.cause.notes.0", "error.cause.group.0.message",
            "error.notes.0"} <= set(out.redacted)
    assert out.context["nested"]["ok"] == "visible" and out.context["session"] == "run-1"
    assert processor()(out) is out  # nothing left to scrub: idempotent


@given(events)
def test_innocent_events_are_returned_unchanged(ev: ErrorEvent) -> None:
    """An event without secret keys or secret-looking values is returned as the same object."""
    out = processor()(ev)
    if not out.redacted:
        assert out is ev
    else:
        assert out.id == ev.id and out != ev


@pytest.mark.parametrize("value", [
    "id 3f2b8c1e-9a4d-4c6b-8e2f-1a2b3c4d5e6f failed",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 is bad",
    "the author wrote 1200 total_tokens with tokenizer gpt2",
    "file /usr/lib/python3.11/site-packages/pydantic/main.py line 12",
])
def test_uuids_hashes_and_ordinary_words_are_kept(value: str) -> None:
    """UUIDs, hex hashes, paths and words like author or total_tokens are not mistaken for secrets."""
    ctx = {"author": "ann", "total_tokens": 1200, "tokenizer": "gpt2", "session": "s"}
    out = processor()(event(value, context=ctx))
    assert out.error.message == value and out.context == ctx and out.redacted == ()


def test_well_known_token_shapes_are_scrubbed_from_messages() -> None:
    """AWS keys, JWTs, GitHub tokens, private keys and long mixed-case tokens are scrubbed from free text."""
    leaks = ["AKIAIOSFODNN7EXAMPLE",
             "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
             "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789", "q8Z3xVbN7mKpL2wRtY6uHjG4fDsA9cE1oPiU5yTr",
             "-----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY-----"]
    out = processor()(event(" | ".join(leaks)))
    assert all(leak not in out.error.message for leak in leaks)
    assert out.redacted == ("error.message",)


@pytest.mark.parametrize("text, secret", [
    ("cache at redis://:R3disPw16xq@cache:6379 refused", "R3disPw16xq"),  # no user name
    ("mysql://root:p@ssW0rd17xq@db.internal:3306/app", "ssW0rd17xq"),  # an '@' in the password
    ("HTTPS://admin:hunt3rPw18xq@host/", "hunt3rPw18xq"),  # an upper-case scheme
    ('{"password": "correct horse battery… [truncated 22 chars]', "horse"),  # a quote a cut left open
    ("x password='open quoted s3cret", "s3cret"),
])
def test_url_credentials_and_open_quoted_values_are_scrubbed(text: str, secret: str) -> None:
    """The URL's user:password@ takes an empty user, an '@' in the password and any case of scheme;
    a denylisted key's quoted value runs to the end of the text when no quote closes it."""
    out = processor()(event(text))
    assert secret not in out.error.message and out.redacted == ("error.message",)


@pytest.mark.parametrize("text", ["http://host:8080/path", "ssh://git@github.com:org/repo", "mailto:bob@example.com",
                                  "https://host/p?email=a@b.com", "http://[::1]:5432/db", 'say "hi", ok'])
def test_urls_without_credentials_are_kept(text: str) -> None:
    """Ports, a user without a password, e-mail addresses and open text are not credentials."""
    out = processor()(event(text))
    assert out.error.message == text and out.redacted == ()


def test_pairs_nested_past_the_limit_are_scrubbed_whole_not_recursed_into() -> None:
    """`a=a=...=password=x` a thousand levels deep once raised RecursionError (the event was then
    replaced by a bare failure notice); past MAX_NESTING levels the rest is scrubbed whole."""
    from railgraph.plugins.redact import MAX_NESTING

    out = processor()(event("a=" * 1008 + "password=hunter2"))
    assert "hunter2" not in out.error.message and out.redacted == ("error.message",)
    assert out.error.message.startswith("a=" * MAX_NESTING) and out.error.message.endswith("[REDACTED]")
    shallow = processor()(event("a=" * 30 + "password=hunter2"))
    assert shallow.error.message == "a=" * 30 + "password=[REDACTED]"


def test_configured_keys_patterns_and_replacement_apply() -> None:
    """Extra keys and regexes from the table are scrubbed with the configured replacement text."""
    proc = processor(keys=["ssn_number", "tenant"], patterns=[r"ACCT-\d{6}"], replacement="***")
    out = proc(event("account ACCT-123456 locked", context={"Tenant": "acme", "ssn_number": "1"}))
    assert out.error.message == "account *** locked"
    assert out.context == {"Tenant": "***", "ssn_number": "***"}
    assert set(out.redacted) == {"error.message", "context.Tenant", "context.ssn_number"}


def test_session_key_is_exempt_only_where_the_core_writes_the_run_id() -> None:
    """context.session (the railgraph session id) is kept; a nested or differently named session is scrubbed."""
    out = processor()(event(context={"session": "run-1", "http": {"session": "c00kie"}, "session_id": "abc"}))
    assert out.context == {"session": "run-1", "http": {"session": "[REDACTED]"}, "session_id": "[REDACTED]"}


def test_disabled_contributes_no_processor_and_bad_pattern_is_a_config_error() -> None:
    """enabled=false contributes nothing; an invalid regex fails binding naming its key path."""
    assert processor(enabled=False) is None
    plugins = make_plugins(load_entrypoints=False, plugins=[redact])
    with pytest.raises(ConfigError) as info:
        plugins.bind(Settings(plugins={"redact": {"patterns": ["ok", "("]}}))
    assert "plugins.redact.patterns.1" in str(info.value)


def test_redaction_runs_before_storage_and_sinks() -> None:
    """A secret a node puts in an event never reaches the outbox, extra["errors"] or the errors channel."""
    def leaky(state: Any, ctx: Any) -> NodePartial:
        return NodePartial(errors=[ctx.event("login password=Zq9hunter2", context={"api_key": "Zq9abc"})])

    builder = GraphBuilder()
    builder.add_node("leaky", leaky)
    builder.add_edge(START, "leaky")
    builder.add_edge("leaky", END)
    graph = builder.compile(Settings(persistence={"backend": "memory"}))
    state = graph.invoke({}, session="s")
    stored = [*graph.errors("s"), *state.extra["errors"], *state.errors]
    assert len(stored) == 3 and all("Zq9" not in e.to_json() for e in stored)
    assert stored[0].context["session"] == "s"


def test_long_words_are_scanned_in_linear_time() -> None:
    """A 50 000-character word (a quadratic key=value scan would take minutes) is processed in well under a second."""
    import time

    start = time.perf_counter()
    out = processor()(event("a" * 50_000 + " password=Zq9x"))
    assert time.perf_counter() - start < 1.0
    assert "Zq9x" not in out.error.message


# -- the prefilters are a pure optimisation ---------------------------------------------------------
# `Redactor(..., prefilter=False)` runs the pair scan on every string with = or :, and every pattern on
# every string. The fragments below make the prefilters' edge cases likely: denied keys with separators
# and quotes before = or :, each token shape whole and in pieces, long runs, and non-ASCII letters that
# `(?i)` folds onto ASCII ones (ſ is an s, ı and İ are i, the Kelvin sign is k) where lower() does not.

_fragments = st.sampled_from([
    "password", "Pass-Word", "token", "session", "author", "=", ": ", "'", '"', " ", "\t", "\u00a0", ".", "_", "-",
    ",", "&", "/", "@", "Bearer ", "BEARER ", "bearer", "basic ", "Basic ", "baſic ", "basıc ", "BASİC ", "beareR ",
    "://", "https://", "user:pw@host", "postgres://admin:S3cr@db", "AKIA", "ASIA", "AKIAIOSFODNN7EXAMPLE", "eyJ",
    "eyJhbGciOi.eyJzdWIi.c2lnbmF0", "ghp_", "ghp_" + "aB3" * 7, "xoxb-", "xoxb-1234567890", "sk-", "sk-" + "Ab_9" * 5,
    "sk_live_0123456789", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "-----begin",
    "q8Z3xVbN7mKpL2wRtY6uHjG4fDsA9cE1", "aB3" * 12, "abcdefghij" * 4, "0123456789" * 2, "[REDACTED]", "***",
    "ſ", "ı", "İ", "\u212a", "é", "…", "Ошибка", "\u3000", "\ud800",
])
# key=value pairs, secret or not, spelt the many ways a key and its separator can be written
_pairs = st.tuples(
    st.sampled_from(["password", "pass_word", "db.password", "x-api-key", "API.KEY", "dbPassword", "'token'", '"pwd"',
                     "session", "cookie", "tenant", "failed", "author", "total_tokens", "tokenizer", "a", "_secret",
                     "9token", "url", "pаssword"]),
    st.sampled_from(["=", ":", " = ", ": ", "  =  ", "\t:", "\u00a0:", "=\n", "'=", '":']),
    st.sampled_from(["Zq9hunter2", '"quoted value"', "'q v'", "Bearer abc.def", "token xyz", "[REDACTED]", "",
                     "x=y", "password=Zq9", "1&b=2",
                     "q8Z3xVbN7mKpL2wRtY6uHjG4fDsA9cE1 ", "q8Z3xVbN7mKpL2wRtY6uHjG4fDsA9cE"]),  # 32 and 31 long
).map("".join)
_texts = st.lists(_pairs | _fragments | st.text(max_size=6), max_size=12).map("".join)
# replacements that can complete a literal or a run a later pattern needs ("k" + "-..." after "s")
_replacements = st.sampled_from(["[REDACTED]", "***", "k", "sk-", "-", "AKIA", "eyJ", "Ab1" * 11, "x=y"])
_keys = st.sampled_from(["password", "db_password", "X-Api-Key", "apiKey", "session", "token", "tenant", "author",
                         "total_tokens", "n", "note", "ſecret"]) | st.text(max_size=6)
_json = st.recursive(st.none() | st.booleans() | st.integers() | _texts,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
                     max_leaves=8)
_rungs = st.recursive(
    st.builds(ErrorLadder, type=st.just("ValueError"), message=_texts, help=st.none() | _texts,
              details=st.dictionaries(_keys, _json, max_size=3), notes=st.lists(_texts, max_size=2).map(tuple)),
    lambda inner: st.builds(ErrorLadder, type=st.just("OSError"), message=_texts, via=st.just("cause"), cause=inner,
                            details=st.dictionaries(_keys, _json, max_size=2),
                            group=st.lists(inner.map(lambda r: r.model_copy(update={"via": "group"})),
                                           max_size=2).map(tuple)),
    max_leaves=4)
_events = st.builds(ErrorEvent, id=st.just(uuid.UUID(int=7)), when=st.just(WHEN),
                    scope=st.just(NodeScope(node="n", step=1)), error=_rungs,
                    context=st.dictionaries(_keys, _json, max_size=3))


def _redactors(replacement: str) -> tuple[redact.Redactor, redact.Redactor]:
    """The same configuration (an extra key and pattern) with and without the prefilters."""
    config = (("tenant",), (r"ACCT-\d{6}",), replacement)
    return redact.Redactor(*config), redact.Redactor(*config, prefilter=False)


def _rebuilt(r: redact.Redactor, ev: ErrorEvent) -> ErrorEvent:
    """`ev` scrubbed the plain way: every rung and container rebuilt, every string through `r.text`."""
    found: list[str] = []

    def scrub(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                denied = r.secret_key(str(k)) and not redact.EXEMPT.fullmatch(f"{path}.{k}")
                if denied and v not in (None, "", r.replacement) and not isinstance(v, bool):
                    out[k] = r.replacement
                    found.append(f"{path}.{k}")
                else:
                    out[k] = scrub(v, f"{path}.{k}")
            return out
        if isinstance(value, list):
            return [scrub(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, str) and r.text(value) != value:
            found.append(path)
            return r.text(value)
        return value

    def rung(x: ErrorLadder, path: str) -> ErrorLadder:
        return x.model_copy(update={
            "message": scrub(x.message, f"{path}.message"), "details": scrub(x.details, f"{path}.details"),
            "notes": tuple(scrub(list(x.notes), f"{path}.notes")),
            "group": tuple(rung(g, f"{path}.group.{i}") for i, g in enumerate(x.group)),
            "help": scrub(x.help, f"{path}.help"), "cause": x.cause and rung(x.cause, f"{path}.cause")})

    update = {"error": rung(ev.error, "error"), "context": scrub(ev.context, "context")}
    return ev.model_copy(update={**update, "redacted": tuple(found)}) if found else ev


@settings(max_examples=400)
@given(_texts, _replacements)
@example("s-----BEGIN RSA PRIVATE KEY-----x-----END RSA PRIVATE KEY------" + "0123456789" * 2, "k")  # forms sk-...
@example("Authorization: baſic dXNlcjpzM2NyZXRwYXNz", "[REDACTED]")
def test_prefilters_change_nothing_but_speed(value: str, replacement: str) -> None:
    """The scan with its prefilters gives exactly what the unfiltered scan gives, for any string."""
    fast, full = _redactors(replacement)
    assert fast.text(value) == full.text(value)


@settings(max_examples=150)
@given(_events, _replacements)
def test_prefiltered_events_equal_the_plain_full_scan(ev: ErrorEvent, replacement: str) -> None:
    """A whole event comes out exactly as the unfiltered scan over freshly rebuilt data makes it (same
    values, same `redacted` paths in the same order), and as the same object when nothing was scrubbed."""
    fast, full = _redactors(replacement)
    out, expected = fast(ev), _rebuilt(full, ev)
    assert out == expected and out.redacted == expected.redacted
    assert (out is ev) == (expected is ev)


def test_letters_that_fold_onto_ascii_do_not_slip_past_the_prefilter() -> None:
    """"baſic", "basıc" and "BASİC" match the (?i) patterns, so their credentials are scrubbed like "basic"'s."""
    r = redact.Redactor((), (), "[REDACTED]")
    for value in ["baſic dXNlcjpzM2NyZXRwYXNz", "basıc dXNlcjpzM2NyZXRwYXNz", "BASİC dXNlcjpzM2NyZXRwYXNz"]:
        assert r.text(value) == value[:6] + "[REDACTED]"
    assert all(redact.CASELESS_LITERALS.search(needle) for needles, pattern in redact.VALUE_PATTERNS
               if "(?i" in pattern for needle in needles)


def test_an_ordinary_event_is_not_copied() -> None:
    """A W3-shaped event (nested details, a cause, the session in its context) comes back as the same object."""
    details, context = {"n": 3, "nested": {"list": ["ok", 1]}}, {"session": "run-1", "user": "ann"}
    ev = event("tool call 'search_tickets' failed: upstream api.example.com answered HTTP 503 (attempt 3 of 5)",
               details=details, context=context, cause=ErrorLadder(type="OSError", message="timed out"))
    assert processor()(ev) is ev


def test_short_clean_strings_are_remembered_within_a_bound_and_secrets_never() -> None:
    """`text` remembers short strings with nothing to scrub (the session id of every event): the same
    answer as a fresh scan, every time; a string holding a secret is scrubbed every time and never
    kept; long strings are not kept; never more than SHORT_MEMO strings are."""
    r, full = _redactors("[REDACTED]")
    short = ["token=abc123", "ok", "ACCT-123456", "6f1e3c0a-4b2f-4f1e-9a1a-1234567890ab", "x" * redact.SHORT]
    for _ in range(2):
        assert [r.text(v) for v in short] == [full.text(v) for v in short]
    assert r.text("token=abc123") == "token=[REDACTED]" and r.text("ACCT-123456") == "[REDACTED]"
    assert r._clean == {"ok", "6f1e3c0a-4b2f-4f1e-9a1a-1234567890ab", "x" * redact.SHORT}
    long = "y" * (redact.SHORT + 1)
    r.text(long)
    assert long not in r._clean
    for i in range(redact.SHORT_MEMO + 10):
        r.text(f"v{i}")
    assert 0 < len(r._clean) <= redact.SHORT_MEMO
