"""The benchmark workloads, written once for railgraph and once for LangGraph.

Each ``*_w*`` function builds its graph outside the timed region and returns a callable that runs
the workload once and returns a `Run` (wall time, units of work, and per-step timestamps when the
workload records them). `bench/run.py` does the warm-up, the repeats and the reporting.

W1   a counter incremented by one node; a conditional edge loops back until it reaches 2000.
W2   START -> 50 parallel workers (one key each into a merged dict) -> a join that checks all 50
     -> back to the workers, 20 rounds.
W3   W1 where every step also emits one ~300-byte error event (railgraph: ``ctx.event`` in
     ``NodePartial(errors=[...])``; LangGraph: a ~300-byte dict appended to an ``operator.add`` list).
"""

from __future__ import annotations

import operator
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

W1_STEPS = 2000
W2_WORKERS = 50
W2_ROUNDS = 20
W2_NODE_RUNS = W2_ROUNDS * (W2_WORKERS + 1)
# the ~300-byte payload of a W3 event: ordinary error text (a 300-character run of one letter would
# measure the redact plugin's secret scanner on a token-like string, not a typical event)
EVENT_TEXT = ("tool call 'search_tickets' failed: upstream api.example.com answered HTTP 503 Service "
              "Unavailable after 2.4 s (attempt 3 of 5); the response body said the service is temporarily "
              "overloaded and to retry later. Falling back to the cached result set of the previous step, "
              "so up to 14 tickets may be stale.").ljust(300, ".")[:300]


@dataclass
class Run:
    """One timed run: seconds, units of work (steps or node runs), per-step timestamps if recorded."""

    seconds: float
    units: int
    stamps: list[float] = field(default_factory=list)

    @property
    def us_per_unit(self) -> float:
        return self.seconds / self.units * 1e6


def step_costs(stamps: list[float]) -> list[float]:
    """Seconds between consecutive node calls: the full cost of each superstep."""
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def flatness(stamps: list[float], window: int = 200) -> float:
    """Mean cost of the last `window` steps divided by the mean of the first `window`."""
    costs = step_costs(stamps)
    first, last = costs[:window], costs[-window:]
    return (sum(last) / len(last)) / (sum(first) / len(first))


