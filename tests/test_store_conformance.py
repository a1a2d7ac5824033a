"""One conformance suite for every store: memory, SQLite (a temporary file) and PostgreSQL.

PostgreSQL runs when RAILGRAPH_TEST_POSTGRES_DSN names a server (``.ci/run`` starts one); each
test gets its own schema, dropped afterwards. The dedicated errors store does not exist in
memory (``has_errors_store = False``), so its tests run on SQLite and PostgreSQL only.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from store_helpers import Backend, backend_fixture, counter_graph, event_id, fanout_graph, make_backend

from railgraph import (AppScope, CheckpointError, Message, NodePartial, NodeScope, SessionBusyError, Settings,
                       StepLimitError)
from railgraph.checkpoint import Checkpoint, Checkpointer, Delta, MemoryCheckpointer
from railgraph.events import SUMMARY_CODE, ErrorEvent, make_event
from railgraph.hookspecs import hookimpl
from railgraph.manager import make_plugins
from railgraph.state import FrozenDict, freeze

backend = backend_fixture(("memory", "sqlite", "postgres"))
durable = backend_fixture(("sqlite", "postgres"))

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ev(i: int, *, node: str = "n", step: int = 1, code: str = "test.code") -> ErrorEvent:
    """A node event with id ``UUID(int=i)``."""
    return make_event(f"event {i}", scope=NodeScope(node=node, step=step), id=uuid.UUID(int=i),
                      when=T0 + timedelta(seconds=i), code=code, details={"i": i}, context={"k": [i, "x"]})


def summary(i: int, count: int) -> ErrorEvent:
    """A cap summary standing for `count` dropped events."""
    return make_event("capped", scope=AppScope(), id=uuid.UUID(int=10_000 + i), when=T0, code=SUMMARY_CODE,
                      details={"count": count}, tags=("summary",))


def checkpoint(session: str, step: int, *, messages: tuple[Message, ...] = (), extra: Any = None,
               events: tuple[ErrorEvent, ...] = (), status: str = "running", frontier: tuple[str, ...] = ("a",),
               pending: Any = None, failure: Any = None, interrupt: str | None = None) -> Checkpoint:
    """A checkpoint with the given parts and plausible versions."""
    return Checkpoint(session, step, status, messages, FrozenDict(extra or {}),
                      FrozenDict(messages=step, extra=step, errors=1), frontier,
                      FrozenDict(a=FrozenDict(messages=step, extra=step)), pending if pending is not None else FrozenDict(),
                      events, failure, T0 + timedelta(minutes=step), interrupt)


def history_of(session: str) -> list[tuple[Checkpoint, Delta]]:
    """Six commits exercising every write path: append, cap with summary, pending, rewrite, shrink."""
    m0, m1, m2 = Message("user", "hi"), Message("ai", freeze({"text": "yo", "n": [1, 2]}), "bot"), Message("ai", 3.5)
    e1, e2, e3, e4, e5 = ev(1), ev(2, node="m"), ev(3, step=3), ev(4, code="other"), ev(5)
    s1 = summary(1, 1)
    doc = freeze({"a": [1, 2, {"b": None}], "t": True, "f": 1.5, "u": "é"})
    extra1 = {"n": 0, "doc": doc, "f": 1.5}
    cp1 = checkpoint(session, 1, messages=(m0,), extra=extra1)
    d1 = Delta(messages_appended=1, extra_keys=frozenset(extra1), first=True)
    extra2 = {**extra1, "n": 1, "errors": (e1, e2)}
    cp2 = checkpoint(session, 2, messages=(m0, m1), extra=extra2, events=(e1, e2))
    d2 = Delta(messages_appended=1, extra_keys=frozenset({"n"}), errors_appended=(e1, e2))
    extra3 = {**extra2, "errors": (s1, e2, e3)}
    cp3 = checkpoint(session, 3, messages=cp2.messages, extra=extra3, events=(e3,))
    d3 = Delta(errors_dropped=1, errors_appended=(e3,), errors_summary=s1, errors_summary_changed=True)
    pending = FrozenDict(b=NodePartial([Message("ai", "pending")], {"x": freeze([1])}, [e4]))
    failure = freeze({"code": "railgraph.runner.node_failed", "message": "boom", "where": {"node": "c", "step": 4}})
    extra4 = {**extra3, "doc": freeze({"changed": 1})}
    cp4 = checkpoint(session, 4, messages=cp2.messages, extra=extra4, events=(e4,), status="failed",
                     pending=pending, failure=failure, frontier=("b", "c"))
    d4 = Delta(extra_keys=frozenset({"doc"}))
    extra5 = {**extra4, "errors": (e3, e2)}
    cp5 = checkpoint(session, 5, messages=cp2.messages, extra=extra5, events=(e5,), status="interrupted",
                     pending=pending, interrupt="before:b", frontier=("b",))
    d5 = Delta(errors_appended=(e5,), errors_rewritten=True)
    extra6 = {k: v for k, v in extra5.items() if k != "f"}
    cp6 = checkpoint(session, 6, messages=(m2,), extra=extra6, status="completed", frontier=())
    return [(cp1, d1), (cp2, d2), (cp3, d3), (cp4, d4), (cp5, d5), (cp6, Delta())]


def commit_all(store: Checkpointer, session: str) -> list[Checkpoint]:
    """Commit `history_of(session)`; return the checkpoints."""
    out = []
    for cp, delta in history_of(session):
        store.commit(cp, delta)
        out.append(cp)
    return out


# ---------------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------------


def test_every_checkpoint_loads_back_equal(backend: Backend) -> None:
    """latest, get and history return exactly what was committed, for every write path."""
    store = backend.open()
    cps = commit_all(store, "s1")
    assert store.latest("s1") == cps[-1]
    for cp in cps:
        got = store.get("s1", cp.step)
        assert got == cp, cp.step
        assert got.extra.get("errors", ()) == cp.extra.get("errors", ())
        assert all(isinstance(e, ErrorEvent) for e in got.extra.get("errors", ()))
    assert store.get("s1", 99) is None and store.latest("nope") is None and store.get("nope", 1) is None
    assert [(s, st) for s, st, _ in store.history("s1")] == [(c.step, c.status) for c in cps]
    assert [t for _, _, t in store.history("s1")] == [c.created_at for c in cps]


def test_a_new_instance_loads_the_same_checkpoints(durable: Backend) -> None:
    """A store opened afresh (a restart) sees every committed checkpoint, field by field."""
    cps = commit_all(durable.open(), "s1")
    again = durable.open()
    assert [again.get("s1", c.step) for c in cps] == cps
    loaded, last = again.get("s1", 5), again.latest("s1")
    assert isinstance(loaded.extra["doc"], FrozenDict) and isinstance(loaded.pending_writes["b"], NodePartial)
    assert last.messages[0].content == 3.5 and isinstance(last.versions_seen["a"], FrozenDict)


def test_commit_refuses_to_overwrite_a_stored_step(backend: Backend) -> None:
    """Committing a step that exists raises CheckpointError and leaves the stored one intact."""
    store = backend.open()
    cps = commit_all(store, "s1")
    with pytest.raises(CheckpointError) as info:
        store.commit(checkpoint("s1", 6, status="failed"), Delta())
    assert "s1" in str(info.value)
    assert store.latest("s1") == cps[-1]
    if backend.durable:
        other = backend.open()
        with pytest.raises(CheckpointError):
            other.commit(checkpoint("s1", 3), Delta())
        assert other.get("s1", 3) == cps[2]


def test_session_events_are_the_outbox_in_emission_order(backend: Backend) -> None:
    """session_events returns every committed event of the session once, in commit order."""
    store = backend.open()
    commit_all(store, "s1")
    store.commit(checkpoint("s2", 1, events=(ev(50),)), Delta(first=True))
    assert [e.id.int for e in store.session_events("s1")] == [1, 2, 3, 4, 5]
    assert [e.id.int for e in store.session_events("s2")] == [50]
    assert store.session_events("none") == []


def test_sessions_lists_status_steps_errors_and_last_error(backend: Backend) -> None:
    """sessions() gives one row per session, newest first, with its error count and last error line."""
    store = backend.open()
    commit_all(store, "s1")
    late = replace(checkpoint("s2", 1, events=(ev(60), ev(61))), created_at=T0 + timedelta(days=1))
    store.commit(late, Delta(first=True))
    rows = store.sessions()
    assert [r.session for r in rows] == ["s2", "s1"]
    s2, s1 = rows
    assert (s1.status, s1.steps, s1.error_count) == ("completed", 6, 5)
    assert s1.last_error == ev(5).summary_line() and s1.updated == T0 + timedelta(minutes=6)
    assert (s2.status, s2.steps, s2.error_count, s2.last_error) == ("running", 1, 2, ev(61).summary_line())


def test_outbox_cursors_per_sink_never_move_backwards(backend: Backend) -> None:
    """undelivered pages after each sink's cursor; ack moves it forward only; sinks are independent."""
    store = backend.open()
    commit_all(store, "s1")
    first = store.undelivered("a", 2)
    assert [(s, e.id.int) for _, s, e in first] == [("s1", 1), ("s1", 2)]
    seqs = [q for q, _, _ in store.undelivered("a", 100)]
    assert seqs == sorted(seqs) and len(seqs) == 5
    store.ack("a", first[-1][0])
    assert [e.id.int for _, _, e in store.undelivered("a", 100)] == [3, 4, 5]
    store.ack("a", first[0][0])  # backwards: ignored
    assert [e.id.int for _, _, e in store.undelivered("a", 100)] == [3, 4, 5]
    assert len(store.undelivered("b", 100)) == 5
    store.commit(checkpoint("s2", 1, events=(ev(70),)), Delta(first=True))
    tail = store.undelivered("a", 100)
    assert [(s, e.id.int) for _, s, e in tail] == [("s1", 3), ("s1", 4), ("s1", 5), ("s2", 70)]
    store.ack("a", tail[-1][0])
    assert store.undelivered("a", 100) == []
    if backend.durable:
        again = backend.open()
        assert again.undelivered("a", 100) == [] and len(again.undelivered("b", 100)) == 6


