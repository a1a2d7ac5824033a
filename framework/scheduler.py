"""The scheduler: which frontier nodes run (version gating), and running them concurrently.

Sync nodes run in worker threads, async nodes on the event loop, under a concurrency limit. A
lone sync node without a timeout runs inline: no thread or event-loop hop. Each node may be
retried by the retry policy; every failed attempt is reported through `on_attempt` so it becomes
an `ErrorEvent`, not only the last one.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import NodeTimeout
from .events import ErrorEvent, event_from_exception, make_event, node_scope
from .graph import GraphSpec, NodeSpec
from .hookspecs import RetryDecision
from .state import Snapshot

if TYPE_CHECKING:
    from uuid import UUID

GATED = ("messages", "extra")


class _DaemonPool:
    """Daemon threads for nodes with a deadline, grown on demand and retired when idle.

    A node that overruns keeps its thread busy — possibly for ever — so this pool is unbounded
    (a hung node can never starve another's deadline) and its threads are daemons (a hung node
    never keeps the process alive at exit, as `ThreadPoolExecutor` threads would). Idle threads
    are reused, so a timed node costs a queue hand-off, not a thread start.
    """

    IDLE_SECONDS = 30.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # waiting threads not yet reserved by a submitted job

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` on an idle thread (or a new one); return its future."""
        future: Future[Any] = Future()
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1
        self._jobs.put((future, fn, args))
        if not reuse:
            threading.Thread(target=self._loop, name="railgraph-timed-node", daemon=True).start()
        return future

    def _loop(self) -> None:
        while True:
            try:
                future, fn, args = self._jobs.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # not reserved meanwhile: retire
                        self._idle -= 1
                        return
                continue  # a job was reserved for this thread just now: take it
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the waiting caller
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1


_TIMED = _DaemonPool()


@dataclass(slots=True)
class NodeContext:
    """What a node knows about its run: session, step, node name and attempt (from 1).

    ``ctx.event(...)`` builds a non-fatal `ErrorEvent` scoped to this node, for
    ``NodePartial(errors=[...])``; ``ctx.event_from(exc)`` builds one from an exception.
    """

    session: str
    step: int
    node: str
    attempt: int
    _ids: Callable[[], UUID] = field(repr=False, default=None)  # type: ignore[assignment]
    _clock: Callable[[], Any] = field(repr=False, default=None)  # type: ignore[assignment]

    def event(self, message: str, *, code: str | None = None, help: str | None = None,
              details: Mapping[str, Any] | None = None, tags: Sequence[str] = (),
              context: Mapping[str, Any] | None = None, type: str = "railgraph.NodeEvent") -> ErrorEvent:
        """A node-scope event that does not fail the node."""
        return make_event(message, scope=node_scope(self.node, self.step), id=self._ids(),
                          when=self._clock(), type=type, code=code, help=help, details=details, tags=tags,
                          context={"session": self.session, **(context or {})})

    def event_from(self, exc: BaseException, *, tags: Sequence[str] = (),
                   context: Mapping[str, Any] | None = None) -> ErrorEvent:
        """A node-scope event built from a caught exception (its whole chain)."""
        return event_from_exception(exc, scope=node_scope(self.node, self.step), id=self._ids(),
                                    when=self._clock(), tags=tags, context={"session": self.session, **(context or {})})


@dataclass(slots=True)
class Outcome:
    """How one node's run ended: a partial, or the final exception (after retries)."""

    node: str
    value: Any = None
    error: BaseException | None = None
    attempts: int = 1
    attempt_events: list[ErrorEvent] = field(default_factory=list)
    decision: RetryDecision | None = None


