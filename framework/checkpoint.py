"""Checkpoints, the checkpointer protocol every store implements, and the in-memory store.

A checkpoint is committed after every superstep. It carries the state, the frontier, the versions
each node has seen, the pending writes of a failed superstep, and the step's error events — the
*outbox* — in the same commit. A `Delta` tells the store what changed since the previous
checkpoint so that write cost follows the change, not the size of the state.

Stores: `MemoryCheckpointer` here (the reference implementation, for tests); SQLite and
PostgreSQL are plugins behind the ``make_checkpointer`` hook.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json.encoder import c_make_encoder as _c_make_encoder
from json.encoder import encode_basestring as _encode_str
from typing import Any, Protocol, runtime_checkable

from .errors import CheckpointError, SessionBusyError
from .events import ErrorEvent
from .state import ERRORS_KEY, FrozenDict, Message, NodePartial, freeze

STATUSES = ("running", "interrupted", "completed", "failed")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One committed superstep of a session.

    Attributes:
        session: the session id.
        step: 1 for the input checkpoint, +1 per superstep (failed ones included).
        status: ``running``, ``interrupted``, ``completed`` or ``failed``.
        messages: the messages channel.
        extra: the extra channel, reserved keys included: ``extra["errors"]`` (a tuple of events)
            is present once written; stores persist it append-only, guided by the `Delta`.
        versions: channel → version.
        frontier: the nodes the next superstep considers.
        versions_seen: node → {channel → version} it last ran at.
        pending_writes: node → partial kept from a failed superstep (not yet merged).
        events: the events committed in this step, in emission order (the outbox).
        failure: the diagnostic of the `RunnerError` this step failed with, as JSON data.
        created_at: commit time (UTC).
        interrupt: why the run paused (``before:NODE``, ``after:NODE``, ``step``), if it did.
    """

    session: str
    step: int
    status: str
    messages: tuple[Message, ...]
    extra: Mapping[str, Any]
    versions: Mapping[str, int]
    frontier: tuple[str, ...]
    versions_seen: Mapping[str, Mapping[str, int]]
    pending_writes: Mapping[str, NodePartial]
    events: tuple[ErrorEvent, ...]
    failure: Mapping[str, Any] | None
    created_at: datetime
    interrupt: str | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """What a checkpoint changed relative to the session's previous one.

    Attributes:
        messages_appended: messages added at the end.
        extra_keys: user keys of ``extra`` whose value was set.
        errors_dropped: entries (summaries not counted) removed from the front of ``extra["errors"]``.
        errors_appended: entries added at the end of ``extra["errors"]``.
        errors_summary: the summary entry now first in ``extra["errors"]`` (``None``: no summary).
        errors_summary_changed: the summary differs from the previous checkpoint's.
        errors_rewritten: the array changed in a way the fields above cannot express: store it whole.
        write_errors_store: also add this step's events to the dedicated errors store.
        first: this is the session's first checkpoint (everything is new).
    """

    messages_appended: int = 0
    extra_keys: frozenset[str] = frozenset()
    errors_dropped: int = 0
    errors_appended: tuple[ErrorEvent, ...] = ()
    errors_summary: ErrorEvent | None = None
    errors_summary_changed: bool = False
    errors_rewritten: bool = False
    write_errors_store: bool = True
    first: bool = False


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One row of `Checkpointer.sessions`."""

    session: str
    status: str
    steps: int
    error_count: int
    last_error: str | None
    updated: datetime | None


@dataclass(frozen=True, slots=True)
class BackfillReport:
    """What a backfill of the dedicated errors store from ``extra["errors"]`` found and did."""

    sessions: int = 0
    checkpoints: int = 0
    events_seen: int = 0
    events_added: int = 0
    dry_run: bool = False


@runtime_checkable
class Checkpointer(Protocol):
    """The store contract. Every method may raise `CheckpointError`; none overwrites stored data.

    ``has_errors_store`` says whether a dedicated errors store (append-only, idempotent on id)
    exists; memory has none, SQLite and PostgreSQL have one.

    Optional, for stores several workers share: ``lease_sink(sink) -> bool`` takes a sink's
    delivery lease without waiting (``False``: another worker holds it and delivers the backlog)
    and ``release_sink(sink)`` gives it back. The runner delivers without a lease where a store has none.
    A runner takes and gives back a sink's lease on that sink's own thread, and two graphs may share
    one store object: another thread is another worker (the conformance suite checks this).
    """

    has_errors_store: bool

    def acquire(self, session: str) -> None:
        """Claim `session` for this runner; raise `SessionBusyError` if another worker holds it."""

    def release(self, session: str) -> None:
        """Give up the claim taken by `acquire` (idempotent)."""

    def latest(self, session: str) -> Checkpoint | None:
        """The newest checkpoint of `session`, or ``None``."""

    def get(self, session: str, step: int) -> Checkpoint | None:
        """The checkpoint at `step`, or ``None`` (history is kept)."""

    def history(self, session: str) -> list[tuple[int, str, datetime]]:
        """Every checkpoint of `session` as ``(step, status, created_at)``, oldest first."""

    def commit(self, checkpoint: Checkpoint, delta: Delta) -> None:
        """Store `checkpoint` and its outbox events (and, if asked, the errors store rows) atomically."""

    def session_events(self, session: str) -> list[ErrorEvent]:
        """Every event committed for `session`, in emission order (the outbox)."""

    def stored_errors(self, session: str) -> list[ErrorEvent]:
        """The dedicated errors store's events for `session`, in emission order (``[]`` without one)."""

    def undelivered(self, sink: str, limit: int) -> list[tuple[int, str, ErrorEvent]]:
        """Up to `limit` outbox entries after `sink`'s cursor: ``(seq, session, event)``."""

    def ack(self, sink: str, seq: int) -> None:
        """Move `sink`'s cursor to `seq` (never backwards)."""

    def sessions(self) -> list[SessionInfo]:
        """Every stored session, most recently updated first."""

    def backfill_errors(self, dry_run: bool) -> BackfillReport:
        """Copy events from the ``extra["errors"]`` of stored checkpoints into the errors store."""

    def legacy_events(self, session: str) -> list[ErrorEvent]:
        """Every event any stored checkpoint of `session` held in ``extra["errors"]``, once each, in
        the order they were appended, cap summaries skipped (verify mode compares them with the
        errors store: a cap drops old ones from the newest checkpoint's array only)."""

    def close(self) -> None:
        """Release connections and claims."""


