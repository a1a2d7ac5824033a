"""Rendering: diagnostics of RunnerErrors (live and stored) and event ladders."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timezone

import pytest
from rich.console import Console

from railgraph import (
    END,
    START,
    ConfigError,
    ErrorEvent,
    ErrorLadder,
    GraphBuilder,
    MemoryCheckpointer,
    NodeFailed,
    NodeScope,
    RunnerError,
    RunnerScope,
    Settings,
)
from railgraph.events import AppScope, event_from_exception, make_event
from railgraph.render import (
    Diagnostic,
    diagnostic_from_failure,
    diagnostic_of,
    format_diagnostic,
    format_events,
    render_diagnostic,
    render_events,
    summarize_events,
    to_plain,
    where_line,
)

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def _failing_graph(fn):
    b = GraphBuilder()
    b.add_node("lookup", fn)
    b.add_edge(START, "lookup")
    b.add_edge("lookup", END)
    return b.compile(settings=Settings(persistence={"backend": "memory"}), load_entrypoints=False,
                     checkpointer=MemoryCheckpointer())


def _chained(s, ctx):
    try:
        raise TimeoutError("read timed out after 2.0s")
    except TimeoutError as exc:
        raise ConnectionError("CRM returned HTTP 503") from exc


def _lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" │"))


def test_live_diagnostic_shows_code_message_where_ladder_and_help():
    """A node failure renders as error[code]: message, the where line, each cause rung and the help line."""
    graph = _failing_graph(_chained)
    with pytest.raises(NodeFailed) as info:
        graph.invoke({}, session="s1")
    text = format_diagnostic(info.value)
    lines = text.splitlines()
    assert lines[0] == "error[railgraph.runner.node_failed]: node 'lookup' failed at step 2 (ConnectionError)"
    assert lines[1] == "  ┌─ session s1 · step 2 · node lookup"
    assert "caused by ConnectionError: CRM returned HTTP 503" in text
    assert "caused by TimeoutError: read timed out after 2.0s" in text
    assert lines[-1].startswith("  └─ help: The node raised")
    cause, deeper = _lines_with(text, "ConnectionError:")[0], _lines_with(text, "TimeoutError:")[0]
    assert text.index(cause) < text.index(deeper) and _indent(deeper) > _indent(cause)


def test_help_points_up_to_the_cause_ladder_it_is_printed_under():
    """The help line is printed last, so the cause it tells the reader to fix is the one shown above it."""
    graph = _failing_graph(_chained)
    with pytest.raises(NodeFailed) as info:
        graph.invoke({}, session="s1")
    text = format_diagnostic(info.value)
    help_line = _lines_with(text, "help:")[0]
    assert "fix the cause above" in help_line and "below" not in help_line
    assert text.index(_lines_with(text, "caused by")[-1]) < text.index(help_line)
    assert "ladder above" in format_diagnostic(RunnerError("boom"))


def test_stored_failure_renders_exactly_like_the_live_error():
    """`Runner.failure` data (what a later process reads) gives the very same report as the live error."""
    graph = _failing_graph(_chained)
    with pytest.raises(NodeFailed) as info:
        graph.invoke({}, session="s2")
    failure, event = graph.runner.failure("s2")
    assert event is not None
    assert format_diagnostic(diagnostic_from_failure(failure, event)) == format_diagnostic(info.value)


def test_ladder_comes_from_the_stored_event_not_the_live_exception():
    """A secret in the live exception never shows when the (redacted) stored event says otherwise."""
    secret = "hunter2-secret"
    err = NodeFailed("node 'x' failed at step 3 (ValueError)", session="s", step=3, node="x")
    err.__cause__ = ValueError(f"password={secret}")
    scrubbed = event_from_exception(err, scope=NodeScope(node="x", step=3), id=uuid.UUID(int=1), when=WHEN)
    cause = scrubbed.error.cause.model_copy(update={"message": "password=[REDACTED]"})
    scrubbed = scrubbed.model_copy(update={"error": scrubbed.error.model_copy(update={"cause": cause}),
                                           "redacted": ("error.cause.message",)})
    err.with_events((scrubbed,))
    text = format_diagnostic(err)
    assert secret not in text
    assert "ValueError: password=[REDACTED]" in text
    assert "redacted: error.cause.message" in text


def test_exception_group_members_are_numbered_and_indented_under_their_group():
    """Members of an exception group appear as [1], [2] one level deeper than the group rung."""
    def boom(s, ctx):
        try:
            raise ExceptionGroup("2 lookups failed", [KeyError("c-1"), ValueError("bad id")])
        except ExceptionGroup as group:
            raise RuntimeError("batch failed") from group

    graph = _failing_graph(boom)
    with pytest.raises(NodeFailed) as info:
        graph.invoke({}, session="g")
    text = format_diagnostic(info.value)
    group = _lines_with(text, "ExceptionGroup: 2 lookups failed")[0]
    first, second = _lines_with(text, "[1] KeyError")[0], _lines_with(text, "[2] ValueError: bad id")[0]
    assert _indent(first) == _indent(second) > _indent(group)
    assert text.index(group) < text.index(first) < text.index(second)


def test_implicit_context_reads_while_handling_and_notes_are_shown():
    """A cause raised during handling (no `from`) is labelled 'while handling'; notes are printed."""
    inner = KeyError("c-legacy-17")
    outer = LookupError("no CRM record")
    outer.__context__ = inner
    outer.add_note("account closed in 2023")
    event = event_from_exception(outer, scope=NodeScope(node="lookup", step=2), id=uuid.UUID(int=2), when=WHEN)
    text = format_events([event])
    assert "while handling KeyError: 'c-legacy-17'" in text
    assert "note: account closed in 2023" in text


def test_error_without_event_renders_from_the_exception_with_file_and_line():
    """A ConfigError (no event emitted) shows its file:line and key in the where line and its help."""
    err = ConfigError("bad.toml:3: runner.max_stepz: unknown key", file="bad.toml", key="runner.max_stepz", line=3)
    text = format_diagnostic(err)
    assert text.splitlines()[0] == "error[railgraph.config.invalid]: bad.toml:3: runner.max_stepz: unknown key"
    assert "┌─ bad.toml:3 · key runner.max_stepz" in text
    assert "help: Fix the named key" in text
    assert diagnostic_of(err).exit_code == 3


@pytest.mark.parametrize(("text", "help_start"), [
    (None, "help: Check the file name and the working directory"),
    ("[runner]\nmax_steps = = 3\n", "help: Fix the TOML syntax on the line shown"),
    (b"\xff\xfe\x00garbage", "help: Make the file readable UTF-8 text"),
])
def test_config_file_errors_have_help_for_the_file_not_a_key(tmp_path, text, help_start):
    """A missing, unreadable or syntactically broken config file gets help about the file, not 'Fix the named key'."""
    path = tmp_path / "c.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as info:
        Settings.load(path) if text is not None else Settings.load(tmp_path / "nope.toml")
    rendered = format_diagnostic(info.value)
    assert help_start in rendered and "named key" not in rendered


def test_failure_without_event_uses_the_code_table_for_help_and_exit_code():
    """Stored failure data lacking help/exit code falls back to the CODES table for that code."""
    diag = diagnostic_from_failure({"code": "railgraph.runner.step_limit", "message": "too many steps",
                                    "where": {"session": "s", "step": 9}}, None)
    assert diag.exit_code == 15
    text = format_diagnostic(diag)
    assert text.startswith("error[railgraph.runner.step_limit]: too many steps")
    assert "help: Raise `runner.max_steps`" in text


def test_plain_output_has_no_ansi_while_a_terminal_gets_styles():
    """Off a terminal the text is plain; on a (forced) terminal the same renderable carries ANSI styles."""
    diag = Diagnostic(code="railgraph.error", message="boom", help="fix it", where={"session": "s"})
    plain = to_plain(render_diagnostic(diag))
    assert "\x1b[" not in plain and plain.startswith("error[railgraph.error]: boom")
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system="standard").print(render_diagnostic(diag))
    assert "\x1b[" in buf.getvalue()


def test_event_ladder_is_numbered_in_order_with_scope_tags_context_and_summary():
    """render_events numbers events oldest first, shows scope, tags, code, context (not the session) and counts."""
    a = make_event("ticket T-105 has no email", scope=NodeScope(node="intake", step=2), id=uuid.UUID(int=1),
                   when=WHEN, code="triage.intake.missing_email", tags=("warning",),
                   context={"session": "demo", "ticket": "T-105"})
    b = make_event("step limit", scope=RunnerScope(session="demo", step=9), id=uuid.UUID(int=2), when=WHEN,
                   code="railgraph.runner.step_limit", tags=("retry", "attempt:1/3"), context={"delay": 0.123456})
    c = make_event("sink down", scope=AppScope(), id=uuid.UUID(int=3), when=WHEN)
    text = format_events([a, b, c], title="trail")
    lines = text.splitlines()
    assert lines[0] == "trail"
    assert lines[1] == "  #1  2026-01-02 03:04:05.678Z  node intake · step 2  [warning]"
    assert "triage.intake.missing_email  railgraph.Event: ticket T-105 has no email" in lines[2]
    assert "context: ticket=T-105" in text and "session=demo" not in text
    assert "delay=0.1235" in text
    assert text.index("#1") < text.index("#2") < text.index("#3")
    assert "runner · step 9  [retry, attempt:1/3]" in text and "  #3  2026-01-02 03:04:05.678Z  app" in text
    assert lines[-1] == "3 events: app 1, node 1, runner 1 · 1 retry"


def test_empty_event_list_says_so():
    """An empty trail renders as 'no error events'."""
    assert format_events([]) == "no error events"
    assert summarize_events([]) == "no error events"


def test_where_line_orders_location_fields():
    """where_line shows file:line, key, then session, step, node, plugin, hook."""
    assert where_line({"node": "n", "session": "s", "step": 2}) == "session s · step 2 · node n"
    assert where_line({"plugin": "retry", "hook": "retry_decision"}) == "plugin retry · hook retry_decision"
    assert where_line({}) == ""


def test_rendering_from_json_round_tripped_event_is_identical():
    """An event decoded from its stored JSON renders exactly like the original."""
    graph = _failing_graph(_chained)
    with pytest.raises(NodeFailed):
        graph.invoke({}, session="rt")
    events = graph.errors("rt")
    again = [ErrorEvent.from_json(e.to_json()) for e in events]
    assert format_events(again) == format_events(events)
    assert to_plain(render_events(events)) == format_events(events)


def test_summary_counts_cap_summaries():
    """A cap summary event is counted separately in the one-line summary."""
    summary = make_event("3 events dropped", scope=AppScope(), id=uuid.UUID(int=9), when=WHEN,
                         code="railgraph.errors.capped")
    assert summarize_events([summary]) == "1 event: app 1 · 1 cap summary"
    assert isinstance(ErrorLadder(type="x", message="y"), ErrorLadder)
