"""Bad stored data: corrupt JSON, unknown row formats, newer or unknown schema versions, foreign files.

Every case is a clear `CheckpointError` naming the session and step where there is one, and
nothing stored is overwritten: SQLite file bytes and PostgreSQL rows are compared before and after.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from store_helpers import Backend, backend_fixture, counter_graph, make_backend

from railgraph import CheckpointError

durable = backend_fixture(("sqlite", "postgres"))


def current_version(backend: Backend) -> int:
    """The schema version this railgraph writes for `backend`."""
    if backend.name == "sqlite":
        from railgraph.plugins._sqlite import SCHEMA_VERSION
    else:
        from railgraph.plugins._postgres import SCHEMA_VERSION
    return SCHEMA_VERSION


def populate(backend: Backend, session: str = "bad", steps: int = 4) -> None:
    """Run the counter for `steps` supersteps (one event each) and close the store."""
    graph = counter_graph(steps).compile(checkpointer=backend.open())
    graph.invoke({"extra": {"n": 0}}, session=session)
    graph.close()


def execute(backend: Backend, sql: str) -> None:
    """Run one statement directly against the backend (``{s}`` is the PostgreSQL schema)."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.path) as conn:
            conn.execute(sql.replace("{s}.", ""))
        conn.close()
        return
    import psycopg
    with psycopg.connect(backend.dsn, autocommit=True) as pg:
        pg.execute(sql.replace("{s}.", f"{backend.schema}."))


def snapshot(backend: Backend) -> Any:
    """Every stored row (PostgreSQL) or the file bytes with no connection open (SQLite)."""
    if backend.name == "sqlite":
        return hashlib.sha256(backend.path.read_bytes()).hexdigest()
    import psycopg
    out = {}
    with psycopg.connect(backend.dsn) as pg:
        for (table,) in pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
                                   (backend.schema,)).fetchall():
            out[table] = sorted(map(repr, pg.execute(f"SELECT * FROM {backend.schema}.{table}").fetchall()))
    return out


def close_all(backend: Backend) -> None:
    """Close every store instance opened so far (SQLite folds its WAL back into the file)."""
    for store in backend.opened:
        store.close()
    backend.opened.clear()


# (layout, statement, step, what the error names): each backend gets the corruptions of its own layout
_CORRUPTIONS = [
    # PostgreSQL writes a row per changed key; SQLite keeps a step's changed keys in its checkpoint
    # row until a flush copies them to the extra table
    ("postgres", "UPDATE {s}.extra SET value = '{not json' WHERE key = 'n' AND step = 5", 5, "extra['n']"),
    ("sqlite", "UPDATE {s}.checkpoints SET extra_delta = '[[\"n\", \"{not json\"]]' WHERE step = 5", 5,
     "extra['n']"),
    ("sqlite", "UPDATE {s}.checkpoints SET extra_delta = '{\"n\": 5}' WHERE step = 5", 5, "extra_delta is not a list"),
    ("sqlite", "UPDATE {s}.checkpoints SET extra_from = 9 WHERE step = 5", 5, "extra_from holds 9"),
    # the rail entry of step 5 shares the outbox row: extra["errors"] is decoded first
    ("any", "UPDATE {s}.outbox SET data = '{\"id\": 1}' WHERE step = 5", 5, 'extra["errors"] entry 3 is unreadable'),
    ("postgres", "UPDATE {s}.rail SET data = 'nope', seq = NULL WHERE step = 5", 5, 'extra["errors"] entry'),
    # SQLite keeps an entry that is its step's own event as the outbox row (rail_pos), not a rail row
    ("sqlite", "UPDATE {s}.outbox SET rail_pos = 'x' WHERE step = 5", 5, 'entries of extra["errors"] are missing'),
    ("any", "UPDATE {s}.messages SET data = '[1]' WHERE step = 5", 5, "message"),
    ("any", "UPDATE {s}.checkpoints SET seen = '[]' WHERE step = 5", 5, "versions_seen"),
    ("any", "UPDATE {s}.checkpoints SET format = 99 WHERE step = 5", 5, "unknown checkpoint format version 99"),
]