def test_a_second_worker_gets_session_busy(backend: Backend) -> None:
    """acquire claims a session: another thread (or store instance) gets SessionBusyError until release."""
    store = backend.open()
    store.acquire("s1")
    store.acquire("s1")  # the same worker again is fine
    errors: list[BaseException] = []

    def other() -> None:
        try:
            store.acquire("s1")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], SessionBusyError) and errors[0].session == "s1"
    store.acquire("s2")  # other sessions are free
    if backend.durable:
        second = backend.open()
        with pytest.raises(SessionBusyError):
            second.acquire("s1")
    store.release("s1")
    store.release("s1")  # idempotent
    if backend.durable:
        second.acquire("s1")
        second.release("s1")
    t = threading.Thread(target=lambda: (store.acquire("s1"), store.release("s1")))
    t.start()
    t.join()


# ---------------------------------------------------------------------------------------------
# The dedicated errors store (SQLite and PostgreSQL)
# ---------------------------------------------------------------------------------------------


def test_memory_has_no_errors_store() -> None:
    """The memory store declares no dedicated errors store and backfills nothing."""
    store = MemoryCheckpointer()
    commit_all(store, "s1")
    assert store.has_errors_store is False and store.stored_errors("s1") == []
    assert store.backfill_errors(False).events_added == 0


