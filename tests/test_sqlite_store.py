"""SQLite-specific store behaviour: the batched errors store and the errors rail kept in the outbox.

The conformance suite states the contract for every store; these tests pin down how the SQLite
store meets it cheaply (schema 2): the errors store is filled from the outbox through a cursor,
in batches, and always before it is read; an ``extra["errors"]`` entry that is its step's own
event is that event's outbox row, bounded by seq in the checkpoint row.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_store_conformance import checkpoint, ev, summary

from railgraph import END, START, GraphBuilder, Message, NodePartial, Settings
from railgraph.checkpoint import Delta
from railgraph.events import SUMMARY_CODE
from railgraph.plugins import _sqlite as sqlite_module
from railgraph.plugins._sqlite import STORE_BATCH
from railgraph.plugins.sqlite_store import SqliteCheckpointer
from railgraph.state import FrozenDict


def raw(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_errors_store_catches_up_in_batches_and_before_any_read(tmp_path: Path) -> None:
    """Flagged outbox rows reach the errors store in batches; a reader (another instance, as another
    process would) catches up first; unflagged rows never do."""
    path = tmp_path / "rg.db"
    writer = SqliteCheckpointer(path)
    writer.commit(checkpoint("s", 1), Delta(first=True))
    for step in range(2, 12):
        writer.commit(checkpoint("s", step, events=(ev(step),)), Delta())
    writer.commit(checkpoint("s", 12, events=(ev(12),)), Delta(write_errors_store=False))
    assert raw(path, "SELECT COUNT(*) FROM errors") == [(0,)]  # nothing copied yet: the outbox holds them
    reader = SqliteCheckpointer(path)  # a crash of the writer here loses nothing: the outbox is durable
    assert [e.id.int for e in reader.stored_errors("s")] == list(range(2, 12))
    assert raw(path, "SELECT COUNT(*) FROM errors") == [(10,)]
    assert raw(path, "SELECT value FROM meta WHERE key = 'errors_cursor'") == [("11",)]
    assert reader.stored_errors("s") == writer.stored_errors("s")  # idempotent, nothing pending
    step = 13
    while step < 13 + STORE_BATCH:  # a full batch is copied by the commit that completes it
        writer.commit(checkpoint("s", step, events=(ev(step),)), Delta())
        step += 1
    assert raw(path, "SELECT COUNT(*) FROM errors")[0][0] >= STORE_BATCH
    writer.commit(checkpoint("s", step, events=(ev(step),)), Delta())
    writer.close()  # close copies the rest
    assert raw(path, "SELECT COUNT(*) FROM errors") == [(10 + STORE_BATCH + 1,)]
    ids = [e.id.int for e in reader.stored_errors("s")]
    assert ids == [*range(2, 12), *range(13, step + 1)]
    reader.close()


def test_backfill_and_its_dry_run_count_uncopied_outbox_rows_as_stored(tmp_path: Path) -> None:
    """Events committed for the store but not copied yet are not 'missing' to a backfill dry run."""
    path = tmp_path / "rg.db"
    store = SqliteCheckpointer(path)
    e1, e2 = ev(1), ev(2)
    store.commit(checkpoint("s", 1, extra={"errors": (e1,)}, events=(e1,)), Delta(first=True, write_errors_store=False))
    store.commit(checkpoint("s", 2, extra={"errors": (e1, e2)}, events=(e2,)), Delta(errors_appended=(e2,)))
    before = raw(path, "SELECT COUNT(*) FROM errors")
    dry = store.backfill_errors(dry_run=True)
    assert (dry.events_seen, dry.events_added) == (2, 1)  # e1 only: e2 is on its way to the store
    assert raw(path, "SELECT COUNT(*) FROM errors") == before
    done = store.backfill_errors(dry_run=False)
    assert (done.events_seen, done.events_added) == (2, 1)
    assert [e.id.int for e in store.stored_errors("s")] == [1, 2]
    store.close()


def test_rail_entries_live_in_the_outbox_unless_reordered(tmp_path: Path) -> None:
    """A step appending its own events in order writes no rail row; a reordered append does, and both read back."""
    path = tmp_path / "rg.db"
    store = SqliteCheckpointer(path)
    e1, e2, e3, e4 = ev(1), ev(2), ev(3), ev(4)
    cps = [checkpoint("s", 1, extra={"errors": (e1, e2)}, events=(e1, e2))]
    store.commit(cps[-1], Delta(first=True))
    cps.append(checkpoint("s", 2, extra={"errors": (e1, e2, e4, e3)}, events=(e3, e4)))
    store.commit(cps[-1], Delta(errors_appended=(e4, e3)))  # a processor that reorders
    cps.append(checkpoint("s", 3, extra={"errors": (e2, e4, e3)}))
    store.commit(cps[-1], Delta(errors_dropped=1))
    assert raw(path, "SELECT session, pos, step FROM rail ORDER BY pos") == [("s", 2, 2), ("s", 3, 2)]
    assert raw(path, "SELECT rail_pos FROM outbox ORDER BY seq") == [(0,), (1,), (None,), (None,)]
    assert raw(path, "SELECT step, rail_lo, rail_hi FROM checkpoints ORDER BY step") == [(1, 1, 2), (2, 1, 2),
                                                                                        (3, 2, 2)]
    again = SqliteCheckpointer(path)
    assert [again.get("s", c.step) for c in cps] == cps
    store.close()
    again.close()


def test_interleaved_sessions_with_a_moving_window_read_back_equal(tmp_path: Path) -> None:
    """Two sessions committing alternately (their outbox seqs interleave) with a capped window that
    drops one entry per step: every checkpoint loads back equal, from a fresh instance too, and the
    checkpoint's seq bounds follow the window (reads stay proportional to the window)."""
    path = tmp_path / "rg.db"
    store = SqliteCheckpointer(path)
    want: dict[str, list] = {"a": [], "b": []}
    arrays: dict[str, tuple] = {"a": (), "b": ()}
    n = 0
    for step in range(1, 30):
        for s in ("a", "b"):
            n += 1
            events = (ev(n), ev(n + 1000)) if step % 3 == 0 else (ev(n),)
            old = arrays[s]
            new = (old + events)[-4:]
            dropped = len(old) + len(events) - len(new)
            arrays[s] = new
            cp = checkpoint(s, step, extra={"errors": new}, events=events)
            store.commit(cp, Delta(first=True) if step == 1 else Delta(errors_appended=events, errors_dropped=dropped))
            want[s].append(cp)
    for reader in (store, SqliteCheckpointer(path)):
        for s in ("a", "b"):
            assert [reader.get(s, c.step) for c in want[s]] == want[s]
            assert reader.latest(s) == want[s][-1]
    lo, hi = raw(path, "SELECT rail_lo, rail_hi FROM checkpoints WHERE session = 'a' AND step = 29")[0]
    span = raw(path, f"SELECT COUNT(*) FROM outbox WHERE seq >= {lo} AND seq <= {hi}")[0][0]
    assert span <= 2 * 6  # the window's 4 entries, the other session's rows in between: not the history
    # resuming on a fresh instance continues the same windows
    resumed = SqliteCheckpointer(path)
    e = ev(5000)
    cp = checkpoint("a", 30, extra={"errors": (*arrays["a"][1:], e)}, events=(e,))
    resumed.commit(cp, Delta(errors_appended=(e,), errors_dropped=1))
    assert SqliteCheckpointer(path).latest("a") == cp


