"""The runner: sessions, supersteps, failures turned into events, checkpoints and sink delivery.

The runner is the one place that sees every failure mode with its session. On any failure it
builds the `ErrorEvent`(s), injects them through a synthetic `NodePartial` into the same barrier
the nodes use, commits the checkpoint, then raises the matching `RunnerError`. Nodes that
succeeded in a failed superstep keep their partials as pending writes, so resuming re-runs only
the failed nodes.

This module is an I/O edge: it calls the store and the sinks, reads the clock, and sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .barrier import BarrierPolicy, Channels, MergeResult, check_partial, merge, storable
from .checkpoint import Checkpoint, Checkpointer, Delta
from .config import Settings, find_key_line, locate_in_file
from .errors import (
    BarrierError,
    CheckpointError,
    ConfigError,
    InputError,
    NodeFailed,
    PluginError,
    RouterError,
    RunnerError,
    SessionBusyError,
    SessionNotFoundError,
    StepLimitError,
)
from .events import (
    AppScope,
    ErrorEvent,
    EventLimits,
    NodeScope,
    RunnerScope,
    SchedulerScope,
    bound_event,
    event_from_exception,
    make_event,
    utc_now,
)
from .graph import END, GraphSpec
from .hookspecs import EXTRA_ERRORS_MODES, RetryDecision, Sink, StepReport
from .ids import new_id
from .manager import Plugins, make_plugins
from .scheduler import NodeContext, Outcome, Scheduler, gate
from .state import ERRORS_KEY, FrozenDict, NodePartial, Snapshot, State, coerce_input, coerce_partial, freeze

VERIFY_MISMATCH = "railgraph.errors.verify_mismatch"
SINK_FAILED = "railgraph.sink.failed"
SINK_BATCH = 1000
# a healthy sink's delivery cycles begin at most this often (seconds): a fast loop's events travel
# many steps to a batch, and the sink's thread records its cursor once per batch (a failing sink's
# next cycle begins as soon as the last one ended; a run waiting for its sinks skips the pause)
SINK_INTERVAL = 0.005
# the attempts a run's end makes at a failing sink, within one runner.sink_timeout
DRAIN_TRIES = 3
_NO_PENDING: Mapping[str, NodePartial] = FrozenDict()  # immutable, so every clean step shares it
_set = dict.__setitem__  # fills a FrozenDict the runner has just built and no one else has seen yet


_log = logging.getLogger("railgraph")


@dataclass(slots=True)
class _Live:
    """A session being run by this process."""

    cp: Checkpoint
    channels: Channels
    app_events: list[ErrorEvent] = field(default_factory=list)
    # sinks this run left to another worker holding their delivery lease (see `Runner.deliver`)
    lease_waits: set[str] = field(default_factory=set)
    # the run is ending: a commit now waits for its delivery (see `Runner._end_run`)
    ending: bool = False


class _SinkWorker:
    """One daemon thread running a sink's calls in order (a hung sink never blocks process exit).

    `concurrent.futures.ThreadPoolExecutor` threads are joined when the interpreter exits, so a
    sink stuck in ``write`` would keep the process alive forever; a daemon thread is abandoned.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.SimpleQueue()
        threading.Thread(target=self._loop, name=f"railgraph-sink-{name}", daemon=True).start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, fn, args))
        return future

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the waiting caller, which reports it
                future.set_exception(exc)

    def shutdown(self) -> None:
        self._jobs.put(None)


@dataclass(slots=True)
class _SinkState:
    """One sink's delivery: runs request it (after each commit), the sink's thread does it.

    The thread's delivery loop (`Runner._sink_loop`) answers requests in cycles — take the store's
    delivery lease, read the outbox after the sink's cursor, write, record the cursor, give the
    lease back — so a cycle delivers everything committed before it began. Every field is read and
    written under `cv`.
    """

    executor: _SinkWorker
    cv: threading.Condition = field(default_factory=threading.Condition)
    wanted: int = 0  # requests made
    served: int = 0  # requests answered by a finished cycle (the newest one made before it began)
    running: bool = False  # the delivery loop is queued or running on the sink's thread
    waiting: int = 0  # runs waiting for their request: the loop does not pause (SINK_INTERVAL)
    next_at: float = 0.0  # a healthy sink's next cycle begins no earlier (`time.monotonic`)
    failed: bool = False  # the last cycle failed: the next begins without a pause
    refused: bool = False  # the last cycle found another worker holding the sink's lease
    writing_since: float | None = None  # the current write began (`time.monotonic`)
    hung: bool = False  # the current write outlived runner.sink_timeout (reported once)
    lease_held: bool = False  # the current cycle holds the store's lease (a run gives it back on a hang)
    delivered: int = 0  # events delivered
    outcomes: list[BaseException | None] = field(default_factory=list)  # cycles' failures (None: a success), to report
    failing_since: datetime | None = None
    failures: int = 0
    last_report: datetime | None = None


def failure_data(err: RunnerError) -> dict[str, Any]:
    """The JSON form of a `RunnerError` kept in the failed checkpoint (rendered after a restart).

    Stored text comes from the committed event — after every processor (redaction) and the size
    limits — never from the live exception; an error whose event a processor dropped keeps no text.
    """
    ev = err.event
    message = ev.error.message if ev is not None else f"{type(err).__name__} (its event was dropped by a processor)"
    where = {k: v for k, v in err.where().items()}
    if ev is not None:
        where = {k: v for k, v in ev.error.details.items() if k in where}
    return {"code": err.code, "message": message, "help": err.stored_help(), "exit_code": err.exit_code,
            "type": type(err).__name__, "where": where, "step": err.step,
            "event": str(ev.id) if ev is not None else None}


def _advance(driver: Generator[Any, Any, None], value: Any) -> Any:
    """Send `value` into the superstep driver; ``None`` once it has finished."""
    try:
        return driver.send(value)
    except StopIteration:
        return None


def _guard_capper(plugin: str, capper: Callable[[tuple[ErrorEvent, ...]], tuple[ErrorEvent, ...]]
                  ) -> Callable[[tuple[ErrorEvent, ...]], tuple[ErrorEvent, ...]]:
    """Wrap a plugin's capper so that its failure is a `PluginError` naming it (the step then fails
    and is committed without the cap, see `Runner._fail`)."""
    def capped(events: tuple[ErrorEvent, ...]) -> tuple[ErrorEvent, ...]:
        try:
            return capper(events)
        except Exception as exc:
            raise PluginError(f"plugin {plugin!r} hook error_capper: its capper raised {type(exc).__name__}",
                              plugin=plugin, hook="error_capper") from exc
    return capped


MAX_SESSION_ID = 1024