def test_legacy_events_are_every_event_ever_in_extra_errors(backend: Backend) -> None:
    """legacy_events gives each event any checkpoint held in extra["errors"] once, in append order —
    those a cap or a rewrite dropped from the newest array included, the cap summary not (what
    verify mode checks against the errors store, and what the backfill copies)."""
    store = backend.open()
    for cp, delta in history_of("s1"):
        store.commit(cp, delta)
    assert [e.id.int for e in store.latest("s1").extra["errors"]] == [3, 2]
    assert [e.id.int for e in store.legacy_events("s1")] == [1, 2, 3]
    assert store.legacy_events("s1")[0] == ev(1)
    assert store.legacy_events("nobody") == []


@pytest.mark.parametrize("cap", [{"max_events": 3}, {"max_events": 3, "strategy": "drop-oldest"}, {}])
def test_legacy_events_of_a_run_equal_the_union_of_its_checkpoints(backend: Backend, cap: dict[str, Any]) -> None:
    """For a real run (capped or not, resumed after a restart of the graph), legacy_events equals
    the union, over every stored checkpoint, of extra["errors"], in first-appearance order."""
    settings = backend.settings(plugins={"cap": cap})
    with counter_graph(12).compile(settings=settings) as graph:
        with pytest.raises(StepLimitError):  # stops with work left: committed, resumable
            graph.invoke({"extra": {"n": 0}}, session="u", max_steps=8)
        graph.invoke(None, session="u")
        store = graph.runner.checkpointer
        union: dict[Any, ErrorEvent] = {}
        for step, _, _ in store.history("u"):
            for event in store.get("u", step).extra.get("errors", ()):
                if not event.is_summary:
                    union.setdefault(event.id, event)
        assert len(union) == 13  # 12 ticks and the step limit's event
        assert store.legacy_events("u") == list(union.values())