def _vm_steps(store: SqliteCheckpointer, read: Callable[[], object]) -> int:
    """SQLite virtual-machine instructions (in thousands) that `read` costs on `store`'s connection."""
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0
    store._conn.set_progress_handler(tick, 1000)
    try:
        read()
    finally:
        store._conn.set_progress_handler(None, 0)
    return ticks[0]


def test_reads_by_session_do_not_walk_other_sessions_outbox_rows(tmp_path: Path) -> None:
    """Schema 3 has no (session, seq) index on the outbox: a session's rows are found through its
    checkpoints. Loading a session whose events straddle 20,000 events of another session costs
    what it costs when the other session wrote nothing."""
    def build(path: Path, others: int) -> SqliteCheckpointer:
        store = SqliteCheckpointer(path)
        e1, e2 = ev(1), ev(2)
        store.commit(checkpoint("a", 1, extra={"errors": (e1,)}, events=(e1,)), Delta(first=True, errors_appended=(e1,)))
        for step in range(1, others // 500 + 1):
            store.commit(checkpoint("b", step, events=tuple(ev(10 + step * 1000 + k) for k in range(500))),
                         Delta(first=step == 1, write_errors_store=False))
        store.commit(checkpoint("a", 2, extra={"errors": (e1, e2)}, events=(e2,)), Delta(errors_appended=(e2,)))
        store.close()
        return SqliteCheckpointer(path)

    alone, crowded = build(tmp_path / "alone.db", 0), build(tmp_path / "crowded.db", 20_000)
    for store in (alone, crowded):
        assert [e.id.int for e in store.get("a", 2).extra["errors"]] == [1, 2]
        assert [e.id.int for e in store.session_events("a")] == [1, 2]
    for read in (lambda s: s.get("a", 2), lambda s: s.session_events("a"), lambda s: s.backfill_errors(True)):
        quiet, busy = _vm_steps(alone, lambda: read(alone)), _vm_steps(crowded, lambda: read(crowded))
        assert busy <= quiet + 2, (quiet, busy)
    alone.close()
    crowded.close()


def test_wal_checkpoints_run_off_the_commit_path_and_the_wal_restarts(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A background thread copies the WAL into the database file, and the WAL restarts from its
    beginning while commits go on (the writer copies the few frames a pass of the thread left), even
    with SQLite's own autocheckpoint out of reach."""
    import time

    from railgraph.plugins import _sqlite

    monkeypatch.setattr(_sqlite, "CHECKPOINT_EVERY", 16)
    path = tmp_path / "rg.db"
    wal = Path(f"{path}-wal")
    store = SqliteCheckpointer(path)
    store._conn.execute("PRAGMA wal_autocheckpoint = 1000000")  # only the thread and the writer's finish remain

    def salt() -> bytes:  # the WAL header's salt-1 changes each time the WAL restarts from its beginning
        with wal.open("rb") as f:
            return f.read(32)[16:20]

    store.commit(checkpoint("s", 1), Delta(first=True))
    step, first = 1, salt()
    # commits without a pause until a restart: commonly within 200 commits, but a loaded disk slows
    # the thread's fsyncs (a count of 600 once saw none), hence a deadline; without the thread, none
    deadline = time.monotonic() + 20
    while salt() == first and time.monotonic() < deadline:
        step += 1
        store.commit(checkpoint("s", step, extra={"n": step}, events=(ev(step),)), Delta(extra_keys=frozenset({"n"})))
    assert salt() != first, f"no WAL restart in {step} commits"
    thread = store._wal._thread
    assert thread is not None and thread.is_alive()
    assert store.latest("s").extra["n"] == step and store.integrity_check() == "ok"
    store.close()
    assert not thread.is_alive()


def test_a_store_dropped_without_close_stops_its_wal_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The WAL thread does not keep its store alive, and the store's finalizer stops the thread."""
    import gc
    import threading

    from railgraph.plugins import _sqlite

    monkeypatch.setattr(_sqlite, "CHECKPOINT_EVERY", 4)
    before = threading.active_count()
    for i in range(5):
        store = SqliteCheckpointer(tmp_path / f"s{i}.db")
        store.commit(checkpoint("s", 1), Delta(first=True))
        for step in range(2, 10):
            store.commit(checkpoint("s", step, events=(ev(step),)), Delta())
        assert store._wal._thread is not None
        del store
    gc.collect()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_reads_by_session_cost_its_steps_with_events_not_its_length(tmp_path: Path) -> None:
    """A long session with few events reads as fast as a short one: each checkpoint names the newest
    earlier step with events (ev_prev), and reads by session follow that chain."""
    def build(path: Path, quiet_steps: int) -> SqliteCheckpointer:
        store = SqliteCheckpointer(path)
        e1, e2 = ev(1), ev(2)
        store.commit(checkpoint("a", 1, extra={"errors": (e1,)}, events=(e1,)), Delta(first=True, errors_appended=(e1,)))
        for step in range(2, quiet_steps + 2):
            store.commit(checkpoint("a", step, extra={"errors": (e1,), "n": step}),
                         Delta(extra_keys=frozenset({"n"})))
        top = quiet_steps + 2
        store.commit(checkpoint("a", top, extra={"errors": (e1, e2), "n": top}, events=(e2,)),
                     Delta(errors_appended=(e2,), extra_keys=frozenset({"n"})))
        store.commit(checkpoint("a", top + 1, extra={"errors": (e1, e2), "n": top + 1}),
                     Delta(extra_keys=frozenset({"n"})))
        store.close()
        return SqliteCheckpointer(path)

    short, long = build(tmp_path / "short.db", 10), build(tmp_path / "long.db", 5_000)
    for store, last in ((short, 13), (long, 5_003)):
        assert [e.id.int for e in store.latest("a").extra["errors"]] == [1, 2]
        assert [e.id.int for e in store.session_events("a")] == [1, 2]
        assert [(i.steps, i.error_count) for i in store.sessions()] == [(last, 2)]
    for read in (lambda s: s.latest("a"), lambda s: s.session_events("a"), lambda s: s.sessions()):
        assert _vm_steps(long, lambda: read(long)) <= _vm_steps(short, lambda: read(short)) + 2
    short.close()
    long.close()


# -- the quick commit path writes exactly what the general write plan writes --------------------------

# one superstep of a random run: events emitted, what happens to key "a" (kept, set to the value it
# has, set to a new value), whether a new key appears, whether a message is appended
_STEP = st.tuples(st.integers(0, 3), st.sampled_from(["keep", "same", "new"]), st.booleans(), st.booleans())
_CONFIG = st.tuples(st.sampled_from(["dual", "store-only", "legacy"]),
                    st.sampled_from([None, ("summarize", 3), ("drop-oldest", 3)]))


def _random_run(path: Path, plan: list[tuple[int, str, bool, bool]], config: tuple[str, Any], quick: bool) -> int:
    """Run two sessions of a graph that follows `plan` step by step, alternating them (their outbox
    rows interleave), on a store at `path` with the quick path on or off; return how many commits
    took the quick path. Ids and times are fixed, so two runs write the same data."""
    mode, cap = config
    counter = itertools.count()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def work(state: Any, ctx: Any) -> NodePartial:
        i = state.extra["i"]
        n, a, add, message = plan[i]
        extra: dict[str, Any] = {"i": i + 1}
        if a == "same":
            extra["a"] = state.extra["a"]
        elif a == "new":
            extra["a"] = {"v": i}
        if add:
            extra[f"k{i}"] = i
        messages = [{"role": "ai", "content": f"m{i}"}] if message else []
        return NodePartial(messages=messages, extra=extra,
                           errors=[ctx.event(f"e{i}.{j}", code="t", details={"j": j}) for j in range(n)])

    b = GraphBuilder()
    b.add_node("work", work)
    b.add_edge(START, "work")
    b.add_conditional_edges("work", lambda s: "work" if s.extra["i"] < len(plan) else END)
    plugins: dict[str, Any] = {"sqlite_store": {"path": str(path)}, "extra_errors": {"mode": mode}}
    if cap is not None:
        plugins["cap"] = {"strategy": cap[0], "max_events": cap[1]}
    graph = b.compile(settings=Settings(persistence={"backend": "sqlite"}, plugins=plugins),
                      ids=lambda: uuid.UUID(int=next(counter)),
                      clock=lambda: start + timedelta(seconds=next(counter)))
    store = graph.runner.checkpointer
    store.quick = quick
    taken = [0]
    real = store._apply_quick

    def counted(*args: Any) -> Any:
        taken[0] += 1
        return real(*args)
    store._apply_quick = counted
    try:
        for s in ("s1", "s2"):
            graph.start({"extra": {"i": 0, "a": {"v": -1}}}, session=s)
        for _ in plan:
            for s in ("s1", "s2"):
                graph.step(s)
        assert all(graph.runner.checkpointer.latest(s).status == "completed" for s in ("s1", "s2"))
    finally:
        graph.close()
    return taken[0]


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    tables = [r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: sorted(raw(path, f"SELECT * FROM {t}"), key=repr) for t in tables}  # noqa: S608 - own names


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(_STEP, min_size=1, max_size=12), config=_CONFIG)
def test_quick_commits_write_the_rows_the_general_plan_writes(tmp_path: Path, plan: list[Any], config: Any) -> None:
    """Random runs (events or none, kept, equal and new values, new keys, messages, every extra-errors
    mode, no cap or either cap strategy; two sessions interleaved) leave the same rows in every table
    whether commits of the common shape take the quick path or the general write plan."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        quick, general = Path(d) / "quick.db", Path(d) / "general.db"
        _random_run(quick, plan, config, quick=True)
        assert _random_run(general, plan, config, quick=False) == 0
        assert _rows(quick) == _rows(general)


def test_the_quick_path_takes_the_commits_of_an_uncapped_run_with_an_event_per_step(tmp_path: Path) -> None:
    """The common shape (W3: a key changes, one event appended) takes the quick path from each session's
    second superstep on (the first one creates extra["errors"]); without events, from the first."""
    plan = [(1, "keep", False, False)] * 20
    assert _random_run(tmp_path / "a.db", plan, ("dual", None), quick=True) == 2 * 19
    assert _random_run(tmp_path / "b.db", [(0, "new", False, False)] * 5, ("store-only", None), quick=True) == 10
    # a message, a new key or a cap's drop is not the common shape
    assert _random_run(tmp_path / "c.db", [(1, "keep", False, True)] * 5, ("dual", None), quick=True) == 0
    assert _random_run(tmp_path / "d.db", [(1, "keep", True, False)] * 5, ("dual", None), quick=True) == 0


def test_a_delta_that_does_not_describe_the_array_is_not_taken_at_its_word(tmp_path: Path) -> None:
    """A caller's delta says 'appended' but the middle of extra["errors"] differs from the stored one
    (where the write plan's O(1) probes look): the quick path declines as the plan does, the window is
    rewritten, both paths store the same rows, and the checkpoint loads back equal."""
    e = [ev(i) for i in range(8)]
    commits = [
        (checkpoint("s", 1, extra={"errors": (e[0], e[1], e[2])}, events=(e[0], e[1], e[2])), Delta(first=True)),
        (checkpoint("s", 2, extra={"errors": (e[0], e[1], e[2], e[3]), "n": 1}, events=(e[3],)),
         Delta(errors_appended=(e[3],), extra_keys=frozenset({"n"}))),
        (checkpoint("s", 3, extra={"errors": (e[0], e[1], e[5], e[3], e[4]), "n": 2}, events=(e[4],)),
         Delta(errors_appended=(e[4],), extra_keys=frozenset({"n"}))),  # e[2] became e[5]: not an append
    ]
    for name, quick in (("quick.db", True), ("general.db", False)):
        store = SqliteCheckpointer(tmp_path / name)
        store.quick = quick
        for cp, delta in commits:
            store.commit(cp, delta)
        store.close()
        assert SqliteCheckpointer(tmp_path / name).get("s", 3) == commits[2][0]
    assert _rows(tmp_path / "quick.db") == _rows(tmp_path / "general.db")


def _commits(rng: random.Random, steps: int) -> list[tuple[Any, Delta]]:
    """A session's commits made by hand, as a store caller might: honest deltas mostly, and now and
    then one that does not describe the arrays (a dropped or replaced entry, a rewrite with a
    summary, the errors key removed), keys changed without the delta saying so, added or removed
    keys, messages, events that carry the summary code, the errors store on or off."""
    ids = itertools.count(1)
    first = {"a": {"v": 0}, "b": 1, **({"errors": ()} if rng.random() < 0.5 else {})}
    prev = checkpoint("s", 1, extra=first)
    out: list[tuple[Any, Delta]] = [(prev, Delta(first=True, extra_keys=frozenset(first) - {"errors"}))]
    for step in range(2, steps + 1):
        events = tuple(ev(next(ids), code=SUMMARY_CODE if rng.random() < 0.05 else "t")
                       for _ in range(rng.choice([0, 0, 1, 1, 2, 3])))
        extra, keys = dict(prev.extra), set()
        for key in [k for k in extra if k != "errors"]:
            r = rng.random()
            if r < 0.3:
                extra[key], _ = {"v": step}, keys.add(key)
            elif r < 0.35:
                extra[key] = {"v": step}  # changed, and the delta does not say so
            elif r < 0.37:
                del extra[key]
        if rng.random() < 0.05:
            extra[f"k{step}"], _ = step, keys.add(f"k{step}")
        old, r = prev.extra.get("errors"), rng.random()
        appended, dropped, rewritten = (), 0, False
        if events and old is None and r < 0.8:
            extra["errors"], appended = events, events
        elif events and old is not None and r < 0.7:
            extra["errors"], appended = old + events, events
        elif events and old and r < 0.8:
            extra["errors"], appended, dropped = old[1:] + events, events, 1
        elif events and old is not None and len(old) >= 3 and r < 0.85:  # not an append, the delta says it is
            swapped = list(old + events)
            swapped[len(swapped) // 2] = ev(next(ids))
            extra["errors"], appended = tuple(swapped), events
        elif events and old is not None and r < 0.9:
            extra["errors"], appended, rewritten = (summary(step, 3), *old[-1:], *events), events, True
        elif old is not None and r < 0.93:
            del extra["errors"]
        unchanged = extra == dict(prev.extra) and all(extra[k] is prev.extra[k] for k in extra) and rng.random() < 0.5
        messages = prev.messages + (Message("ai", f"m{step}"),) if rng.random() < 0.1 else prev.messages
        cp = replace(checkpoint("s", step, events=events), extra=prev.extra if unchanged else FrozenDict(extra),
                     messages=messages)
        out.append((cp, Delta(messages_appended=len(messages) - len(prev.messages), extra_keys=frozenset(keys),
                              errors_appended=appended, errors_dropped=dropped, errors_rewritten=rewritten,
                              write_errors_store=rng.random() < 0.7)))
        prev = cp
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False), steps=st.integers(2, 90))
def test_quick_commits_match_the_general_plan_commit_by_commit(tmp_path: Path, rng: random.Random, steps: int) -> None:
    """Commits made by hand, honest or not (see `_commits`), give the same store-side state after each
    commit (`_Meta`), the same rows, and the same checkpoints read back, with the quick path on or off.
    The extra table is flushed every 8 steps here, so flushes are compared too."""
    commits = _commits(rng, steps)
    seen: dict[bool, tuple[list[Any], list[Any]]] = {}
    with tempfile.TemporaryDirectory(dir=tmp_path) as d, mock.patch.object(sqlite_module, "EXTRA_FLUSH", 8):
        for quick in (True, False):
            store = SqliteCheckpointer(Path(d) / f"{quick}.db")
            store.quick = quick
            metas = []
            for cp, delta in commits:
                store.commit(cp, delta)
                metas.append(store._cache["s"][1])
            store.close()
            again = SqliteCheckpointer(Path(d) / f"{quick}.db")
            seen[quick] = (metas, [again.get("s", cp.step) for cp, _ in commits])
            again.close()
        assert seen[True] == seen[False]
        assert _rows(Path(d) / "True.db") == _rows(Path(d) / "False.db")


def test_an_event_with_the_summary_code_first_in_a_new_array_goes_the_general_way(tmp_path: Path) -> None:
    """An errors array that was empty and now starts with an event carrying the cap summary's code:
    the write plan stores that event as the summary, so the quick path must not store it as an entry
    (it did once: the next commit then loaded back with the event twice)."""
    s1, e2, e3 = ev(1, code=SUMMARY_CODE), ev(2), ev(3)
    commits = [(checkpoint("s", 1, extra={"errors": (), "n": 0}), Delta(first=True)),
               (checkpoint("s", 2, extra={"errors": (s1, e2), "n": 1}, events=(s1, e2)),
                Delta(errors_appended=(s1, e2), extra_keys=frozenset({"n"}))),
               (checkpoint("s", 3, extra={"errors": (s1, e2, e3), "n": 2}, events=(e3,)),
                Delta(errors_appended=(e3,), extra_keys=frozenset({"n"})))]
    for quick in (True, False):
        store = SqliteCheckpointer(tmp_path / f"{quick}.db")
        store.quick = quick
        for cp, delta in commits:
            store.commit(cp, delta)
        store.close()
        again = SqliteCheckpointer(tmp_path / f"{quick}.db")
        assert [again.get("s", cp.step) for cp, _ in commits] == [cp for cp, _ in commits]
        again.close()
    assert _rows(tmp_path / "True.db") == _rows(tmp_path / "False.db")