def check_session_id(session: Any) -> str:
    """Return `session` if it is a storable session id, else raise `InputError`.

    Any non-empty text of at most `MAX_SESSION_ID` characters is stored and read back exactly by
    every backend (quotes, SQL, paths, emoji and bidi marks included; ids are always bound as query
    parameters), except two characters no backend can keep: NUL (PostgreSQL text cannot hold it)
    and lone surrogates (not encodable as UTF-8).
    """
    if not isinstance(session, str) or not session:
        raise InputError(f"session id must be a non-empty string, got {session!r}")
    if len(session) > MAX_SESSION_ID:
        raise InputError(f"session id is {len(session)} characters long; the limit is {MAX_SESSION_ID}")
    if "\x00" in session:
        raise InputError(f"session id {session!r} contains a NUL character, which stores cannot keep")
    try:
        session.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"session id {session!r} is not valid Unicode text (a lone surrogate)") from None
    return session


class Runner:
    """Runs sessions of one graph.

    Args:
        spec: the validated graph (see `GraphBuilder.compile`).
        settings: the configuration (``None``: the usual sources).
        plugins: plugin objects registered from code, besides installed entry points.
        checkpointer: a store to use instead of the ``persistence.backend`` plugin's.
        load_entrypoints: load installed plugins (built-ins included).
        interrupt_before, interrupt_after: node names to pause at (besides the settings').
        clock: returns the current UTC time; ids: returns a new UUID (tests pass fixed ones).

    Raises:
        ConfigError: settings or a plugin table are invalid, the backend or mode is unknown.
        PluginError: a plugin failed to load or raised while its policy was resolved.
    """

    def __init__(self, spec: GraphSpec, *, settings: Settings | None = None, plugins: Sequence[Any] = (),
                 checkpointer: Checkpointer | None = None, load_entrypoints: bool = True,
                 interrupt_before: Sequence[str] = (), interrupt_after: Sequence[str] = (),
                 clock: Callable[[], datetime] | None = None, ids: Callable[[], uuid.UUID] | None = None) -> None:
        self.spec = spec
        raw = settings if settings is not None else Settings()
        try:
            self.plugins: Plugins = make_plugins(load_entrypoints=load_entrypoints, disable=raw.plugins.disable,
                                                 plugins=plugins)
        except ConfigError as exc:
            located = locate_in_file(raw, exc)  # name the file and line the key came from
            if located is exc:
                raise
            raise located from None
        self.settings = self.plugins.bind(raw)
        self.clock = clock or utc_now
        self.ids = ids or new_id
        s = self.settings
        self.limits = EventLimits(max_message=s.errors.max_message, max_depth=s.errors.max_depth,
                                  max_context_bytes=s.errors.max_context_bytes)
        _, mode = self.plugins.first("extra_errors_mode", settings=s)
        mode = mode or "dual"
        if mode not in EXTRA_ERRORS_MODES:
            raise ConfigError(f"unknown extra-errors mode {mode!r}; expected one of {list(EXTRA_ERRORS_MODES)}",
                              key="plugins.extra_errors.mode")
        _, bumps = self.plugins.first("reserved_change_bumps_version", settings=s)
        cap_name, capper = self.plugins.first("error_capper", settings=s)
        if capper is not None:
            capper = _guard_capper(str(cap_name), capper)
        processors = tuple(p for _, p in self.plugins.call("event_processor", settings=s))
        self.processor_names = tuple(n for n, _ in self.plugins.call("event_processor", settings=s))
        # last in the chain: every event is bounded whoever built it (a node, a plugin, a processor)
        limits = self.limits
        processors += (lambda event: bound_event(event, limits),)
        self.policy = BarrierPolicy(processors=processors, mode=mode, capper=capper,
                                    reserved_bumps_version=True if bumps is None else bool(bumps),
                                    channel_limit=s.errors.channel_limit, on_processor_error=self._processor_failed)
        if checkpointer is None:
            backend = s.persistence.backend
            _, checkpointer = self.plugins.first("make_checkpointer", backend=backend, settings=s)
            if checkpointer is None:
                raise ConfigError(f"no plugin provides persistence.backend = {backend!r} "
                                  "(built-in: sqlite, postgres, memory)", key="persistence.backend",
                                  file=str(s.file) if s.file else None,
                                  line=find_key_line(s.file, ("persistence", "backend")) if s.file else None)
        self.checkpointer: Checkpointer = checkpointer
        sinks: list[Sink] = []
        for _, contributed in self.plugins.call("make_sinks", settings=s):
            sinks.extend(contributed)
        self.sinks = sinks
        self._sink_states: dict[str, _SinkState] = {}
        self._sink_pid = os.getpid()  # a forked child has none of the sink threads: it starts its own
        self._retry = self._retry_decision if self.plugins.has("retry_decision") else None
        self.scheduler = Scheduler(spec, max_concurrency=s.runner.max_concurrency, node_timeout=s.runner.node_timeout,
                                   retry=self._retry, on_attempt=self._attempt_event)
        self.interrupt_before = frozenset((*s.runner.interrupt_before, *interrupt_before))
        self.interrupt_after = frozenset((*s.runner.interrupt_after, *interrupt_after))
        if spec.nodes:  # (the CLI opens stores with an empty graph)
            for key, names in (("runner.interrupt_before", s.runner.interrupt_before),
                               ("runner.interrupt_after", s.runner.interrupt_after)):
                unknown = [n for n in names if n not in spec.nodes]
                if unknown:
                    line = find_key_line(s.file, tuple(key.split("."))) if s.file is not None else None
                    where = f"{s.file}:{line or '?'}: " if s.file is not None and s.origins().get(key) == "file" else ""
                    raise ConfigError(f"{where}{key} names unknown node(s) {unknown}; the graph has "
                                      f"{', '.join(spec.nodes)}", key=key, file=str(s.file) if where else None,
                                      line=line if where else None)
        self._notify_steps = self.plugins.has("after_step")
        self._lock = threading.Lock()
        self._pending_app: list[ErrorEvent] = []  # app events no session claimed yet (a public deliver())
        self._active: set[str] = set()

    # -- events ------------------------------------------------------------------------------------

    def _event(self, exc: BaseException, scope: Any, *, tags: Sequence[str] = (),
               context: Mapping[str, Any] | None = None) -> ErrorEvent:
        return event_from_exception(exc, scope=scope, id=self.ids(), when=self.clock(), tags=tags,
                                    context=context, limits=self.limits)

    def _processor_failed(self, index: int, event: ErrorEvent, exc: Exception) -> ErrorEvent:
        name = self.processor_names[index] if index < len(self.processor_names) else f"#{index}"
        # the original event may hold what the processor was meant to scrub: keep none of its text
        return make_event(f"event processor of plugin {name!r} raised {type(exc).__name__}; the event it was "
                          "processing was replaced by this one", scope=AppScope(), id=event.id, when=event.when,
                          type="railgraph.PluginError", code=PluginError.code, help=PluginError.help,
                          details={"plugin": name, "hook": "event_processor", "replaced_scope": event.scope.kind},
                          tags=("plugin-error",), limits=self.limits)

    def _retry_decision(self, node: str, attempt: int, error: BaseException) -> RetryDecision | None:
        _, decision = self.plugins.first("retry_decision", node=node, attempt=attempt, error=error,
                                         settings=self.settings)
        return decision

    def _attempt_event(self, ctx: NodeContext, exc: BaseException, decision: RetryDecision) -> ErrorEvent:
        return self._event(exc, NodeScope(node=ctx.node, step=ctx.step),
                           tags=("retry", f"attempt:{ctx.attempt}/{decision.max_attempts}"),
                           context={"session": ctx.session, "attempt": ctx.attempt,
                                    "max_attempts": decision.max_attempts, "delay": decision.delay,
                                    "rule": decision.rule, "will_retry": True})

    def _app_event(self, err: RunnerError, tags: Sequence[str] = ()) -> ErrorEvent:
        return self._event(err, AppScope(), tags=tags)

    # -- loading -----------------------------------------------------------------------------------

    def _channels_of(self, cp: Checkpoint, errors: tuple[ErrorEvent, ...]) -> Channels:
        return Channels(cp.messages, cp.extra, errors, cp.versions)

    def _read(self, session: str, fn: Callable[[], Any]) -> Any:
        """Call a store read; anything but a `RunnerError` (a store's own bug on corrupt data, a
        third-party store's exception) becomes a `CheckpointError`, as the store contract promises."""
        try:
            return fn()
        except RunnerError:
            raise
        except Exception as exc:
            raise CheckpointError(f"the store could not read session {session!r}: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}", session=session) from exc

    def _load(self, session: str) -> _Live | None:
        return self._read(session, lambda: self._load_unguarded(session))

    def _load_unguarded(self, session: str) -> _Live | None:
        cp = self.checkpointer.latest(session)
        if cp is None:
            return None
        errors = tuple(self.checkpointer.session_events(session))
        if self.settings.errors.channel_limit is not None:
            errors = errors[-self.settings.errors.channel_limit:]
        rail = cp.extra.get(ERRORS_KEY)
        if isinstance(rail, tuple) and len(rail) == len(errors) and all(a.id == b.id for a, b in zip(rail, errors)):
            errors = rail  # the same events: one tuple, which the barrier then extends for both
        return _Live(cp, self._channels_of(cp, errors))

    def _make_ctx(self, session: str, step: int) -> Callable[[str, int], NodeContext]:
        ids, clock = self.ids, self.clock

        def make(node: str, attempt: int) -> NodeContext:
            return NodeContext(session, step, node, attempt, ids, clock)
        return make

    # -- committing --------------------------------------------------------------------------------

    def _commit(self, live: _Live, result: MergeResult, *, status: str, frontier: tuple[str, ...],
                seen: Mapping[str, Mapping[str, int]], pending: Mapping[str, NodePartial],
                failure: Mapping[str, Any] | None = None, interrupt: str | None = None,
                ran: tuple[str, ...] = (), skipped: Mapping[str, str] | None = None) -> Checkpoint:
        ch = result.channels
        cp = Checkpoint(live.cp.session, live.cp.step + 1, status, ch.messages, ch.extra, ch.versions, frontier,
                        seen, pending, result.events, failure, self.clock(), interrupt)
        self._store(cp, result.delta)
        before = live.cp.pending_writes
        live.cp, live.channels = cp, ch
        if self.sinks or self._notify_steps:
            reused = tuple(n for n in ran if n in before) if before else ()
            self._after_commit(live, cp, ran, skipped or {}, reused)
        return cp

    def _store(self, cp: Checkpoint, delta: Delta) -> None:
        try:
            self.checkpointer.commit(cp, delta)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"could not commit checkpoint of session {cp.session!r} step {cp.step}: "
                                  f"{type(exc).__name__}", session=cp.session, step=cp.step) from exc

    def _after_commit(self, live: _Live, cp: Checkpoint, ran: tuple[str, ...], skipped: Mapping[str, str],
                      reused: tuple[str, ...] = ()) -> None:
        if self.sinks:
            self.deliver(live, wait=live.ending)
        if self._notify_steps:
            report = StepReport(cp.session, cp.step, ran, dict(skipped), cp.events, cp.status, dict(cp.versions),
                                reused)
            for err in self.plugins.notify("after_step", report=report):
                live.app_events.append(self._app_event(err, tags=("plugin-error",)))

    def _queue_app(self, event: ErrorEvent, live: _Live | None) -> None:
        """Queue an app-scope event for the session whose run saw it (else for the next run)."""
        if live is not None:
            live.app_events.append(event)
            return
        with self._lock:
            self._pending_app.append(event)

    def _take_app(self, live: _Live) -> list[ErrorEvent]:
        events, live.app_events = live.app_events, []
        if self._pending_app:  # unclaimed ones (rare): this session records them
            with self._lock:
                events, self._pending_app = self._pending_app + events, []
        return events

    # -- sinks -------------------------------------------------------------------------------------

    def deliver(self, live: _Live | None = None, *, wait: bool = True) -> int:
        """Have every sink delivered what the outbox holds now; return the number of events delivered.

        Each sink delivers on its own thread, in cycles (see `_SinkState`). With `wait` false (after
        each commit of a run) this only asks for a cycle: the run goes on while the sink writes, and
        events committed meanwhile travel in the next cycle — a healthy sink's cycles begin at most
        every `SINK_INTERVAL`, a failing sink's right after the last one ended. With `wait` (the
        default; at the end of a run) it returns when a cycle begun after the call has ended, or the
        sink's write has outlived ``runner.sink_timeout``.

        A sink that raises or exceeds ``runner.sink_timeout`` keeps its cursor (so it gets the
        events again later) and is reported once per outage as an app-scope event (by the run that
        asks next). A cycle that finds another worker holding the sink's delivery lease in the
        store (``lease_sink``, where the store has one) leaves the backlog to that worker.
        """
        delivered = 0
        if self._sink_pid != os.getpid():  # (no lock: the parent may have forked while holding one)
            self._sink_states, self._sink_pid = {}, os.getpid()
        for sink in self.sinks:
            state = self._sink_states.get(sink.name)
            if state is None:
                with self._lock:
                    state = self._sink_states.setdefault(sink.name, _SinkState(_SinkWorker(sink.name)))
            delivered += self._request(sink, state, live, wait)
        return delivered

    def _request(self, sink: Sink, state: _SinkState, live: _Live | None, wait: bool) -> int:
        timeout = self.settings.runner.sink_timeout
        with state.cv:
            self._report(sink, state, live)
            state.wanted += 1
            target, before = state.wanted, state.delivered
            self._start_loop(sink, state)
            if wait:
                state.waiting += 1
                state.cv.notify_all()  # a pausing loop begins its cycle now
                try:
                    start = time.monotonic()
                    give_up, tries = start + 2 * timeout + 1.0, 1  # an earlier write, then this request's
                    while not state.hung and time.monotonic() < give_up:
                        if state.served >= target:
                            # a failing sink gets up to DRAIN_TRIES attempts within one timeout (one that
                            # was down for some commits of the run catches up before the run returns)
                            if not state.failed or tries >= DRAIN_TRIES or time.monotonic() - start > timeout:
                                break
                            state.wanted += 1
                            target, tries = state.wanted, tries + 1
                            self._start_loop(sink, state)
                        since = state.writing_since
                        if since is not None and time.monotonic() - since > timeout:
                            break  # hung: reported below
                        state.cv.wait(0.05 if since is None else max(0.001, since + timeout - time.monotonic()))
                finally:
                    state.waiting -= 1
                self._report(sink, state, live)
                if state.refused and state.served >= target and live is not None:
                    live.lease_waits.add(sink.name)
            delivered = state.delivered - before
        return delivered if wait else 0

    def _start_loop(self, sink: Sink, state: _SinkState) -> None:
        """Under ``state.cv``: queue the sink's delivery loop unless it is queued or running."""
        if not state.running:
            state.running = True
            state.executor.submit(self._sink_loop, sink, state)

    def _report(self, sink: Sink, state: _SinkState, live: _Live | None) -> None:
        """Under ``state.cv``: report what the sink's cycles met since the last report, and a write that
        outlived ``runner.sink_timeout`` (whose lease is given back now, so other workers deliver)."""
        for exc in state.outcomes:
            if exc is None:
                state.failing_since, state.failures = None, 0
            else:
                self._sink_failed(sink, state, exc, live)
        state.outcomes.clear()
        since = state.writing_since
        if since is None or state.hung or time.monotonic() - since <= self.settings.runner.sink_timeout:
            return
        state.hung = True
        self._sink_failed(sink, state, TimeoutError(
            f"sink {sink.name!r} did not return within {self.settings.runner.sink_timeout:g}s"), live)
        if state.lease_held:  # a hung write does not keep other workers out; given back under cv, so
            state.lease_held = False  # the sink's next cycle cannot take it before this gives it back
            self._release_lease(sink.name)

    def _sink_loop(self, sink: Sink, state: _SinkState) -> None:
        """On the sink's thread: run cycles until every request is answered."""
        try:
            self._cycles(sink, state)
        except BaseException as exc:  # a sink raising past Exception: reported, its requests answered;
            with state.cv:  # the next request starts another loop
                state.running, state.failed, state.served = False, True, state.wanted
                state.outcomes.append(exc)
                state.cv.notify_all()
            raise

    def _cycles(self, sink: Sink, state: _SinkState) -> None:
        cv = state.cv
        while True:
            with cv:
                if state.served >= state.wanted:
                    state.running = False  # under cv: a request made after this starts a new loop
                    cv.notify_all()
                    return
                if not state.waiting and not state.failed:
                    pause = state.next_at - time.monotonic()
                    if pause > 0:
                        cv.wait(pause)  # a run that waits wakes it
                target = state.wanted
                state.next_at = time.monotonic() + SINK_INTERVAL
            refused, count, exc = self._cycle(sink, state)
            with cv:
                state.refused, state.failed = refused, exc is not None
                state.delivered += count
                if not refused:
                    state.outcomes.append(exc)
                if exc is not None or count < SINK_BATCH:  # a full batch: more may wait behind it
                    state.served = max(state.served, target)
                cv.notify_all()

    def _cycle(self, sink: Sink, state: _SinkState) -> tuple[bool, int, BaseException | None]:
        """One delivery on the sink's thread: ``(refused, events delivered, failure)``."""
        lease = getattr(self.checkpointer, "lease_sink", None)
        held = False
        if lease is not None:
            try:
                got = lease(sink.name)
            except Exception:  # deliver without it: a repeated line at worst, never a lost one
                got = None
            if got is False:  # another worker is delivering this sink's backlog, ours included
                return True, 0, None
            held = bool(got)
        with state.cv:
            state.lease_held = held
        try:
            try:
                batch = self.checkpointer.undelivered(sink.name, SINK_BATCH)
            except Exception as exc:  # a store read failure must not fail the run
                return False, 0, exc
            if not batch:
                return False, 0, None
            with state.cv:
                state.writing_since = time.monotonic()
            try:
                self._write_batch(sink, batch)
            except Exception as exc:
                return False, 0, exc
            finally:
                with state.cv:
                    state.writing_since, state.hung = None, False
            try:
                self.checkpointer.ack(sink.name, batch[-1][0])
            except Exception as exc:  # the batch is delivered again later (at-least-once)
                return False, 0, exc
            return False, len(batch), None
        finally:
            with state.cv:
                held, state.lease_held = state.lease_held, False  # False: a run gave it back (hang)
            if held:
                self._release_lease(sink.name)

    def _release_lease(self, sink: str) -> None:
        try:
            self.checkpointer.release_sink(sink)  # type: ignore[attr-defined]
        except Exception:  # noqa: S110 - the store drops it with the worker (lock file, connection)
            pass

    def _deliver_tail(self, live: _Live) -> None:
        """At the end of a run that left deliveries to another worker: wait (up to ``runner.sink_timeout``)
        for that worker's delivery to end, and deliver what is left, so this run's last events are
        not left waiting for a later run."""
        deadline = time.monotonic() + self.settings.runner.sink_timeout
        while live.lease_waits and time.monotonic() < deadline:
            time.sleep(0.005)
            live.lease_waits = set()
            self.deliver(live)

    @staticmethod
    def _write_batch(sink: Sink, batch: list[tuple[int, str, ErrorEvent]]) -> None:
        by_session: dict[str, list[ErrorEvent]] = {}
        for _, session, event in batch:
            by_session.setdefault(session, []).append(event)
        for session, events in by_session.items():
            sink.write(session, events)
        sink.flush()

    def _sink_failed(self, sink: Sink, state: _SinkState, exc: BaseException, live: _Live | None) -> None:
        now = self.clock()
        state.failures += 1
        first = state.failing_since is None
        if first:
            state.failing_since = now
        window = timedelta(seconds=self.settings.runner.sink_report_interval)
        if first or state.last_report is None or now - state.last_report >= window:
            state.last_report = now
            err = PluginError(f"sink {sink.name!r} failed ({state.failures} failure(s) since "
                              f"{state.failing_since.isoformat()}); its events stay in the outbox",
                              plugin=sink.name, hook="write", details={"failures": state.failures})
            err.__cause__ = exc
            self._queue_app(make_event(err.message, scope=AppScope(), id=self.ids(), when=now,
                                       type="railgraph.PluginError", code=SINK_FAILED, help=PluginError.help,
                                       details={"plugin": sink.name, "hook": "write", "failures": state.failures,
                                                "cause": type(exc).__name__},
                                       tags=("sink-failure",), limits=self.limits), live)

    # -- starting and resuming ---------------------------------------------------------------------

    def _begin(self, session: str, input: Any) -> _Live:
        live = self._load(session)
        if input is None:
            if live is None:
                raise SessionNotFoundError(f"session {session!r} has no stored checkpoint to resume",
                                           session=session)
            if self.policy.mode == "verify":
                self._verify(live)
            for err in self.plugins.notify("before_session", session=session, resumed=True, settings=self.settings):
                live.app_events.append(self._app_event(err, tags=("plugin-error",)))
            return live
        messages, extra = coerce_input(input)
        for key, value in extra.items():
            if not storable(value):
                raise InputError(f"input extra[{key!r}] is a value of type {type(value).__name__}, which cannot be stored as JSON",
                                 session=session)
        for i, m in enumerate(messages):
            if not storable(m.content):
                raise InputError(f"input messages[{i}] content cannot be stored as JSON", session=session)
        partial = NodePartial(messages, extra, [])
        if live is None:
            base = Checkpoint(session, 0, "running", (), FrozenDict(), FrozenDict(messages=1, extra=1, errors=1),
                              (), FrozenDict(), FrozenDict(), (), None, self.clock())
            live = _Live(base, self._channels_of(base, ()))
            ch = Channels(tuple(messages), FrozenDict({k: freeze(v) for k, v in extra.items()}), (), base.versions)
            result = MergeResult(ch, (), Delta(messages_appended=len(messages), extra_keys=frozenset(extra),
                                              write_errors_store=self.policy.mode != "legacy", first=True))
        else:
            result = merge(live.channels, [("__input__", partial)], self.policy)
        if self.policy.mode == "verify":
            self._verify(live)
        for err in self.plugins.notify("before_session", session=session, resumed=False, settings=self.settings):
            live.app_events.append(self._app_event(err, tags=("plugin-error",)))
        self._commit(live, result, status="running", frontier=self.spec.entry, seen=FrozenDict(),
                     pending=FrozenDict(), ran=("__input__",))
        return live

    def _verify(self, live: _Live) -> None:
        """Verify mode: every event ever in ``extra["errors"]`` must be in the errors store, unchanged
        (those a cap dropped from the newest array included: the store's `legacy_events`)."""
        session = live.cp.session
        cp = self.checkpointer
        legacy = getattr(cp, "legacy_events", None)  # a third-party store may not have it: the newest array then
        arr = legacy(session) if legacy is not None else \
            [e for e in live.channels.extra.get(ERRORS_KEY, ()) if not e.is_summary]
        if not arr:
            return
        stored = {e.id: e for e in (cp.stored_errors(session) if cp.has_errors_store else cp.session_events(session))}
        missing = [str(e.id) for e in arr if e.id not in stored]
        differ = [str(e.id) for e in arr if e.id in stored and stored[e.id] != e]
        if missing or differ:
            live.app_events.append(make_event(
                f"verify: extra[\"errors\"] of session {session!r} disagrees with the errors store: "
                f"{len(missing)} missing, {len(differ)} different", scope=AppScope(), id=self.ids(), when=self.clock(),
                type="railgraph.VerifyMismatch", code=VERIFY_MISMATCH,
                help="Run `railgraph migrate errors` to backfill the store, then verify again.",
                details={"session": session, "missing": missing[:20], "different": differ[:20],
                         "missing_count": len(missing), "different_count": len(differ)},
                tags=("verify",), limits=self.limits))

    # -- one superstep -----------------------------------------------------------------------------

    def _plan(self, live: _Live) -> tuple[str, Any]:
        """Decide what the next superstep does: ``("done"|"interrupt"|"run", data)``."""
        cp = live.cp
        if not cp.frontier:
            return "done", None
        if self.interrupt_before:
            hits = [n for n in cp.frontier if n in self.interrupt_before and n not in cp.pending_writes]
            if hits and cp.interrupt != f"before:{hits[0]}":
                return "interrupt", f"before:{hits[0]}"
        return "run", gate(cp.frontier, cp.versions, cp.versions_seen, cp.pending_writes)

    def _interrupt(self, live: _Live, reason: str) -> None:
        result = MergeResult(live.channels, (), Delta(write_errors_store=self.policy.mode != "legacy"))
        self._commit(live, result, status="interrupted", frontier=live.cp.frontier, seen=live.cp.versions_seen,
                     pending=live.cp.pending_writes, interrupt=reason)

    def _finish(self, live: _Live, to_run: list[str], skipped: dict[str, str], outcomes: Mapping[str, Outcome],
                snapshot: Snapshot) -> None:
        cp = live.cp
        session, step = cp.session, cp.step + 1
        partials: list[tuple[str, NodePartial]] = []
        failures: list[tuple[str, RunnerError, Outcome | None]] = []
        for node in to_run:
            pending = cp.pending_writes.get(node)
            if pending is not None:
                partials.append((node, pending))
                continue
            outcome = outcomes[node]
            if outcome.error is None:
                try:
                    partial = coerce_partial(outcome.value, node)
                    check_partial(node, partial)
                except RunnerError as err:
                    err.session, err.step, err.node = session, step, node
                    failures.append((node, err, outcome))
                    continue
                except Exception as exc:  # a return value odd enough to break validation itself
                    err = InputError(f"node {node!r} returned a value that could not be validated "
                                     f"({type(exc).__name__})", session=session, step=step, node=node)
                    err.__cause__ = exc
                    failures.append((node, err, outcome))
                    continue
                if outcome.attempt_events:
                    partial = NodePartial(partial.messages, partial.extra, [*outcome.attempt_events, *partial.errors])
                partials.append((node, partial))
            else:
                failures.append((node, self._node_error(outcome.error, session, step, node), outcome))
        app = self._take_app(live)
        if not failures:
            try:
                result = merge(live.channels, [*partials, ("__runner__", NodePartial(errors=app))] if app else partials,
                               self.policy)
            except RunnerError as err:
                live.app_events[:0] = app
                return self._fail(live, [(err.node or "__barrier__", err, None)], partials, to_run)
            except Exception as exc:
                live.app_events[:0] = app
                err = BarrierError(f"merging step {step} failed: {type(exc).__name__}", session=session, step=step)
                err.__cause__ = exc
                return self._fail(live, [("__barrier__", err, None)], partials, to_run)
            try:
                nxt = self._route(to_run, result.channels, session, step)
            except RouterError as err:
                live.app_events[:0] = app
                return self._fail(live, [(err.node or "__router__", err, None)], partials, to_run, scheduler=True)
            seen = FrozenDict(cp.versions_seen)  # built once, filled before anyone sees it
            mark = FrozenDict(messages=snapshot.versions["messages"], extra=snapshot.versions["extra"])
            for node in to_run:
                _set(seen, node, mark)
            status, interrupt = ("completed" if not nxt else "running"), None
            if nxt and self.interrupt_after:
                hit = next((n for n in to_run if n in self.interrupt_after), None)
                if hit is not None:
                    status, interrupt = "interrupted", f"after:{hit}"
            if nxt and status == "running" and self.settings.runner.interrupt_after_step:
                status, interrupt = "interrupted", "step"
            self._commit(live, result, status=status, frontier=nxt, seen=seen, pending=_NO_PENDING,
                         interrupt=interrupt, ran=tuple(to_run), skipped=skipped)
            return None
        live.app_events[:0] = app
        return self._fail(live, failures, partials, to_run)

    def _node_error(self, exc: BaseException, session: str, step: int, node: str) -> RunnerError:
        if isinstance(exc, RunnerError):
            exc.session, exc.step, exc.node = exc.session or session, step, node
            return exc
        err = NodeFailed(f"node {node!r} failed at step {step} ({type(exc).__name__})",
                         session=session, step=step, node=node)
        err.__cause__ = exc
        return err

    def _route(self, ran: Sequence[str], channels: Channels, session: str, step: int) -> tuple[str, ...]:
        nxt: dict[str, None] = {}
        spec = self.spec
        view: State | None = None
        for node in ran:
            for target in spec.edges.get(node, ()):
                if target != END:
                    nxt[target] = None
            routers = spec.routers.get(node)
            if not routers:
                continue
            if view is None:
                view = State(channels.messages, channels.extra, channels.errors, channels.versions, session, step)
            for r in routers:
                try:
                    chosen = r.router(view, NodeContext(session, step, node, 1, self.ids, self.clock)) \
                        if r.takes_ctx else r.router(view)
                    targets = list(chosen) if isinstance(chosen, (list, tuple)) else [chosen]
                    names = [r.path_map.get(t, END if t == END else None) if r.path_map is not None else t
                             for t in targets]
                except Exception as exc:
                    err = RouterError(f"router of node {node!r} raised {type(exc).__name__} at step {step}",
                                      session=session, step=step, node=node)
                    raise err from exc
                for target, name in zip(targets, names, strict=True):
                    if name == END:
                        continue
                    if not isinstance(name, str) or name not in spec.nodes:
                        raise RouterError(f"router of node {node!r} returned {target!r}, which is not a node of "
                                          f"this graph (nodes: {', '.join(spec.nodes)})",
                                          session=session, step=step, node=node, details={"returned": repr(target)})
                    nxt[name] = None
        return tuple(nxt)

    def _fail(self, live: _Live, failures: list[tuple[str, RunnerError, Outcome | None]],
              partials: list[tuple[str, NodePartial]], to_run: Sequence[str], *, scheduler: bool = False,
              runner_scope: bool = False) -> None:
        """Commit a failed superstep, then raise its first error (in frontier order).

        The events of the superstep are committed now, in frontier order: what the nodes that
        succeeded emitted, then each failed node's attempts and failure. Their partials are kept as
        pending writes *without* their events, so resuming merges the state changes and re-emits
        nothing.
        """
        cp = live.cp
        session, step = cp.session, cp.step + 1
        failed = {node: (err, outcome) for node, err, outcome in failures}
        kept = dict(partials)
        events: list[ErrorEvent] = []
        primary: dict[int, ErrorEvent] = {}
        order = [n for n in to_run if n in failed or n in kept] + [n for n, _, _ in failures if n not in to_run]
        for node in order:
            if node in kept and node not in cp.pending_writes:
                events.extend(kept[node].errors)
            if node not in failed:
                continue
            err, outcome = failed[node]
            events.extend(outcome.attempt_events if outcome else ())
            tags: list[str] = []
            context: dict[str, Any] = {"session": session}
            if outcome is not None:
                context["attempt"] = outcome.attempts
                if outcome.decision is not None:
                    tags = ["retry", f"attempt:{outcome.attempts}/{outcome.decision.max_attempts}"]
                    context.update(max_attempts=outcome.decision.max_attempts, rule=outcome.decision.rule,
                                   will_retry=False)
            if runner_scope or node.startswith("__"):
                scope: Any = RunnerScope(session=session, step=step)
            elif scheduler:
                scope = SchedulerScope(step=step)
            else:
                scope = NodeScope(node=node, step=step)
            ev = self._event(err, scope, tags=tags, context=context)
            events.append(ev)
            primary[id(err)] = ev
        events.extend(self._take_app(live))
        pending = dict(cp.pending_writes)
        for node, partial in partials:
            pending[node] = partial if not partial.errors else NodePartial(partial.messages, partial.extra, [])
        synthetic = [("__runner__", NodePartial(errors=events))]
        try:
            result = merge(live.channels, synthetic, self.policy)
        except RunnerError:  # the cap itself failed: commit the failure uncapped rather than lose it
            result = merge(live.channels, synthetic, dataclasses.replace(self.policy, capper=None))
        by_id = {e.id: e for e in result.events}
        errs = [err for _, err, _ in failures]
        for err in errs:
            ev = primary.get(id(err))
            err.with_events((by_id[ev.id],) if ev is not None and ev.id in by_id else ())
        first = errs[0]
        if len(errs) > 1:
            first.message += f" (and {len(errs) - 1} more: {', '.join(e.node or '?' for e in errs[1:])})"
            first.args = (first.message,)
            # the raised error carries every failure's event: its own first, then the others'
            first.with_events(tuple({e.id: e for err in errs for e in err.events}.values()))
        interrupt = cp.interrupt if cp.interrupt and cp.interrupt.startswith("before:") else None
        try:
            self._commit(live, result, status="failed", frontier=cp.frontier, seen=cp.versions_seen,
                         pending=FrozenDict(pending), failure=failure_data(first), interrupt=interrupt,
                         ran=tuple(to_run))
        except CheckpointError as cerr:
            live.channels = Channels(live.channels.messages, live.channels.extra, result.channels.errors,
                                     live.channels.versions)
            raise cerr from first
        raise first

    def _commit_failed(self, live: _Live, exc: CheckpointError) -> CheckpointError:
        """A commit failed: record a runner event in memory (and in the store if it answers)."""
        exc.session = exc.session or live.cp.session
        ev = self._event(exc, RunnerScope(session=live.cp.session, step=live.cp.step + 1),
                         context={"session": live.cp.session})
        result = merge(live.channels, [("__runner__", NodePartial(errors=[ev]))], self.policy)
        exc.with_events(result.events)
        try:
            self._commit(live, result, status="failed", frontier=live.cp.frontier, seen=live.cp.versions_seen,
                         pending=live.cp.pending_writes, failure=failure_data(exc))
        except CheckpointError:
            live.channels = Channels(live.channels.messages, live.channels.extra, result.channels.errors,
                                     live.channels.versions)
        return exc

    def _step_limit(self, live: _Live, max_steps: int) -> None:
        err = StepLimitError(f"session {live.cp.session!r} reached the limit of {max_steps} supersteps with "
                             f"{len(live.cp.frontier)} node(s) still to run", session=live.cp.session,
                             step=live.cp.step + 1, details={"max_steps": max_steps, "frontier": list(live.cp.frontier)})
        self._fail(live, [("__runner__", err, None)], [], (), runner_scope=True)

    def _flush_app(self, live: _Live) -> None:
        """Commit app events still queued (a sink failure seen after the last step)."""
        app = self._take_app(live)
        if not app:
            return
        result = merge(live.channels, [("__runner__", NodePartial(errors=app))], self.policy)
        cp = live.cp
        self._commit(live, result, status=cp.status, frontier=cp.frontier, seen=cp.versions_seen,
                     pending=cp.pending_writes, failure=cp.failure, interrupt=cp.interrupt)

    # -- public API --------------------------------------------------------------------------------

    def _state(self, live: _Live) -> State:
        cp, ch = live.cp, live.channels
        return State(ch.messages, ch.extra, ch.errors, ch.versions, cp.session, cp.step, cp.status, cp.frontier)

    def invoke(self, input: Any, session: str | None = None, *, max_steps: int | None = None) -> State:
        """Run `session` until it completes, pauses at an interrupt, or fails.

        Args:
            input: ``{"messages": [...], "extra": {...}}`` to start (or restart from the entry), or
                ``None`` to resume the stored session from its last checkpoint.
            session: the session id (a new UUID when omitted).
            max_steps: supersteps this call may run (default ``runner.max_steps``).

        Returns: the final `State` (``status`` says completed or interrupted).
        Raises: a `RunnerError` subclass; the failure was committed as events first.
        """
        if self.spec.any_async:
            return self._sync_of(self._arun(input, session, max_steps))
        return self._run(input, session, max_steps)

    async def ainvoke(self, input: Any, session: str | None = None, *, max_steps: int | None = None) -> State:
        """Like `invoke`, on the running event loop (async nodes run on it, sync ones in threads)."""
        return await self._arun(input, session, max_steps)

    def _claim(self, session: str | None) -> str:
        """Claim `session` for this run: one run per session in this runner, one worker in the store."""
        session = check_session_id(str(self.ids()) if session is None else session)
        with self._lock:
            if session in self._active:
                raise SessionBusyError(f"session {session!r} is already running in this process", session=session)
            self._active.add(session)
        try:
            self.checkpointer.acquire(session)
        except BaseException:
            with self._lock:
                self._active.discard(session)
            raise
        return session

    def _unclaim(self, session: str) -> None:
        try:
            self.checkpointer.release(session)
        finally:
            with self._lock:
                self._active.discard(session)

    def _end_run(self, live: _Live, error: BaseException | None) -> None:
        """Notify ``after_session``, deliver what the sinks are still writing or have not had, then
        commit the app events the run still holds (its own only; a sink failure among them)."""
        for err in self.plugins.notify("after_session", session=live.cp.session, status=live.cp.status,
                                       error=error):
            live.app_events.append(self._app_event(err, tags=("plugin-error",)))
        live.ending = True
        if self.sinks:
            self.deliver(live)
        if not isinstance(error, CheckpointError):
            self._flush_app(live)
        if live.lease_waits:
            self._deliver_tail(live)

    def _steps(self, live: _Live, limit: int, stop_after: int | None = None
               ) -> Generator[tuple[list[str], Snapshot, Any], Any, None]:
        """Drive supersteps; yield each one's work ``(nodes, snapshot, make_ctx)``, receive the outcomes.

        Shared by the sync and async entry points, which differ only in how they run the nodes.
        `stop_after` ends quietly after that many supersteps (`step`); `limit` ends with a
        `StepLimitError` when work remains.
        """
        steps = 0
        while True:
            action, data = self._plan(live)
            if action == "done":
                if live.cp.status != "completed":
                    self._complete(live)
                return
            if action == "interrupt":
                self._interrupt(live, data)
                return
            if stop_after is not None and steps >= stop_after:
                return
            if steps >= limit:
                self._step_limit(live, limit)
            to_run, skipped = data
            pending = live.cp.pending_writes
            execute = [n for n in to_run if n not in pending] if pending else to_run
            ch = live.channels
            snapshot = Snapshot(ch.messages, ch.extra, ch.errors, ch.versions)
            outcomes = (yield execute, snapshot, self._make_ctx(live.cp.session, live.cp.step + 1)) if execute else {}
            try:
                self._finish(live, to_run, skipped, outcomes, snapshot)
            except CheckpointError as exc:
                if exc.event is None:
                    raise self._commit_failed(live, exc) from exc.__cause__
                raise
            except RunnerError:
                raise
            except Exception as exc:  # a bug in the step machinery: still commit it as a failure
                err = BarrierError(f"superstep {live.cp.step + 1} failed inside railgraph: {type(exc).__name__}",
                                   session=live.cp.session, step=live.cp.step + 1)
                err.__cause__ = exc
                self._fail(live, [("__barrier__", err, None)], [], to_run)
            steps += 1
            if live.cp.status == "interrupted":
                return

    def _run(self, input: Any, session: str | None, max_steps: int | None, stop_after: int | None = None) -> State:
        session = self._claim(session)
        try:
            live = self._begin(session, input)
        except BaseException:
            self._unclaim(session)
            raise
        error: BaseException | None = None
        try:
            driver = self._steps(live, max_steps or self.settings.runner.max_steps, stop_after)
            run = self.scheduler.run_sync
            work = _advance(driver, None)
            while work is not None:
                work = _advance(driver, run(*work))
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                self._end_run(live, error)
            finally:
                self._unclaim(session)
        return self._state(live)

    async def _arun(self, input: Any, session: str | None, max_steps: int | None,
                    stop_after: int | None = None) -> State:
        # Store commits, sink deliveries and merges block: they run in a worker thread, so the
        # event loop keeps serving other tasks; the claim is taken and released on the loop thread.
        session = self._claim(session)
        try:
            live = await asyncio.to_thread(self._begin, session, input)
        except BaseException:
            self._unclaim(session)
            raise
        error: BaseException | None = None
        try:
            driver = self._steps(live, max_steps or self.settings.runner.max_steps, stop_after)
            run = self.scheduler.run_async
            # StopIteration cannot cross a future: the thread hands back None when the driver ends
            work = await asyncio.to_thread(_advance, driver, None)
            while work is not None:
                work = await asyncio.to_thread(_advance, driver, await run(*work))
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                await asyncio.to_thread(self._end_run, live, error)
            finally:
                self._unclaim(session)
        return self._state(live)

    def start(self, input: Any, session: str | None = None) -> State:
        """Create (or restart from the entry) `session` with `input` and commit it; run no superstep."""
        session = self._claim(session)
        try:
            live = self._begin(session, input)
            self._end_run(live, None)
        finally:
            self._unclaim(session)
        return self._state(live)

    def step(self, session: str) -> State:
        """Run exactly one superstep of a stored session (or record its interrupt / completion).

        Raises: `SessionNotFoundError`, or the superstep's `RunnerError` (committed first).
        """
        if self.spec.any_async:
            return self._sync_of(self._arun(None, session, None, 1))
        return self._run(None, session, None, 1)

    def run(self, input: Any, session: str | None = None, *, max_steps: int | None = None) -> State:
        """The same as `invoke`."""
        return self.invoke(input, session, max_steps=max_steps)

    @staticmethod
    def _sync_of(coro: Any) -> State:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        coro.close()
        raise RunnerError("this graph has async nodes and an event loop is running: use `await graph.ainvoke(...)`")

    def _complete(self, live: _Live) -> None:
        """The frontier emptied by gating: record the session as completed."""
        result = MergeResult(live.channels, (), Delta(write_errors_store=self.policy.mode != "legacy"))
        self._commit(live, result, status="completed", frontier=(), seen=live.cp.versions_seen, pending=FrozenDict())

    def state(self, session: str) -> State:
        """The latest stored state of `session`. Raises `SessionNotFoundError`, `InputError`."""
        live = self._load(check_session_id(session))
        if live is None:
            raise SessionNotFoundError(f"session {session!r} has no stored checkpoint", session=session)
        return self._state(live)

    def errors(self, session: str) -> list[ErrorEvent]:
        """Every event of `session` exactly once, in emission order, whatever the extra-errors mode.

        The union, deduplicated by id, of the outbox, the dedicated errors store (backfilled
        events included), and the latest ``extra["errors"]`` (cap summaries excluded).
        """
        return self._read(check_session_id(session), lambda: self._errors(session))

    def _errors(self, session: str) -> list[ErrorEvent]:
        cp = self.checkpointer
        seen: set[uuid.UUID] = set()
        out: list[ErrorEvent] = []
        latest = cp.latest(session)
        sources = [cp.session_events(session)]
        if cp.has_errors_store:
            sources.append(cp.stored_errors(session))
        if latest is not None:
            sources.append([e for e in latest.extra.get(ERRORS_KEY, ()) if not e.is_summary])
        for source in sources:
            for event in source:
                if event.id not in seen:
                    seen.add(event.id)
                    out.append(event)
        return out

    def failure(self, session: str) -> tuple[Mapping[str, Any], ErrorEvent | None] | None:
        """The stored diagnostic of the session's last failure and its event, or ``None``."""
        cp = self._read(session, lambda: self.checkpointer.latest(session))
        if cp is None or cp.failure is None:
            return None
        ev_id = cp.failure.get("event")
        event = next((e for e in cp.events if str(e.id) == ev_id), None)
        if event is None and ev_id is not None:  # a later checkpoint (queued app events) carried it forward
            event = next((e for e in self._read(session, lambda: self.checkpointer.session_events(session))
                          if str(e.id) == ev_id), None)
        return cp.failure, event

    def close(self) -> None:
        """Stop worker threads, close sinks and the store.

        What no run is left to report as an event — a sink's delivery that failed since the last
        run's report, a sink whose ``close`` raised or outlived ``runner.sink_timeout``, app-scope
        events queued for a next run — is logged as a warning on the ``railgraph`` logger (codes and
        exception types only: the messages may hold what the redactor would have scrubbed). A sink's
        events stay in the outbox either way.
        """
        self.scheduler.close()
        for sink in self.sinks:
            state = self._sink_states.get(sink.name)
            try:
                if state is None:
                    sink.close()
                else:  # on the sink's thread, after any write still running, bounded like a write
                    state.executor.submit(sink.close).result(timeout=self.settings.runner.sink_timeout)
            except Exception as exc:  # closing is best effort; the run already committed
                what = (f"did not return within {self.settings.runner.sink_timeout:g}s"
                        if isinstance(exc, TimeoutError) else f"raised {type(exc).__name__}")
                _log.warning("sink %r: close() %s; its undelivered events stay in the outbox", sink.name, what)
            if state is not None:
                with state.cv:
                    failed = [type(exc).__name__ for exc in state.outcomes if exc is not None]
                    state.outcomes.clear()
                if failed:
                    _log.warning("sink %r: %d delivery attempt(s) failed since the last run's report (%s); "
                                 "the events stay in the outbox for the next run", sink.name, len(failed),
                                 ", ".join(dict.fromkeys(failed)))
        with self._lock:
            unclaimed, self._pending_app = self._pending_app, []
        for event in unclaimed:  # app-scope events waiting for a run of this runner, which will not come
            plugin = event.error.details.get("plugin")
            _log.warning("an app-scope event no run committed: %s%s", event.code or event.error.type,
                         f" (plugin {plugin!r})" if isinstance(plugin, str) else "")
        for state in self._sink_states.values():
            state.executor.shutdown()
        self.checkpointer.close()


