"""Runs a test graph in its own process for the store tests (resume, crash, concurrency, migration).

Usage: ``python tests/store_worker.py COMMAND --backend sqlite --path DB --session S [options]``;
prints one JSON line (the report) on success. Commands:

* ``counter`` — run the counter graph (``--steps``, ``--fail-at``, ``--marker``) from the start if
  the session has no checkpoint, else resume it; ``--mode`` sets the extra-errors mode and
  ``--cap`` the cap's ``max_events``.
* ``fanout`` — run (``--heal`` absent) or resume (``--heal``) the fan-out graph; ``--runs`` logs node runs.
* ``report`` — the session's state, errors and stored failure, without running anything.
* ``backfill`` — ``backfill_errors`` (``--dry-run``) and its report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_helpers import counter_graph, fanout_graph  # noqa: E402

from railgraph import RunnerError, Settings  # noqa: E402
from railgraph.render import diagnostic_from_failure, format_diagnostic  # noqa: E402


def settings(args: argparse.Namespace) -> Settings:
    plugins: dict[str, Any] = {}
    if args.backend == "sqlite":
        plugins["sqlite_store"] = {"path": args.path}
    else:
        plugins["postgres_store"] = {"dsn": args.dsn, "schema": args.schema}
    if args.mode:
        plugins["extra_errors"] = {"mode": args.mode}
    if args.cap:
        plugins["cap"] = {"max_events": args.cap}
    return Settings(persistence={"backend": args.backend}, runner={"max_steps": 100_000}, plugins=plugins)


def report(graph: Any, session: str, **more: Any) -> dict[str, Any]:
    store = graph.runner.checkpointer
    cp = store.latest(session)
    failure = graph.runner.failure(session)
    out: dict[str, Any] = {
        "errors": [str(e.id) for e in graph.errors(session)],
        "outbox": [str(e.id) for e in store.session_events(session)],
        "stored": [str(e.id) for e in store.stored_errors(session)],
        "extra_errors": [str(e.id) for e in (cp.extra.get("errors", ()) if cp else ())],
        "failure": dict(failure[0]) if failure else None,
        "failure_event": failure[1].to_json() if failure and failure[1] else None,
        "diagnostic": format_diagnostic(diagnostic_from_failure(*failure)) if failure else None,
    }
    if cp is not None:
        out.update(step=cp.step, status=cp.status, extra={k: v for k, v in cp.extra.items() if k != "errors"},
                   messages=[m.to_dict() for m in cp.messages], frontier=list(cp.frontier),
                   versions=dict(cp.versions), seen={k: dict(v) for k, v in cp.versions_seen.items()},
                   pending={k: sorted(v.extra) for k, v in cp.pending_writes.items()})
    out.update(more)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["counter", "fanout", "report", "backfill"])
    p.add_argument("--backend", default="sqlite")
    p.add_argument("--path")
    p.add_argument("--dsn")
    p.add_argument("--schema")
    p.add_argument("--session", default="s")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--fail-at", type=int)
    p.add_argument("--marker")
    p.add_argument("--mode")
    p.add_argument("--cap", type=int)
    p.add_argument("--heal", action="store_true")
    p.add_argument("--runs")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--more", type=int, help="counter: run this many steps past the stored count")
    p.add_argument("--announce", action="store_true", help="print 'started' just before running")
    args = p.parse_args()
    s = settings(args)
    error: dict[str, Any] | None = None
    if args.command == "fanout":
        limit = [0]
        graph = fanout_graph(Path(args.runs), args.heal).compile(settings=s)
    else:
        marker = Path(args.marker) if args.marker else None
        limit = [args.steps]
        graph = counter_graph(limit, fail_at=args.fail_at, marker=marker).compile(settings=s)
    with graph:
        store = graph.runner.checkpointer
        if args.command == "backfill":
            r = store.backfill_errors(args.dry_run)
            print(json.dumps({"sessions": r.sessions, "checkpoints": r.checkpoints, "events_seen": r.events_seen,
                              "events_added": r.events_added, "dry_run": r.dry_run}))
            return
        if args.command in ("counter", "fanout"):
            latest = store.latest(args.session)
            started = latest is not None
            if args.more is not None:
                limit[0] = (latest.extra.get("n", 0) if latest else 0) + args.more
            if args.announce:
                print("started", flush=True)
            # a new session starts at n = 0; a completed one restarts at the entry with its state; else resume
            if not started:
                given: Any = {"extra": {"n": 0}}
            elif latest.status == "completed":
                given = {"extra": {}}
            else:
                given = None
            try:
                graph.invoke(given, session=args.session)
            except RunnerError as exc:
                error = {"code": exc.code, "message": exc.message, "type": type(exc).__name__,
                         "diagnostic": format_diagnostic(exc)}
        print(json.dumps(report(graph, args.session, raised=error)))


if __name__ == "__main__":
    main()