def test_a_cursor_past_the_outbox_end_is_an_error_not_a_silent_stop(durable: Backend) -> None:
    """A sink's cursor set past the newest outbox row (by hand: the runner only acknowledges rows it
    read) would stop that sink for good without a word; undelivered raises instead, which the
    runner reports as the sink's failure. Caught up at the end, it answers nothing, as before."""
    store = durable.open()
    commit_all(store, "s1")
    last = store.undelivered("sink", 100)[-1][0]
    store.ack("sink", last)
    assert store.undelivered("sink", 100) == []
    store.ack("sink", last + 1000)
    with pytest.raises(CheckpointError, match=rf"sink 'sink': its delivery cursor \({last + 1000}\) is past the "
                                              rf"newest outbox row \({last}\)"):
        store.undelivered("sink", 100)


def test_errors_store_is_append_only_idempotent_and_in_order(durable: Backend) -> None:
    """Events land in the errors store in emission order, once per id, only when the delta asks."""
    store = durable.open()
    assert store.has_errors_store is True
    commit_all(store, "s1")
    assert [e.id.int for e in store.stored_errors("s1")] == [1, 2, 3, 4, 5]
    assert store.stored_errors("s1") == store.session_events("s1")
    store.commit(checkpoint("s1", 7, events=(ev(2), ev(8))), Delta())  # id 2 again: ignored
    store.commit(checkpoint("s1", 8, events=(ev(9),)), Delta(write_errors_store=False))
    assert [e.id.int for e in store.stored_errors("s1")] == [1, 2, 3, 4, 5, 8]
    assert [e.id.int for e in store.session_events("s1")] == [1, 2, 3, 4, 5, 2, 8, 9]


def test_backfill_copies_extra_errors_idempotently(durable: Backend) -> None:
    """backfill_errors copies every event ever in a checkpoint's extra["errors"]; dry run writes nothing."""
    store = durable.open()
    for cp, delta in history_of("s1"):
        store.commit(cp, replace(delta, write_errors_store=False))
    assert store.stored_errors("s1") == []
    dry = store.backfill_errors(True)
    assert (dry.sessions, dry.events_seen, dry.events_added, dry.dry_run) == (1, 3, 3, True)
    assert dry.checkpoints == 5  # steps 2 to 6 carry the errors key; step 1 does not
    assert store.stored_errors("s1") == []
    done = store.backfill_errors(False)
    assert (done.events_seen, done.events_added, done.dry_run) == (3, 3, False)
    assert [e.id.int for e in store.stored_errors("s1")] == [1, 2, 3]  # the summary is not an event
    assert store.backfill_errors(False).events_added == 0
    assert store.backfill_errors(True).events_added == 0


