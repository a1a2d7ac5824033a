"""The PostgreSQL checkpointer behind the ``postgres_store`` plugin (a private module, not an entry point).

The layout mirrors the SQLite store (see its module docstring): a small row per checkpoint with
windows into per-session append-only logs (messages, the ``extra["errors"]`` rail), per-key rows
for changed ``extra`` keys, the outbox with a global sequence and sink cursors, the dedicated
errors store, and a ``meta`` table with the schema version — all in one PostgreSQL schema.

Concurrency, for many workers on many machines:

* A session is claimed with ``pg_try_advisory_lock`` (a 64-bit hash of the session id) on a
  connection held while the session runs; the server drops it if the worker dies.
* Outbox sequence numbers are given out under a transaction-scoped advisory lock, so they are
  committed in order and a sink cursor never skips a row committed late.

psycopg 3 is imported lazily, so the plugin loads without it (``pip install 'railgraph[postgres]'``).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

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
    load_stored_event,
    pending_columns,
    plan_commit,
    stored_time,
)
from railgraph.errors import CheckpointError, SessionBusyError
from railgraph.events import ErrorEvent

SCHEMA_VERSION = 1
ROW_FORMAT = 1
OUTBOX_LOCK = 0x7261696C6F757462  # "railoutb": serialises outbox sequence numbers
T = TypeVar("T")
_MALFORMED = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError)

_V1 = (
    "CREATE TABLE {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE {s}.sessions (session TEXT PRIMARY KEY, errors BIGINT NOT NULL, last_error TEXT)",
    """CREATE TABLE {s}.checkpoints (session TEXT NOT NULL, step BIGINT NOT NULL, format INTEGER NOT NULL,
        status TEXT NOT NULL, created_at TEXT NOT NULL, interrupt TEXT, frontier TEXT NOT NULL,
        versions TEXT NOT NULL, seen TEXT NOT NULL, failure TEXT, pending TEXT, pending_from BIGINT,
        msg_start BIGINT NOT NULL, msg_end BIGINT NOT NULL, rail_present BOOLEAN NOT NULL,
        rail_start BIGINT NOT NULL, rail_end BIGINT NOT NULL, summary_from BIGINT,
        ev_seq BIGINT, ev_count INTEGER NOT NULL, PRIMARY KEY (session, step))""",
    """CREATE TABLE {s}.messages (session TEXT NOT NULL, pos BIGINT NOT NULL, step BIGINT NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (session, pos))""",
    """CREATE TABLE {s}.extra (session TEXT NOT NULL, key TEXT NOT NULL, step BIGINT NOT NULL, value TEXT,
        PRIMARY KEY (session, key, step))""",
    """CREATE TABLE {s}.rail (session TEXT NOT NULL, pos BIGINT NOT NULL, step BIGINT NOT NULL, seq BIGINT,
        data TEXT, PRIMARY KEY (session, pos))""",
    """CREATE TABLE {s}.summaries (session TEXT NOT NULL, step BIGINT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (session, step))""",
    """CREATE TABLE {s}.outbox (seq BIGINT PRIMARY KEY, session TEXT NOT NULL, step BIGINT NOT NULL,
        id TEXT NOT NULL, data TEXT NOT NULL)""",
    "CREATE INDEX outbox_session ON {s}.outbox (session, seq)",
    "CREATE TABLE {s}.cursors (sink TEXT PRIMARY KEY, seq BIGINT NOT NULL)",
    """CREATE TABLE {s}.errors (id TEXT PRIMARY KEY, session TEXT NOT NULL, step BIGINT NOT NULL,
        ord BIGINT NOT NULL, node TEXT, code TEXT, scope TEXT NOT NULL, at TEXT NOT NULL, seq BIGINT, data TEXT)""",
    "CREATE INDEX errors_session ON {s}.errors (session, step, ord)",
    "CREATE INDEX errors_node ON {s}.errors (node, at)",
    "CREATE INDEX errors_code ON {s}.errors (code, at)",
    "CREATE INDEX errors_at ON {s}.errors (at)",
)

# index i upgrades schema version i to i + 1; a future version appends its statements here
MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)

_CP_COLS = ("step, format, status, created_at, interrupt, frontier, versions, seen, failure, pending, pending_from, "
            "msg_start, msg_end, rail_present, rail_start, rail_end, summary_from, ev_seq, ev_count")


@dataclass(frozen=True, slots=True)
class _Meta:
    step: int
    msg_start: int
    msg_end: int
    rail_present: bool
    rail_start: int
    rail_end: int
    summary_from: int | None
    pending_from: int | None


CONNECT_HELP = ("Check that the PostgreSQL server runs and accepts connections, and that [plugins.postgres_store] "
                "dsn (or RAILGRAPH_PLUGINS__POSTGRES_STORE__DSN) points at it; nothing was stored.")


def _dsn_params(psycopg: Any, dsn: str) -> dict[str, Any] | None:
    """The DSN's parameters (``None`` when libpq cannot parse it)."""
    try:
        return dict(psycopg.conninfo.conninfo_to_dict(dsn))
    except psycopg.Error:
        return None


