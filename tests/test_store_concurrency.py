"""Concurrency with real processes: 8 workers write different sessions to one store at once."""

from __future__ import annotations

from store_helpers import Backend, backend_fixture, event_id, spawn_worker

durable = backend_fixture(("sqlite", "postgres"))
WORKERS = 8
STEPS = 100


def test_eight_processes_write_different_sessions_to_one_store(durable: Backend) -> None:
    """8 processes started together on a fresh store all finish: no "database is locked", nothing lost."""
    import json
    procs = [spawn_worker("counter", *durable.argv(), "--session", f"w{i}", "--steps", str(STEPS))
             for i in range(WORKERS)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err.lower() and "busy" not in err.lower(), err
        results.append(json.loads(out.strip().splitlines()[-1]))
    for i, r in enumerate(results):
        expected = [str(event_id(f"w{i}", n)) for n in range(1, STEPS + 1)]
        assert r["raised"] is None and r["extra"]["n"] == STEPS
        assert r["outbox"] == expected and r["stored"] == expected
    store = durable.open()
    assert sorted(s.session for s in store.sessions()) == sorted(f"w{i}" for i in range(WORKERS))
    outbox = store.undelivered("all", 100_000)
    assert len(outbox) == WORKERS * STEPS and len({e.id for _, _, e in outbox}) == WORKERS * STEPS
    seqs = [seq for seq, _, _ in outbox]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    if durable.name == "sqlite":
        assert store.integrity_check() == "ok"


def test_a_second_process_gets_session_busy(durable: Backend) -> None:
    """While one process runs a session, a second process running it fails with SessionBusyError (exit 17)."""
    import json
    first = spawn_worker("counter", *durable.argv(), "--session", "one", "--steps", "1000000000", "--announce")
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "started"
        second = spawn_worker("counter", *durable.argv(), "--session", "one", "--steps", "5")
        out, err = second.communicate(timeout=60)
        report = json.loads(out.strip().splitlines()[-1])
        assert report["raised"]["code"] == "railgraph.persistence.session_busy", err
        assert report["raised"]["type"] == "SessionBusyError"
    finally:
        first.kill()
        first.wait()
