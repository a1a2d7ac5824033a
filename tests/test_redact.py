"""The ``redact`` plugin: no denylisted value survives anywhere in an event's JSON."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given
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


def _reference_text(r: Any, value: str) -> str:
    """The scan without any prefilter: the pair scan on every string with = or :, then every pattern."""
    def pair(m: Any) -> str:
        if m["value"].strip("\"'") == r.replacement:
            return m[0]
        if not r.secret_key(m["key"].strip("\"'")):
            return f"{m['key']}{m['sep']}{redact.PAIR.sub(pair, m['value'])}"
        return f"{m['key']}{m['sep']}{r.replacement}"
    if "=" in value or ":" in value:
        value = redact.PAIR.sub(pair, value)
    for _, pattern in r.builtin:
        value = pattern.sub(r.replacement, value)
    for pattern in r.custom:
        value = pattern.sub(r.replacement, value)
    return value


_pieces = st.sampled_from(["password", "Pass-Word", "db_pwd", "x-api-key", "API", "key", "token", "Bearer ",
                           "basic ", "://", "user:pw@host", "AKIA", "eyJ", "ghp_", "sk-", "=", ": ", "'", '"', " ",
                           "-----BEGIN RSA PRIVATE KEY-----", "session", "cookie", ".", "_", "-", "aB3" * 12])


@given(st.lists(_pieces | st.text(max_size=6), max_size=14).map("".join))
def test_prefilters_change_nothing_but_speed(value: str) -> None:
    """The scan with its prefilters gives exactly what the unfiltered scan gives, for any string."""
    r = redact.Redactor((), (), "[REDACTED]")
    assert r.text(value) == _reference_text(r, value)
