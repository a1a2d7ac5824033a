"""The SQLite checkpointer behind the ``sqlite_store`` plugin (a private module, not an entry point).

Layout (schema version 3). Per session, append-only logs and a small row per checkpoint:

* ``checkpoints`` — one row per superstep: status, frontier, versions, versions_seen, failure,
  and *windows* ``[start, end)`` into the session's message log and errors rail, so a step writes
  only what it added. Pending writes and the cap summary are stored when they change; a
  checkpoint points at the step that holds them.
* ``messages`` — the messages log; ``extra`` — a user key's value from the step of a flush on
  (a ``NULL`` value is a deleted key; see below); ``summaries`` — cap summaries.
* the errors rail (the entries ever appended to ``extra["errors"]``): an entry that is one of its
  step's own events, in their order (the usual case), is that event's outbox row (``rail_pos``;
  the checkpoint bounds them by seq with ``rail_lo``/``rail_hi``); anything else (a capper that
  rewrites the array, schema-1 data) is a ``rail`` row, referencing an outbox row or holding JSON.
* ``outbox`` — every committed event with a global sequence (the sinks' source), written in the
  checkpoint's transaction, with the errors store's columns; ``cursors`` — one delivery cursor
  per sink.
* ``errors`` — the dedicated errors store: append-only (a rowid table), idempotent on event id
  (a unique index), indexed by session/step, node, code and time. It is filled from the outbox rows flagged ``store = 1``
  (``Delta.write_errors_store``) through a cursor (``meta.errors_cursor``), in batches: once
  ``STORE_BATCH`` events are pending, at release and close, and always before the store is read,
  so a reader never sees less than what was committed. The copy is idempotent (a crash between two
  batches loses nothing: the outbox is durable and the next catch-up finishes it).
* ``sessions`` — one row per session (its status, steps and error count are read from its newest
  checkpoint and the outbox); ``meta`` — the schema version and the errors-store cursor.

A session's outbox rows are found through its checkpoints (``ev_seq``/``ev_count``: a commit's rows
are consecutive), and changed user keys of ``extra`` ride in the checkpoint row (``extra_delta``)
until a flush copies them to the ``extra`` table every ``EXTRA_FLUSH`` steps (``extra_from``: the
step up to which the table is complete; a read applies the deltas after it). A step that emits
one event and changes one key (the W3 benchmark) thus touches two b-trees: checkpoints and outbox.
Reads by session (a checkpoint's rail window, ``session_events``, ``sessions``) follow a chain:
each checkpoint names the session's newest earlier step whose checkpoint has events (``ev_prev``),
so they cost O(steps with events), whatever the session's length.

Writers use ``BEGIN IMMEDIATE`` in WAL mode with a busy timeout, and retry with backoff on
``SQLITE_BUSY``; readers never block writers. A session is claimed with a POSIX byte-range lock
on a side file (``<db>-sessions.lock``): the kernel drops it when the owner dies, even by SIGKILL.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from functools import partial
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from railgraph.checkpoint import (
    LatestCache,
    union_windows,
    BackfillReport,
    Checkpoint,
    Delta,
    EncodedRows,
    SessionInfo,
    WritePlan,
    check_cursor,
    corrupt,
    stored_updated,
    decode_checkpoint,
    dumps,
    encode_scheduling,
    load_stored,
    load_stored_event,
    pending_columns,
    plan_commit,
    probes_match,
    stored_time,
)
from railgraph.errors import CheckpointError, SessionBusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: session claims need POSIX record locks
    fcntl = None  # type: ignore[assignment]
from railgraph.events import ErrorEvent
from railgraph.state import ERRORS_KEY

SCHEMA_VERSION = 3
ROW_FORMAT = 1
# the errors store is filled from the outbox in batches: when this many flagged events a store
# instance committed are not copied yet (and at release, close, and before any read of the store)
STORE_BATCH = 1024
# changed user keys of extra are copied from the checkpoint rows into the extra table once a session
# has this many steps, or EXTRA_FLUSH_BYTES of changes, not copied yet (a read applies at most that)
EXTRA_FLUSH = 64
EXTRA_FLUSH_BYTES = 256 * 1024
# SQLite's default page size, measured against the alternatives on W1/W3: 1-2 KiB pages make a
# commit's WAL frames cheaper (~5-10%) but the b-trees deepen faster, so a step's cost grows over a
# long run (last 200 steps / first 200: ~1.6 against ~1.4).
PAGE_SIZE = 4096
# WAL checkpoints (copying the WAL into the database file, an fsync before and after) run on a
# background thread with its own connection every CHECKPOINT_EVERY commits of a store instance:
# SQLite does that work without the GIL. It never catches up with a writer that keeps committing,
# so when it has copied what it saw, the writer copies the few frames committed meanwhile (and the
# WAL restarts from its beginning). SQLite's own autocheckpoint stays on, at AUTOCHECKPOINT pages,
# should the thread fall behind. W3: about -5% (the copy and the fsyncs leave the commit path).
AUTOCHECKPOINT = 1000
CHECKPOINT_EVERY = 256
# a sink's delivery lease is a claim under this prefix (session ids cannot hold a NUL)
_SINK_LEASE = "\x00sink:"
T = TypeVar("T")
_MALFORMED = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError)

# Few b-trees per table (WITHOUT ROWID where the key is the natural one): every b-tree a commit
# touches is at least one page appended to the WAL, and that is most of a step's cost.
_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE sessions (session TEXT PRIMARY KEY) WITHOUT ROWID",
    """CREATE TABLE checkpoints (session TEXT NOT NULL, step INTEGER NOT NULL, format INTEGER NOT NULL,
        status TEXT NOT NULL, created_at TEXT NOT NULL, interrupt TEXT, frontier TEXT NOT NULL,
        versions TEXT NOT NULL, seen TEXT NOT NULL, failure TEXT, pending TEXT, pending_from INTEGER,
        msg_start INTEGER NOT NULL, msg_end INTEGER NOT NULL, rail_present INTEGER NOT NULL,
        rail_start INTEGER NOT NULL, rail_end INTEGER NOT NULL, summary_from INTEGER,
        ev_seq INTEGER, ev_count INTEGER NOT NULL, PRIMARY KEY (session, step)) WITHOUT ROWID""",
    """CREATE TABLE messages (session TEXT NOT NULL, pos INTEGER NOT NULL, step INTEGER NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (session, pos)) WITHOUT ROWID""",
    """CREATE TABLE extra (session TEXT NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL, value TEXT,
        PRIMARY KEY (session, key, step)) WITHOUT ROWID""",
    """CREATE TABLE rail (session TEXT NOT NULL, pos INTEGER NOT NULL, step INTEGER NOT NULL, seq INTEGER,
        data TEXT, PRIMARY KEY (session, pos)) WITHOUT ROWID""",
    """CREATE TABLE summaries (session TEXT NOT NULL, step INTEGER NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (session, step)) WITHOUT ROWID""",
    """CREATE TABLE outbox (seq INTEGER PRIMARY KEY, session TEXT NOT NULL, step INTEGER NOT NULL,
        id TEXT NOT NULL, data TEXT NOT NULL)""",
    "CREATE INDEX outbox_session ON outbox (session, seq)",
    "CREATE TABLE cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TABLE errors (id TEXT PRIMARY KEY, session TEXT NOT NULL, step INTEGER NOT NULL,
        ord INTEGER NOT NULL, node TEXT, code TEXT, scope TEXT NOT NULL, at TEXT NOT NULL, seq INTEGER, data TEXT)
        WITHOUT ROWID""",
    "CREATE INDEX errors_session ON errors (session, step, ord)",
    "CREATE INDEX errors_node ON errors (node, at)",
    "CREATE INDEX errors_code ON errors (code, at)",
    "CREATE INDEX errors_at ON errors (at)",
)

