"""Resume after a restart: a new process restores state, frontier, versions seen, pending writes,
the errors channel and the stored diagnostic of the process that failed (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from store_helpers import Backend, backend_fixture, event_id, run_worker

durable = backend_fixture(("sqlite", "postgres"))


def test_a_new_process_resumes_a_failed_fanout(durable: Backend, tmp_path: Path) -> None:
    """Process 1 fails at node b; process 2 sees the same state and diagnostic; process 3 finishes re-running only b."""
    runs = tmp_path / "runs.txt"
    first = run_worker("fanout", *durable.argv(), "--session", "f", "--runs", str(runs))
    assert first["raised"]["code"] == "railgraph.runner.node_failed"
    assert first["status"] == "failed" and first["frontier"] == ["b", "c"] and first["pending"] == {"c": ["c"]}
    assert first["diagnostic"] == first["raised"]["diagnostic"]  # the stored failure renders like the live error
    seen = run_worker("report", *durable.argv(), "--session", "f")
    for key in ("errors", "outbox", "stored", "extra_errors", "failure", "failure_event", "diagnostic", "step",
                "status", "extra", "messages", "frontier", "versions", "seen", "pending"):
        assert seen[key] == first[key], key
    assert len(seen["errors"]) == 1 and seen["stored"] == seen["errors"]
    done = run_worker("fanout", *durable.argv(), "--session", "f", "--runs", str(runs), "--heal")
    assert done["raised"] is None and done["status"] == "completed" and done["failure"] is None
    assert done["extra"] == {"n": 0, "a": 1, "b": 2, "c": {"nested": [1, 2, 3]}, "d": 5}
    assert [m["content"] for m in done["messages"]] == ["a", "c"]
    log = runs.read_text().split()
    assert log[0] == "a" and sorted(log[1:3]) == ["b", "c"]  # b and c ran concurrently in the first process
    assert log[3:] == ["b", "d"]  # c's pending write was reused, not re-run
    assert done["errors"] == first["errors"] and done["pending"] == {}


def test_a_new_process_continues_the_counter_and_its_errors_channel(durable: Backend, tmp_path: Path) -> None:
    """A counter failing at 4 resumes in a new process to 6 with every known event exactly once, in order."""
    marker = tmp_path / "marker"
    args = (*durable.argv(), "--session", "k", "--steps", "6", "--fail-at", "4", "--marker", str(marker))
    first = run_worker("counter", *args)
    assert first["raised"]["code"] == "railgraph.runner.node_failed" and first["extra"]["n"] == 3
    failure_id = first["failure"]["event"]
    expected = [str(event_id("k", n)) for n in (1, 2, 3)] + [failure_id]
    assert first["errors"] == expected
    done = run_worker("counter", *args)
    assert done["raised"] is None and done["extra"]["n"] == 6 and done["status"] == "completed"
    assert done["errors"] == expected + [str(event_id("k", n)) for n in (4, 5, 6)]
    assert done["outbox"] == done["errors"] == done["stored"] == done["extra_errors"]
