"""Hardening: size limits end to end, unstorable values, step and cycle limits, hostile session ids,
and where plugins may come from.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from railgraph import (
    END,
    START,
    ConfigError,
    ErrorEvent,
    ErrorLadder,
    GraphBuilder,
    InputError,
    NodeScope,
    Settings,
    StepLimitError,
    UnstorableValueError,
)
from railgraph.cli import cli
from railgraph.runner import MAX_SESSION_ID

PG_ENV = "RAILGRAPH_TEST_POSTGRES_DSN"


def sqlite(path: Path, **sections) -> Settings:
    """Settings on a real SQLite file plus `sections`."""
    plugins = {"sqlite_store": {"path": str(path)}, **sections.pop("plugins", {})}
    return Settings(plugins=plugins, **sections)


# -- limits --------------------------------------------------------------------------------------------


def _chain(depth: int, size: int) -> BaseException:
    exc: BaseException | None = None
    for i in range(depth):
        try:
            raise ValueError(f"rung {i} " + "word " * (size // 5)) from exc
        except ValueError as caught:
            exc = caught
    assert exc is not None
    return exc


def test_event_limits_hold_end_to_end_through_a_graph_a_store_and_a_sink(tmp_path: Path) -> None:
    """With small `[errors]` limits, events built by the runner, by `ctx.event` and by hand in a node are
    all cut to the limits, marked in `truncated`, and stored and sent that way (SQLite and JSON Lines)."""
    limits = {"max_message": 200, "max_depth": 3, "max_context_bytes": 500}
    jsonl = tmp_path / "e.jsonl"

    def emits(state, ctx):
        huge = "x " * 5000
        by_hand = ErrorEvent(id=uuid.uuid4(), when=datetime.now(timezone.utc), scope=NodeScope(node="emits", step=1),
                             error=ErrorLadder(type="Big", message=huge, details={"blob": huge},
                                               notes=tuple(huge for _ in range(40))),
                             context={"blob": huge})
        return {"errors": [ctx.event(huge, details={"blob": huge}, context={"blob": huge}),
                           ctx.event_from(_chain(10, 1000)), by_hand]}

    def fails(state, ctx):
        raise _chain(10, 1000)
    b = GraphBuilder().add_node("emits", emits).add_node("fails", fails)
    b.add_edge(START, "emits").add_edge("emits", "fails").add_edge("fails", END)
    settings = sqlite(tmp_path / "s.db", errors=limits, plugins={"jsonl_sink": {"enabled": True, "path": str(jsonl)}})
    with b.compile(settings=settings) as g, pytest.raises(Exception):
        g.invoke({}, session="s")
    with b.compile(settings=settings) as g:  # read back by a fresh runner: what was stored
        stored = g.errors("s")
    sent = [ErrorEvent.from_json(json.dumps(json.loads(line)["event"])) for line in jsonl.read_text().splitlines()]
    assert len(stored) == 4 and {e.id for e in sent} == {e.id for e in stored}
    for event in stored:
        assert event.truncated, event
        for rung in event.error.rungs():
            assert len(rung.message) <= 200 + 40 and len(rung.notes) <= 16
            assert len(json.dumps(rung.details)) <= 500 or set(rung.details) == {"truncated"}
        assert len(json.dumps(event.context)) <= 500 or set(event.context) == {"truncated"}
        depth = 0
        rung = event.error
        while rung.cause is not None:
            rung, depth = rung.cause, depth + 1
        assert depth <= 3
        assert len(event.to_json()) < 12_000
    runner_fail = next(e for e in stored if e.node == "fails" and e.code)
    assert "error.cause.cause.cause.cause" in runner_fail.truncated or any(
        p.endswith(".cause") for p in runner_fail.truncated)


def test_a_long_node_message_keeps_the_count_its_cut_states(tmp_path: Path) -> None:
    """A node's 10,000-character message is cut once, by ctx.event: the stored event says how many
    characters went (the runner's bound on every event does not cut it a second time)."""
    def emits(state, ctx):
        return {"errors": [ctx.event("word " * 2000)]}
    b = GraphBuilder().add_node("emits", emits)
    b.add_edge(START, "emits").add_edge("emits", END)
    with b.compile(settings=sqlite(tmp_path / "s.db")) as g:
        g.invoke({}, session="s")
        (event,) = g.errors("s")
    kept, _, rest = event.error.message.partition("… [truncated ")
    assert rest == f"{10_000 - len(kept)} chars]" and len(kept) <= 4096 and event.truncated == ("error.message",)


def test_truncation_does_not_keep_half_of_a_secret_token(tmp_path: Path) -> None:
    """A message cut in the middle of a URL with a password drops the whole token, so no half-password
    escapes the redactor's patterns (which need the whole `user:pass@` form)."""
    def fails(state, ctx):
        raise ConnectionError("a " * 85 + "postgresql://admin:S3cr3tPassw0rdXYZ@db:5432/x")
    b = GraphBuilder().add_node("fails", fails).add_edge(START, "fails").add_edge("fails", END)
    with b.compile(settings=sqlite(tmp_path / "s.db", errors={"max_message": 200})) as g:
        with pytest.raises(Exception):
            g.invoke({}, session="s")
        cause = g.errors("s")[-1].error.cause
    assert cause is not None and "S3cr3t" not in cause.message and "truncated" in cause.message


@pytest.mark.parametrize("value, kind", [(datetime(2026, 1, 1), "datetime"), (math.nan, "float"),
                                         ({1, 2}, "set"), (object(), "object"), ({"ok": [1, {"bad": b"x"}]}, "dict")])
def test_unstorable_value_is_refused_naming_node_and_key_and_nothing_corrupt_is_stored(
        tmp_path: Path, value: object, kind: str) -> None:
    """A node returning a value JSON cannot hold fails with UnstorableValueError naming node and key;
    the SQLite file stays sound, the key is absent, and a fresh process reads the session cleanly."""
    def good(state, ctx):
        return {"extra": {"fine": 1}}

    def bad(state, ctx):
        return {"extra": {"payload": value, "fine2": 2}}
    b = GraphBuilder().add_node("good", good).add_node("bad", bad)
    b.add_edge(START, "good").add_edge("good", "bad").add_edge("bad", END)
    db = tmp_path / "s.db"
    with b.compile(settings=sqlite(db)) as g, pytest.raises(UnstorableValueError) as info:
        g.invoke({}, session="s")
    err = info.value
    assert err.node == "bad" and "'payload'" in str(err) and "bad" in str(err) and kind in str(err)
    assert err.event is not None and err.event.error.details.get("key") == "payload"
    with b.compile(settings=sqlite(db)) as g:
        state = g.state("s")
        assert state.status == "failed" and "payload" not in state.extra and "fine2" not in state.extra
        assert state.extra["fine"] == 1
        assert [e.code for e in g.errors("s")] == ["railgraph.barrier.unstorable_value"]
        assert g.runner.checkpointer.integrity_check() == "ok"
    with sqlite3.connect(db) as conn:
        assert not conn.execute("SELECT COUNT(*) FROM extra WHERE key = 'payload'").fetchone()[0]


def test_step_limit_holds_for_an_endless_loop_and_resume_continues(tmp_path: Path) -> None:
    """A loop that always changes state stops at `runner.max_steps` with StepLimitError, committed; each
    resume runs at most that many more steps."""
    b = GraphBuilder().add_node("spin", lambda s, ctx: {"extra": {"n": s.extra.get("n", 0) + 1}})
    b.add_edge(START, "spin").add_edge("spin", "spin")
    settings = sqlite(tmp_path / "s.db", runner={"max_steps": 20})
    with b.compile(settings=settings) as g:
        with pytest.raises(StepLimitError) as info:
            g.invoke({}, session="s")
        assert info.value.exit_code == 15
        n1 = g.state("s").extra["n"]
        with pytest.raises(StepLimitError):
            g.invoke(None, session="s")
        n2 = g.state("s").extra["n"]
        codes = [e.code for e in g.errors("s")]
    assert n1 == 20 and n2 == 40
    assert codes == ["railgraph.runner.step_limit"] * 2


def test_a_cycle_that_changes_nothing_ends_by_gating(tmp_path: Path) -> None:
    """Two nodes routing to each other forever end as soon as neither changes state (version gating)."""
    b = GraphBuilder().add_node("a", lambda s, ctx: {"extra": {"x": 1}}).add_node("b", lambda s, ctx: None)
    b.add_edge(START, "a").add_edge("a", "b").add_edge("b", "a")
    with b.compile(settings=sqlite(tmp_path / "s.db", runner={"max_steps": 50})) as g:
        state = g.invoke({}, session="s")
    assert state.status == "completed" and state.step < 10


# -- hostile session ids --------------------------------------------------------------------------------

SESSION_IDS = ["'; DROP TABLE checkpoints; --", "../../etc/passwd", '"', "'", "\\", "%s", "{s}", "?", "a\nb\tc",
               "🔥🚒", "\u202eevil\u202c", "\u200b", "ñ é 中文", "x" * MAX_SESSION_ID, " leading and trailing "]
REJECTED = ["", "a\x00b", "\ud800", "x" * (MAX_SESSION_ID + 1)]  # "": not a new random id, as None is


def _tiny() -> GraphBuilder:
    b = GraphBuilder().add_node("n", lambda s, ctx: {"extra": {"k": 1}, "errors": [ctx.event("ok")]})
    return b.add_edge(START, "n").add_edge("n", END)


def _roundtrip(settings: Settings, config: Path) -> None:
    with _tiny().compile(settings=settings) as g:
        for sid in SESSION_IDS:
            assert g.invoke({}, session=sid).session == sid
        listed = {info.session for info in g.runner.checkpointer.sessions()}
    with _tiny().compile(settings=settings) as g:  # a fresh store connection reads them back exactly
        for sid in SESSION_IDS:
            assert sid in listed
            assert g.state(sid).session == sid and g.state(sid).extra["k"] == 1
            assert len(g.errors(sid)) == 1
        for sid in REJECTED:
            with pytest.raises(InputError):
                g.invoke({}, session=sid)
            with pytest.raises(InputError):
                g.errors(sid)
    for sid in SESSION_IDS:
        result = CliRunner().invoke(cli, ["errors", sid, "-c", str(config), "--json"])
        assert result.exit_code == 0, (sid, result.output)
        assert len(json.loads(result.output)) == 1
    for sid in REJECTED:
        result = CliRunner().invoke(cli, ["errors", sid, "-c", str(config)])
        assert result.exit_code == 6 and "Traceback" not in result.output


def test_hostile_session_ids_round_trip_in_sqlite_and_the_cli(tmp_path: Path) -> None:
    """Session ids with SQL, quotes, paths, control and bidi characters, emoji and 1024 characters are
    stored and read back exactly (API and `railgraph errors`); NUL, lone surrogates and longer ids are
    a clear InputError."""
    db = tmp_path / "s.db"
    config = tmp_path / "rg.toml"
    config.write_text(f'[plugins.sqlite_store]\npath = "{db}"\n')
    _roundtrip(sqlite(db), config)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
            "checkpoints", "outbox"}