def _shown_dsn(psycopg: Any, dsn: str) -> str:
    """The DSN, for messages: its parameters without any password (``password``, ``sslpassword``)."""
    params = _dsn_params(psycopg, dsn)
    if params is None:
        return "(a DSN that does not parse)"
    shown = {k: v for k, v in params.items() if "password" not in k.lower()}
    return psycopg.conninfo.make_conninfo(**shown) or "(the libpq defaults)"


def _key(text: str) -> int:
    """A signed 64-bit advisory-lock key for `text`."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


class PostgresCheckpointer(LatestCache):
    """A store in a PostgreSQL schema, shared by many workers.

    Args:
        dsn: a libpq connection string or URL.
        schema: the schema holding the tables (created if missing).

    Raises:
        CheckpointError: psycopg is not installed, the server is unreachable, or the schema's
            version is newer or unknown (nothing is changed then).
    """

    has_errors_store = True

    def __init__(self, dsn: str, *, schema: str = "railgraph") -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
            raise CheckpointError(f"postgres schema name {schema!r} must be a plain SQL identifier")
        try:
            import psycopg
        except ImportError as exc:
            raise CheckpointError("the postgres backend needs psycopg 3: pip install 'railgraph[postgres]'") from exc
        self._psycopg = psycopg
        self.dsn, self.schema = dsn, schema
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[Checkpoint, _Meta]] = {}
        self._held: dict[str, int] = {}
        self._claims: Any = None
        self._sink_owners: dict[str, int] = {}  # sink -> the thread holding its delivery lease
        self._conn: Any = None
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            if _dsn_params(psycopg, dsn) is None:  # libpq's parse error quotes the DSN's text, password and all
                raise CheckpointError(f"the PostgreSQL DSN does not parse ({type(exc).__name__}); see "
                                      "[plugins.postgres_store] dsn", help=CONNECT_HELP) from None
            raise CheckpointError(f"cannot connect to the PostgreSQL store at {self.where()} (schema {schema!r}): "
                                  f"{type(exc).__name__}: {exc}", help=CONNECT_HELP) from exc
        try:
            self._setup()
        except CheckpointError:
            self.close()
            raise
        except psycopg.Error as exc:
            self.close()
            raise CheckpointError(f"cannot open the PostgreSQL store at {self.where()} (schema {schema!r}): "
                                  f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def missing(dsn: str, schema: str) -> str | None:
        """What is missing when `schema` at `dsn` holds no railgraph store (``None``: it does, or the
        server cannot be asked). Reads the catalog only: creates nothing."""
        try:
            import psycopg
        except ImportError:
            return None
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                # the catalog, not information_schema (which lists only the tables the role has a
                # privilege on); the name folded to lower case, as the unquoted CREATE SCHEMA did
                found = conn.execute("SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
                                     "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'meta'",
                                     (schema.lower(),)).fetchone()
        except psycopg.Error:
            return None  # opening the store reports the connection problem
        if found is not None:
            return None
        return (f"no railgraph store in schema {schema!r} at {_shown_dsn(psycopg, dsn)} "
                "(nothing has run with these settings)")

    def where(self) -> str:
        """The DSN, for messages: its parameters without any password (``password``, ``sslpassword``)."""
        return _shown_dsn(self._psycopg, self.dsn)

    # -- plumbing ----------------------------------------------------------------------------------

    def _connect(self) -> Any:
        return self._psycopg.connect(self.dsn, autocommit=True)

    def _sql(self, text: str) -> str:
        return text.replace("{s}", self.schema)

    def _tx(self, fn: Callable[[Any], T], *, write: bool = True) -> T:
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            conn = self._conn
            with conn.transaction():
                if not write:
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return fn(conn)

    def _guard(self, session: str | None, step: int | None, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except CheckpointError:
            raise
        except self._psycopg.Error as exc:
            where = f" (session {session!r}" + (f" step {step}" if step is not None else "") + ")" if session else ""
            raise CheckpointError(f"PostgreSQL store failed{where}: {type(exc).__name__}: {exc}",
                                  session=session, step=step) from exc
        except _MALFORMED as exc:  # a column of the wrong type or shape: unreadable stored data, not a bug
            raise corrupt(session or "?", step, f"stored data is malformed ({type(exc).__name__}: {exc})", exc) from exc

    def _version(self, conn: Any) -> int | None:
        if conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.meta",)).fetchone()[0] is None:
            return None
        row = conn.execute(self._sql("SELECT value FROM {s}.meta WHERE key = 'schema_version'")).fetchone()
        raw = row[0] if row else None
        try:
            version = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise CheckpointError(f"PostgreSQL schema {self.schema!r}: unknown schema version {raw!r}; this railgraph "
                                  f"writes version {SCHEMA_VERSION}; nothing was changed") from None
        if version > SCHEMA_VERSION or version < 1:
            raise CheckpointError(f"PostgreSQL schema {self.schema!r}: schema version {version} is "
                                  f"{'newer than' if version > SCHEMA_VERSION else 'not one of'} the versions this "
                                  f"railgraph supports (1..{SCHEMA_VERSION}); upgrade railgraph; nothing was changed")
        return version

    def _setup(self) -> None:
        if self._tx(self._version, write=False) == SCHEMA_VERSION:
            return

        def migrate(conn: Any) -> None:
            current = self._version(conn) or 0  # again, under the lock: another worker may have won
            if current == 0:
                conn.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {s}"))
            for target in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target - 1]:
                    conn.execute(self._sql(statement))
                conn.execute(self._sql("INSERT INTO {s}.meta (key, value) VALUES ('schema_version', %s) "
                                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value"), (str(target),))
        # A session-level lock taken before the transaction: a transaction that waited for a lock
        # inside itself may still see the catalog as it was before the winner's DDL committed.
        key = _key("railgraph-migrate:" + self.schema)
        with self._lock:
            self._conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                self._tx(migrate)
            finally:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    # -- claims ------------------------------------------------------------------------------------

    def acquire(self, session: str) -> None:
        """Claim `session` with a server-side advisory lock; `SessionBusyError` if another worker has it."""
        me = threading.get_ident()
        with self._lock:
            owner = self._held.get(session)
            if owner is not None:
                if owner == me:
                    return
                raise SessionBusyError(f"session {session!r} is being run by another worker in this process",
                                       session=session)

            def claim() -> bool:
                if self._claims is None or self._claims.closed or self._claims.broken:
                    self._claims = self._connect()
                return bool(self._claims.execute("SELECT pg_try_advisory_lock(%s)",
                                                 (_key("railgraph-session:" + session),)).fetchone()[0])
            if not self._guard(session, None, claim):
                raise SessionBusyError(f"session {session!r} is being run by another worker (PostgreSQL advisory "
                                       "lock held)", session=session)
            self._held[session] = me

    def _check_claim(self, cur: Any, session: str) -> None:
        """Refuse to commit if the server no longer grants our claim (its connection was lost)."""
        claims = self._claims
        pid = claims.info.backend_pid if claims is not None and not claims.closed else None
        key = _key("railgraph-session:" + session) & 0xFFFFFFFFFFFFFFFF
        held = pid is not None and cur.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s AND classid = %s "
            "AND objid = %s AND objsubid = 1", (pid, key >> 32, key & 0xFFFFFFFF)).fetchone() is not None
        if not held:
            raise SessionBusyError(f"the claim on session {session!r} was lost (its connection to PostgreSQL "
                                   "dropped); not committing, another worker may run it now", session=session)

    def release(self, session: str) -> None:
        """Give up the claim on `session` (idempotent)."""
        with self._lock:
            self._cache.pop(session, None)
            if self._held.pop(session, None) is None or self._claims is None or self._claims.closed:
                return
            try:
                self._claims.execute("SELECT pg_advisory_unlock(%s)", (_key("railgraph-session:" + session),))
            except self._psycopg.Error:
                self._claims.close()  # the server drops the claim with the connection

    def lease_sink(self, sink: str) -> bool:
        """Take `sink`'s delivery lease for this worker (``pg_try_advisory_lock``, no waiting); ``False``
        if another worker holds it (it then delivers the outbox's backlog, every worker's events included).

        The advisory lock belongs to the claims connection, which this store's threads share: the
        thread that took the lease owns it, and another thread of this process is another worker.
        """
        me = threading.get_ident()
        with self._lock:
            owner = self._sink_owners.get(sink)
            if owner is not None:
                return owner == me

            def take() -> bool:
                if self._claims is None or self._claims.closed or self._claims.broken:
                    self._claims = self._connect()
                return bool(self._claims.execute("SELECT pg_try_advisory_lock(%s)",
                                                 (_key("railgraph-sink:" + sink),)).fetchone()[0])
            got = self._guard(None, None, take)
            if got:
                self._sink_owners[sink] = me
            return got

    def release_sink(self, sink: str) -> None:
        """Give the delivery lease of `sink` back."""
        with self._lock:
            if self._sink_owners.pop(sink, None) is None or self._claims is None or self._claims.closed:
                return
            try:
                self._claims.execute("SELECT pg_advisory_unlock(%s)", (_key("railgraph-sink:" + sink),))
            except self._psycopg.Error:
                self._claims.close()  # the server drops every lock of the connection with it

    # -- reading -----------------------------------------------------------------------------------

    def _decode(self, conn: Any, session: str, row: tuple[Any, ...]) -> tuple[Checkpoint, _Meta]:
        (step, fmt, status, created_at, interrupt, frontier, versions, seen, failure, pending, pending_from,
         msg_start, msg_end, rail_present, rail_start, rail_end, summary_from, ev_seq, ev_count) = row
        if fmt != ROW_FORMAT:
            raise corrupt(session, step, f"unknown checkpoint format version {fmt!r} (this railgraph reads "
                          f"{ROW_FORMAT}); upgrade railgraph")
        _check_row(session, step, row)
        q = self._sql
        messages = conn.execute(q("SELECT pos, data FROM {s}.messages WHERE session = %s AND pos >= %s AND pos < %s "
                                  "ORDER BY pos"), (session, msg_start, msg_end)).fetchall()
        if len(messages) != msg_end - msg_start:
            raise corrupt(session, step, f"{msg_end - msg_start - len(messages)} message row(s) are missing")
        extra = conn.execute(q("SELECT DISTINCT ON (key) key, value FROM {s}.extra WHERE session = %s AND step <= %s "
                               "ORDER BY key, step DESC"), (session, step)).fetchall()
        errors: list[tuple[Any, str | None]] | None = None
        if rail_present:
            errors = []
            if summary_from is not None:
                srow = conn.execute(q("SELECT data FROM {s}.summaries WHERE session = %s AND step = %s"),
                                    (session, summary_from)).fetchone()
                errors.append((f"(the cap summary of step {summary_from})", srow[0] if srow else None))
            errors += conn.execute(q(
                "SELECT r.pos, COALESCE(r.data, o.data) FROM {s}.rail r LEFT JOIN {s}.outbox o ON o.seq = r.seq "
                "WHERE r.session = %s AND r.pos >= %s AND r.pos < %s ORDER BY r.pos"),
                (session, rail_start, rail_end)).fetchall()
            if len(errors) != rail_end - rail_start + (summary_from is not None):
                raise corrupt(session, step, 'entries of extra["errors"] are missing')
        events = conn.execute(q("SELECT seq, data FROM {s}.outbox WHERE seq >= %s AND seq < %s ORDER BY seq"),
                              (ev_seq, ev_seq + ev_count)).fetchall() if ev_count else []
        if len(events) != ev_count:
            raise corrupt(session, step, "outbox events of the checkpoint are missing")
        if pending_from is not None and pending_from != step:
            prow = conn.execute(q("SELECT pending FROM {s}.checkpoints WHERE session = %s AND step = %s"),
                                (session, pending_from)).fetchone()
            pending = prow[0] if prow else None
            if pending is None:
                raise corrupt(session, step, f"the pending writes stored at step {pending_from} are missing")
        cp = decode_checkpoint(session, step, status=status, created_at=created_at, interrupt=interrupt,
                               frontier=frontier, versions=versions, seen=seen, failure=failure, pending=pending,
                               messages=messages, extra=extra, errors=errors, events=events)
        return cp, _Meta(step, msg_start, msg_end, bool(rail_present), rail_start, rail_end, summary_from, pending_from)

    def _load(self, session: str, step: int | None) -> tuple[Checkpoint, _Meta] | None:
        def read(conn: Any) -> tuple[Checkpoint, _Meta] | None:
            if step is None:
                row = conn.execute(self._sql(f"SELECT {_CP_COLS} FROM {{s}}.checkpoints WHERE session = %s "
                                             "ORDER BY step DESC LIMIT 1"), (session,)).fetchone()
            else:
                row = conn.execute(self._sql(f"SELECT {_CP_COLS} FROM {{s}}.checkpoints WHERE session = %s "
                                             "AND step = %s"), (session, step)).fetchone()
            return None if row is None else self._decode(conn, session, row)
        return self._guard(session, step, lambda: self._tx(read, write=False))

    def history(self, session: str) -> list[tuple[int, str, datetime]]:
        """Every checkpoint of `session` as ``(step, status, created_at)``, oldest first."""
        def read(conn: Any) -> list[tuple[int, str, datetime]]:
            out = []
            for step, status, created in conn.execute(self._sql(
                    "SELECT step, status, created_at FROM {s}.checkpoints WHERE session = %s ORDER BY step"),
                    (session,)):
                try:
                    out.append((step, status, datetime.fromisoformat(created)))
                except (TypeError, ValueError) as exc:
                    raise corrupt(session, step, f"created_at {created!r} is not a time", exc) from exc
            return out
        return self._guard(session, None, lambda: self._tx(read, write=False))

    def _events(self, session: str, sql: str, args: tuple[Any, ...]) -> list[ErrorEvent]:
        def read(conn: Any) -> list[ErrorEvent]:
            return [load_stored_event(text, session, step) for step, text in conn.execute(self._sql(sql), args)]
        return self._guard(session, None, lambda: self._tx(read, write=False))

    def session_events(self, session: str) -> list[ErrorEvent]:
        """Every event committed for `session` (the outbox), in emission order."""
        return self._events(session, "SELECT step, data FROM {s}.outbox WHERE session = %s ORDER BY seq", (session,))

    def stored_errors(self, session: str) -> list[ErrorEvent]:
        """The errors store's events of `session`, in emission order (backfilled ones included)."""
        return self._events(session, "SELECT e.step, COALESCE(e.data, o.data) FROM {s}.errors e LEFT JOIN {s}.outbox o "
                            "ON o.seq = e.seq WHERE e.session = %s ORDER BY e.step, e.ord", (session,))

    def undelivered(self, sink: str, limit: int) -> list[tuple[int, str, ErrorEvent]]:
        """Up to `limit` outbox entries after `sink`'s cursor, oldest first."""
        def read(conn: Any) -> list[tuple[int, str, ErrorEvent]]:
            rows = conn.execute(self._sql(
                "SELECT seq, session, step, data FROM {s}.outbox WHERE seq > COALESCE((SELECT seq FROM {s}.cursors "
                "WHERE sink = %s), 0) ORDER BY seq LIMIT %s"), (sink, limit)).fetchall()
            if not rows:
                cursor, top = conn.execute(self._sql("SELECT (SELECT seq FROM {s}.cursors WHERE sink = %s), "
                                                     "(SELECT MAX(seq) FROM {s}.outbox)"), (sink,)).fetchone()
                check_cursor(sink, cursor, top)
            return [(seq, s, load_stored_event(text, s, step)) for seq, s, step, text in rows]
        return self._guard(None, None, lambda: self._tx(read, write=False))

    def ack(self, sink: str, seq: int) -> None:
        """Move `sink`'s cursor to `seq` (never backwards)."""
        self._guard(None, None, lambda: self._tx(lambda c: c.execute(self._sql(
            "INSERT INTO {s}.cursors (sink, seq) VALUES (%s, %s) ON CONFLICT (sink) DO UPDATE "
            "SET seq = GREATEST({s}.cursors.seq, excluded.seq)"), (sink, seq))))

    def sessions(self) -> list[SessionInfo]:
        """Every stored session, most recently updated first."""
        def read(conn: Any) -> list[SessionInfo]:
            rows = conn.execute(self._sql(
                "SELECT s.session, c.status, c.step, s.errors, s.last_error, c.created_at FROM {s}.sessions s "
                "JOIN LATERAL (SELECT status, step, created_at FROM {s}.checkpoints WHERE session = s.session "
                "ORDER BY step DESC LIMIT 1) c ON TRUE")).fetchall()
            out = [SessionInfo(s, st, n, e, last, stored_updated(s, n, u)) for s, st, n, e, last, u in rows]
            return sorted(out, key=lambda i: (i.updated, i.session), reverse=True)
        return self._guard(None, None, lambda: self._tx(read, write=False))

    # -- writing -----------------------------------------------------------------------------------

    def commit(self, checkpoint: Checkpoint, delta: Delta) -> None:
        """Store `checkpoint`, its outbox events and (if asked) its errors-store rows in one transaction.

        Raises:
            CheckpointError: the step exists already (nothing is overwritten), a value cannot be
                stored, or the server failed; the transaction is rolled back.
        """
        cp, session = checkpoint, checkpoint.session
        with self._lock:
            previous = self._cache.get(session) or self._load(session, None)
            prev, meta = previous if previous is not None else (None, None)
            plan, enc = plan_commit(prev, meta.step if meta is not None else None, cp, delta)
            try:
                new_meta = self._tx(lambda conn: self._apply(conn, cp, plan, enc, meta))
            except self._psycopg.errors.UniqueViolation as exc:
                self._cache.pop(session, None)
                raise CheckpointError(f"session {session!r} step {cp.step} is stored already (another writer?); "
                                      f"refusing to overwrite: {exc}", session=session, step=cp.step) from exc
            except self._psycopg.Error as exc:
                self._cache.pop(session, None)
                raise CheckpointError(f"could not commit session {session!r} step {cp.step} to PostgreSQL: "
                                      f"{type(exc).__name__}: {exc}", session=session, step=cp.step) from exc
            self._remember(session, (cp, new_meta))

    def _apply(self, conn: Any, cp: Checkpoint, plan: WritePlan, enc: EncodedRows, meta: _Meta | None) -> _Meta:
        session, step, q = cp.session, cp.step, self._sql
        cur = conn.cursor()
        if session in self._held:
            self._check_claim(cur, session)
        seq_of: dict[int, int] = {}
        first_seq = None
        if enc.events:
            # sequence numbers are handed out in commit order: a sink cursor never skips a late commit
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (OUTBOX_LOCK,))
            first_seq = cur.execute(q("SELECT COALESCE(MAX(seq), 0) + 1 FROM {s}.outbox")).fetchone()[0]
            rows = []
            for i, (event, text) in enumerate(zip(cp.events, enc.events, strict=True)):
                seq_of[id(event)] = first_seq + i
                rows.append((first_seq + i, session, step, str(event.id), text))
            cur.executemany(q("INSERT INTO {s}.outbox (seq, session, step, id, data) VALUES (%s, %s, %s, %s, %s)"), rows)
        m_next = meta.msg_end if meta else 0
        if enc.messages:
            cur.executemany(q("INSERT INTO {s}.messages (session, pos, step, data) VALUES (%s, %s, %s, %s)"),
                            [(session, m_next + i, step, t) for i, t in enumerate(enc.messages)])
        if plan.messages_rewritten or meta is None:
            msg_start, msg_end = m_next, m_next + len(enc.messages)
        else:
            msg_start, msg_end = meta.msg_start, meta.msg_end + len(enc.messages)
        if enc.extra:
            cur.executemany(q("INSERT INTO {s}.extra (session, key, step, value) VALUES (%s, %s, %s, %s)"),
                            [(session, k, step, v) for k, v in enc.extra])
        r_next = meta.rail_end if meta else 0
        n = len(plan.errors_entries)
        if n:
            rows = []
            for i, event in enumerate(plan.errors_entries):
                seq = seq_of.get(id(event))
                rows.append((session, r_next + i, step, seq, None if seq is not None else event.to_json()))
            cur.executemany(q("INSERT INTO {s}.rail (session, pos, step, seq, data) VALUES (%s, %s, %s, %s, %s)"), rows)
        if not plan.errors_present:
            rail_start = rail_end = r_next
        elif plan.errors_rewritten or meta is None or not meta.rail_present:
            rail_start, rail_end = r_next, r_next + n
        else:
            rail_start, rail_end = meta.rail_start + plan.errors_dropped, meta.rail_end + n
        summary_from = None
        if plan.errors_present and plan.summary is not None:
            if plan.summary_changed or meta is None or meta.summary_from is None:
                cur.execute(q("INSERT INTO {s}.summaries (session, step, data) VALUES (%s, %s, %s)"),
                            (session, step, plan.summary.to_json()))
                summary_from = step
            else:
                summary_from = meta.summary_from
        pending, pending_from = pending_columns(cp, plan, meta.pending_from if meta is not None else None, meta is None)
        cur.execute(q(f"INSERT INTO {{s}}.checkpoints ({_CP_COLS}, session) VALUES ({', '.join(['%s'] * 20)})"),
                    (step, ROW_FORMAT, cp.status, stored_time(cp.created_at), cp.interrupt, enc.frontier, enc.versions,
                     enc.seen, enc.failure, pending, pending_from, msg_start, msg_end, plan.errors_present,
                     rail_start, rail_end, summary_from, first_seq, len(cp.events), session))
        if plan.store_events:
            rows = []
            for i, event in enumerate(plan.store_events):
                seq = seq_of.get(id(event))
                rows.append((str(event.id), session, step, i, event.node, event.code, event.scope.kind,
                             stored_time(event.when), seq, None if seq is not None else event.to_json()))
            cur.executemany(q("INSERT INTO {s}.errors (id, session, step, ord, node, code, scope, at, seq, data) "
                              "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"), rows)
        if cp.events:
            cur.execute(q("INSERT INTO {s}.sessions (session, errors, last_error) VALUES (%s, %s, %s) "
                          "ON CONFLICT (session) DO UPDATE SET errors = {s}.sessions.errors + excluded.errors, "
                          "last_error = excluded.last_error"), (session, len(cp.events), cp.events[-1].summary_line()))
        elif meta is None:
            cur.execute(q("INSERT INTO {s}.sessions (session, errors, last_error) VALUES (%s, 0, NULL) "
                          "ON CONFLICT (session) DO NOTHING"), (session,))
        return _Meta(step, msg_start, msg_end, plan.errors_present, rail_start, rail_end, summary_from, pending_from)

    # -- migration off extra["errors"] -------------------------------------------------------------

    def backfill_errors(self, dry_run: bool) -> BackfillReport:
        """Copy the events of every stored checkpoint's ``extra["errors"]`` into the errors store.

        Idempotent (ids already stored are skipped); cap summaries are skipped; each event keeps
        the step it was committed at. ``dry_run`` counts without writing.
        """
        q = self._sql

        def scan(conn: Any) -> list[tuple[str, int, list[tuple[int, int]]]]:
            windows: dict[str, list[tuple[int, int]]] = {}
            counts: dict[str, int] = {}
            for session, start, end in conn.execute(q(
                    "SELECT session, rail_start, rail_end FROM {s}.checkpoints WHERE rail_present ORDER BY session")):
                counts[session] = counts.get(session, 0) + 1
                windows.setdefault(session, []).append((start, end))
            return [(s, counts[s], union_windows(w)) for s, w in windows.items()]

        found = self._guard(None, None, lambda: self._tx(scan, write=False))
        checkpoints = seen_total = added_total = 0
        for session, n_checkpoints, windows in found:
            checkpoints += n_checkpoints

            def fill(conn: Any, session: str = session, windows: list[tuple[int, int]] = windows) -> tuple[int, int]:
                have = {r[0] for r in conn.execute(q("SELECT id FROM {s}.errors WHERE session = %s"), (session,))}
                rows, seen = [], 0
                for pos, step, event in self._legacy_rows(conn, session, windows):
                    seen += 1
                    key = str(event.id)
                    if key not in have:
                        rows.append((key, session, step, pos, event.node, event.code, event.scope.kind,
                                     stored_time(event.when), event.to_json()))
                if not rows or dry_run:
                    return seen, len(rows)
                added = 0
                for row in rows:
                    added += conn.execute(q("INSERT INTO {s}.errors (id, session, step, ord, node, code, scope, at, "
                                            "data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                                            "ON CONFLICT (id) DO NOTHING"), row).rowcount
                return seen, added

            seen_n, added_n = self._guard(session, None, lambda fill=fill: self._tx(fill, write=not dry_run))
            seen_total += seen_n
            added_total += added_n
        return BackfillReport(sessions=len(found), checkpoints=checkpoints, events_seen=seen_total,
                              events_added=added_total, dry_run=dry_run)

    def _legacy_rows(self, conn: Any, session: str, windows: list[tuple[int, int]]
                     ) -> Iterator[tuple[int, int, ErrorEvent]]:
        """``(rail position, step, event)`` of each distinct event in `session`'s errors rail windows, in
        position order; cap summaries are skipped."""
        seen: set[str] = set()
        for start, end in windows:
            for pos, step, text in conn.execute(self._sql(
                    "SELECT r.pos, r.step, COALESCE(r.data, o.data) FROM {s}.rail r LEFT JOIN {s}.outbox o "
                    "ON o.seq = r.seq WHERE r.session = %s AND r.pos >= %s AND r.pos < %s ORDER BY r.pos"),
                    (session, start, end)):
                event = load_stored_event(text, session, step, f'extra["errors"] entry {pos}')
                key = str(event.id)
                if event.is_summary or key in seen:
                    continue
                seen.add(key)
                yield pos, step, event

    def legacy_events(self, session: str) -> list[ErrorEvent]:
        """Every event any stored checkpoint of `session` held in ``extra["errors"]``, once each, in
        the order they were appended (cap summaries skipped): what `backfill_errors` would copy."""
        def read(conn: Any) -> list[ErrorEvent]:
            windows = union_windows([(a, b) for a, b in conn.execute(self._sql(
                "SELECT rail_start, rail_end FROM {s}.checkpoints WHERE session = %s AND rail_present"), (session,))])
            return [event for _, _, event in self._legacy_rows(conn, session, windows)]
        return self._guard(session, None, lambda: self._tx(read, write=False))

    # -- lifecycle ---------------------------------------------------------------------------------

    def drop_schema(self) -> None:
        """Drop this store's schema and everything in it (tests and tear-downs)."""
        self._guard(None, None, lambda: self._tx(lambda c: c.execute(self._sql("DROP SCHEMA IF EXISTS {s} CASCADE"))))

    def close(self) -> None:
        """Release this store's claims and close its connections."""
        with self._lock:
            for session in list(self._held):
                self.release(session)
            self._cache.clear()
            for conn in (self._claims, self._conn):
                if conn is not None and not conn.closed:
                    conn.close()


def _check_row(session: str, step: Any, row: tuple[Any, ...]) -> None:
    """Refuse a checkpoint row whose columns have the wrong types (naming the first bad one)."""
    (_, _, status, created_at, interrupt, *_, pending_from, msg_start, msg_end, rail_present, rail_start, rail_end,
     summary_from, ev_seq, ev_count) = row
    checks = {"step": (step, int), "status": (status, str), "created_at": (created_at, str),
              "interrupt": (interrupt, (str, type(None))), "pending_from": (pending_from, (int, type(None))),
              "msg_start": (msg_start, int), "msg_end": (msg_end, int), "rail_present": (rail_present, (int, bool)),
              "rail_start": (rail_start, int), "rail_end": (rail_end, int),
              "summary_from": (summary_from, (int, type(None))), "ev_seq": (ev_seq, (int, type(None))),
              "ev_count": (ev_count, int)}
    for name, (value, kind) in checks.items():
        if not isinstance(value, kind) or (name == "ev_count" and value and ev_seq is None):
            raise corrupt(session, step if isinstance(step, int) else None,
                          f"checkpoint column {name} holds {value!r}, which is not valid there")



__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresCheckpointer"]
