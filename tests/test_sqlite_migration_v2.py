"""A store file written by the schema-2 SQLite code opens with today's code, migrates, reads back the same.

``tests/data/sqlite_v2.db`` was written by the schema-2 code (see tests/data/make_sqlite_v2.py)
and ``sqlite_v2.json`` is what that code read from it through the store API. Each test works on
a copy of the file (opening the committed one would migrate it and leave WAL files beside it).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from store_helpers import counter_graph, event_id

from railgraph.plugins._sqlite import EXTRA_FLUSH, SCHEMA_VERSION
from railgraph.plugins.sqlite_store import SqliteCheckpointer

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))

from make_sqlite_v1 import dump_checkpoint  # noqa: E402
from make_sqlite_v2 import CRASH_STEP, GRAPH_COUNT, LONG_STEPS, SESSIONS, dump, long_history, settings  # noqa: E402

MORE = 150  # new steps on `long` after the migration: two flushes and the deltas between them


@pytest.fixture(scope="module")
def want() -> dict[str, Any]:
    """What the schema-2 code read back from the fixture (parsed once: it is large; tests only read it)."""
    return json.loads((DATA / "sqlite_v2.json").read_text())


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    """A copy of the schema-2 fixture file."""
    path = tmp_path / "railgraph.db"
    shutil.copy(DATA / "sqlite_v2.db", path)
    return path


def raw(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of `sql` on the file, read with plain sqlite3."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def ids(events: Any) -> list[str]:
    """The ids of `events`, as text."""
    return [str(e.id) for e in events]


def json_ids(texts: list[str]) -> list[str]:
    """The ids of events given as their JSON text."""
    return [json.loads(t)["id"] for t in texts]


def test_the_fixture_is_schema_version_2_with_its_errors_store_behind(v2: Path, want: dict[str, Any]) -> None:
    """The file is schema 2 (outbox index, no extra_delta) and its errors-store cursor lags flagged outbox rows."""
    assert raw(v2, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
    assert raw(v2, "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'outbox_session'")
    assert "extra_delta" not in {r[1] for r in raw(v2, "PRAGMA table_info(checkpoints)")}
    (behind,), = raw(v2, "SELECT COUNT(*) FROM outbox WHERE store = 1 AND seq > "
                     "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'errors_cursor')")
    assert behind == CRASH_STEP - 1  # the crashed run's events
    copied = sum(len(want[s]["stored_errors"]) for s in SESSIONS if s != "crash")  # crash: after a catch-up
    assert raw(v2, "SELECT COUNT(*) FROM errors") == [(copied,)]
    assert raw(v2, "SELECT MAX(step) FROM checkpoints WHERE session = 'long'") == [(LONG_STEPS,)]


def test_a_schema_2_file_migrates_and_reads_back_the_same(v2: Path, want: dict[str, Any]) -> None:
    """The copy migrates to SCHEMA_VERSION, passes integrity_check, and reads back the JSON (and again, migrated)."""
    assert SCHEMA_VERSION == 3
    for opening in ("migrates", "migrated"):
        store = SqliteCheckpointer(v2)
        try:
            assert store.integrity_check() == "ok", opening
            assert dump(store) == want, opening
        finally:
            store.close()
        assert raw(v2, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert raw(v2, "SELECT name FROM sqlite_master WHERE name = 'outbox_session'") == []
        assert {"extra_from", "extra_delta"} <= {r[1] for r in raw(v2, "PRAGMA table_info(checkpoints)")}
        assert raw(v2, "SELECT COUNT(*) FROM checkpoints WHERE extra_from IS NOT NULL OR extra_delta IS NOT NULL"
                   ) == [(0,)]
        # the errors store is a rowid table now, its id a unique index, every row kept (and caught up)
        assert raw(v2, "SELECT sql LIKE '%WITHOUT ROWID%' FROM sqlite_master WHERE name = 'errors'") == [(0,)]
        assert raw(v2, "SELECT \"unique\" FROM pragma_index_list('errors') WHERE name = 'errors_id'") == [(1,)]
        assert raw(v2, "SELECT COUNT(*) FROM errors") == [(sum(len(want[s]["stored_errors"]) for s in SESSIONS),)]


def test_a_migrated_session_takes_more_than_64_steps_and_reads_back_every_step(v2: Path, want: dict[str, Any]
                                                                               ) -> None:
    """`long` continues for MORE steps (flushes and deltas); a fresh store reads every step, old and new."""
    old_long = want["long"]
    store = SqliteCheckpointer(v2)
    prev = store.latest("long")
    assert dump_checkpoint(prev) == old_long["latest"]
    new = []
    for cp, delta in long_history(prev, LONG_STEPS + MORE):
        store.commit(cp, delta)
        new.append((cp, delta))
        assert store.latest("long") == cp
    store.close()
    flushes = [LONG_STEPS + k * EXTRA_FLUSH for k in range(1, MORE // EXTRA_FLUSH + 1)]
    assert [r[0] for r in raw(v2, "SELECT DISTINCT step FROM extra WHERE session = 'long' AND step > ? "
                              "ORDER BY step", LONG_STEPS)] == flushes
    assert raw(v2, "SELECT COUNT(*) FROM checkpoints WHERE session = 'long' AND extra_delta IS NOT NULL") == [
        (MORE - len(flushes),)]
    fresh = SqliteCheckpointer(v2)
    try:
        assert [dump_checkpoint(fresh.get("long", s)) for s in range(1, LONG_STEPS + 1)] == old_long["checkpoints"]
        for cp, _ in new:
            assert fresh.get("long", cp.step) == cp, cp.step
        assert fresh.latest("long") == new[-1][0]
        added = [e for cp, _ in new for e in cp.events]
        flagged = [e for cp, d in new if d.write_errors_store for e in cp.events]
        assert ids(fresh.session_events("long")) == json_ids(old_long["session_events"]) + ids(added)
        assert ids(fresh.stored_errors("long")) == json_ids(old_long["stored_errors"]) + ids(flagged)
        row = next(r for r in fresh.sessions() if r.session == "long")
        old = next(r for r in want["sessions"] if r[0] == "long")
        assert (row.steps, row.error_count, row.last_error) == (
            LONG_STEPS + MORE, old[3] + len(added), added[-1].summary_line())
        assert [r for r in dump(fresh)["sessions"] if r[0] != "long"] == [
            r for r in want["sessions"] if r[0] != "long"]
    finally:
        fresh.close()


def test_migrated_graph_sessions_resume_and_backfill_as_before(v2: Path, want: dict[str, Any]) -> None:
    """The interrupted and the crashed runs resume for over 64 steps; backfill, events and errors are old + new."""
    store = SqliteCheckpointer(v2)
    report = store.backfill_errors(dry_run=False)
    assert [report.sessions, report.checkpoints, report.events_seen, report.events_added] == want["backfill_dry_run"]
    assert store.backfill_errors(dry_run=True).events_added == 0
    assert ids(store.stored_errors("crash")) == json_ids(want["crash"]["stored_errors"])  # caught up
    stored = ids(store.stored_errors("legacy"))
    assert stored and stored == [i for i in json_ids(want["legacy"]["session_events"]) if i in stored]
    store.close()
    target = GRAPH_COUNT + EXTRA_FLUSH + 6
    g = counter_graph([target]).compile(settings=settings(v2, "dual"))
    try:
        for session in ("graph", "crash"):
            state = g.invoke(None, session=session)
            assert (state.status, state.extra["n"]) == ("completed", target)
    finally:
        g.close()
    fresh = SqliteCheckpointer(v2)
    try:
        assert fresh.integrity_check() == "ok"
        now = dump(fresh)
        for s in SESSIONS:
            old_steps = len(want[s]["history"])
            assert now[s]["checkpoints"][:old_steps] == want[s]["checkpoints"], s
        for s, before in (("graph", GRAPH_COUNT), ("crash", CRASH_STEP - 1)):
            old_steps = len(want[s]["history"])
            new = now[s]["checkpoints"][old_steps:]
            counts = list(range(before + 1, target + 1))
            assert [c["extra"]["n"] for c in new] == counts  # one checkpoint a tick, the last one completed
            assert [c["status"] for c in new] == ["running"] * (len(counts) - 1) + ["completed"]
            assert [c["messages"][-1]["content"] for c in new] == [f"tick {n}" for n in counts]
            assert [[e["id"] for e in c["events"]] for c in new] == [[str(event_id(s, n))] for n in counts]
            # the cap of 3 keeps its summary and the last two ticks
            assert [[e["id"] for e in c["extra"]["errors"][1:]] for c in new] == [
                [str(event_id(s, n - 1)), str(event_id(s, n))] for n in counts]
            added = [str(event_id(s, n)) for n in counts]
            assert json_ids(now[s]["session_events"]) == json_ids(want[s]["session_events"]) + added
            assert json_ids(now[s]["stored_errors"]) == json_ids(want[s]["stored_errors"]) + added
            row = next(r for r in now["sessions"] if r[0] == s)
            old = next(r for r in want["sessions"] if r[0] == s)
            assert row[1:4] == ["completed", old_steps + len(counts), old[3] + len(counts)]
        for s in ("hand", "fanout", "legacy", "long"):
            assert next(r for r in now["sessions"] if r[0] == s) == next(r for r in want["sessions"] if r[0] == s)
        after = fresh.backfill_errors(dry_run=True)
        assert (after.sessions, after.events_added) == (want["backfill_dry_run"][0], 0)
        assert after.events_seen > want["backfill_dry_run"][2]
    finally:
        fresh.close()