def test_write_cost_follows_the_change(durable: Backend) -> None:
    """200 steps that each change one key and emit one event add one row per change, not per state size."""
    store = durable.open()
    big = freeze({"blob": "x" * 20_000})
    store.commit(checkpoint("w", 1, extra={"n": 0, "big": big}), Delta(first=True))
    errors: tuple[ErrorEvent, ...] = ()
    for step in range(2, 202):
        e = ev(step)
        errors = errors + (e,)
        store.commit(checkpoint("w", step, extra={"n": step, "big": big, "errors": errors}, events=(e,)),
                     Delta(extra_keys=frozenset({"n"}), errors_appended=(e,)))
    if durable.name == "sqlite":
        # SQLite fills the errors store from the outbox in batches (and before any read of it), and
        # the entries of extra["errors"] that are their step's own events are those outbox rows
        assert _counts(durable, "w")["errors"] == 0
        assert [e.id for e in store.stored_errors("w")] == [e.id for e in errors]
        import sqlite3
        from railgraph.plugins._sqlite import EXTRA_FLUSH
        with sqlite3.connect(durable.path) as conn:
            assert conn.execute("SELECT COUNT(rail_pos) FROM outbox WHERE session = 'w'").fetchone()[0] == 200
            # a changed key rides in its checkpoint row and reaches the extra table once per EXTRA_FLUSH steps;
            # the 20 KB key that never changed is written once, and no delta holds it
            n_rows, big_rows, delta_bytes = conn.execute(
                "SELECT (SELECT COUNT(*) FROM extra WHERE session = 'w' AND key = 'n'), "
                "(SELECT COUNT(*) FROM extra WHERE session = 'w' AND key = 'big'), "
                "(SELECT SUM(LENGTH(extra_delta)) FROM checkpoints WHERE session = 'w')").fetchone()
        conn.close()
        assert big_rows == 1 and 1 + 200 // EXTRA_FLUSH <= n_rows <= 2 + 200 // EXTRA_FLUSH
        assert delta_bytes < 200 * 20
    counts = _counts(durable, "w")
    extra_rows = 2 + 200 if durable.name != "sqlite" else counts["extra"]
    assert counts == {"extra": extra_rows, "rail": 0 if durable.name == "sqlite" else 200, "outbox": 200,
                      "errors": 200, "checkpoints": 201, "messages": 0}
    assert store.get("w", 150).extra["errors"] == errors[:149]
    # every step reads back its own value, between flushes and on them, from a fresh store too
    for reader in (store, durable.open()):
        assert [reader.get("w", s).extra["n"] for s in range(2, 202)] == list(range(2, 202))
        assert reader.latest("w").extra["big"] == big


def _counts(b: Backend, session: str) -> dict[str, int]:
    tables = ("extra", "rail", "outbox", "errors", "checkpoints", "messages")
    if b.name == "sqlite":
        import sqlite3
        with sqlite3.connect(b.path) as conn:
            return {t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE session = ?", (session,)).fetchone()[0]
                    for t in tables}
    import psycopg
    with psycopg.connect(b.dsn) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {b.schema}.{t} WHERE session = %s", (session,)).fetchone()[0]
                for t in tables}


# ---------------------------------------------------------------------------------------------
# Through real graphs
# ---------------------------------------------------------------------------------------------


def test_a_graph_runs_and_resumes_on_the_store(backend: Backend, tmp_path: Any) -> None:
    """A failed fan-out resumes on a new runner over the same store: only the failed node re-runs."""
    runs = tmp_path / "runs.txt"
    g1 = fanout_graph(runs, heal=False).compile(checkpointer=backend.open())
    with pytest.raises(Exception) as info:
        g1.invoke({"extra": {}}, session="f")
    assert info.value.code == "railgraph.runner.node_failed"
    failure, event = g1.runner.failure("f")
    errors_before = g1.errors("f")
    assert event is not None and failure["event"] == str(event.id) and event in errors_before
    g2 = fanout_graph(runs, heal=True).compile(checkpointer=backend.open())
    assert g2.runner.failure("f") == (failure, event)
    assert g2.errors("f") == errors_before
    state = g2.invoke(None, session="f")
    assert state.status == "completed" and state.extra["d"] == 5
    assert sorted(runs.read_text().split()) == ["a", "b", "b", "c", "d"]
    assert g2.errors("f") == errors_before
    if g2.runner.checkpointer.has_errors_store:
        assert g2.runner.checkpointer.stored_errors("f") == errors_before
    g1.runner.scheduler.close()
    g2.runner.scheduler.close()