@pytest.mark.parametrize(("name", "sql", "step", "what"), [
    pytest.param(name, sql, step, what, id=f"{name}-{i}")
    for i, (layout, sql, step, what) in enumerate(_CORRUPTIONS)
    for name in ("sqlite", "postgres") if layout in ("any", name)])
def test_corrupt_rows_are_a_clear_error_and_nothing_is_overwritten(name: str, sql: str, step: int, what: str,
                                                                   tmp_path: Path) -> None:
    """A corrupted row makes loading (and resuming) fail with a CheckpointError naming session, step and part."""
    durable = make_backend(name, tmp_path)
    try:
        _corrupt_and_load(durable, sql, step, what)
    finally:
        durable.close()


def _corrupt_and_load(durable: Backend, sql: str, step: int, what: str) -> None:
    populate(durable)
    close_all(durable)
    execute(durable, sql)
    before = snapshot(durable)
    store = durable.open()
    with pytest.raises(CheckpointError) as info:
        store.latest("bad")
    err = info.value
    assert err.session == "bad" and err.step == step
    assert "'bad'" in str(err) and f"step {step}" in str(err) and what in str(err)
    assert err.code == "railgraph.persistence.checkpoint_failed" and err.exit_code == 16
    assert store.get("bad", 2) is not None  # other checkpoints still load
    graph = counter_graph(8).compile(checkpointer=store)
    with pytest.raises(CheckpointError):
        graph.invoke(None, session="bad")
    with pytest.raises(CheckpointError):
        graph.invoke({"extra": {"n": 0}}, session="bad")
    graph.runner.scheduler.close()
    close_all(durable)
    assert snapshot(durable) == before


def test_corrupt_outbox_events_name_the_session(durable: Backend) -> None:
    """session_events over a corrupt event fails naming the session and the step it was committed at."""
    populate(durable)
    execute(durable, "UPDATE {s}.outbox SET data = 'garbage' WHERE step = 3")
    with pytest.raises(CheckpointError, match=r"session 'bad' step 3"):
        durable.open().session_events("bad")


@pytest.mark.parametrize("version", ["next", "99", "abc", "0"])
def test_a_newer_or_unknown_schema_version_refuses_to_open(durable: Backend, version: str) -> None:
    """A schema version this railgraph does not know is a CheckpointError at open; the store is left as is."""
    newer = version in ("next", "99")
    if version == "next":
        version = str(current_version(durable) + 1)
    populate(durable)
    close_all(durable)
    execute(durable, f"UPDATE {{s}}.meta SET value = '{version}' WHERE key = 'schema_version'")
    before = snapshot(durable)
    with pytest.raises(CheckpointError, match="schema version") as info:
        durable.open()
    assert "nothing was changed" in str(info.value)
    if newer:
        assert "newer" in str(info.value) and "upgrade railgraph" in str(info.value)
    assert snapshot(durable) == before


def test_a_fresh_store_records_its_schema_version(durable: Backend) -> None:
    """A new store writes its current schema version to its meta table; opening it again migrates nothing."""
    populate(durable)
    close_all(durable)
    if durable.name == "sqlite":
        with sqlite3.connect(durable.path) as conn:
            assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
                str(current_version(durable)),)
        conn.close()
    else:
        import psycopg
        with psycopg.connect(durable.dsn) as pg:
            assert pg.execute(f"SELECT value FROM {durable.schema}.meta").fetchall() == [("1",)]
    before = snapshot(durable)
    durable.open()
    close_all(durable)
    assert snapshot(durable) == before


def test_a_file_that_is_not_a_railgraph_store_is_refused(tmp_path: Path) -> None:
    """Garbage bytes or another application's SQLite database: a CheckpointError, and the file unchanged."""
    from railgraph.plugins.sqlite_store import SqliteCheckpointer
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CheckpointError, match="junk.db"):
        SqliteCheckpointer(junk)
    assert junk.read_bytes() == b"this is not a database" * 100
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    conn.close()
    before = other.read_bytes()
    with pytest.raises(CheckpointError, match="not a railgraph store"):
        SqliteCheckpointer(other)
    assert other.read_bytes() == before