class CompiledGraph:
    """A validated graph bound to a `Runner`: what `GraphBuilder.compile` returns."""

    def __init__(self, spec: GraphSpec, runner: Runner) -> None:
        self.spec = spec
        self.runner = runner

    @property
    def settings(self) -> Settings:
        """The runner's validated settings."""
        return self.runner.settings

    def invoke(self, input: Any, session: str | None = None, *, max_steps: int | None = None) -> State:
        """See `Runner.invoke`."""
        return self.runner.invoke(input, session, max_steps=max_steps)

    async def ainvoke(self, input: Any, session: str | None = None, *, max_steps: int | None = None) -> State:
        """See `Runner.ainvoke`."""
        return await self.runner.ainvoke(input, session, max_steps=max_steps)

    def start(self, input: Any, session: str | None = None) -> State:
        """See `Runner.start`."""
        return self.runner.start(input, session)

    def step(self, session: str) -> State:
        """See `Runner.step`."""
        return self.runner.step(session)

    def run(self, input: Any, session: str | None = None, *, max_steps: int | None = None) -> State:
        """See `Runner.run` (the same as `invoke`)."""
        return self.runner.invoke(input, session, max_steps=max_steps)

    def errors(self, session: str) -> list[ErrorEvent]:
        """See `Runner.errors`."""
        return self.runner.errors(session)

    def state(self, session: str) -> State:
        """See `Runner.state`."""
        return self.runner.state(session)

    def history(self, session: str) -> list[tuple[int, str, datetime]]:
        """Every checkpoint of `session` as ``(step, status, created_at)``."""
        return self.runner._read(session, lambda: self.runner.checkpointer.history(session))

    def close(self) -> None:
        """See `Runner.close`."""
        self.runner.close()

    def __enter__(self) -> CompiledGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MAX_SESSION_ID", "CompiledGraph", "Runner", "check_session_id", "failure_data"]