def file_size(path: str) -> int:
    """Bytes on disk of an SQLite database with its WAL and shared-memory files."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal", path + "-shm") if os.path.exists(p))


# ---------------------------------------------------------------------------------------------
# railgraph
# ---------------------------------------------------------------------------------------------


def _rg_settings(backend: str, synchronous: str | None = None, disable: tuple[str, ...] = (),
                 path: str | None = None) -> Any:
    from railgraph import Settings

    store = {k: v for k, v in (("synchronous", synchronous), ("path", path)) if v is not None}
    plugins: dict[str, Any] = {"sqlite_store": store} if store else {}
    if disable:
        plugins["disable"] = list(disable)
    return Settings(persistence={"backend": backend}, runner={"max_steps": W1_STEPS + 10}, plugins=plugins)


def rg_w1(backend: str = "memory", *, events: bool = False, synchronous: str | None = None,
          disable: tuple[str, ...] = (), path: str | None = None) -> Callable[[], Run]:
    """W1 (or W3 with `events`) on railgraph with `backend` (``memory`` or ``sqlite``).

    `synchronous` and `path` set the sqlite store's options (``None``: its defaults, ``NORMAL`` and
    a file under the working directory); `disable` names plugins not to load (e.g. ``redact``).
    """
    from railgraph import END, START, GraphBuilder, NodePartial

    stamps: list[float] = []
    clock = time.perf_counter

    if events:
        def inc(state: Any, ctx: Any) -> Any:
            stamps.append(clock())
            return NodePartial(extra={"n": state.extra["n"] + 1},
                               errors=[ctx.event(EVENT_TEXT, code="bench.w3", details={"n": state.extra["n"]})])
    else:
        def inc(state: Any) -> Any:
            stamps.append(clock())
            return {"extra": {"n": state.extra["n"] + 1}}

    b = GraphBuilder()
    b.add_node("inc", inc)
    b.add_edge(START, "inc")
    b.add_conditional_edges("inc", lambda s: "inc" if s.extra["n"] < W1_STEPS else END)
    graph = b.compile(settings=_rg_settings(backend, synchronous, disable, path))

    def run() -> Run:
        stamps.clear()
        t0 = clock()
        state = graph.invoke({"extra": {"n": 0}}, session=str(uuid.uuid4()))
        t = clock() - t0
        assert state.extra["n"] == W1_STEPS and state.status == "completed", state
        if events:
            assert len(state.errors) == W1_STEPS
        return Run(t, W1_STEPS, list(stamps))

    run.graph = graph  # type: ignore[attr-defined]
    return run


def rg_w2() -> Callable[[], Run]:
    """W2 on railgraph, in memory."""
    from railgraph import END, START, GraphBuilder

    b = GraphBuilder()
    workers = [f"w{i}" for i in range(W2_WORKERS)]

    def make_worker(key: str) -> Callable[[Any], Any]:
        def work(state: Any) -> Any:
            return {"extra": {key: state.extra["round"]}}
        return work

    def join(state: Any) -> Any:
        r = state.extra["round"]
        missing = [w for w in workers if state.extra.get(w) != r]
        assert not missing, missing
        return {"extra": {"round": r + 1}}

    for w in workers:
        b.add_node(w, make_worker(w))
        b.add_edge(START, w)
        b.add_edge(w, "join")
    b.add_node("join", join)
    b.add_conditional_edges("join", lambda s: workers if s.extra["round"] < W2_ROUNDS else END)
    graph = b.compile(settings=_rg_settings("memory"))

    def run() -> Run:
        t0 = time.perf_counter()
        state = graph.invoke({"extra": {"round": 0}}, session=str(uuid.uuid4()))
        t = time.perf_counter() - t0
        assert state.extra["round"] == W2_ROUNDS and state.status == "completed", state
        return Run(t, W2_NODE_RUNS)

    run.graph = graph  # type: ignore[attr-defined]
    return run


# ---------------------------------------------------------------------------------------------
# LangGraph
# ---------------------------------------------------------------------------------------------


class _Counter(TypedDict):
    n: int


class _CounterEvents(TypedDict):
    n: int
    errors: Annotated[list, operator.add]


def _merge(a: dict, b: dict) -> dict:
    return {**a, **b}


class _Fan(TypedDict):
    round: int
    d: Annotated[dict, _merge]


def _lg_saver(kind: str, path: str | None) -> Any:
    if kind == "none":
        return None
    if kind == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        return InMemorySaver()
    if kind == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        return SqliteSaver(sqlite3.connect(path, check_same_thread=False))
    raise ValueError(kind)


def lg_w1(saver: str = "none", *, path: str | None = None, events: bool = False,
          durability: str | None = None) -> Callable[[], Run]:
    """W1 (or W3 with `events`) on LangGraph with no checkpointer, InMemorySaver or SqliteSaver.

    `durability` is LangGraph's ``invoke(durability=...)``: ``None`` keeps its default (``"async"``: a
    step's checkpoint is written in the background while the next step runs), ``"sync"`` writes each
    checkpoint before the next step starts (what railgraph always does).
    """
    from langgraph.graph import END, START, StateGraph

    stamps: list[float] = []
    clock = time.perf_counter
    if events:
        def inc(state: dict) -> dict:
            stamps.append(clock())
            return {"n": state["n"] + 1, "errors": [{"message": EVENT_TEXT, "code": "bench.w3", "n": state["n"]}]}
    else:
        def inc(state: dict) -> dict:
            stamps.append(clock())
            return {"n": state["n"] + 1}

    g = StateGraph(_CounterEvents if events else _Counter)
    g.add_node("inc", inc)
    g.add_edge(START, "inc")
    g.add_conditional_edges("inc", lambda s: "inc" if s["n"] < W1_STEPS else END)
    checkpointer = _lg_saver(saver, path)
    graph = g.compile(checkpointer=checkpointer)

    def run() -> Run:
        stamps.clear()
        config = {"recursion_limit": W1_STEPS + 10, "configurable": {"thread_id": str(uuid.uuid4())}}
        start: dict[str, Any] = {"n": 0, "errors": []} if events else {"n": 0}
        kwargs = {"durability": durability} if durability is not None else {}
        t0 = clock()
        out = graph.invoke(start, config, **kwargs)
        t = clock() - t0
        assert out["n"] == W1_STEPS, out["n"]
        return Run(t, W1_STEPS, list(stamps))

    run.checkpointer = checkpointer  # type: ignore[attr-defined]
    return run


def lg_w2(saver: str = "none") -> Callable[[], Run]:
    """W2 on LangGraph (no checkpointer, or InMemorySaver)."""
    from langgraph.graph import END, START, StateGraph

    workers = [f"w{i}" for i in range(W2_WORKERS)]
    g = StateGraph(_Fan)

    def make_worker(key: str) -> Callable[[dict], dict]:
        def work(state: dict) -> dict:
            return {"d": {key: state["round"]}}
        return work

    def join(state: dict) -> dict:
        r = state["round"]
        missing = [w for w in workers if state["d"].get(w) != r]
        assert not missing, missing
        return {"round": r + 1}

    for w in workers:
        g.add_node(w, make_worker(w))
        g.add_edge(START, w)
        g.add_edge(w, "join")
    g.add_node("join", join)
    g.add_conditional_edges("join", lambda s: workers if s["round"] < W2_ROUNDS else END, [*workers, END])
    graph = g.compile(checkpointer=_lg_saver(saver, None))

    def run() -> Run:
        config = {"recursion_limit": 1000, "configurable": {"thread_id": str(uuid.uuid4())}}
        t0 = time.perf_counter()
        out = graph.invoke({"round": 0, "d": {}}, config)
        t = time.perf_counter() - t0
        assert out["round"] == W2_ROUNDS, out["round"]
        return Run(t, W2_NODE_RUNS)

    return run
