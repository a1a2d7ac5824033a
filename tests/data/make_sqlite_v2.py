"""Write tests/data/sqlite_v2.db and sqlite_v2.json with the schema-version-2 SQLite code (commit 85c596f).

Rerun from the checkout root (git must have commit 85c596f: the old module is read from it)::

    .venv/bin/python tests/data/make_sqlite_v2.py

Both files are committed (``git add -f tests/data/sqlite_v2.db``: ``*.db`` is ignored); rerunning
rewrites them (times and the graph runs' event ids differ). The script loads ``plugins/_sqlite.py``
as it was at 85c596f under the module name ``railgraph.plugins._sqlite`` before anything imports
the ``sqlite_store`` plugin, so every row of the file is written by the schema-2 code, graph runs
included. ``tests/test_sqlite_migration_v2.py`` opens a copy of the file with today's code and
checks that it migrates and reads back exactly what the schema-2 code read (the JSON file, dumped
by that code from a copy of the finished file).

Sessions:

* ``hand`` — the conformance suite's six hand-built commits: appends, a cap summary, pending
  writes of a failed step, a rewritten errors window (rail rows), a deleted key, an interrupt,
  messages rewritten.
* ``graph`` — the counter graph, ``dual`` mode, cap 3 (summaries, rewritten rails), interrupted
  before every ``tick``, failing once at count 4; left interrupted at count `GRAPH_COUNT`, so it
  can be resumed.
* ``fanout`` — the fan-out graph: ``b`` fails (``c``'s pending writes are stored), then healed.
* ``legacy`` — the counter in ``legacy`` mode, cap 3: nothing in the errors store (backfill work).
* ``long`` — `LONG_STEPS` hand-built commits (`long_history`): ``n`` changes at every step,
  ``keep`` never, ``slow`` every 10 steps, ``gone`` is deleted at step 40, ``flip`` is deleted and
  re-added every 15 steps; steps emit 0-2 events whose ``extra["errors"]`` entries are their outbox
  rows (a window of the last 2), some not for the errors store; a message every 5 steps; an
  interrupt at 50, a failure with pending writes at 70-71.
* ``crash`` — the counter graph in a process that dies (``os._exit``) after committing step
  `CRASH_STEP`: the errors store's cursor is behind the outbox (partly caught up) in the file.

Sink ``sinkA`` is acked at seq 3.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from store_helpers import counter_graph, fanout_graph  # noqa: E402

from railgraph import Message, NodePartial, Settings, hookimpl  # noqa: E402
from railgraph.checkpoint import Checkpoint, Delta  # noqa: E402
from railgraph.state import FrozenDict, freeze  # noqa: E402

SCHEMA_2_COMMIT = "85c596f"
MODULE = "railgraph.plugins._sqlite"
SESSIONS = ("hand", "graph", "fanout", "legacy", "long", "crash")
GRAPH_COUNT = 6
LONG_STEPS = 100
CRASH_STEP = 5
KEEP = freeze({"doc": [1, 2, {"deep": "é"}], "t": True})


def load_schema_2() -> ModuleType:
    """Install the schema-2 ``_sqlite`` (from git) as ``railgraph.plugins._sqlite``; return it.

    Raises: RuntimeError when the SQLite store was imported already (the current code would write).
    """
    if MODULE in sys.modules or "railgraph.plugins.sqlite_store" in sys.modules:
        raise RuntimeError("the SQLite store is imported already; run this file as a script")
    source = subprocess.run(["git", "show", f"{SCHEMA_2_COMMIT}:plugins/_sqlite.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "_sqlite_schema2.py"
    path.write_text(source)
    import railgraph.plugins as package

    spec = importlib.util.spec_from_file_location(MODULE, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module
    spec.loader.exec_module(module)
    package._sqlite = module  # type: ignore[attr-defined]
    from railgraph.plugins import sqlite_store

    assert module.SCHEMA_VERSION == 2 and sqlite_store.SqliteCheckpointer is module.SqliteCheckpointer
    return module


def dump(store: Any) -> dict[str, Any]:
    """`make_sqlite_v1.dump_store` over this fixture's `SESSIONS` (it reads that module's SESSIONS when called)."""
    import make_sqlite_v1  # here: it imports the sqlite_store plugin, which the generator loads first

    saved = make_sqlite_v1.SESSIONS
    make_sqlite_v1.SESSIONS = SESSIONS
    try:
        return make_sqlite_v1.dump_store(store)
    finally:
        make_sqlite_v1.SESSIONS = saved


def long_history(prev: Checkpoint | None, last: int, session: str = "long") -> Iterator[tuple[Checkpoint, Delta]]:
    """The commits of the ``long`` session after `prev` (``None``: from step 1) up to step `last`.

    Each step's content is a function of its number (see the module docstring), built on `prev`'s
    objects, so a store written by one code version can be continued by another.
    """
    from test_store_conformance import checkpoint, ev  # here: it imports the sqlite_store plugin

    step = prev.step if prev is not None else 0
    extra = {k: v for k, v in prev.extra.items()} if prev is not None else {}
    messages = prev.messages if prev is not None else ()
    pending = FrozenDict(b=NodePartial([Message("ai", "pending")], {"x": freeze([70])}, [ev(70_000)]))
    while step < last:
        step += 1
        changed = {"n": step}
        if step == 1:
            changed.update(keep=KEEP, gone="soon")
        if step == 1 or step % 10 == 0:
            changed["slow"] = step // 10
        flip = (step // 15) % 2 == 0
        if flip and (step == 1 or step % 15 == 0):
            changed["flip"] = f"flip {step // 15}"
        extra.update(changed)
        if step == 40:
            del extra["gone"]
        if not flip:
            extra.pop("flip", None)
        events = tuple(ev(100_000 + 10 * step + k, node="long", step=step)
                       for k in range(0 if step % 9 == 0 else 2 if step % 13 == 0 else 1))
        old = extra.get("errors", ())
        window = (*old, *events)[-2:]
        if step == 1 or events:
            extra["errors"] = window
        appended = 0
        if step % 5 == 0:
            messages = (*messages, Message("ai", f"long {step}"))
            appended = 1
        status, interrupt, failure, pend = "running", None, None, None
        if step % 50 == 0:
            status, interrupt = "interrupted", "after:a"
        if step in (70, 71):
            status, pend = "failed", pending
            failure = freeze({"code": "railgraph.runner.node_failed", "message": "b failed", "where": {"step": step}})
        cp = checkpoint(session, step, messages=messages, extra=dict(extra), events=events, status=status,
                        pending=pend, failure=failure, interrupt=interrupt)
        yield cp, Delta(messages_appended=appended, extra_keys=frozenset(changed),
                        errors_dropped=len(old) + len(events) - len(window) if events else 0,
                        errors_appended=events, write_errors_store=step % 11 != 0, first=step == 1)


class _DieAfter:
    """A plugin that ends the process without any cleanup once step `step` of the session committed."""

    def __init__(self, step: int) -> None:
        self.step = step

    @hookimpl
    def after_step(self, report: Any) -> None:
        if report.step >= self.step:
            os._exit(0)


def settings(db: Path, mode: str, **runner: Any) -> Settings:
    """The settings of the fixture's graph runs: this file, `mode`, a cap of 3."""
    return Settings(persistence={"backend": "sqlite"}, runner={"max_steps": 1000, **runner}, plugins={
        "sqlite_store": {"path": str(db)}, "extra_errors": {"mode": mode}, "cap": {"max_events": 3}})


