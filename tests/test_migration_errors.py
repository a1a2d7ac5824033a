"""The migration off ``extra["errors"]``, walked across process restarts on SQLite and PostgreSQL.

legacy (with a cap, so old events survive only in older checkpoints) → dual → backfill (dry run
first, through ``railgraph migrate errors``) → verify → store-only. At every stage
``graph.errors(session)`` is complete and in order; after the backfill the errors store equals
it, and verify mode raises no mismatch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store_helpers import Backend, backend_fixture, event_id, run_worker, worker_env

durable = backend_fixture(("sqlite", "postgres"))
MISMATCH = "railgraph.errors.verify_mismatch"


def ids(session: str, counts: range) -> list[str]:
    """The known event ids of the counter at `counts`."""
    return [str(event_id(session, n)) for n in counts]


def codes(backend: Backend, session: str) -> list[str | None]:
    """The codes of every event of `session`, read through a fresh store."""
    return [e.code for e in backend.open().session_events(session)]


def cli_migrate(backend: Backend, tmp_path: Path, *extra: str) -> str:
    """Run ``railgraph migrate errors`` against the backend in a new process; return its output."""
    config = tmp_path / "railgraph.toml"
    if backend.name == "sqlite":
        table = f'[plugins.sqlite_store]\npath = "{backend.path}"\n'
    else:
        table = f'[plugins.postgres_store]\ndsn = "{backend.dsn}"\nschema = "{backend.schema}"\n'
    config.write_text(f'[persistence]\nbackend = "{backend.name}"\n\n{table}')
    proc = subprocess.run([sys.executable, "-c", "from railgraph.cli import main; main()", "migrate", "errors",
                           "--config", str(config), *extra], capture_output=True, text=True, timeout=60,
                          env=worker_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_legacy_to_store_only_loses_nothing(durable: Backend, tmp_path: Path) -> None:
    """Each stage runs in a new process; the trail stays complete and the store matches it after backfill."""
    run = ("counter", *durable.argv(), "--session", "m")
    legacy = run_worker(*run, "--steps", "6", "--mode", "legacy", "--cap", "3")
    assert legacy["errors"] == ids("m", range(1, 7)) and legacy["stored"] == []
    assert legacy["extra_errors"][1:] == ids("m", range(5, 7))  # a summary and the newest two: 1-4 were capped
    dual = run_worker(*run, "--more", "3", "--mode", "dual", "--cap", "3")
    assert dual["errors"] == ids("m", range(1, 10)) and dual["stored"] == ids("m", range(7, 10))

    dry = cli_migrate(durable, tmp_path, "--dry-run")
    assert "dry run" in dry and "would add 6" in dry, dry
    assert run_worker("report", *durable.argv(), "--session", "m")["stored"] == ids("m", range(7, 10))
    out = cli_migrate(durable, tmp_path)
    assert "added 6" in out, out
    assert "added 0" in cli_migrate(durable, tmp_path)  # idempotent
    after = run_worker("report", *durable.argv(), "--session", "m")
    assert after["stored"] == after["errors"] == ids("m", range(1, 10))

    verify = run_worker(*run, "--more", "2", "--mode", "verify", "--cap", "3")
    assert MISMATCH not in codes(durable, "m")
    assert verify["errors"] == verify["stored"] == ids("m", range(1, 12))
    only = run_worker(*run, "--more", "2", "--mode", "store-only", "--cap", "3")
    assert only["errors"] == only["stored"] == only["outbox"] == ids("m", range(1, 14))
    assert only["extra_errors"] == verify["extra_errors"]  # no longer written
    assert MISMATCH not in codes(durable, "m")


def test_verify_before_backfill_reports_a_mismatch(durable: Backend) -> None:
    """Verify mode on a legacy session that was never backfilled emits a mismatch event; after backfill it does not."""
    run = ("counter", *durable.argv(), "--session", "v")
    run_worker(*run, "--steps", "3", "--mode", "legacy")
    run_worker(*run, "--more", "1", "--mode", "verify")
    assert codes(durable, "v").count(MISMATCH) == 1
    report = run_worker("backfill", *durable.argv())
    assert report["events_added"] == 3 and report["dry_run"] is False
    done = run_worker(*run, "--more", "1", "--mode", "verify")
    assert codes(durable, "v").count(MISMATCH) == 1
    assert done["stored"][:3] == ids("v", range(1, 4)) and done["errors"] == done["outbox"]


def test_verify_counts_the_events_a_cap_dropped_from_the_newest_array(durable: Backend) -> None:
    """A cap keeps only the newest events in the latest extra["errors"]; verify still checks every
    event ever held there (as the backfill copies them), so it reports all that the store lacks —
    it once compared the capped array only and said 2 missing, or all clear, for 6."""
    run = ("counter", *durable.argv(), "--session", "c")
    legacy = run_worker(*run, "--steps", "6", "--mode", "legacy", "--cap", "3")
    assert legacy["extra_errors"][1:] == ids("c", range(5, 7))  # a summary and the newest two
    run_worker(*run, "--more", "1", "--mode", "verify", "--cap", "3")
    [mismatch] = [e for e in durable.open().session_events("c") if e.code == MISMATCH]
    assert mismatch.error.details["missing_count"] == 6
    assert mismatch.error.details["missing"] == ids("c", range(1, 7))
    assert durable.open().legacy_events("c")[:6] == [e for e in durable.open().session_events("c")][:6]
