"""Soak benchmark (not a test): long runs and killed processes under `configs/long-running.toml`.

    python bench/soak.py long  [--steps 100000]       one session, an error event every step
    python bench/soak.py kill  [--procs 8 --steps 1000] concurrent workers SIGKILLed at random, resumed
    python bench/soak.py all   [--write-results]       both, and (optionally) the "Soak" section of
                                                        bench/RESULTS.md replaced in place

`long` records, every 1,000 steps, the process RSS (from /proc) and — with ``--tracemalloc`` —
Python's traced memory, and the wall time of every step (an ``after_step`` hook). It reports the
mean step time of the first and of the last 1,000 steps, RSS at start and end, and the size of the
database, WAL and JSON Lines file.

`kill` starts N worker processes, each running its own session in one SQLite file; the parent
SIGKILLs random workers at random moments and restarts them (`invoke(None)` resumes) until every
session has run its steps. Each step emits an event with a known id, so the check is exact: every
session's `errors()` and outbox hold each id once, in order; the JSON Lines file (at-least-once)
holds every id.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "configs" / "long-running.toml"
RESULTS = ROOT / "bench" / "RESULTS.md"
NS = uuid.UUID("5e0c7a1b-2d3f-4a5b-8c9d-0e1f2a3b4c5d")
SECTION = "## Soak"


def event_id(session: str, n: int) -> uuid.UUID:
    """The id of the event emitted when `session`'s counter reaches `n`."""
    return uuid.uuid5(NS, f"{session}:{n}")


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build(steps: int):
    """A one-node loop: each step adds one to ``extra["n"]`` and records a caught error as an event."""
    from railgraph import END, START, ErrorEvent, GraphBuilder, NodeScope
    from railgraph.events import ladder_from_exception

    def work(state, ctx):
        n = state.extra.get("n", 0) + 1
        try:
            try:
                raise TimeoutError(f"upstream read timed out after 2.0s (call {n})")
            except TimeoutError as exc:
                raise ConnectionError(f"GET https://api.example.com/v1/items/{n}?api_key=sk-test-0123456789abcdefghij "
                                      "failed") from exc
        except ConnectionError as exc:
            ladder, _ = ladder_from_exception(exc)
        event = ErrorEvent(id=event_id(ctx.session, n), when=datetime.now(timezone.utc),
                           scope=NodeScope(node=ctx.node, step=ctx.step), error=ladder, tags=("soak",),
                           context={"n": n, "attempt": 1})
        return {"extra": {"n": n}, "errors": [event]}

    b = GraphBuilder(name="soak").add_node("work", work).add_edge(START, "work")
    b.add_conditional_edges("work", lambda s: "work" if s.extra["n"] < steps else END)
    return b


def settings_for(db: Path, jsonl: Path):
    """The long-running profile, pointed at `db` and `jsonl`."""
    from railgraph import Settings
    return Settings.load(PROFILE, plugins={"sqlite_store": {"path": str(db)},
                                           "jsonl_sink": {"enabled": True, "path": str(jsonl)}})


# ---------------------------------------------------------------------------------------------
# long: one session, many steps
# ---------------------------------------------------------------------------------------------


class Recorder:
    """An `after_step` plugin: wall time per step, RSS (and traced memory) every 1,000 steps."""

    name = "soak_recorder"

    def __init__(self, trace: bool) -> None:
        self.trace = trace
        # only the first and the last 1,000 step times are kept: a list of every step's time would
        # itself grow the process by ~35 bytes a step and read as a leak of the thing measured
        self.first: list[float] = []
        self.recent: deque[float] = deque(maxlen=1000)
        self.memory: list[tuple[int, int, int]] = []  # (step, rss, traced)
        self.last = time.perf_counter()

    from railgraph import hookimpl as _hookimpl

    @_hookimpl
    def after_step(self, report) -> None:
        now = time.perf_counter()
        if len(self.first) <= 1000:
            self.first.append(now - self.last)
        self.recent.append(now - self.last)
        self.last = now
        if report.step % 1000 == 0:
            traced = tracemalloc.get_traced_memory()[0] if self.trace else 0
            self.memory.append((report.step, rss_bytes(), traced))