# ---------------------------------------------------------------------------------------------
# JSON codecs shared by the stores
# ---------------------------------------------------------------------------------------------


def _unstorable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
# The C encoder json.dumps builds on every call, built once. Without a cycle-check table (a table
# would keep, after a failed call, the objects it was walking): a cycle ends in RecursionError,
# which dumps reports as the ValueError json.dumps raises.
_C_ENCODE = (_c_make_encoder(None, _unstorable, _encode_str, None, ":", ",", False, False, False)
             if _c_make_encoder is not None else None)


def dumps(value: Any) -> str:
    """Compact, deterministic JSON for stored values. Raises `TypeError` for unstorable values
    (`ValueError` for NaN, infinities, cycles and nesting deeper than the recursion limit).

    Half the cost of `json.dumps` with these options for the small values a commit writes.
    """
    if _C_ENCODE is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODE(value)
    try:
        return "".join(_C_ENCODE(value, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep to store)") from None


def encode_partial(partial: NodePartial) -> dict[str, Any]:
    """JSON data for a pending write."""
    return {
        "messages": [m.to_dict() for m in partial.messages],
        "extra": dict(partial.extra),
        "errors": [json.loads(e.to_json()) for e in partial.errors],
    }


def decode_partial(data: Any) -> NodePartial:
    """Inverse of `encode_partial`; raises `ValueError`/`EventDecodeError` on bad data."""
    if not isinstance(data, Mapping):
        raise ValueError("pending write is not an object")
    return NodePartial(
        [Message.coerce(m) for m in data.get("messages", [])],
        dict(freeze(data.get("extra", {}))),
        [ErrorEvent.from_data(e) for e in data.get("errors", [])],
    )


def decode_messages(rows: Sequence[Any]) -> tuple[Message, ...]:
    """Decode stored message objects."""
    return tuple(Message.coerce(m) for m in rows)


def corrupt(session: str, step: int | None, what: str, exc: BaseException | None = None) -> CheckpointError:
    """A `CheckpointError` for unreadable stored data, naming session and step."""
    where = f"session {session!r}" + (f" step {step}" if step is not None else "")
    err = CheckpointError(f"stored checkpoint data is unreadable: {where}: {what}", session=session, step=step)
    if exc is not None:
        err.__cause__ = exc
    return err


# ---------------------------------------------------------------------------------------------
# Shared by the SQL stores
# ---------------------------------------------------------------------------------------------

CACHE_SESSIONS = 64


class LatestCache:
    """`latest` and `get` over a store's ``_load``, keeping the newest checkpoint of the most recently
    used sessions (with the store's own row data), so a commit need not read back its predecessor.

    A subclass provides ``_load(session, step) -> (Checkpoint, meta) | None`` and sets ``_cache``
    (a dict) and ``_lock`` in ``__init__``.
    """

    _cache: dict[str, tuple[Checkpoint, Any]]
    _lock: threading.Lock

    def _load(self, session: str, step: int | None) -> tuple[Checkpoint, Any] | None:
        raise NotImplementedError

    def _remember(self, session: str, entry: tuple[Checkpoint, Any]) -> None:
        cache = self._cache
        cache.pop(session, None)
        cache[session] = entry
        if len(cache) > CACHE_SESSIONS:
            cache.pop(next(iter(cache)))

    def latest(self, session: str) -> Checkpoint | None:
        """The newest checkpoint of `session`, or ``None``; unreadable data is a `CheckpointError`."""
        loaded = self._load(session, None)
        if loaded is None:
            return None
        with self._lock:
            self._remember(session, loaded)
        return loaded[0]

    def get(self, session: str, step: int) -> Checkpoint | None:
        """The checkpoint at `step`, or ``None``."""
        loaded = self._load(session, step)
        return None if loaded is None else loaded[0]


def union_windows(windows: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge half-open ``(start, end)`` windows into sorted, disjoint ones (empty ones dropped)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(w for w in windows if w[1] > w[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


# ---------------------------------------------------------------------------------------------
# The in-memory store
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _MemSession:
    checkpoints: list[Checkpoint] = field(default_factory=list)
    events: list[ErrorEvent] = field(default_factory=list)
    owner: int | None = None
    # every event extra["errors"] ever held, by id, in append order (kept at commit: see `legacy_events`)
    legacy: dict[Any, ErrorEvent] = field(default_factory=dict)
    legacy_arr: tuple[ErrorEvent, ...] | None = None  # the newest array added to `legacy`


def _add_legacy(s: _MemSession, arr: tuple[ErrorEvent, ...], delta: Delta) -> None:
    """Add what a commit's ``extra["errors"]`` holds that the session's legacy trail has not seen: the
    appended entries when the array only grew at its end (what the delta says and the array shows),
    else the whole array (a first array, a rewrite). O(appended) for the usual step."""
    app = delta.errors_appended
    grown = (s.legacy_arr is not None and not delta.errors_rewritten and 0 < len(app) <= len(arr)
             and all(a is b for a, b in zip(arr[len(arr) - len(app):], app)))
    for event in app if grown else arr:
        if not event.is_summary:
            s.legacy.setdefault(event.id, event)
    s.legacy_arr = arr


class MemoryCheckpointer:
    """A store in process memory: history kept, outbox and cursors, no dedicated errors store.

    Checkpoints share the immutable state objects of the run, so a commit costs a few pointer
    copies. Thread-safe; data is gone when the process ends.
    """

    has_errors_store = False

    def __init__(self) -> None:
        self._sessions: dict[str, _MemSession] = {}
        self._outbox: list[tuple[str, ErrorEvent]] = []
        self._cursors: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, session: str) -> None:
        me = threading.get_ident()
        with self._lock:
            s = self._sessions.setdefault(session, _MemSession())
            if s.owner is not None and s.owner != me:
                raise SessionBusyError(f"session {session!r} is being run by another worker", session=session)
            s.owner = me

    def release(self, session: str) -> None:
        with self._lock:
            s = self._sessions.get(session)
            if s is not None:
                s.owner = None

    def latest(self, session: str) -> Checkpoint | None:
        s = self._sessions.get(session)
        return s.checkpoints[-1] if s and s.checkpoints else None

    def get(self, session: str, step: int) -> Checkpoint | None:
        s = self._sessions.get(session)
        if not s:
            return None
        for cp in s.checkpoints:
            if cp.step == step:
                return cp
        return None

    def history(self, session: str) -> list[tuple[int, str, datetime]]:
        s = self._sessions.get(session)
        return [(cp.step, cp.status, cp.created_at) for cp in (s.checkpoints if s else [])]

    def commit(self, checkpoint: Checkpoint, delta: Delta) -> None:
        with self._lock:
            s = self._sessions.get(checkpoint.session)
            if s is None:
                s = self._sessions[checkpoint.session] = _MemSession()
            if s.checkpoints and s.checkpoints[-1].step >= checkpoint.step:
                raise CheckpointError(
                    f"session {checkpoint.session!r} already has step {s.checkpoints[-1].step}; "
                    f"refusing to overwrite with step {checkpoint.step}",
                    session=checkpoint.session, step=checkpoint.step)
            s.checkpoints.append(checkpoint)
            arr = checkpoint.extra.get(ERRORS_KEY)
            if arr is not None and arr is not s.legacy_arr:
                _add_legacy(s, tuple(arr), delta)
            if checkpoint.events:  # most steps emit none: skip building an empty generator
                s.events.extend(checkpoint.events)
                self._outbox.extend((checkpoint.session, e) for e in checkpoint.events)

    def session_events(self, session: str) -> list[ErrorEvent]:
        s = self._sessions.get(session)
        return list(s.events) if s else []

    def stored_errors(self, session: str) -> list[ErrorEvent]:
        return []

    def undelivered(self, sink: str, limit: int) -> list[tuple[int, str, ErrorEvent]]:
        start = self._cursors.get(sink, 0)
        return [(start + i + 1, sess, ev) for i, (sess, ev) in enumerate(self._outbox[start:start + limit])]

    def ack(self, sink: str, seq: int) -> None:
        with self._lock:
            self._cursors[sink] = max(self._cursors.get(sink, 0), seq)

    def sessions(self) -> list[SessionInfo]:
        out = []
        for name, s in self._sessions.items():
            if not s.checkpoints:
                continue
            last = s.checkpoints[-1]
            last_error = s.events[-1].summary_line() if s.events else None
            out.append(SessionInfo(name, last.status, last.step, len(s.events), last_error, last.created_at))
        return sorted(out, key=lambda i: i.updated or datetime.min, reverse=True)

    def backfill_errors(self, dry_run: bool) -> BackfillReport:
        return BackfillReport(dry_run=dry_run)

    def legacy_events(self, session: str) -> list[ErrorEvent]:
        s = self._sessions.get(session)
        return list(s.legacy.values()) if s else []

    def close(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Write plans and row codecs shared by the SQL stores (pure: no I/O)
# ---------------------------------------------------------------------------------------------

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class WritePlan:
    """What a store appends for one commit, derived from the previous checkpoint and the new one.

    Stores keep append-only logs per session (messages, the entries of ``extra["errors"]``) and a
    window ``[start, end)`` into each log per checkpoint, so a step writes only what it added.

    Attributes:
        messages: messages to append to the session's message log.
        messages_rewritten: the window restarts at the appended messages (the channel did not
            just grow at the end).
        extra_set: user keys of ``extra`` whose value is new or different.
        extra_deleted: user keys that disappeared (stores write a tombstone).
        errors_present: the checkpoint's ``extra`` has the ``errors`` key.
        errors_entries: entries (the summary excluded) to append to the session's errors rail.
        errors_dropped: how far the window's start moves (ignored when `errors_rewritten`).
        errors_rewritten: the window restarts at the appended entries.
        summary: the cap summary heading ``extra["errors"]`` (``None``: no summary).
        summary_changed: the summary must be written (differs from the previous checkpoint's).
        pending_changed: the pending writes differ from the previous checkpoint's.
        store_events: events to add to the dedicated errors store.
    """

    messages: tuple[Message, ...] = ()
    messages_rewritten: bool = False
    extra_set: Mapping[str, Any] = field(default_factory=FrozenDict)
    extra_deleted: tuple[str, ...] = ()
    errors_present: bool = False
    errors_entries: tuple[ErrorEvent, ...] = ()
    errors_dropped: int = 0
    errors_rewritten: bool = False
    summary: ErrorEvent | None = None
    summary_changed: bool = False
    pending_changed: bool = False
    store_events: tuple[ErrorEvent, ...] = ()


def _same(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and a == b)


def probes_match(seq: Sequence[Any], at: Any) -> bool:
    """``seq[i]`` is ``at(i)``, probed at the first, middle and last index (O(1))."""
    n = len(seq)
    for i in (0, n // 2, n - 1) if n else ():
        a, b = seq[i], at(i)
        if a is not b and not (type(a) is type(b) and a == b):
            return False
    return True


def _split_summary(arr: Sequence[ErrorEvent]) -> tuple[ErrorEvent | None, tuple[ErrorEvent, ...]]:
    if arr and arr[0].is_summary:
        return arr[0], tuple(arr[1:])
    return None, tuple(arr)


def plan_write(prev: Checkpoint | None, cp: Checkpoint, delta: Delta) -> WritePlan:
    """Decide what `cp` adds to `prev` (``None``: the session's first checkpoint).

    The barrier's `Delta` is checked against the two checkpoints (O(1) identity probes); when it
    does not describe them, the plan rewrites the affected window instead of trusting it, so a
    store's loaded checkpoint always equals the committed one.
    """
    new_errors = cp.extra.get(ERRORS_KEY)
    summary, entries = _split_summary(new_errors) if new_errors is not None else (None, ())
    store_events = cp.events if delta.write_errors_store else ()
    if prev is None:
        return WritePlan(
            messages=tuple(cp.messages), messages_rewritten=True,
            extra_set=FrozenDict({k: v for k, v in cp.extra.items() if k != ERRORS_KEY}),
            errors_present=new_errors is not None, errors_entries=entries, errors_rewritten=True,
            summary=summary, summary_changed=summary is not None, pending_changed=bool(cp.pending_writes),
            store_events=store_events)
    # messages: append-only in the barrier; anything else rewrites the window
    old_m, new_m = prev.messages, cp.messages
    if new_m is old_m:
        messages, m_rewritten = (), False
    elif len(new_m) >= len(old_m) and probes_match(old_m, lambda i: new_m[i]):
        messages, m_rewritten = tuple(new_m[len(old_m):]), False
    else:
        messages, m_rewritten = tuple(new_m), True
    # extra: a key is written when its value object changed (the barrier keeps unchanged ones)
    extra_set: dict[str, Any] = {}
    deleted: list[str] = []
    if cp.extra is not prev.extra:
        for key, value in cp.extra.items():
            if key == ERRORS_KEY:
                continue
            old = prev.extra.get(key, _MISSING)
            if old is _MISSING or (old is not value and (key in delta.extra_keys or dumps(old) != dumps(value))):
                extra_set[key] = value
        deleted = [k for k in prev.extra if k != ERRORS_KEY and k not in cp.extra]
    # extra["errors"]: the rail window moves by the delta, or is rewritten
    old_errors = prev.extra.get(ERRORS_KEY)
    dropped, rewritten = 0, False
    if new_errors is None or new_errors is old_errors:
        appended: tuple[ErrorEvent, ...] = ()
        summary_changed = False
    elif old_errors is None:
        appended, rewritten, summary_changed = entries, True, summary is not None
    else:
        old_summary, old_entries = _split_summary(old_errors)
        appended, dropped = tuple(delta.errors_appended), delta.errors_dropped
        total = len(old_entries) + len(appended)
        ok = not delta.errors_rewritten and 0 <= dropped <= total and len(entries) == total - dropped and probes_match(
            entries, lambda i: old_entries[dropped + i] if dropped + i < len(old_entries)
            else appended[dropped + i - len(old_entries)])
        if not ok:
            appended, dropped, rewritten = entries, 0, True
        summary_changed = summary is not None and (rewritten or not _same(summary, old_summary))
    pending_changed = cp.pending_writes is not prev.pending_writes and cp.pending_writes != prev.pending_writes
    return WritePlan(messages=messages, messages_rewritten=m_rewritten, extra_set=FrozenDict(extra_set),
                     extra_deleted=tuple(deleted), errors_present=new_errors is not None, errors_entries=appended,
                     errors_dropped=dropped, errors_rewritten=rewritten, summary=summary,
                     summary_changed=summary_changed, pending_changed=pending_changed, store_events=store_events)


@dataclass(frozen=True, slots=True)
class EncodedRows:
    """The JSON text a store writes for one commit, built before its write transaction starts.

    Attributes:
        events: each outbox event, in order. messages: each appended message.
        extra: ``(key, json)`` per changed user key, ``(key, None)`` per deleted one.
        frontier, versions, seen: the checkpoint's small columns. failure: ``None`` or JSON.
    """

    events: tuple[str, ...]
    messages: tuple[str, ...]
    extra: tuple[tuple[str, str | None], ...]
    frontier: str
    versions: str
    seen: str
    failure: str | None


def encode_rows(cp: Checkpoint, plan: WritePlan) -> EncodedRows:
    """Encode what `plan` writes of `cp`. Raises `TypeError`/`ValueError` for values that are not JSON."""
    extra = [(k, dumps(v)) for k, v in plan.extra_set.items()]
    if plan.extra_deleted:
        extra += [(k, None) for k in plan.extra_deleted]
    return EncodedRows(
        tuple([e.to_json() for e in cp.events]),
        tuple([dumps(m.to_dict()) for m in plan.messages]) if plan.messages else (),
        tuple(extra), *encode_scheduling(cp), dumps(cp.failure) if cp.failure is not None else None)


def stored_updated(session: str, step: int, text: Any) -> datetime:
    """A session's last update time as stored (its newest checkpoint's ``created_at``); a malformed
    one is a `CheckpointError` naming the session and step, not a bare ``session ?``."""
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise corrupt(session, step, f"created_at {text!r} is not a time", exc) from exc


def check_cursor(sink: str, cursor: int | None, top: int | None) -> None:
    """For a SQL store's `undelivered` that found nothing: a delivery cursor past the outbox's newest
    row (set by hand) would stop the sink for good, silently. Raises `CheckpointError` instead, which
    the sink's delivery reports as its failure."""
    if cursor is not None and cursor > (top or 0):
        raise CheckpointError(f"sink {sink!r}: its delivery cursor ({cursor}) is past the newest outbox row "
                              f"({top or 0}); nothing is delivered to it until the cursor is set back")


def encode_scheduling(cp: Checkpoint) -> tuple[str, str, str]:
    """The JSON of `cp`'s frontier, versions and versions seen (a checkpoint row's small columns)."""
    # the JSON encoder takes dicts, FrozenDict included; other mappings are copied into dicts first
    try:
        versions = dumps(cp.versions)
    except TypeError:
        versions = dumps(dict(cp.versions))
    try:
        seen = dumps(cp.versions_seen)
    except TypeError:
        seen = dumps({n: dict(v) for n, v in cp.versions_seen.items()})
    return dumps(list(cp.frontier)), versions, seen


def stored_time(when: datetime) -> str:
    """ISO text for a stored time: UTC when aware, microseconds always (so texts sort like times)."""
    if when.tzinfo is not None and when.tzinfo is not timezone.utc:
        when = when.astimezone(timezone.utc)
    return when.isoformat(timespec="microseconds")


def encode_pending_writes(pending: Mapping[str, NodePartial]) -> str | None:
    """JSON text of the pending writes (``None`` when there are none)."""
    return dumps({node: encode_partial(p) for node, p in pending.items()}) if pending else None


def plan_commit(prev: Checkpoint | None, last_step: int | None, cp: Checkpoint,
                delta: Delta) -> tuple[WritePlan, EncodedRows]:
    """What a SQL store writes for `cp` after `prev` (its newest stored step is `last_step`), encoded.

    Raises:
        CheckpointError: `cp` would overwrite a stored step, or holds a value that is not JSON.
    """
    session = cp.session
    if last_step is not None and last_step >= cp.step:
        raise CheckpointError(f"session {session!r} already has step {last_step}; refusing to overwrite "
                              f"with step {cp.step}", session=session, step=cp.step)
    plan = plan_write(prev, cp, delta)
    try:
        return plan, encode_rows(cp, plan)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint of session {session!r} step {cp.step} holds a value that cannot "
                              f"be stored as JSON: {exc}", session=session, step=cp.step) from exc


def pending_columns(cp: Checkpoint, plan: WritePlan, stored_from: int | None,
                    first: bool) -> tuple[str | None, int | None]:
    """The checkpoint row's ``(pending, pending_from)``: the pending writes are stored when they change
    (or in a session's first row); later rows point at the step that holds them (`stored_from`)."""
    if not cp.pending_writes:
        return None, None
    if plan.pending_changed or first or stored_from is None:
        return encode_pending_writes(cp.pending_writes), cp.step
    return None, stored_from


def load_stored(text: str | bytes | None, session: str, step: int | None, what: str) -> Any:
    """`json.loads` for stored text; bad JSON becomes a `CheckpointError` naming session and step."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:
        raise corrupt(session, step, f"{what} is not valid JSON ({exc})", exc) from exc


def load_stored_event(text: str | bytes, session: str, step: int | None, what: str = "an error event") -> ErrorEvent:
    """Decode a stored `ErrorEvent`; bad data becomes a `CheckpointError` naming session and step."""
    try:
        return ErrorEvent.from_json(text)
    except Exception as exc:
        raise corrupt(session, step, f"{what} is unreadable ({exc})", exc) from exc


def load_pending_writes(text: str | None, session: str, step: int) -> Mapping[str, NodePartial]:
    """Inverse of `encode_pending_writes`; bad data becomes a `CheckpointError`."""
    data = load_stored(text, session, step, "pending writes")
    if data is None:
        return FrozenDict()
    try:
        if not isinstance(data, Mapping):
            raise ValueError("pending writes are not an object")
        return FrozenDict({node: decode_partial(p) for node, p in data.items()})
    except Exception as exc:
        raise corrupt(session, step, f"pending writes are unreadable ({exc})", exc) from exc


def load_versions_seen(text: str | None, session: str, step: int) -> Mapping[str, Mapping[str, int]]:
    """Decode stored ``versions_seen`` into frozen maps; bad data becomes a `CheckpointError`."""
    data = load_stored(text, session, step, "versions_seen")
    if not isinstance(data, Mapping) or not all(isinstance(v, Mapping) for v in data.values()):
        raise corrupt(session, step, "versions_seen is not an object of objects")
    return freeze(data)


def decode_checkpoint(session: str, step: int, *, status: str, created_at: str, interrupt: str | None,
                      frontier: str, versions: str, seen: str, failure: str | None, pending: str | None,
                      messages: Iterable[tuple[Any, str]], extra: Iterable[tuple[str, str | None]],
                      errors: Iterable[tuple[Any, str | None]] | None,
                      events: Iterable[tuple[Any, str]]) -> Checkpoint:
    """Build a `Checkpoint` from a store's row texts; any bad part is a `CheckpointError` naming it.

    Args:
        messages: ``(position, json)`` of the window, in order.
        extra: ``(key, json)`` of user keys (``None`` json: a deleted key, skipped).
        errors: ``(label, json)`` of ``extra["errors"]`` in order (the summary first, if any), or
            ``None`` when the checkpoint has no ``errors`` key.
        events: ``(label, json)`` of the checkpoint's outbox events, in order.
        the rest: the JSON (or text) columns of the checkpoint row.
    """
    msgs = []
    for pos, text in messages:
        data = load_stored(text, session, step, f"message {pos}")
        try:
            msgs.append(Message.coerce(data))
        except Exception as exc:
            raise corrupt(session, step, f"message {pos} is unreadable ({exc})", exc) from exc
    values: dict[str, Any] = {}
    for key, text in extra:
        if text is not None:
            values[key] = freeze(load_stored(text, session, step, f"extra[{key!r}]"))
    if errors is not None:
        values[ERRORS_KEY] = tuple(load_stored_event(text, session, step, f'extra["errors"] entry {label}')
                                   if text is not None else _missing(session, step, f'extra["errors"] entry {label}')
                                   for label, text in errors)
    committed = tuple(load_stored_event(text, session, step, f"outbox event {label}") for label, text in events)
    try:
        when = datetime.fromisoformat(created_at)
    except (TypeError, ValueError) as exc:
        raise corrupt(session, step, f"created_at {created_at!r} is not a time", exc) from exc
    frontier_data = load_stored(frontier, session, step, "frontier")
    versions_data = load_stored(versions, session, step, "versions")
    if not isinstance(frontier_data, list) or not all(isinstance(n, str) for n in frontier_data):
        raise corrupt(session, step, "frontier is not a list of node names")
    if not isinstance(versions_data, dict) or not all(type(v) is int for v in versions_data.values()):
        raise corrupt(session, step, "versions is not an object of integers")
    failure_data = load_stored(failure, session, step, "failure")
    if failure_data is not None and not isinstance(failure_data, dict):
        raise corrupt(session, step, "failure is not an object")
    return Checkpoint(session=session, step=step, status=status, messages=tuple(msgs), extra=FrozenDict(values),
                      versions=FrozenDict(versions_data), frontier=tuple(frontier_data),
                      versions_seen=load_versions_seen(seen, session, step),
                      pending_writes=load_pending_writes(pending, session, step), events=committed,
                      failure=freeze(failure_data) if failure_data is not None else None, created_at=when,
                      interrupt=interrupt)


def _missing(session: str, step: int, what: str) -> Any:
    raise corrupt(session, step, f"{what} is missing")


EMPTY_EXTRA: Mapping[str, Any] = FrozenDict()

__all__ = [
    "CACHE_SESSIONS",
    "encode_scheduling",
    "probes_match",
    "LatestCache",
    "union_windows",
    "STATUSES",
    "BackfillReport",
    "Checkpoint",
    "Checkpointer",
    "Delta",
    "MemoryCheckpointer",
    "SessionInfo",
    "check_cursor",
    "stored_updated",
    "corrupt",
    "decode_messages",
    "decode_partial",
    "dumps",
    "encode_partial",
    "EncodedRows",
    "WritePlan",
    "encode_rows",
    "stored_time",
    "decode_checkpoint",
    "encode_pending_writes",
    "load_pending_writes",
    "load_stored",
    "load_stored_event",
    "load_versions_seen",
    "plan_write",
]