def test_hostile_session_ids_round_trip_in_postgres(tmp_path: Path) -> None:
    """The same ids round-trip exactly through PostgreSQL (and the CLI on it)."""
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"PostgreSQL tests skipped: set {PG_ENV} to a server DSN (.ci/run starts one)")
    import psycopg
    schema = f"hostile_{uuid.uuid4().hex[:10]}"
    config = tmp_path / "rg.toml"
    config.write_text(f'[persistence]\nbackend = "postgres"\n[plugins.postgres_store]\ndsn = "{dsn}"\n'
                      f'schema = "{schema}"\n')
    try:
        _roundtrip(Settings(persistence={"backend": "postgres"},
                            plugins={"postgres_store": {"dsn": dsn, "schema": schema}}), config)
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute(f"SELECT COUNT(*) FROM {schema}.checkpoints").fetchone()[0] > 0  # noqa: S608
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- where plugins come from ----------------------------------------------------------------------------


def test_a_module_on_disk_or_named_in_toml_is_never_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin-looking module in the working directory (on sys.path) that is named in the TOML — as a
    plugin table, in `plugins.disable`, or as a backend — is never imported: plugins come only from
    installed entry points or objects passed in code."""
    marker = tmp_path / "IMPORTED"
    for name in ("evil_plugin", "railgraph_evil"):
        (tmp_path / f"{name}.py").write_text(
            f"from pathlib import Path\nPath({str(marker)!r}).write_text('{name}')\n"
            "from railgraph import hookimpl\n@hookimpl\ndef make_sinks(settings):\n    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    tomls = {
        "table": "[plugins.evil_plugin]\nenabled = true\n",
        "disable": 'plugins.disable = ["evil_plugin"]\n',
        "backend": '[persistence]\nbackend = "evil_plugin"\n',
        "dotted": '[persistence]\nbackend = "railgraph_evil:make_sinks"\n',
    }
    for label, text in tomls.items():
        config = tmp_path / f"{label}.toml"
        config.write_text(text)
        with pytest.raises(ConfigError):
            with _tiny().compile(settings=Settings.load(config)) as g:
                g.invoke({}, session="s")
        for args in (["plugins"], ["config", "validate", str(config)], ["config", "explain"]):
            result = CliRunner().invoke(cli, [*args, "-c", str(config)] if args[0] != "config" or args[1] != "validate"
                                        else args)
            assert result.exit_code in (0, 3), (label, args, result.output)
    assert not marker.exists(), f"imported {marker.read_text()}"