def run_long(steps: int, workdir: Path, trace: bool) -> dict:
    """Run one session of `steps` steps; return the figures."""
    db, jsonl = workdir / "soak.db", workdir / "soak.jsonl"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), jsonl):
        p.unlink(missing_ok=True)
    if trace:
        tracemalloc.start()
    rec = Recorder(trace)
    graph = build(steps).compile(settings=settings_for(db, jsonl), plugins=[rec])
    rss0 = rss_bytes()
    start = time.perf_counter()
    rec.last = start
    state = graph.invoke({"extra": {"n": 0}}, session="long", max_steps=steps + 10)
    total = time.perf_counter() - start
    rss1 = rss_bytes()
    events = graph.errors("long")
    graph.close()
    assert state.extra["n"] == steps and len([e for e in events if "soak" in e.tags]) == steps
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    first, last = rec.first[1:], list(rec.recent)  # the first entry is the input step
    return {
        "steps": steps, "total_s": total,
        "first_1000_mean_us": statistics.fmean(first) * 1e6, "last_1000_mean_us": statistics.fmean(last) * 1e6,
        "first_1000_median_us": statistics.median(first) * 1e6, "last_1000_median_us": statistics.median(last) * 1e6,
        "rss_start_mb": rss0 / 2**20, "rss_end_mb": rss1 / 2**20,
        "rss_at_1000_mb": rec.memory[0][1] / 2**20 if rec.memory else None,
        "traced_at_1000_mb": rec.memory[0][2] / 2**20 if trace and rec.memory else None,
        "traced_end_mb": rec.memory[-1][2] / 2**20 if trace and rec.memory else None,
        "db_mb": db.stat().st_size / 2**20, "jsonl_mb": jsonl.stat().st_size / 2**20,
        "events": len(events), "tracemalloc": trace,
        "memory_every_1000": [(s, round(r / 2**20, 1), round(t / 2**20, 2)) for s, r, t in rec.memory],
    }


# ---------------------------------------------------------------------------------------------
# kill: concurrent processes, random SIGKILLs, resume
# ---------------------------------------------------------------------------------------------


def worker(session: str, steps: int, db: Path, jsonl: Path) -> None:
    """Run (or resume) `session` to `steps`; exit 0 when it completed."""
    graph = build(steps).compile(settings=settings_for(db, jsonl))
    latest = graph.runner.checkpointer.latest(session)
    if latest is None:
        given = {"extra": {"n": 0}}
    elif latest.status == "completed":
        graph.close()
        return
    else:
        given = None
    print("started", flush=True)
    graph.invoke(given, session=session, max_steps=steps + 10)
    graph.close()