def test_the_backend_is_chosen_by_settings(backend: Backend) -> None:
    """persistence.backend (and the plugin's table) selects the store through the make_checkpointer hook."""
    graph = counter_graph(3).compile(settings=backend.settings())
    kind = {"memory": "MemoryCheckpointer", "sqlite": "SqliteCheckpointer", "postgres": "PostgresCheckpointer"}
    assert type(graph.runner.checkpointer).__name__ == kind[backend.name]
    state = graph.invoke({"extra": {"n": 0}}, session="c")
    assert state.extra["n"] == 3
    assert [e.id for e in graph.errors("c")] == [event_id("c", n) for n in (1, 2, 3)]
    graph.close()
    if backend.durable:
        again = counter_graph(3).compile(settings=backend.settings())
        assert again.state("c").extra["n"] == 3 and len(again.history("c")) == 4  # input + 3 steps
        again.close()


def test_sqlite_is_the_default_in_the_working_directory(tmp_path: Any) -> None:
    """With no settings, the store is SQLite at .railgraph/railgraph.db under the working directory."""
    graph = counter_graph(2).compile(settings=Settings())
    graph.invoke({"extra": {"n": 0}}, session="d")
    graph.close()
    assert (tmp_path / ".railgraph" / "railgraph.db").is_file()


def test_make_checkpointer_answers_only_for_its_backend(tmp_path: Any) -> None:
    """Each store plugin's make_checkpointer answers for its own backend name and None otherwise."""
    from railgraph.plugins import postgres_store, sqlite_store
    pm = make_plugins(load_entrypoints=True)
    s = pm.bind(Settings(plugins={"sqlite_store": {"path": str(tmp_path / "x.db")}}))
    assert sqlite_store.make_checkpointer(backend="postgres", settings=s) is None
    assert postgres_store.make_checkpointer(backend="sqlite", settings=s) is None
    store = sqlite_store.make_checkpointer(backend="sqlite", settings=s)
    assert store is not None and (tmp_path / "x.db").exists()
    store.close()
    with pytest.raises(Exception, match="dsn"):
        postgres_store.make_checkpointer(backend="postgres", settings=s)


def test_a_code_plugin_can_provide_the_store(tmp_path: Any) -> None:
    """A plugin passed from code wins make_checkpointer for its own backend name."""
    mine = MemoryCheckpointer()

    class Plugin:
        @hookimpl
        def make_checkpointer(self, backend: str, settings: Settings) -> Checkpointer | None:
            return mine if backend == "mine" else None

    graph = counter_graph(2).compile(settings=Settings(persistence={"backend": "mine"}), plugins=[Plugin()])
    assert graph.runner.checkpointer is mine


def test_the_errors_store_is_indexed_by_session_step_node_code_and_time(durable: Backend) -> None:
    """The errors store has indexes leading with session (then step), node, code and time, and a unique id."""
    durable.open()
    if durable.name == "sqlite":
        import sqlite3
        with sqlite3.connect(durable.path) as conn:
            indexes = conn.execute("PRAGMA index_list(errors)").fetchall()  # (seq, name, unique, ...)
            leading = {tuple(c[2] for c in conn.execute(f"PRAGMA index_info({n})"))[:2] for _, n, *_ in indexes}
            pk = [cols[0] for _, n, unique, *_ in indexes if unique
                  for cols in [[c[2] for c in conn.execute(f"PRAGMA index_info({n})")]] if cols == ["id"]]
        conn.close()
    else:
        import psycopg
        with psycopg.connect(durable.dsn) as conn:
            defs = [r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND "
                                               "tablename = 'errors'", (durable.schema,))]
        leading = {tuple(c.strip() for c in d.split("(", 1)[1].rstrip(")").split(","))[:2] for d in defs}
        pk = ["id"] if any("(id)" in d and "UNIQUE" in d for d in defs) else []
    assert pk == ["id"]
    assert {("session", "step"), ("node", "at"), ("code", "at")} <= leading and any(t[0] == "at" for t in leading)


