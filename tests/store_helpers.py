"""Shared helpers of the store tests: backends to open, the test graphs, and subprocess plumbing.

Imported by tests/test_store_*.py, tests/test_crash*.py, tests/test_migration*.py and by the
worker script tests/store_worker.py (which runs graphs in separate processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from railgraph import END, START, GraphBuilder, NodeScope, Settings
from railgraph.checkpoint import Checkpointer, MemoryCheckpointer
from railgraph.events import make_event, utc_now

HERE = Path(__file__).resolve().parent
WORKER = HERE / "store_worker.py"
PG_ENV = "RAILGRAPH_TEST_POSTGRES_DSN"
PG_SKIP = f"PostgreSQL tests skipped: set {PG_ENV} to a server DSN (.ci/run starts one)"
NS = uuid.UUID("3b0d1c9e-8a57-4f4e-9d2a-5c8e7f1a2b3c")


def pg_dsn() -> str | None:
    """The test server's DSN, or ``None`` when PostgreSQL tests are skipped."""
    return os.environ.get(PG_ENV) or None


def event_id(session: str, n: int) -> uuid.UUID:
    """The id of the known event the counter graph emits at count `n` of `session`."""
    return uuid.uuid5(NS, f"{session}:{n}")


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


@dataclass
class Backend:
    """One store under test: `open()` gives a fresh instance on the same stored data."""

    name: str
    path: Path | None = None
    dsn: str | None = None
    schema: str | None = None
    _memory: MemoryCheckpointer | None = None
    opened: list[Any] = field(default_factory=list)

    @property
    def durable(self) -> bool:
        """Whether a new instance sees what an earlier one committed (not memory)."""
        return self.name != "memory"

    def open(self) -> Checkpointer:
        """A store instance (memory: always the same object)."""
        if self.name == "memory":
            if self._memory is None:
                self._memory = MemoryCheckpointer()
            return self._memory
        if self.name == "sqlite":
            from railgraph.plugins.sqlite_store import SqliteCheckpointer
            store: Any = SqliteCheckpointer(self.path)
        else:
            from railgraph.plugins.postgres_store import PostgresCheckpointer
            store = PostgresCheckpointer(self.dsn, schema=self.schema)
        self.opened.append(store)
        return store

    def settings(self, **sections: Any) -> Settings:
        """Settings selecting this backend through ``persistence.backend`` (plus `sections`)."""
        plugins = dict(sections.pop("plugins", {}))
        if self.name == "sqlite":
            plugins["sqlite_store"] = {"path": str(self.path)}
        elif self.name == "postgres":
            plugins["postgres_store"] = {"dsn": self.dsn, "schema": self.schema}
        return Settings(persistence={"backend": self.name}, plugins=plugins, **sections)

    def argv(self) -> list[str]:
        """Command-line options telling tests/store_worker.py to use this backend."""
        if self.name == "sqlite":
            return ["--backend", "sqlite", "--path", str(self.path)]
        if self.name == "postgres":
            return ["--backend", "postgres", "--dsn", str(self.dsn), "--schema", str(self.schema)]
        raise ValueError("memory cannot be shared with another process")

    def close(self) -> None:
        """Close every opened instance; drop the PostgreSQL schema."""
        for store in self.opened:
            try:
                store.close()
            except Exception:  # noqa: S112 - teardown is best effort
                continue
        if self.name == "postgres":
            import time

            import psycopg
            for attempt in range(5):  # a killed worker's server process may still hold locks briefly
                try:
                    with psycopg.connect(self.dsn, autocommit=True) as conn:
                        conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
                    return
                except psycopg.errors.DeadlockDetected:
                    if attempt == 4:
                        raise
                    time.sleep(0.2)


def make_backend(name: str, tmp_path: Path) -> Backend:
    """A `Backend` for `name` (``memory``, ``sqlite``, ``postgres``); skips postgres without a DSN."""
    import pytest  # here: the worker script imports this module without pytest

    if name == "postgres":
        dsn = pg_dsn()
        if dsn is None:
            pytest.skip(PG_SKIP)
        return Backend(name, dsn=dsn, schema=f"rgt_{uuid.uuid4().hex[:12]}")
    if name == "sqlite":
        return Backend(name, path=tmp_path / "store" / "railgraph.db")
    return Backend(name)