# Version 2: the errors store is fed from the outbox in batches through a cursor instead of in every
# commit (5 b-trees fewer per commit), and the entries of extra["errors"] that are the step's own
# events are outbox rows (``rail_pos``) instead of rail rows (one b-tree fewer). The outbox row
# carries the errors store's columns (``store``: copy it there; node, code, scope, at), so the copy
# is one INSERT ... SELECT. The checkpoint row bounds the outbox rows of its window with
# ``rail_lo``/``rail_hi`` (seqs). Version-1 rows keep reading as before: their rail rows stay, and
# their outbox rows (store = 0) are in the errors store already (the cursor starts after them).
_V2 = (
    "ALTER TABLE outbox ADD COLUMN store INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE outbox ADD COLUMN node TEXT",
    "ALTER TABLE outbox ADD COLUMN code TEXT",
    "ALTER TABLE outbox ADD COLUMN scope TEXT",
    "ALTER TABLE outbox ADD COLUMN at TEXT",
    "ALTER TABLE outbox ADD COLUMN rail_pos INTEGER",
    "ALTER TABLE checkpoints ADD COLUMN rail_lo INTEGER",
    "ALTER TABLE checkpoints ADD COLUMN rail_hi INTEGER",
    "INSERT INTO meta (key, value) VALUES ('errors_cursor', (SELECT COALESCE(MAX(seq), 0) FROM outbox))",
)

# Version 3: a step that emits one event and changes one key touches two b-trees instead of four.
# The outbox loses its (session, seq) index: a session's outbox rows are the seq windows
# ``[ev_seq, ev_seq + ev_count)`` of its checkpoints (a commit's rows are consecutive), so reads by
# session go through the checkpoints. Changed user keys of ``extra`` ride in the checkpoint row
# (``extra_delta``) and reach the ``extra`` table in one write per session every ``EXTRA_FLUSH``
# steps; ``extra_from`` names the step up to which the table is complete (``NULL``: this step).
#
# The errors store becomes a rowid table (appended at its end) with a unique index on the event
# id: keyed by the (random) id itself, each copied row landed on a random page of the whole table.
_V3 = (
    "DROP INDEX IF EXISTS outbox_session",
    "ALTER TABLE checkpoints ADD COLUMN extra_from INTEGER",
    "ALTER TABLE checkpoints ADD COLUMN extra_delta TEXT",
    """CREATE TABLE errors_v3 (id TEXT NOT NULL, session TEXT NOT NULL, step INTEGER NOT NULL, ord INTEGER NOT NULL,
        node TEXT, code TEXT, scope TEXT NOT NULL, at TEXT NOT NULL, seq INTEGER, data TEXT)""",
    "INSERT INTO errors_v3 SELECT id, session, step, ord, node, code, scope, at, seq, data FROM errors "
    "ORDER BY session, step, ord",
    "DROP TABLE errors",
    "ALTER TABLE errors_v3 RENAME TO errors",
    "CREATE UNIQUE INDEX errors_id ON errors (id)",
    "CREATE INDEX errors_session ON errors (session, step, ord)",
    "CREATE INDEX errors_node ON errors (node, at)",
    "CREATE INDEX errors_code ON errors (code, at)",
    "CREATE INDEX errors_at ON errors (at)",
    # each checkpoint names the session's newest earlier step whose checkpoint has events: reads by
    # session follow that chain, O(steps with events) whatever the session's length
    "ALTER TABLE checkpoints ADD COLUMN ev_prev INTEGER",
    "UPDATE checkpoints SET ev_prev = w.prev FROM (SELECT session AS s, step AS t, MAX(CASE WHEN ev_count > 0 "
    "THEN step END) OVER (PARTITION BY session ORDER BY step ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) "
    "AS prev FROM checkpoints) AS w WHERE checkpoints.session = w.s AND checkpoints.step = w.t",
)

# index i upgrades schema version i to i + 1; a future version appends its statements here
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
assert len(MIGRATIONS) == SCHEMA_VERSION  # noqa: S101 - a module invariant, checked at import

_CP_COLS = ("step, format, status, created_at, interrupt, frontier, versions, seen, failure, pending, pending_from, "
            "msg_start, msg_end, rail_present, rail_start, rail_end, summary_from, ev_seq, ev_count, rail_lo, rail_hi, "
            "extra_from, extra_delta, ev_prev")
_INSERT_OUTBOX = ("INSERT INTO outbox (session, step, id, data, store, node, code, scope, at, rail_pos) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _outbox_row(session: str, step: int, event: ErrorEvent, text: str, store: int,
                pos: int | None) -> tuple[Any, ...]:
    """`_INSERT_OUTBOX`'s parameters for `event` (its JSON `text`) at rail position `pos`."""
    return (session, step, str(event.id), text, store, event.node, event.code, event.scope.kind,
            stored_time(event.when), pos)
_INSERT_CP = f"INSERT INTO checkpoints ({_CP_COLS}, session) VALUES ({', '.join('?' * 25)})"  # built once


def _event_steps(top: str, floor: str) -> str:
    """SQL: a CTE ``chain(step)``, the steps of session ``:s`` whose checkpoints have events, from step
    `top` down to `floor` (SQL expressions), following each checkpoint's ``ev_prev``.

    The walk only goes back: a link that does not (``ev_prev >= step``, tampered data) ends it there,
    where `_check_chain` finds it; a cycle once made every reader spin and every writer wait."""
    return ("WITH RECURSIVE chain(step) AS (SELECT CASE WHEN ev_count > 0 THEN step WHEN ev_prev < step THEN ev_prev "
            f"END FROM checkpoints WHERE session = :s AND step = {top} UNION ALL SELECT c.ev_prev FROM checkpoints c "
            f"JOIN chain ON c.session = :s AND c.step = chain.step WHERE chain.step > {floor} AND c.ev_prev < c.step) ")


def _check_chain(conn: sqlite3.Connection, session: str, top: str = "(SELECT MAX(step) FROM checkpoints "
                 "WHERE session = :s)", params: dict[str, Any] | None = None) -> None:
    """Raise `CheckpointError` naming the step whose ``ev_prev`` link does not go back (the walk of
    `_event_steps` from `top` stops at it, so reads would miss every event before it)."""
    bad = conn.execute(f"{_event_steps(top, '-1')}SELECT c.step, c.ev_prev FROM chain CROSS JOIN checkpoints c "
                       "ON c.session = :s AND c.step = chain.step WHERE c.ev_prev >= c.step LIMIT 1",
                       {"s": session, **(params or {})}).fetchone()
    if bad is not None:
        raise corrupt(session, bad[0], f"its link to the previous step with events (ev_prev = {bad[1]}) does not "
                      "go back; nothing was changed")


_LATEST = "(SELECT MAX(step) FROM checkpoints WHERE session = :s)"
# a session's outbox rows, after _event_steps: the seq windows of the chain's checkpoints (a commit's
# rows are consecutive). A further bound on o.seq must be written +o.seq, or SQLite may range over
# it instead of the windows
_CHAIN_OUTBOX = ("chain CROSS JOIN checkpoints c ON c.session = :s AND c.step = chain.step CROSS JOIN outbox o "
                 "ON o.seq >= c.ev_seq AND o.seq < c.ev_seq + c.ev_count AND +o.session = c.session "
                 "WHERE c.ev_count > 0")