def crash_writer(db: Path) -> None:
    """(In a child process) run the counter as session ``crash`` and die after step `CRASH_STEP`."""
    load_schema_2()
    g = counter_graph(100).compile(settings=settings(db, "dual"), plugins=[_DieAfter(CRASH_STEP)])
    g.invoke({"extra": {"n": 0}}, session="crash")
    raise AssertionError("the crash writer outlived its step")


def write(work: Path) -> Path:
    """Write every session with the (already loaded) schema-2 code; return the file."""
    from railgraph.plugins.sqlite_store import SqliteCheckpointer
    from test_store_conformance import commit_all

    db = work / "railgraph.db"
    store = SqliteCheckpointer(db)
    commit_all(store, "hand")
    for cp, delta in long_history(None, LONG_STEPS):
        store.commit(cp, delta)
    store.close()

    limit = [1000]
    g = counter_graph(limit, fail_at=4, marker=work / "healed").compile(
        settings=settings(db, "dual"), interrupt_before=["tick"])
    state = g.invoke({"extra": {"n": 0}}, session="graph")
    while state.extra["n"] < GRAPH_COUNT:
        try:
            state = g.invoke(None, session="graph")
        except Exception as exc:  # noqa: BLE001 - the planned failure at count 4
            print("failed as planned:", type(exc).__name__)
    g.close()
    for heal in (False, True):
        fg = fanout_graph(work / "runs.log", heal).compile(settings=settings(db, "dual"))
        try:
            fg.invoke({"extra": {}} if not heal else None, session="fanout")
        except Exception as exc:  # noqa: BLE001 - b fails until healed
            print("failed as planned:", type(exc).__name__)
        fg.close()
    lg = counter_graph(5).compile(settings=settings(db, "legacy"))
    lg.invoke({"extra": {"n": 0}}, session="legacy")
    lg.close()
    subprocess.run([sys.executable, __file__, "--crash-writer", str(db)], check=True)
    store = SqliteCheckpointer(db)
    store.ack("sinkA", 3)
    store.close()
    return db


def main() -> None:
    load_schema_2()
    work = Path(tempfile.mkdtemp())
    db = write(work)
    assert not Path(str(db) + "-wal").exists() or Path(str(db) + "-wal").stat().st_size == 0
    conn = sqlite3.connect(db)
    try:
        cursor, top = conn.execute("SELECT (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'errors_cursor'), "
                                   "(SELECT MAX(seq) FROM outbox)").fetchone()
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        conn.close()
    assert version == "2" and 0 < cursor < top, (version, cursor, top)
    shutil.copy(db, HERE / "sqlite_v2.db")
    # dumped from a copy: reading the errors store catches it up, and the committed file keeps it behind
    copy = work / "dump.db"
    shutil.copy(db, copy)
    from railgraph.plugins.sqlite_store import SqliteCheckpointer

    store = SqliteCheckpointer(copy)
    expected = dump(store)
    store.close()
    assert len(expected["undelivered_new"]) == top < 1000  # nothing cut off by the dump's page size
    (HERE / "sqlite_v2.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print("wrote", HERE / "sqlite_v2.db", (HERE / "sqlite_v2.db").stat().st_size, "bytes; errors cursor",
          cursor, "of", top)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--crash-writer"]:
        crash_writer(Path(sys.argv[2]))
    else:
        main()
