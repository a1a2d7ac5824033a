"""A store file written by the schema-1 SQLite code opens with today's code, migrates, reads back the same.

``tests/data/sqlite_v1.db`` was written by the schema-1 code (see tests/data/make_sqlite_v1.py)
and ``sqlite_v1.json`` is what that code read from it through the store API. Each test works
on a copy of the file.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from railgraph.plugins._sqlite import SCHEMA_VERSION
from railgraph.plugins.sqlite_store import SqliteCheckpointer

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))

from make_sqlite_v1 import SESSIONS, dump_checkpoint, dump_store  # noqa: E402


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    """A copy of the schema-1 fixture file."""
    path = tmp_path / "railgraph.db"
    shutil.copy(DATA / "sqlite_v1.db", path)
    return path


def expected() -> dict[str, Any]:
    return json.loads((DATA / "sqlite_v1.json").read_text())


def test_the_fixture_is_schema_version_1() -> None:
    conn = sqlite3.connect(f"file:{DATA / 'sqlite_v1.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    finally:
        conn.close()


def test_a_schema_1_file_migrates_and_reads_back_the_same(v1: Path) -> None:
    store = SqliteCheckpointer(v1)
    try:
        assert store.integrity_check() == "ok"
        assert dump_store(store) == expected()
    finally:
        store.close()
    conn = sqlite3.connect(v1)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    finally:
        conn.close()
    again = SqliteCheckpointer(v1)  # and again, once migrated
    try:
        assert dump_store(again) == expected()
    finally:
        again.close()


def test_a_migrated_file_takes_new_commits_and_backfills(v1: Path) -> None:
    """Resume-style writes on top of migrated data; the backfill finds what the schema-1 code found."""
    from railgraph import Settings
    from store_helpers import counter_graph

    store = SqliteCheckpointer(v1)
    want = expected()
    report = store.backfill_errors(dry_run=False)
    assert [report.sessions, report.checkpoints, report.events_seen, report.events_added] == want["backfill_dry_run"]
    assert store.backfill_errors(dry_run=True).events_added == 0
    legacy_ids = [json.loads(e)["id"] for e in want["legacy"]["session_events"]]
    stored = [str(e.id) for e in store.stored_errors("legacy")]
    assert stored == [i for i in legacy_ids if i in stored] and stored  # backfilled ones, in emission order
    store.close()
    settings = Settings(persistence={"backend": "sqlite"}, plugins={
        "sqlite_store": {"path": str(v1)}, "extra_errors": {"mode": "dual"}, "cap": {"max_events": 3}})
    limit = [9]
    g = counter_graph(limit).compile(settings=settings)
    try:
        state = g.invoke(None, session="graph")  # completed at 7: nothing to run
        assert state.extra["n"] == 7
        g.invoke({"extra": {"n": 7}}, session="more")
    finally:
        g.close()
    store = SqliteCheckpointer(v1)
    try:
        old = dump_store(store)
        for s in SESSIONS:
            assert old[s]["checkpoints"] == want[s]["checkpoints"]
        assert [str(e.id) for e in store.stored_errors("more")] == [str(e.id) for e in store.session_events("more")]
        assert len(store.session_events("more")) == 2
        assert dump_checkpoint(store.latest("more"))["extra"]["n"] == 9
    finally:
        store.close()