def test_sqlite_settings_reach_the_connection(tmp_path: Any) -> None:
    """[plugins.sqlite_store] path, busy_timeout and synchronous are applied; the parent directory is created."""
    import sqlite3
    path = tmp_path / "deep" / "er" / "rg.db"
    graph = counter_graph(1).compile(settings=Settings(plugins={"sqlite_store": {
        "path": str(path), "busy_timeout": 1234, "synchronous": "FULL"}}))
    store = graph.runner.checkpointer
    conn: sqlite3.Connection = store._conn  # noqa: SLF001 - the test inspects the live connection
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    graph.close()
    assert path.is_file()
    with pytest.raises(Exception, match="synchronous"):
        counter_graph(1).compile(settings=Settings(plugins={"sqlite_store": {"synchronous": "OFF"}}))


def test_postgres_refuses_to_commit_after_losing_its_claim(tmp_path: Any) -> None:
    """If the connection holding a session's advisory lock dies, the next commit is refused, not written."""
    b = make_backend("postgres", tmp_path)
    try:
        import psycopg
        store = b.open()
        store.acquire("s")
        store.commit(checkpoint("s", 1), Delta(first=True))
        pid = store._claims.info.backend_pid  # noqa: SLF001 - the test kills the claim's connection
        with psycopg.connect(b.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        with pytest.raises(SessionBusyError, match="claim on session 's' was lost"):
            store.commit(checkpoint("s", 2), Delta())
        assert [s for s, _, _ in store.history("s")] == [1]
    finally:
        b.close()


def test_one_worker_at_a_time_holds_a_sinks_delivery_lease(durable: Backend) -> None:
    """The shared stores lend a sink's delivery to one worker at a time (another store instance is
    another worker); the lease is free again once given back, and is not a session claim."""
    a, b = durable.open(), durable.open()
    assert a.lease_sink("jsonl") is True
    assert b.lease_sink("jsonl") is False and b.lease_sink("otel") is True  # per sink
    b.acquire("jsonl")  # a session of the same name is another lock
    b.release("jsonl")
    a.release_sink("jsonl")
    assert b.lease_sink("jsonl") is True and a.lease_sink("jsonl") is False
    b.release_sink("jsonl")
    b.release_sink("otel")
    b.release_sink("otel")  # idempotent


def test_another_thread_on_the_same_store_is_another_worker_for_a_sinks_lease(durable: Backend) -> None:
    """Two graphs may share one store object (``compile(checkpointer=...)``), each delivering on its own
    sink thread: the lease a thread holds is refused to another thread of the same store until given
    back, so the two never deliver one backlog twice."""
    import threading

    store = durable.open()
    got: list[bool] = []
    assert store.lease_sink("jsonl") is True

    def other() -> None:
        got.append(store.lease_sink("jsonl"))
        if got[-1]:
            store.release_sink("jsonl")
    t = threading.Thread(target=other)
    t.start()
    t.join()
    store.release_sink("jsonl")
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert got == [False, True]


def test_the_stores_json_codec_keeps_no_state_from_a_failed_value() -> None:
    """checkpoint.dumps (every store's encoder) fails on a value it cannot store and then encodes the
    same object, fixed, as json.dumps would: no stale cycle check, nothing kept alive."""
    import gc
    import json
    import weakref

    from railgraph.checkpoint import dumps

    class Box(dict):
        pass
    value = Box(when={1, 2})
    alive = weakref.ref(value)
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        dumps(value)
    value["when"] = [1, 2]
    assert dumps(value) == json.dumps(value, separators=(",", ":")) == '{"when":[1,2]}'
    del value
    gc.collect()
    assert alive() is None
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(loop)
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