def run_kill(procs: int, steps: int, workdir: Path, seed: int, max_kills: int | None = None) -> dict:
    """Run `procs` workers with random SIGKILLs until all complete; verify exactly-once; return figures."""
    db, jsonl = workdir / "kill.db", workdir / "kill.jsonl"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), jsonl):
        p.unlink(missing_ok=True)
    rng = random.Random(seed)
    sessions = [f"worker-{i}" for i in range(procs)]
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", "--db", str(db), "--jsonl", str(jsonl),
           "--steps", str(steps), "--session"]
    running = {s: subprocess.Popen([*cmd, s], stdout=subprocess.DEVNULL) for s in sessions}
    kills = restarts = 0
    budget = max_kills if max_kills is not None else procs * 4
    start = time.perf_counter()
    while running:
        time.sleep(rng.uniform(0.05, 0.4))
        for s, p in list(running.items()):
            if p.poll() is not None:
                if p.returncode != 0 and p.returncode != -signal.SIGKILL:
                    raise RuntimeError(f"worker {s} exited with {p.returncode}")
                if p.returncode == 0:
                    del running[s]
                else:
                    running[s] = subprocess.Popen([*cmd, s], stdout=subprocess.DEVNULL)
                    restarts += 1
        if kills < budget and running:
            victim = rng.choice(sorted(running))
            running[victim].send_signal(signal.SIGKILL)
            kills += 1
    elapsed = time.perf_counter() - start
    # verify: every session has every event exactly once, in order, in errors() and the outbox
    from railgraph.plugins.sqlite_store import SqliteCheckpointer
    store = SqliteCheckpointer(db)
    graph = build(steps).compile(settings=settings_for(db, jsonl), checkpointer=store)
    lost = duplicated = 0
    for s in sessions:
        expected = [event_id(s, n) for n in range(1, steps + 1)]
        got = [e.id for e in graph.errors(s) if "soak" in e.tags]
        outbox = [e.id for e in store.session_events(s) if "soak" in e.tags]
        lost += len(set(expected) - set(got)) + len(set(expected) - set(outbox))
        duplicated += (len(got) - len(set(got))) + (len(outbox) - len(set(outbox)))
        assert got == expected and outbox == expected, s
        assert graph.state(s).extra["n"] == steps
        history = [step for step, _, _ in store.history(s)]
        assert history == list(range(1, len(history) + 1)), s
    graph.runner.deliver()  # the sink catches up on anything a killed worker did not send
    sent = [json.loads(line)["event"]["id"] for line in jsonl.read_text().splitlines()]
    expected_all = {str(event_id(s, n)) for s in sessions for n in range(1, steps + 1)}
    jsonl_missing = len(expected_all - set(sent))
    integrity = store.integrity_check()
    graph.close()
    assert jsonl_missing == 0 and integrity == "ok"
    return {"procs": procs, "steps": steps, "kills": kills, "restarts": restarts, "elapsed_s": elapsed,
            "lost": lost, "duplicated": duplicated, "jsonl_lines": len(sent),
            "jsonl_redelivered": len(sent) - len(set(sent)), "jsonl_missing": jsonl_missing,
            "integrity": integrity, "db_mb": db.stat().st_size / 2**20}


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def section(long: dict | None, kill: dict | None) -> str:
    """The markdown of the "Soak" section."""
    lines = [SECTION, "",
             "Written by `bench/soak.py all --write-results` (not by `bench/run.py`; rerun soak.py to refresh "
             "this section, which it replaces in place).", "",
             f"- **Date:** {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; Python {sys.version.split()[0]}, "
             f"SQLite {sqlite3.sqlite_version}; load average at the end "
             f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}",
             "- **Profile:** `configs/long-running.toml` as shipped (SQLite, channel limit 500, cap 200 with a "
             "summary, gating toggle on, retry, JSON Lines sink without an fsync per delivery), redact plugin "
             "on. (With an fsync after every superstep the step time grew ~1.6x over 100,000 steps on this "
             "machine's disk; the profile now leaves fsync to the OS, like the store's synchronous = NORMAL.)", ""]
    if long:
        growth = long["last_1000_mean_us"] / long["first_1000_mean_us"]
        lines += [
            f"### One session, {long['steps']:,} steps, an error event every step", "",
            "Each step raises and catches a two-rung exception (a URL with an API key in it: the redact "
            "plugin scrubs it) and emits it as an event with the node's partial.", "",
            "| figure | value |", "|---|---:|",
            f"| total run time | {long['total_s']:.1f} s |",
            f"| mean step time, first 1,000 steps | {long['first_1000_mean_us']:.0f} µs |",
            f"| mean step time, last 1,000 steps | {long['last_1000_mean_us']:.0f} µs |",
            f"| last ÷ first (mean) | {growth:.2f} |",
            f"| median step time, first / last 1,000 | {long['first_1000_median_us']:.0f} / "
            f"{long['last_1000_median_us']:.0f} µs |",
            f"| RSS at start / after 1,000 steps / at end | {long['rss_start_mb']:.1f} / "
            f"{long['rss_at_1000_mb']:.1f} / {long['rss_end_mb']:.1f} MB |",
        ]
        if long["tracemalloc"]:
            lines.append(f"| traced Python memory after 1,000 steps / at end | {long['traced_at_1000_mb']:.2f} / "
                         f"{long['traced_end_mb']:.2f} MB |")
        lines += [
            f"| database after a WAL checkpoint | {long['db_mb']:.1f} MB ({long['db_mb'] * 2**20 / long['steps']:.0f} "
            "B per step) |",
            f"| JSON Lines file | {long['jsonl_mb']:.1f} MB |",
            f"| events read back by `errors()` | {long['events']:,} |", ""]
    if kill:
        lines += [
            f"### {kill['procs']} processes × {kill['steps']:,} steps, random SIGKILLs, then resume", "",
            "| figure | value |", "|---|---:|",
            f"| SIGKILLs / restarts | {kill['kills']} / {kill['restarts']} |",
            f"| wall time | {kill['elapsed_s']:.1f} s |",
            f"| events lost / duplicated (errors() and outbox, every session) | {kill['lost']} / "
            f"{kill['duplicated']} |",
            f"| JSON Lines lines / re-delivered (at-least-once) / missing | {kill['jsonl_lines']:,} / "
            f"{kill['jsonl_redelivered']} / {kill['jsonl_missing']} |",
            f"| checkpoint history gap-free, `PRAGMA integrity_check` | yes, {kill['integrity']} |",
            f"| database size | {kill['db_mb']:.1f} MB |", ""]
    return "\n".join(lines)


def write_results(text: str) -> None:
    """Replace (or append) the "Soak" section of bench/RESULTS.md, leaving the rest untouched."""
    current = RESULTS.read_text() if RESULTS.exists() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text.rstrip() + "\n\n", current, count=1)
    else:
        updated = current.rstrip() + "\n\n" + text.rstrip() + "\n"
    RESULTS.write_text(updated.rstrip() + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["long", "kill", "all", "worker"])
    p.add_argument("--steps", type=int)
    p.add_argument("--procs", type=int, default=8)
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--tracemalloc", action="store_true", help="also record Python's traced memory (slower)")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--db", type=Path)
    p.add_argument("--jsonl", type=Path)
    p.add_argument("--session")
    args = p.parse_args()
    if args.mode == "worker":
        worker(args.session, args.steps, args.db, args.jsonl)
        return
    workdir = args.workdir or Path(os.environ.get("TMPDIR", "/tmp")) / "railgraph-soak"
    workdir.mkdir(parents=True, exist_ok=True)
    long = kill = None
    if args.mode in ("long", "all"):
        long = run_long(args.steps or 100_000, workdir, args.tracemalloc)
        print(json.dumps({k: v for k, v in long.items() if k != "memory_every_1000"}, indent=2), flush=True)
        print("memory every 1000 steps (step, RSS MB, traced MB):", long["memory_every_1000"][::10], flush=True)
    if args.mode in ("kill", "all"):
        kill = run_kill(args.procs, args.steps if args.mode == "kill" and args.steps else 1000, workdir, args.seed)
        print(json.dumps(kill, indent=2), flush=True)
    text = section(long, kill)
    print(text)
    if args.write_results:
        write_results(text)


if __name__ == "__main__":
    main()