def test_an_unreachable_postgres_server_is_named_without_the_password() -> None:
    """A PostgreSQL store that cannot connect says where it tried (the DSN less its password) and
    what to check; no server is needed to see it (a closed port on this machine)."""
    import socket

    from railgraph.plugins._postgres import PostgresCheckpointer

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CheckpointError) as info:
        PostgresCheckpointer(f"postgresql://rg:s3cret-pw@127.0.0.1:{port}/railgraph?connect_timeout=5"
                             "&sslpassword=key-s3cret")
    message = str(info.value)
    assert message.startswith(f"cannot connect to the PostgreSQL store at user=rg connect_timeout=5 "
                              f"dbname=railgraph host=127.0.0.1 port={port} (schema 'railgraph'): ")
    assert "s3cret" not in message + info.value.help
    assert "[plugins.postgres_store]" in info.value.help and info.value.exit_code == 16
    # a DSN libpq cannot parse: its parse error would quote the text, password and all
    with pytest.raises(CheckpointError) as info:
        PostgresCheckpointer(f"host=127.0.0.1 port={port} password=my s3cret-tail")
    assert str(info.value) == ("the PostgreSQL DSN does not parse (ProgrammingError); see "
                               "[plugins.postgres_store] dsn")
    assert "s3cret" not in str(info.value) and info.value.__cause__ is None


def test_a_link_between_steps_that_does_not_go_back_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """A checkpoint's ev_prev (the newest earlier step with events) tampered into a cycle made every
    reader spin forever and every writer wait on its lock. Reads now stop at the bad link and fail
    with a CheckpointError naming the session and the step; nothing is changed. (In a subprocess:
    a hang must fail this test, not stall the suite.)"""
    import json
    import subprocess
    import sys

    backend = make_backend("sqlite", tmp_path)
    populate(backend)
    close_all(backend)
    execute(backend, "UPDATE checkpoints SET ev_prev = 4 WHERE session = 'bad' AND step = 3")
    before = snapshot(backend)
    script = (
        "import json, sys\n"
        "from railgraph import CheckpointError\n"
        "from railgraph.plugins.sqlite_store import SqliteCheckpointer\n"
        "store = SqliteCheckpointer(sys.argv[1])\n"
        "out = {}\n"
        "for name, call in [('session_events', lambda: store.session_events('bad')), ('sessions', store.sessions),\n"
        "                   ('legacy_events', lambda: store.legacy_events('bad')), ('latest', lambda: store.latest('bad')),\n"
        "                   ('backfill', lambda: store.backfill_errors(True))]:\n"
        "    try:\n"
        "        call()\n"
        "        out[name] = None\n"
        "    except CheckpointError as exc:\n"
        "        out[name] = [exc.session, exc.step, str(exc)]\n"
        "store.close()\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script, str(backend.path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    for name in ("session_events", "sessions", "legacy_events", "latest", "backfill"):
        session, step, message = found[name]
        assert (session, step) == ("bad", 3) and "ev_prev = 4" in message and "does not go back" in message, name
    assert snapshot(backend) == before


@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_a_malformed_update_time_names_its_session_and_step(name: str, tmp_path: Path) -> None:
    """sessions() over a newest checkpoint whose created_at is not a time said 'session ?'; it names
    the session and the step now."""
    backend = make_backend(name, tmp_path)
    try:
        populate(backend)
        close_all(backend)
        execute(backend, "UPDATE {s}.checkpoints SET created_at = 'yesterday' WHERE session = 'bad' AND step = 5")
        with pytest.raises(CheckpointError) as info:
            backend.open().sessions()
        assert (info.value.session, info.value.step) == ("bad", 5)
        assert "created_at 'yesterday' is not a time" in str(info.value)
    finally:
        backend.close()