def backend_fixture(names: tuple[str, ...]) -> Callable[..., Iterator[Backend]]:
    """A pytest fixture parametrized over `names`."""
    import pytest

    @pytest.fixture(params=names)
    def backend(request: Any, tmp_path: Path) -> Iterator[Backend]:
        b = make_backend(request.param, tmp_path)
        try:
            yield b
        finally:
            b.close()
    return backend


# ---------------------------------------------------------------------------------------------
# Graphs
# ---------------------------------------------------------------------------------------------


def counter_graph(steps: int | list[int], *, fail_at: int | None = None, marker: Path | None = None) -> GraphBuilder:
    """A loop: ``tick`` adds 1 to ``extra["n"]``, a message, and one known event per step, until `steps`.

    `steps` may be a one-item list, read at every step (a caller can set the target after
    compiling). With `fail_at`, ``tick`` raises once when it would reach that count, unless
    `marker` exists (the failure writes it, so a later run heals).
    """
    limit = steps if isinstance(steps, list) else [steps]

    def tick(state: Any, ctx: Any) -> dict[str, Any]:
        n = state.extra.get("n", 0) + 1
        if fail_at is not None and n == fail_at and not (marker and marker.exists()):
            if marker is not None:
                marker.write_text("failed once")
            raise RuntimeError(f"tick failed at {n}")
        ev = make_event(f"tick {n}", scope=NodeScope(node="tick", step=ctx.step), id=event_id(ctx.session, n),
                        when=utc_now(), code="test.tick", context={"n": n})
        return {"extra": {"n": n}, "messages": [{"role": "tool", "content": f"tick {n}"}], "errors": [ev]}

    b = GraphBuilder()
    b.add_node("tick", tick)
    b.add_edge(START, "tick")
    b.add_conditional_edges("tick", lambda s: "tick" if s.extra["n"] < limit[0] else END)
    return b


def fanout_graph(runs: Path, heal: bool) -> GraphBuilder:
    """``a`` then ``b`` and ``c`` in parallel, then ``d``; ``b`` fails unless `heal`. Runs are logged to `runs`."""
    def log(name: str) -> None:
        with runs.open("a") as f:
            f.write(name + "\n")

    def a(state: Any) -> dict[str, Any]:
        log("a")
        return {"extra": {"a": 1}, "messages": [{"role": "ai", "content": "a"}]}

    def b(state: Any) -> dict[str, Any]:
        log("b")
        if not heal:
            raise ValueError("b is broken")
        return {"extra": {"b": 2}}

    def c(state: Any) -> dict[str, Any]:
        log("c")
        return {"extra": {"c": {"nested": [1, 2, 3]}}, "messages": [{"role": "ai", "content": "c"}]}

    def d(state: Any) -> dict[str, Any]:
        log("d")
        return {"extra": {"d": state.extra["b"] + state.extra["c"]["nested"][-1]}}

    g = GraphBuilder()
    for name, fn in (("a", a), ("b", b), ("c", c), ("d", d)):
        g.add_node(name, fn)
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("a", "c")
    g.add_edge("b", "d")
    g.add_edge("c", "d")
    g.add_edge("d", END)
    return g


# ---------------------------------------------------------------------------------------------
# Subprocesses
# ---------------------------------------------------------------------------------------------


def worker_env() -> dict[str, str]:
    """The environment for tests/store_worker.py (no RAILGRAPH_* settings leak in)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RAILGRAPH_") or k == PG_ENV}


def run_worker(*args: str, cwd: Path | None = None, timeout: float = 60) -> dict[str, Any]:
    """Run tests/store_worker.py with `args`; return its JSON report (raises on a crash)."""
    proc = subprocess.run([sys.executable, str(WORKER), *args], capture_output=True, text=True, timeout=timeout,
                          env=worker_env(), cwd=cwd)
    if proc.returncode != 0:
        raise AssertionError(f"worker {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spawn_worker(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start tests/store_worker.py with `args` without waiting."""
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=worker_env(), cwd=cwd)
