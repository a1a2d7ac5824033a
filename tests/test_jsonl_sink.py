"""The ``jsonl_sink`` plugin: committed events appended to a JSON Lines file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import railgraph.plugins.jsonl_sink as jsonl_sink
from railgraph import END, START, ErrorEvent, GraphBuilder, NodePartial, Settings, Sink
from railgraph.manager import make_plugins
from strategies import event_with_id


def sinks_for(**section: Any) -> list[Any]:
    """The sinks the plugin contributes for `section`, through a fresh manager with only this plugin."""
    plugins = make_plugins(load_entrypoints=False, plugins=[jsonl_sink])
    settings = plugins.bind(Settings(plugins={"jsonl_sink": section}))
    return [s for _, contributed in plugins.call("make_sinks", settings=settings) for s in contributed]


def test_off_by_default() -> None:
    """Without `enabled = true` the plugin contributes no sink and writes no file."""
    assert sinks_for() == []
    assert not Path(".railgraph").exists()


def test_appends_one_line_per_event_and_never_rewrites(tmp_path: Path) -> None:
    """write() appends {"session", "event"} lines whose event decodes to the same ErrorEvent; a new sink appends."""
    path = tmp_path / "out" / "errors.jsonl"
    (sink,) = sinks_for(enabled=True, path=str(path))
    assert isinstance(sink, Sink) and sink.name == "jsonl_sink"
    sink.write("s1", [event_with_id(1), event_with_id(2)])
    sink.flush()
    sink.close()
    (again,) = sinks_for(enabled=True, path=str(path), fsync=False)
    again.write("s2", [event_with_id(3)])
    again.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["session"] for r in rows] == ["s1", "s1", "s2"]
    assert [ErrorEvent.from_data(r["event"]) for r in rows] == [event_with_id(n) for n in (1, 2, 3)]


def test_receives_the_events_a_graph_commits() -> None:
    """Run through a graph, the sink's file holds every committed event, in emission order."""
    def emit(state: Any, ctx: Any) -> NodePartial:
        return NodePartial(errors=[ctx.event(f"w{i}") for i in range(3)])

    builder = GraphBuilder()
    builder.add_node("emit", emit)
    builder.add_edge(START, "emit")
    builder.add_edge("emit", END)
    with builder.compile(Settings(persistence={"backend": "memory"}, plugins={"jsonl_sink": {"enabled": True}})) as g:
        g.invoke({}, session="s")
        expected = [e.id for e in g.errors("s")]
    rows = [json.loads(line) for line in Path(".railgraph/errors.jsonl").read_text().splitlines()]
    assert [ErrorEvent.from_data(r["event"]).id for r in rows] == expected and len(expected) == 3


def test_a_run_that_finds_the_lease_held_delivers_its_last_events_once_it_is_free(tmp_path: Path) -> None:
    """Another worker holds the sink's delivery lease for the whole run: the run delivers nothing on
    the way, waits at its end for the lease, and then delivers every event it committed."""
    import threading
    import time

    from railgraph.plugins.sqlite_store import SqliteCheckpointer

    db, out = tmp_path / "rg.db", tmp_path / "e.jsonl"
    other = SqliteCheckpointer(db)  # another worker on the same store
    assert other.lease_sink("jsonl_sink")

    def emit(state: Any, ctx: Any) -> NodePartial:
        return NodePartial(extra={"n": state.extra.get("n", 0) + 1}, errors=[ctx.event("e")])
    builder = GraphBuilder().add_node("emit", emit)
    builder.add_edge(START, "emit").add_conditional_edges("emit", lambda s: "emit" if s.extra["n"] < 5 else END)
    settings = Settings(plugins={"sqlite_store": {"path": str(db)}, "jsonl_sink": {"enabled": True, "path": str(out)}})
    release = threading.Timer(0.3, other.release_sink, args=("jsonl_sink",))
    with builder.compile(settings) as g:
        release.start()
        started = time.monotonic()
        g.invoke({}, session="s")
        waited = time.monotonic() - started
        expected = [e.id for e in g.errors("s")]
    rows = [ErrorEvent.from_data(json.loads(line)["event"]).id for line in out.read_text().splitlines()]
    assert rows == expected and len(expected) == 5 and waited >= 0.25
    other.close()