class _Meta(NamedTuple):
    """The store-side columns of a checkpoint row (its windows into the session's logs)."""

    step: int
    msg_start: int
    msg_end: int
    rail_present: bool
    rail_start: int
    rail_end: int
    summary_from: int | None
    pending_from: int | None
    rail_lo: int | None = None
    rail_hi: int | None = None
    # the window's entries that are outbox rows, as runs (first position, first seq, count) in
    # position order: consecutive steps of a session written alone coalesce into one run
    blocks: tuple[tuple[int, int, int], ...] = ()
    # the extra table holds the session's user keys as of step `extra_from` (None: as of `step`);
    # the keys changed after it, and the bytes of their deltas, are in the checkpoint rows
    extra_from: int | None = None
    extra_pending: frozenset[str] = frozenset()
    extra_bytes: int = 0
    # the newest step up to this one whose checkpoint has events (the next row's ev_prev)
    ev_last: int | None = None


Block = tuple[int, int, int]


class _Quick(NamedTuple):
    """What `_quick` found a commit to write (see `SqliteCheckpointer._apply_quick`)."""

    texts: tuple[str, ...]  # each event's JSON
    extra: tuple[tuple[str, str], ...]  # (key, json) per changed user key of extra, in its order
    scheduling: tuple[str, str, str]  # frontier, versions, versions seen as JSON
    errors_present: bool  # the checkpoint's extra has the errors key
    appended: bool  # the step's events are appended to extra["errors"]
    store: bool  # the events go to the errors store


_ABSENT: Any = object()


def _quick(prev: Checkpoint, meta: _Meta, cp: Checkpoint, delta: Delta) -> _Quick | None:
    """The rows of the commit of `cp` after `prev` when it has the shape of almost every superstep:
    no messages, pending writes, failure or cap summary; user keys of ``extra`` changed (none added
    or removed); the step's events appended to ``extra["errors"]`` (or it unchanged). ``None``
    otherwise, or when a value is not JSON: `plan_commit` decides then, and reports what is wrong.

    For those commits the plan is known without building it: `SqliteCheckpointer._apply_quick`
    writes the rows `_apply` writes for `plan_commit`'s plan (a test replays random runs both ways
    and compares every row).
    """
    if (meta.step >= cp.step or cp.messages is not prev.messages or cp.pending_writes or prev.pending_writes
            or cp.failure is not None or meta.summary_from is not None):
        return None
    events = cp.events
    new, old = cp.extra.get(ERRORS_KEY), prev.extra.get(ERRORS_KEY)
    appended = new is not old
    if appended:
        n_old = len(old) if old is not None else 0
        if (old is None or new is None or not meta.rail_present or not events or delta.errors_rewritten
                or delta.errors_dropped or len(new) != n_old + len(events) or len(delta.errors_appended) != len(events)
                or new[0].is_summary):  # a summary (even an event with its code) first: the plan splits it off
            return None
        for a, b, c in zip(delta.errors_appended, events, new[n_old:]):
            if a is not b or c is not b:
                return None
        if not probes_match(new, lambda i: old[i] if i < n_old else events[i - n_old]):
            return None
    elif new is not None and (not meta.rail_present or (new and new[0].is_summary)):
        return None
    extra: list[tuple[str, str]] = []
    try:
        if cp.extra is not prev.extra:
            if len(cp.extra) - (ERRORS_KEY in cp.extra) != len(prev.extra) - (ERRORS_KEY in prev.extra):
                return None  # a user key was added or removed
            changed = delta.extra_keys
            for key, value in cp.extra.items():
                if key == ERRORS_KEY:
                    continue
                was = prev.extra.get(key, _ABSENT)
                if was is value:
                    continue
                if was is _ABSENT or key not in changed:
                    return None  # new, or changed without the barrier saying so: the plan compares texts
                extra.append((key, dumps(value)))
        texts = tuple([e.to_json() for e in events])
        scheduling = encode_scheduling(cp)
    except (TypeError, ValueError):
        return None
    return _Quick(texts, tuple(extra), scheduling, new is not None, appended, bool(delta.write_errors_store))


def _extend(blocks: tuple[Block, ...], pos: int, seq: int, count: int) -> tuple[Block, ...]:
    """`blocks` with ``count`` entries at ``pos..`` that are outbox rows ``seq..`` appended (coalesced)."""
    if blocks:
        p, q, n = blocks[-1]
        if p + n == pos and q + n == seq:
            return (*blocks[:-1], (p, q, n + count))
    return (*blocks, (pos, seq, count))


def _trim(blocks: tuple[Block, ...], start: int) -> tuple[Block, ...]:
    """`blocks` without the positions before `start` (the window's new start)."""
    i = 0
    while i < len(blocks) and blocks[i][0] + blocks[i][2] <= start:
        i += 1
    out = blocks[i:]
    if out and out[0][0] < start:
        p, q, n = out[0]
        out = ((start, q + start - p, n - start + p), *out[1:])
    return out


def _bounds(blocks: tuple[Block, ...]) -> tuple[int | None, int | None]:
    """The lowest and highest outbox seq of `blocks` (``None`` when there are none)."""
    if not blocks:
        return None, None
    p, q, n = blocks[-1]
    return blocks[0][1], q + n - 1


class _Behind(Exception):
    """A read of the errors store found the outbox ahead of the store cursor."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _SessionLocks:
    """Per-process registry of session claims on one lock file (POSIX byte-range locks).

    POSIX record locks belong to the process, so claims between threads of this process are
    tracked here, and the file is opened once per process (closing any descriptor of a file drops
    the process's locks on it).
    """

    _registry: dict[tuple[int, str], _SessionLocks] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str) -> None:
        if fcntl is None:
            raise CheckpointError("the sqlite backend claims sessions with POSIX record locks (fcntl), which this "
                                  "platform lacks; use Linux or macOS, or the postgres backend")
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.lock = threading.Lock()
        self.held: dict[int, tuple[str, int, int]] = {}

    @classmethod
    def for_path(cls, path: str) -> _SessionLocks:
        key = (os.getpid(), path)
        with cls._registry_lock:
            locks = cls._registry.get(key)
            if locks is None:
                locks = cls._registry[key] = cls(path)
            return locks

    @staticmethod
    def offset(session: str) -> int:
        return int.from_bytes(hashlib.blake2b(session.encode(), digest_size=8).digest(), "big") >> 2

    def acquire(self, session: str, owner: tuple[int, int]) -> None:
        off, me = self.offset(session), (session, *owner)
        with self.lock:
            holder = self.held.get(off)
            if holder is not None:
                if holder == me:
                    return
                raise SessionBusyError(f"session {session!r} is being run by another worker in this process",
                                       session=session)
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, off)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    raise SessionBusyError(f"session {session!r} is being run by another process "
                                           f"(claim held on {self.path})", session=session) from None
                raise CheckpointError(f"could not claim session {session!r}: {exc}", session=session) from exc
            self.held[off] = me

    def release(self, session: str) -> None:
        off = self.offset(session)
        with self.lock:
            owner = self.held.get(off)
            if owner is None or owner[0] != session:
                return
            del self.held[off]
            fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, off)


class _WalCheckpointer:
    """A daemon thread that runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection when poked.

    Best effort: a failure (a busy lock, a file gone) is ignored; the writer's autocheckpoint still
    bounds the WAL. `finish_due` tells the writer that the thread copied all it saw.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.finish_due = False

    def poke(self) -> None:
        if self._thread is None or not self._thread.is_alive():  # not started, or this is a forked child
            self._thread = threading.Thread(target=self._loop, name=f"railgraph-wal-{self.path.name}", daemon=True)
            self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        try:  # mode=rw: never create the file (it may have been removed meanwhile)
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=rw", uri=True, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                try:
                    busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    continue
                self.finish_due = not busy and log == done
        finally:
            conn.close()

    def finish(self, conn: sqlite3.Connection) -> None:
        """On the writing connection, between transactions: copy what the thread's pass left."""
        self.finish_due = False
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)


