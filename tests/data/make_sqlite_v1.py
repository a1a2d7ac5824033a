"""Write tests/data/sqlite_v1.db and sqlite_v1.json with the schema-version-1 code (commit 2bb3e77).

Kept for the record: the schema-1 writer is gone from the tree, so re-running this script now
writes the *current* layout. ``tests/test_sqlite_migration.py`` opens a copy of the committed
file with today's code and checks that it migrates and reads back exactly what the schema-1 code
read (the JSON file, dumped by that code right after writing).

Sessions: ``hand`` (the conformance suite's six hand-built commits: appends, a cap summary,
pending writes, a rewritten errors window, a deleted key, messages rewritten), ``graph`` (a real
run in ``dual`` mode with a cap of 3 that fails at count 4 and is resumed to 7), ``legacy`` (the
counter in ``legacy`` mode, cap 3: nothing in the errors store, so a backfill has work to do),
and a sink cursor ``sinkA`` acked at seq 3.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from store_helpers import counter_graph  # noqa: E402
from test_store_conformance import commit_all  # noqa: E402

from railgraph import Settings  # noqa: E402
from railgraph.checkpoint import Checkpoint  # noqa: E402
from railgraph.plugins.sqlite_store import SqliteCheckpointer  # noqa: E402

SESSIONS = ("hand", "graph", "legacy")


def dump_checkpoint(cp: Checkpoint) -> dict[str, Any]:
    """A JSON view of every field of `cp` (events as their JSON text)."""
    def val(v: Any) -> Any:
        if isinstance(v, tuple) and v and hasattr(v[0], "to_json"):
            return [json.loads(e.to_json()) for e in v]
        return json.loads(json.dumps(v, default=lambda o: dict(o) if hasattr(o, "items") else list(o)))
    return {
        "session": cp.session, "step": cp.step, "status": cp.status,
        "messages": [m.to_dict() for m in cp.messages],
        "extra": {k: val(v) for k, v in cp.extra.items()},
        "versions": dict(cp.versions), "frontier": list(cp.frontier),
        "versions_seen": {k: dict(v) for k, v in cp.versions_seen.items()},
        "pending_writes": {k: {"messages": [m.to_dict() for m in p.messages], "extra": val(dict(p.extra)),
                               "errors": [json.loads(e.to_json()) for e in p.errors]}
                           for k, p in cp.pending_writes.items()},
        "events": [json.loads(e.to_json()) for e in cp.events],
        "failure": val(cp.failure) if cp.failure is not None else None,
        "created_at": cp.created_at.isoformat(), "interrupt": cp.interrupt,
    }


def dump_store(store: Any) -> dict[str, Any]:
    """Everything the store API answers about the fixture's sessions."""
    out: dict[str, Any] = {"sessions": [[i.session, i.status, i.steps, i.error_count, i.last_error,
                                         i.updated.isoformat() if i.updated else None] for i in store.sessions()]}
    for s in SESSIONS:
        out[s] = {
            "history": [[step, status, t.isoformat()] for step, status, t in store.history(s)],
            "checkpoints": [dump_checkpoint(store.get(s, step)) for step, _, _ in store.history(s)],
            "latest": dump_checkpoint(store.latest(s)),
            "session_events": [e.to_json() for e in store.session_events(s)],
            "stored_errors": [e.to_json() for e in store.stored_errors(s)],
        }
    out["undelivered_sinkA"] = [[seq, s, e.to_json()] for seq, s, e in store.undelivered("sinkA", 1000)]
    out["undelivered_new"] = [[seq, s, e.to_json()] for seq, s, e in store.undelivered("new", 1000)]
    r = store.backfill_errors(dry_run=True)
    out["backfill_dry_run"] = [r.sessions, r.checkpoints, r.events_seen, r.events_added]
    return out


def main() -> None:
    work = Path(tempfile.mkdtemp())
    db = work / "railgraph.db"
    store = SqliteCheckpointer(db)
    commit_all(store, "hand")
    store.close()

    def settings(mode: str) -> Settings:
        return Settings(persistence={"backend": "sqlite"}, plugins={
            "sqlite_store": {"path": str(db)}, "extra_errors": {"mode": mode}, "cap": {"max_events": 3}})

    marker = work / "healed"
    g = counter_graph(7, fail_at=4, marker=marker).compile(settings=settings("dual"))
    try:
        g.invoke({"extra": {"n": 0}}, session="graph")
    except Exception as exc:  # noqa: BLE001 - the planned failure at count 4
        print("failed as planned:", type(exc).__name__)
    g.invoke(None, session="graph")
    g.close()
    lg = counter_graph(5).compile(settings=settings("legacy"))
    lg.invoke({"extra": {"n": 0}}, session="legacy")
    lg.close()
    store = SqliteCheckpointer(db)
    store.ack("sinkA", 3)
    expected = dump_store(store)
    store.close()
    assert not Path(str(db) + "-wal").exists() or Path(str(db) + "-wal").stat().st_size == 0
    shutil.copy(db, HERE / "sqlite_v1.db")
    (HERE / "sqlite_v1.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print("wrote", HERE / "sqlite_v1.db", (HERE / "sqlite_v1.db").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