def gate(frontier: Sequence[str], versions: Mapping[str, int], seen: Mapping[str, Mapping[str, int]],
         pending: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Split the frontier into nodes to run and nodes skipped, with why each was skipped.

    A node runs when it never ran, when ``messages`` or ``extra`` has a version newer than the
    one it last saw, or when it has pending writes from a failed superstep (reused, not re-run).
    """
    run: list[str] = []
    skipped: dict[str, str] = {}
    for node in frontier:
        if node in pending:
            run.append(node)
            continue
        last = seen.get(node)
        if last is None or versions["extra"] > last.get("extra", 0) or versions["messages"] > last.get("messages", 0):
            run.append(node)
        else:
            skipped[node] = (f"gated: messages v{versions['messages']} and extra v{versions['extra']} "
                             "are not newer than what it last saw")
    return run, skipped


RetryFn = Callable[[str, int, BaseException], "RetryDecision | None"]
AttemptFn = Callable[[NodeContext, BaseException, RetryDecision], ErrorEvent]


class Scheduler:
    """Runs the nodes of a superstep on one immutable snapshot.

    Args:
        spec: the compiled graph.
        max_concurrency: nodes running at the same time.
        node_timeout: default seconds a node may run (``None``: no limit).
        retry: the retry policy (``None``: one attempt).
        on_attempt: builds the event for a failed attempt that will be retried.
        sleep: the sleep function between attempts (tests pass a fake).
    """

    def __init__(self, spec: GraphSpec, *, max_concurrency: int, node_timeout: float | None,
                 retry: RetryFn | None, on_attempt: AttemptFn, sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.max_concurrency = max_concurrency
        self.node_timeout = node_timeout
        self.retry = retry
        self.on_attempt = on_attempt
        self.sleep = sleep
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def timeout_of(self, node: NodeSpec) -> float | None:
        """The node's own timeout, else the default."""
        return node.timeout if node.timeout is not None else self.node_timeout

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The worker threads for sync nodes (created on first use)."""
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.max_concurrency + 4, thread_name_prefix="railgraph-node")
        return self._pool

    def close(self) -> None:
        """Stop the worker threads (hung nodes are abandoned, not joined)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- one node, sync ----------------------------------------------------------------------------

    def _call_sync(self, node: NodeSpec, snapshot: Snapshot, ctx: NodeContext) -> Any:
        return node.fn(snapshot, ctx) if node.takes_ctx else node.fn(snapshot)

    def _attempts_sync(self, node: NodeSpec, snapshot: Snapshot, make_ctx: Callable[[str, int], NodeContext],
                       deadline_call: Callable[[NodeSpec, Snapshot, NodeContext], Any]) -> Outcome:
        outcome = Outcome(node.name)
        attempt = 1
        # a node that takes no ctx and has no deadline never sees its context: build one only for a retry event
        lazy = not node.takes_ctx and self.timeout_of(node) is None
        while True:
            ctx = None if lazy else make_ctx(node.name, attempt)
            try:
                outcome.value = deadline_call(node, snapshot, ctx)
                outcome.error = None
                outcome.attempts = attempt
                return outcome
            except Exception as exc:
                decision = self._decide(outcome, node.name, attempt, exc)
                if decision is None:
                    return outcome
                if ctx is None:
                    ctx = make_ctx(node.name, attempt)
                outcome.attempt_events.append(self.on_attempt(ctx, exc, decision))
                if decision.delay > 0:
                    self.sleep(decision.delay)
                attempt += 1

    def _decide(self, outcome: Outcome, node: str, attempt: int, exc: Exception) -> RetryDecision | None:
        """Record the failed attempt in `outcome`; return the decision if the node runs again, else None.

        A retry policy that raises ends the node's attempts: its `PluginError` (the node's own
        exception as its context) becomes the node's failure, so it is committed like any other.
        """
        outcome.error, outcome.attempts = exc, attempt
        if self.retry is None:
            return None
        try:
            decision = self.retry(node, attempt, exc)
        except Exception as perr:
            perr.__context__ = exc
            outcome.error, outcome.decision = perr, None
            return None
        outcome.decision = decision
        if decision is None or not decision.retry or attempt >= decision.max_attempts:
            return None
        return decision

    def _with_timeout(self, node: NodeSpec, snapshot: Snapshot, ctx: NodeContext) -> Any:
        """Call the node; with a deadline, on a daemon thread that is abandoned (not joined) if it overruns."""
        timeout = self.timeout_of(node)
        if timeout is None:
            return self._call_sync(node, snapshot, ctx)
        future = _TIMED.submit(self._call_sync, node, snapshot, ctx)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            raise NodeTimeout(f"node {node.name!r} timed out after {timeout:g}s", session=ctx.session,
                              step=ctx.step, node=node.name, details={"timeout": timeout}) from None

    def run_sync(self, names: Sequence[str], snapshot: Snapshot,
                 make_ctx: Callable[[str, int], NodeContext]) -> dict[str, Outcome]:
        """Run sync nodes `names` concurrently; return node → `Outcome`. Never raises for node errors."""
        if len(names) == 1:
            node = self.spec.nodes[names[0]]
            return {node.name: self._attempts_sync(node, snapshot, make_ctx, self._with_timeout)}
        nodes = [self.spec.nodes[n] for n in names]
        # work queue: up to min(limit, n) workers pull nodes; the calling thread works too. Helpers are
        # woken one at a time: a thread about to run a node wakes one more helper if nodes remain and
        # no woken helper is still on its way. Nodes that block (I/O) let each helper start and wake
        # the next, so the limit is reached within a few thread wake-ups; nodes that return at once
        # finish before the first helper gets the GIL, so a superstep costs one hand-off, not n.
        n = len(nodes)
        counter = itertools.count()
        out: list[Outcome | None] = [None] * n
        futures: list[Future[None]] = []
        lock = threading.Lock()
        helpers = min(self.max_concurrency, n) - 1
        waking = [False]

        def wake() -> None:
            nonlocal helpers
            with lock:
                if waking[0] or helpers <= 0:
                    return
                waking[0] = True
                helpers -= 1
                futures.append(self.pool.submit(worker, True))

        def worker(helper: bool = False) -> None:
            if helper:
                with lock:
                    waking[0] = False
            while True:
                i = next(counter)
                if i >= n:
                    return
                if i + 1 < n and not waking[0] and helpers > 0:
                    wake()
                out[i] = self._attempts_sync(nodes[i], snapshot, make_ctx, self._with_timeout)

        worker()
        # every node is taken now: a helper that has not started has nothing left to do, so cancel it
        # rather than wait for its thread to be scheduled. A helper is appended before the thread
        # that woke it finishes, so this loop sees every helper.
        i = 0
        while i < len(futures):
            if not futures[i].cancel():
                futures[i].result()
            i += 1
        return {o.node: o for o in out if o is not None}

    # -- async -------------------------------------------------------------------------------------

    async def run_async(self, names: Sequence[str], snapshot: Snapshot,
                        make_ctx: Callable[[str, int], NodeContext]) -> dict[str, Outcome]:
        """Run nodes on the running loop (sync ones in worker threads) under the concurrency limit."""
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(self.max_concurrency)

        async def call(node: NodeSpec, ctx: NodeContext) -> Any:
            if node.is_async:
                coro = node.fn(snapshot, ctx) if node.takes_ctx else node.fn(snapshot)
            else:
                coro = loop.run_in_executor(self.pool, self._call_sync, node, snapshot, ctx)
            timeout = self.timeout_of(node)
            if timeout is None:
                return await coro
            try:
                return await asyncio.wait_for(coro, timeout)
            except TimeoutError:
                raise NodeTimeout(f"node {node.name!r} timed out after {timeout:g}s", session=ctx.session,
                                  step=ctx.step, node=node.name, details={"timeout": timeout}) from None

        async def one(node: NodeSpec) -> Outcome:
            outcome = Outcome(node.name)
            attempt = 1
            async with sem:
                while True:
                    ctx = make_ctx(node.name, attempt)
                    try:
                        outcome.value = await call(node, ctx)
                        outcome.error, outcome.attempts = None, attempt
                        return outcome
                    except Exception as exc:
                        decision = self._decide(outcome, node.name, attempt, exc)
                        if decision is None:
                            return outcome
                        outcome.attempt_events.append(self.on_attempt(ctx, exc, decision))
                        if decision.delay > 0:
                            await asyncio.sleep(decision.delay)
                        attempt += 1

        outcomes = await asyncio.gather(*(one(self.spec.nodes[n]) for n in names))
        return {o.node: o for o in outcomes}


__all__ = ["GATED", "NodeContext", "Outcome", "Scheduler", "gate"]