class SqliteCheckpointer(LatestCache):
    """A durable store in one SQLite file; see the module docstring for the layout.

    Args:
        path: the database file (its parent directory is created).
        busy_timeout: milliseconds SQLite waits for another writer before retrying with backoff.
        synchronous: ``NORMAL`` (WAL: a committed step survives a process crash, SIGKILL
            included; the last commits may be lost on power failure) or ``FULL`` (also survives
            power loss; an fsync per step).

    Raises:
        CheckpointError: the file is not a railgraph store, or its schema version is newer or
            unknown (nothing is changed in the file then).
    """

    has_errors_store = True
    quick = True  # commits of the common shape skip the general write plan (`_quick`); tests turn it off

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: int = 5000, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise CheckpointError(f"sqlite synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = Path(path).absolute()
        self.busy_timeout = int(busy_timeout)
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[Checkpoint, _Meta]] = {}
        self._mine: set[str] = set()
        self._unstored = 0  # flagged events this instance committed that the errors store has not got yet
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                         timeout=self.busy_timeout / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise CheckpointError(f"cannot open the SQLite store {self.path}: {exc}") from exc
        try:
            self._setup(synchronous)
        except CheckpointError:
            self._conn.close()
            raise
        except sqlite3.Error as exc:
            self._conn.close()
            raise CheckpointError(f"cannot open the SQLite store {self.path}: {type(exc).__name__}: {exc}") from exc
        self._locks = _SessionLocks.for_path(str(self.path) + "-sessions.lock")
        self._wal = _WalCheckpointer(self.path)
        # a store dropped without close() stops its thread too (the thread does not refer to the store)
        weakref.finalize(self, self._wal.close)
        self._commits = 0

    # -- plumbing ----------------------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T]) -> T:
        delay, deadline = 0.002, time.monotonic() + max(5.0, 4 * self.busy_timeout / 1000)
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 0.2)

    def _tx(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        with self._lock:
            return self._retry(partial(self._attempt, fn, "BEGIN IMMEDIATE" if write else "BEGIN"))

    def _attempt(self, fn: Callable[[sqlite3.Connection], T], begin: str) -> T:
        conn = self._conn
        conn.execute(begin)
        try:
            out = fn(conn)
            conn.execute("COMMIT")
            return out
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _version(self, conn: sqlite3.Connection) -> int | None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if tables - {"sqlite_sequence"}:
                raise CheckpointError(f"{self.path} is an SQLite database but not a railgraph store "
                                      f"(tables: {', '.join(sorted(tables))}); nothing was changed")
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        raw = row[0] if row else None
        try:
            version = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise CheckpointError(f"{self.path}: unknown schema version {raw!r}; this railgraph writes version "
                                  f"{SCHEMA_VERSION}; nothing was changed") from None
        if version > SCHEMA_VERSION or version < 1:
            raise CheckpointError(f"{self.path}: schema version {version} is "
                                  f"{'newer than' if version > SCHEMA_VERSION else 'not one of'} the versions this "
                                  f"railgraph supports (1..{SCHEMA_VERSION}); upgrade railgraph; nothing was changed")
        return version

    def _setup(self, synchronous: str) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout}")
        version = self._retry(lambda: self._version(conn))  # before changing anything in the file
        if version is None:
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # effective only while the file is empty
        if self._retry(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower() != "wal":
            raise CheckpointError(f"{self.path}: SQLite could not switch to WAL mode")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT}")
        if version == SCHEMA_VERSION:
            return

        def migrate(conn: sqlite3.Connection) -> None:
            current = self._version(conn) or 0  # again, under the write lock: another process may have won
            for target in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(statement)
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(target),))
        self._tx(migrate)

    # -- claims ------------------------------------------------------------------------------------

    def acquire(self, session: str) -> None:
        """Claim `session` across processes; raise `SessionBusyError` if another worker holds it.

        The same store in the same thread may claim again (as the memory store allows); another
        thread, another store instance or another process is another worker.
        """
        self._locks.acquire(session, (id(self), threading.get_ident()))
        self._mine.add(session)

    def release(self, session: str) -> None:
        """Give up the claim on `session` (idempotent)."""
        if session in self._mine:
            self._flush()
            self._mine.discard(session)
            self._locks.release(session)
        self._cache.pop(session, None)

    def lease_sink(self, sink: str) -> bool:
        """Take `sink`'s delivery lease for this worker, without waiting; ``False`` if another worker holds
        it (it then delivers the outbox's backlog, every worker's events included). A record lock on
        the claims file, like a session claim: the kernel drops it if the worker dies."""
        try:
            self._locks.acquire(_SINK_LEASE + sink, (id(self), threading.get_ident()))
        except SessionBusyError:
            return False
        return True

    def release_sink(self, sink: str) -> None:
        """Give the delivery lease of `sink` back (idempotent)."""
        self._locks.release(_SINK_LEASE + sink)

    # -- reading -----------------------------------------------------------------------------------

    def _decode(self, conn: sqlite3.Connection, session: str, row: tuple[Any, ...]) -> tuple[Checkpoint, _Meta]:
        (step, fmt, status, created_at, interrupt, frontier, versions, seen, failure, pending, pending_from,
         msg_start, msg_end, rail_present, rail_start, rail_end, summary_from, ev_seq, ev_count, rail_lo, rail_hi,
         extra_from, _, ev_prev) = row
        if fmt != ROW_FORMAT:
            raise corrupt(session, step, f"unknown checkpoint format version {fmt!r} (this railgraph reads "
                          f"{ROW_FORMAT}); upgrade railgraph")
        _check_row(session, step, row)
        messages = conn.execute("SELECT pos, data FROM messages WHERE session = ? AND pos >= ? AND pos < ? "
                                "ORDER BY pos", (session, msg_start, msg_end)).fetchall()
        if len(messages) != msg_end - msg_start:
            raise corrupt(session, step, f"{msg_end - msg_start - len(messages)} message row(s) are missing")
        extra, pending_keys, pending_bytes = _extra_at(conn, session, step, extra_from)
        errors: list[tuple[Any, str | None]] | None = None
        blocks: tuple[Block, ...] = ()
        if rail_present:
            errors = []
            if summary_from is not None:
                srow = conn.execute("SELECT data FROM summaries WHERE session = ? AND step = ?",
                                    (session, summary_from)).fetchone()
                errors.append((f"(the cap summary of step {summary_from})", srow[0] if srow else None))
            entries, blocks = _window(conn, session, step, rail_start, rail_end, rail_lo, rail_hi)
            errors += entries
            if len(errors) != rail_end - rail_start + (summary_from is not None):
                raise corrupt(session, step, 'entries of extra["errors"] are missing')
        events = conn.execute("SELECT seq, data FROM outbox WHERE seq >= ? AND seq < ? ORDER BY seq",
                              (ev_seq, ev_seq + ev_count)).fetchall() if ev_count else []
        if len(events) != ev_count:
            raise corrupt(session, step, "outbox events of the checkpoint are missing")
        if pending_from is not None and pending_from != step:
            prow = conn.execute("SELECT pending FROM checkpoints WHERE session = ? AND step = ?",
                                (session, pending_from)).fetchone()
            pending = prow[0] if prow else None
            if pending is None:
                raise corrupt(session, step, f"the pending writes stored at step {pending_from} are missing")
        cp = decode_checkpoint(session, step, status=status, created_at=created_at, interrupt=interrupt,
                               frontier=frontier, versions=versions, seen=seen, failure=failure, pending=pending,
                               messages=messages, extra=extra, errors=errors, events=events)
        return cp, _Meta(step, msg_start, msg_end, bool(rail_present), rail_start, rail_end, summary_from, pending_from,
                         rail_lo, rail_hi, blocks, extra_from, pending_keys, pending_bytes,
                         step if ev_count else ev_prev)

    def _load(self, session: str, step: int | None) -> tuple[Checkpoint, _Meta] | None:
        def read(conn: sqlite3.Connection) -> tuple[Checkpoint, _Meta] | None:
            if step is None:
                row = conn.execute(f"SELECT {_CP_COLS} FROM checkpoints WHERE session = ? ORDER BY step DESC LIMIT 1",
                                   (session,)).fetchone()
            else:
                row = conn.execute(f"SELECT {_CP_COLS} FROM checkpoints WHERE session = ? AND step = ?",
                                   (session, step)).fetchone()
            return None if row is None else self._decode(conn, session, row)
        return self._guard(session, step, lambda: self._tx(read, write=False))

    def _guard(self, session: str | None, step: int | None, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except CheckpointError:
            raise
        except sqlite3.Error as exc:
            where = f" (session {session!r}" + (f" step {step}" if step is not None else "") + ")" if session else ""
            raise CheckpointError(f"SQLite store {self.path} failed{where}: {type(exc).__name__}: {exc}",
                                  session=session, step=step) from exc
        except _MALFORMED as exc:  # a column of the wrong type or shape: unreadable stored data, not a bug
            raise corrupt(session or "?", step, f"stored data is malformed ({type(exc).__name__}: {exc})", exc) from exc

    def history(self, session: str) -> list[tuple[int, str, datetime]]:
        """Every checkpoint of `session` as ``(step, status, created_at)``, oldest first."""
        def read(conn: sqlite3.Connection) -> list[tuple[int, str, datetime]]:
            out = []
            for step, status, created in conn.execute(
                    "SELECT step, status, created_at FROM checkpoints WHERE session = ? ORDER BY step", (session,)):
                try:
                    out.append((step, status, datetime.fromisoformat(created)))
                except (TypeError, ValueError) as exc:
                    raise corrupt(session, step, f"created_at {created!r} is not a time", exc) from exc
            return out
        return self._guard(session, None, lambda: self._tx(read, write=False))

    def _events(self, session: str, sql: str, args: tuple[Any, ...]) -> list[ErrorEvent]:
        def read(conn: sqlite3.Connection) -> list[ErrorEvent]:
            _check_chain(conn, session)
            return [load_stored_event(text, session, step) for step, text in conn.execute(sql, args)]
        return self._guard(session, None, lambda: self._tx(read, write=False))

    def session_events(self, session: str) -> list[ErrorEvent]:
        """Every event committed for `session` (the outbox), in emission order."""
        return self._events(session, f"{_event_steps(_LATEST, '-1')}SELECT o.step, o.data FROM {_CHAIN_OUTBOX} "
                            "ORDER BY o.seq", {"s": session})

    def stored_errors(self, session: str) -> list[ErrorEvent]:
        """The errors store's events of `session`, in emission order (backfilled ones included).

        The store is brought up to date with the outbox first (in the same transaction), so it
        never answers with less than what was committed.
        """
        def read(conn: sqlite3.Connection) -> list[ErrorEvent]:
            return [load_stored_event(text, session, step) for step, text in conn.execute(
                "SELECT e.step, COALESCE(e.data, o.data) FROM errors e LEFT JOIN outbox o ON o.seq = e.seq "
                "WHERE e.session = ? ORDER BY e.step, e.ord", (session,))]
        return self._guard(session, None, lambda: self._store_read(read))

    def _store_read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Run `read` on an up-to-date errors store: in a read transaction when no catch-up is due,
        else in a write transaction that catches up first (whatever another process committed)."""
        def fresh(conn: sqlite3.Connection) -> T:
            if _behind(conn):
                raise _Behind
            return read(conn)
        try:
            return self._tx(fresh, write=False)
        except _Behind:
            pass

        def caught_up(conn: sqlite3.Connection) -> T:
            _catch_up(conn)
            return read(conn)
        out = self._tx(caught_up)
        self._unstored = 0
        return out

    def _flush(self) -> None:
        """Catch the errors store up with what this instance committed (at release and close).

        A failure here loses nothing (the outbox is durable and the next reader or writer catches
        up), so it is not raised: release and close run in cleanup paths.
        """
        if not self._unstored:
            return
        try:
            self._tx(_catch_up)
            self._unstored = 0
        except sqlite3.Error:
            pass

    def undelivered(self, sink: str, limit: int) -> list[tuple[int, str, ErrorEvent]]:
        """Up to `limit` outbox entries after `sink`'s cursor, oldest first."""
        def read(conn: sqlite3.Connection) -> list[tuple[int, str, ErrorEvent]]:
            rows = conn.execute("SELECT seq, session, step, data FROM outbox WHERE seq > COALESCE((SELECT seq FROM "
                                "cursors WHERE sink = ?), 0) ORDER BY seq LIMIT ?", (sink, limit)).fetchall()
            if not rows:
                check_cursor(sink, *conn.execute("SELECT (SELECT seq FROM cursors WHERE sink = ?), "
                                                  "(SELECT MAX(seq) FROM outbox)", (sink,)).fetchone())
            return [(seq, s, load_stored_event(text, s, step)) for seq, s, step, text in rows]
        return self._guard(None, None, lambda: self._tx(read, write=False))

    def ack(self, sink: str, seq: int) -> None:
        """Move `sink`'s cursor to `seq` (never backwards)."""
        self._guard(None, None, lambda: self._tx(lambda c: c.execute(
            "INSERT INTO cursors (sink, seq) VALUES (?, ?) ON CONFLICT (sink) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            (sink, seq))))

    def sessions(self) -> list[SessionInfo]:
        """Every stored session, most recently updated first."""
        def read(conn: sqlite3.Connection) -> list[SessionInfo]:
            rows = conn.execute(
                "SELECT s.session, c.status, c.step, c.created_at FROM sessions s JOIN checkpoints c ON "
                "c.session = s.session AND c.step = (SELECT MAX(step) FROM checkpoints WHERE session = s.session)"
            ).fetchall()
            out = []
            for s, st, n, u in rows:  # each session's count and last event along its chain of steps with events
                _check_chain(conn, s, ":top", {"top": n})
                count, last_seq = conn.execute(
                    f"{_event_steps(':top', '-1')}SELECT COALESCE(SUM(c.ev_count), 0), MAX(c.ev_seq + c.ev_count - 1) "
                    "FROM chain CROSS JOIN checkpoints c ON c.session = :s AND c.step = chain.step",
                    {"s": s, "top": n}).fetchone()
                last = conn.execute("SELECT data FROM outbox WHERE seq = ?", (last_seq,)).fetchone() if count else None
                out.append(SessionInfo(s, st, n, count, load_stored_event(last[0], s, n).summary_line() if last else None,
                                       stored_updated(s, n, u)))
            return sorted(out, key=lambda i: (i.updated, i.session), reverse=True)
        return self._guard(None, None, lambda: self._tx(read, write=False))

    # -- writing -----------------------------------------------------------------------------------

    def commit(self, checkpoint: Checkpoint, delta: Delta) -> None:
        """Store `checkpoint`, its outbox events and (if asked) its errors-store rows in one transaction.

        Only what changed is written: appended messages, changed extra keys, appended
        ``extra["errors"]`` entries (the summary when it changed), pending writes when they changed.

        Raises:
            CheckpointError: the step exists already (nothing is overwritten), a value cannot be
                stored, or SQLite failed; the transaction is rolled back.
        """
        cp, session = checkpoint, checkpoint.session
        with self._lock:
            previous = self._cache.get(session)
            quick = _quick(*previous, cp, delta) if previous is not None and self.quick else None
            if previous is None:
                previous = self._load(session, None)
            prev, meta = previous if previous is not None else (None, None)
            flagged = len(cp.events) if delta.write_errors_store else 0
            catch_up = self._unstored + flagged >= STORE_BATCH
            if quick is not None:
                apply = partial(self._apply_quick, cp, meta, quick, catch_up)
            else:
                plan, enc = plan_commit(prev, meta.step if meta is not None else None, cp, delta)
                apply = partial(self._apply, cp, plan, enc, meta, catch_up)
            try:
                try:  # one attempt straight away (the lock is taken); a busy file goes through _tx's retries
                    new_meta = self._attempt(apply, "BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
                    new_meta = self._tx(apply)
            except sqlite3.IntegrityError as exc:
                self._cache.pop(session, None)
                raise CheckpointError(f"session {session!r} step {cp.step} is stored already (another writer?); "
                                      f"refusing to overwrite: {exc}", session=session, step=cp.step) from exc
            except sqlite3.Error as exc:
                self._cache.pop(session, None)
                raise CheckpointError(f"could not commit session {session!r} step {cp.step} to {self.path}: "
                                      f"{type(exc).__name__}: {exc}", session=session, step=cp.step) from exc
            self._unstored = 0 if catch_up else self._unstored + flagged
            self._commits += 1
            if self._wal.finish_due:
                self._wal.finish(self._conn)
            if CHECKPOINT_EVERY and self._commits % CHECKPOINT_EVERY == 0:
                self._wal.poke()
            self._remember(session, (cp, new_meta))

    def _apply_quick(self, cp: Checkpoint, meta: _Meta, quick: _Quick, catch_up: bool,
                     conn: sqlite3.Connection) -> _Meta:
        """`_apply` for a commit `_quick` vouched for: the same rows, without the general plan."""
        session, step, events = cp.session, cp.step, cp.events
        ex = conn.execute
        r_next = meta.rail_end
        store = 1 if events and quick.store else 0
        blocks = meta.blocks if quick.errors_present else ()
        first_seq = None
        for i, (event, text) in enumerate(zip(events, quick.texts, strict=True)):
            pos = r_next + i if quick.appended else None
            seq = ex(_INSERT_OUTBOX, _outbox_row(session, step, event, text, store, pos)).lastrowid
            if first_seq is None:
                first_seq = seq
            if pos is not None:
                blocks = _extend(blocks, pos, seq, 1)
        extra_from, extra_pending, extra_bytes, extra_delta = _write_extra(conn, cp, quick.extra, meta)
        if quick.errors_present:
            rail_start, rail_end = meta.rail_start, r_next + (len(events) if quick.appended else 0)
            if blocks and blocks[0][0] < rail_start:
                blocks = _trim(blocks, rail_start)
        else:
            rail_start = rail_end = r_next
        rail_lo, rail_hi = _bounds(blocks)
        frontier, versions, seen = quick.scheduling
        ex(_INSERT_CP,
           (step, ROW_FORMAT, cp.status, stored_time(cp.created_at), cp.interrupt, frontier, versions, seen, None, None,
            None, meta.msg_start, meta.msg_end, int(quick.errors_present), rail_start, rail_end, None, first_seq,
            len(events), rail_lo, rail_hi, extra_from, extra_delta, meta.ev_last, session))
        if catch_up:
            _catch_up(conn)
        return _Meta(step, meta.msg_start, meta.msg_end, quick.errors_present, rail_start, rail_end, None, None,
                     rail_lo, rail_hi, blocks, extra_from, extra_pending, extra_bytes,
                     step if events else meta.ev_last)

    def _apply(self, cp: Checkpoint, plan: WritePlan, enc: EncodedRows, meta: _Meta | None, catch_up: bool,
               conn: sqlite3.Connection) -> _Meta:
        session, step = cp.session, cp.step
        ex = conn.execute
        events, entries = cp.events, plan.errors_entries
        r_next = meta.rail_end if meta else 0
        # extra["errors"] entries that are this step's own events, in their order, are stored as
        # their outbox rows (rail_pos); anything else (a capper that reorders) goes to the rail table
        ks: range | list[int] | None = None
        if entries and events:
            if len(entries) == len(events) and (entries[0] is events[0] if len(events) == 1
                                                else all(a is b for a, b in zip(entries, events))):
                ks = range(len(events))
            else:
                index = {id(e): k for k, e in enumerate(events)}
                got = [index.get(id(e), -1) for e in entries]
                if got[0] >= 0 and all(a < b for a, b in zip(got, got[1:])):
                    ks = got
        rail_pos: list[int | None] = [None] * len(events)
        if ks is not None:
            for i, k in enumerate(ks):
                rail_pos[k] = r_next + i
        # outbox first: the rail points at its rows. One writer at a time (BEGIN IMMEDIATE): rowids
        # are given out in commit order, consecutive within a commit
        seq_of: dict[int, int] = {}
        seqs: list[int] = []
        first_seq = None
        if events:
            store = 1 if plan.store_events else 0
            for event, text, pos in zip(events, enc.events, rail_pos, strict=True):
                seq = ex(_INSERT_OUTBOX, _outbox_row(session, step, event, text, store, pos)).lastrowid
                seq_of[id(event)] = seq
                seqs.append(seq)
                if first_seq is None:
                    first_seq = seq
        # messages log
        m_next = meta.msg_end if meta else 0
        if enc.messages:
            _insert(conn, "INSERT INTO messages (session, pos, step, data) VALUES (?, ?, ?, ?)",
                    [(session, m_next + i, step, t) for i, t in enumerate(enc.messages)])
        if plan.messages_rewritten or meta is None:
            msg_start, msg_end = m_next, m_next + len(enc.messages)
        else:
            msg_start, msg_end = meta.msg_start, meta.msg_end + len(enc.messages)
        # extra user keys: the changes ride in the checkpoint row until a flush writes them as rows
        extra_from, extra_pending, extra_bytes, extra_delta = _write_extra(conn, cp, enc.extra, meta)
        # extra["errors"]: append (outbox rows or rail rows), move the window
        if entries and ks is None:
            rows = []
            for i, event in enumerate(entries):
                seq = seq_of.get(id(event))
                rows.append((session, r_next + i, step, seq, None if seq is not None else event.to_json()))
            _insert(conn, "INSERT INTO rail (session, pos, step, seq, data) VALUES (?, ?, ?, ?, ?)", rows)
        n = len(entries)
        blocks: tuple[Block, ...] = ()
        if not plan.errors_present:
            rail_start = rail_end = r_next
        elif plan.errors_rewritten or meta is None or not meta.rail_present:
            rail_start, rail_end = r_next, r_next + n
        else:
            rail_start, rail_end = meta.rail_start + plan.errors_dropped, meta.rail_end + n
            blocks = meta.blocks
        if plan.errors_present:
            if ks is not None:
                for i, k in enumerate(ks):
                    blocks = _extend(blocks, r_next + i, seqs[k], 1)
            if blocks and blocks[0][0] < rail_start:
                blocks = _trim(blocks, rail_start)
        rail_lo, rail_hi = _bounds(blocks)
        summary_from = None
        if plan.errors_present and plan.summary is not None:
            if plan.summary_changed or meta is None or meta.summary_from is None:
                ex("INSERT INTO summaries (session, step, data) VALUES (?, ?, ?)", (session, step, plan.summary.to_json()))
                summary_from = step
            else:
                summary_from = meta.summary_from
        pending, pending_from = pending_columns(cp, plan, meta.pending_from if meta is not None else None, meta is None)
        ex(_INSERT_CP,
           (step, ROW_FORMAT, cp.status, stored_time(cp.created_at), cp.interrupt, enc.frontier, enc.versions, enc.seen,
            enc.failure, pending, pending_from, msg_start, msg_end, int(plan.errors_present), rail_start, rail_end,
            summary_from, first_seq, len(events), rail_lo, rail_hi, extra_from, extra_delta,
            meta.ev_last if meta is not None else None, session))
        # status, steps and errors of `sessions()` are read from the newest checkpoint and the outbox
        if meta is None:
            ex("INSERT OR IGNORE INTO sessions (session) VALUES (?)", (session,))
        # the dedicated errors store is filled from the outbox in batches
        if catch_up:
            _catch_up(conn)
        return _Meta(step, msg_start, msg_end, plan.errors_present, rail_start, rail_end, summary_from, pending_from,
                     rail_lo, rail_hi, blocks, extra_from, extra_pending, extra_bytes,
                     step if events else meta.ev_last if meta is not None else None)

    # -- migration off extra["errors"] -------------------------------------------------------------

    def backfill_errors(self, dry_run: bool) -> BackfillReport:
        """Copy the events of every stored checkpoint's ``extra["errors"]`` into the errors store.

        Idempotent (the store ignores ids it has). Cap summaries are not events and are skipped.
        Each event keeps the step it was committed at, so `stored_errors` stays in emission order.

        Args:
            dry_run: count only; write nothing.

        Returns: a `BackfillReport` (``events_added``: added, or that would be added on a dry run).
        """
        def scan(conn: sqlite3.Connection) -> list[tuple[str, int, list[tuple[int, int]]]]:
            windows: dict[str, list[tuple[int, int]]] = {}
            counts: dict[str, int] = {}
            for session, start, end in conn.execute(
                    "SELECT session, rail_start, rail_end FROM checkpoints WHERE rail_present = 1 ORDER BY session"):
                counts[session] = counts.get(session, 0) + 1
                windows.setdefault(session, []).append((start, end))
            return [(s, counts[s], union_windows(w)) for s, w in windows.items()]

        # not a dry run: the errors store catches up with the outbox first (what it already holds is
        # not added twice, and keeps the step and order it was committed with)
        plan = self._guard(None, None, lambda: self._tx(scan, write=False) if dry_run else self._store_read(scan))
        report = BackfillReport(dry_run=dry_run)
        sessions = checkpoints = seen_total = added_total = 0
        for session, n_checkpoints, windows in plan:
            sessions += 1
            checkpoints += n_checkpoints

            def fill(conn: sqlite3.Connection, session: str = session,
                     windows: list[tuple[int, int]] = windows) -> tuple[int, int]:
                have = {r[0] for r in conn.execute("SELECT id FROM errors WHERE session = ?", (session,))}
                # flagged outbox rows the store has not copied yet count as stored (a dry run does not copy)
                have.update(r[0] for r in conn.execute(
                    f"{_event_steps(_LATEST, '-1')}SELECT o.id FROM {_CHAIN_OUTBOX} AND +o.store = 1 AND +o.seq > "
                    "CAST(COALESCE((SELECT value FROM meta WHERE key = 'errors_cursor'), 0) AS INTEGER)", {"s": session}))
                rows, seen = [], 0
                for pos, step, seq, event in _legacy_rows(conn, session, windows):
                    seen += 1
                    key = str(event.id)
                    if key not in have:
                        rows.append((key, session, step, pos, event.node, event.code, event.scope.kind,
                                     stored_time(event.when), seq, None if seq is not None else event.to_json()))
                added = 0
                if rows and not dry_run:
                    before = conn.total_changes
                    conn.executemany("INSERT OR IGNORE INTO errors (id, session, step, ord, node, code, scope, at, "
                                     "seq, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                    added = conn.total_changes - before
                else:
                    added = len(rows)
                return seen, added

            seen_n, added_n = self._guard(session, None, lambda fill=fill: self._tx(fill, write=not dry_run))
            seen_total += seen_n
            added_total += added_n
        return BackfillReport(sessions=sessions, checkpoints=checkpoints, events_seen=seen_total,
                              events_added=added_total, dry_run=report.dry_run)

    def legacy_events(self, session: str) -> list[ErrorEvent]:
        """Every event any stored checkpoint of `session` held in ``extra["errors"]``, once each, in
        the order they were appended (cap summaries skipped): what `backfill_errors` would copy."""
        def read(conn: sqlite3.Connection) -> list[ErrorEvent]:
            windows = union_windows([(a, b) for a, b in conn.execute(
                "SELECT rail_start, rail_end FROM checkpoints WHERE session = ? AND rail_present = 1", (session,))])
            return [event for _, _, _, event in _legacy_rows(conn, session, windows)]
        return self._guard(session, None, lambda: self._tx(read, write=False))

    # -- lifecycle ---------------------------------------------------------------------------------

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` answer (``"ok"`` when the file is sound)."""
        with self._lock:
            return "\n".join(r[0] for r in self._conn.execute("PRAGMA integrity_check"))

    def close(self) -> None:
        """Copy what this store committed into the errors store, release its session claims, close the connection."""
        self._flush()
        for session in list(self._mine):
            self.release(session)
        self._wal.close()
        with self._lock:
            self._cache.clear()
            self._conn.close()


def _legacy_rows(conn: sqlite3.Connection, session: str, windows: list[tuple[int, int]]
                 ) -> Iterator[tuple[int, int, int | None, ErrorEvent]]:
    """``(rail position, step, outbox seq, event)`` of each distinct event in `session`'s errors rail
    windows, in position order; cap summaries are skipped."""
    _check_chain(conn, session)
    seen: set[str] = set()
    for start, end in windows:
        for pos, step, seq, text in conn.execute(
                f"{_event_steps(_LATEST, '-1')}SELECT r.pos, r.step, r.seq, COALESCE(r.data, o.data) "
                "FROM rail r LEFT JOIN outbox o ON o.seq = r.seq WHERE r.session = :s AND r.pos >= :a "
                f"AND r.pos < :b UNION ALL SELECT o.rail_pos, o.step, o.seq, o.data FROM {_CHAIN_OUTBOX} "
                "AND o.rail_pos >= :a AND o.rail_pos < :b ORDER BY 1", {"s": session, "a": start, "b": end}):
            event = load_stored_event(text, session, step, f'extra["errors"] entry {pos}')
            key = str(event.id)
            if event.is_summary or key in seen:
                continue
            seen.add(key)
            yield pos, step, seq, event


def _insert(conn: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if len(rows) == 1:
        conn.execute(sql, rows[0])  # cheaper than executemany for the common single row
    else:
        conn.executemany(sql, rows)


def _write_extra(conn: sqlite3.Connection, cp: Checkpoint, changed: tuple[tuple[str, str | None], ...],
                 meta: _Meta | None) -> tuple[int | None, frozenset[str], int, str | None]:
    """Store the changed user keys of `cp` (``(key, json)``, ``None``: deleted): as the checkpoint's
    ``extra_delta``, or, when a flush is due, as extra rows of every key changed since the last one.

    Returns the new row's ``extra_from``, the keys pending after it, their delta bytes, and its ``extra_delta``.
    """
    pending = meta.extra_pending if meta is not None else frozenset()
    if not changed and not pending:
        return None, frozenset(), 0, None
    delta = dumps(changed) if changed else None
    size = (meta.extra_bytes if meta is not None else 0) + (len(delta) if delta else 0)
    since = None if meta is None else meta.step if meta.extra_from is None else meta.extra_from
    if since is not None and cp.step - since < EXTRA_FLUSH and size < EXTRA_FLUSH_BYTES:
        if all(k in pending for k, _ in changed):  # the usual case: the same keys change again
            return since, pending, size, delta
        return since, pending.union(k for k, _ in changed), size, delta
    rows = dict(changed)
    for key in pending - rows.keys():
        rows[key] = dumps(cp.extra[key]) if key in cp.extra else None
    _insert(conn, "INSERT INTO extra (session, key, step, value) VALUES (?, ?, ?, ?)",
            [(cp.session, k, cp.step, v) for k, v in rows.items()])
    return None, frozenset(), 0, None


def _check_row(session: str, step: Any, row: tuple[Any, ...]) -> None:
    """Refuse a checkpoint row whose columns have the wrong types (naming the first bad one)."""
    (_, _, status, created_at, interrupt, *_, pending_from, msg_start, msg_end, rail_present, rail_start, rail_end,
     summary_from, ev_seq, ev_count, rail_lo, rail_hi, extra_from, extra_delta, ev_prev) = row
    checks = {"step": (step, int), "status": (status, str), "created_at": (created_at, str),
              "interrupt": (interrupt, (str, type(None))), "pending_from": (pending_from, (int, type(None))),
              "msg_start": (msg_start, int), "msg_end": (msg_end, int), "rail_present": (rail_present, (int, bool)),
              "rail_start": (rail_start, int), "rail_end": (rail_end, int),
              "summary_from": (summary_from, (int, type(None))), "ev_seq": (ev_seq, (int, type(None))),
              "ev_count": (ev_count, int), "rail_lo": (rail_lo, (int, type(None))),
              "rail_hi": (rail_hi, (int, type(None))), "extra_from": (extra_from, (int, type(None))),
              "extra_delta": (extra_delta, (str, type(None))), "ev_prev": (ev_prev, (int, type(None)))}
    for name, (value, kind) in checks.items():
        if not isinstance(value, kind) or (name == "ev_count" and value and ev_seq is None) or (
                name == "rail_hi" and (rail_lo is None) != (rail_hi is None)):
            raise corrupt(session, step if isinstance(step, int) else None,
                          f"checkpoint column {name} holds {value!r}, which is not valid there")
    for name, value in (("extra_from", extra_from), ("ev_prev", ev_prev)):
        if value is not None and isinstance(step, int) and not value < step:
            raise corrupt(session, step, f"checkpoint column {name} holds {value!r}, which is not valid there")


def _extra_at(conn: sqlite3.Connection, session: str, step: int, extra_from: int | None
              ) -> tuple[list[tuple[str, str | None]], frozenset[str], int]:
    """The user keys of `session`'s extra at `step` as ``(key, json)`` (``None``: deleted), with the
    keys changed after `extra_from` (not in the extra table yet) and the bytes of their deltas."""
    upto = step if extra_from is None else extra_from
    values: dict[str, str | None] = {k: v for k, v, _ in conn.execute(
        "SELECT key, value, MAX(step) FROM extra WHERE session = ? AND step <= ? GROUP BY key", (session, upto))}
    if extra_from is None:
        return list(values.items()), frozenset(), 0
    pending: set[str] = set()
    size = 0
    for at, text in conn.execute("SELECT step, extra_delta FROM checkpoints WHERE session = ? AND step > ? "
                                 "AND step <= ? AND extra_delta IS NOT NULL ORDER BY step", (session, extra_from, step)):
        size += len(text)
        for key, value in _load_delta(session, at, text):
            values[key] = value
            pending.add(key)
    return list(values.items()), frozenset(pending), size


def _load_delta(session: str, step: int, text: str) -> list[tuple[str, str | None]]:
    """Decode a checkpoint's ``extra_delta``: ``[[key, json or null], ...]``."""
    data = load_stored(text, session, step, "extra_delta")
    if not isinstance(data, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], (str, type(None)))
            for p in data):
        raise corrupt(session, step, "checkpoint column extra_delta is not a list of [key, value] pairs")
    return [(k, v) for k, v in data]


def _catch_up(conn: sqlite3.Connection) -> None:
    """Copy the outbox rows flagged for the errors store after the store cursor into it; move the cursor.

    Idempotent (the store ignores ids it has; the first committed copy of an id wins), so
    concurrent or repeated catch-ups (another process, a crash between two) are harmless. Runs
    inside the caller's write transaction. A missing or unreadable cursor restarts from 0.
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'errors_cursor'").fetchone()
    try:
        cursor = int(row[0]) if row else 0
    except (TypeError, ValueError):
        cursor = 0
    top = conn.execute("SELECT MAX(seq) FROM outbox").fetchone()[0]
    if type(top) is not int or top <= cursor:
        return
    conn.execute("INSERT OR IGNORE INTO errors (id, session, step, ord, node, code, scope, at, seq) "
                 "SELECT id, session, step, seq, node, code, scope, at, seq FROM outbox "
                 "WHERE seq > ? AND seq <= ? AND store = 1 ORDER BY seq", (cursor, top))
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('errors_cursor', ?)", (str(top),))


def _behind(conn: sqlite3.Connection) -> bool:
    """Whether the outbox has rows after the errors-store cursor (a catch-up is due)."""
    row = conn.execute("SELECT (SELECT MAX(seq) FROM outbox), (SELECT value FROM meta WHERE key = 'errors_cursor')"
                       ).fetchone()
    top, cursor = row
    if top is None:
        return False
    try:
        return top > int(cursor)
    except (TypeError, ValueError):
        return True


def _window(conn: sqlite3.Connection, session: str, step: int, start: int, end: int, lo: int | None,
            hi: int | None) -> tuple[list[tuple[Any, str | None]], tuple[Block, ...]]:
    """The entries ``[start, end)`` of a session's errors rail, in order, and the runs of them that are outbox rows.

    An entry is an outbox row (``rail_pos``, between seqs `lo` and `hi`) when it was one of its
    step's own events, else a ``rail`` row (rewritten windows, schema-1 data).
    """
    entries: list[tuple[Any, str | None]] = conn.execute(
        "SELECT r.pos, COALESCE(r.data, o.data) FROM rail r LEFT JOIN outbox o ON o.seq = r.seq "
        "WHERE r.session = ? AND r.pos >= ? AND r.pos < ? ORDER BY r.pos", (session, start, end)).fetchall()
    blocks: tuple[Block, ...] = ()
    if lo is not None:
        _check_chain(conn, session, ":step", {"step": step})
        # through the checkpoints from the step of seq `lo` on: a seq range alone would also walk every
        # other session's rows committed in between
        refs = conn.execute(f"{_event_steps(':step', '(SELECT step FROM outbox WHERE seq = :lo)')}SELECT o.rail_pos, "
                            f"o.seq, o.data FROM {_CHAIN_OUTBOX} AND +o.seq >= :lo AND +o.seq <= :hi "
                            "AND o.rail_pos >= :a AND o.rail_pos < :b ORDER BY o.seq",
                            {"s": session, "step": step, "lo": lo, "hi": hi, "a": start, "b": end}).fetchall()
        runs: list[list[int]] = []
        last = -1
        for pos, seq, _ in refs:
            if type(pos) is not int or pos <= last:
                raise corrupt(session, step, f'the outbox row {seq} holds extra["errors"] position {pos!r}, '
                              'which is not valid there')
            last = pos
            if runs and runs[-1][0] + runs[-1][2] == pos and runs[-1][1] + runs[-1][2] == seq:
                runs[-1][2] += 1
            else:
                runs.append([pos, seq, 1])
        blocks = tuple((p, q, n) for p, q, n in runs)
        if entries:
            entries = sorted(entries + [(pos, text) for pos, _, text in refs], key=lambda e: e[0])
        else:
            entries = [(pos, text) for pos, _, text in refs]
    return entries, blocks



__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteCheckpointer"]
