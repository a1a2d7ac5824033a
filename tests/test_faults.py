"""Faults on the error path: failing, hanging and flapping sinks, store hiccups and raising plugin hooks.

Every test runs on a real SQLite file (the default backend); restarts are new runners on the same
file or real subprocesses.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from railgraph import END, START, GraphBuilder, PluginError, Settings, hookimpl
from railgraph.plugins.sqlite_store import SqliteCheckpointer

SINK_FAILED = "railgraph.sink.failed"


class ListSink:
    """A sink recording `(session, event id)`; `down` steps of failures first, or a hang."""

    def __init__(self, name: str, down: int = 0, hang: threading.Event | None = None, always: bool = False) -> None:
        self.name, self.down, self.hang, self.always = name, down, hang, always
        self.got: list[tuple[str, str]] = []
        self.calls = 0

    def write(self, session, events):
        self.calls += 1
        if self.hang is not None and not self.hang.is_set():
            self.hang.wait(30)
            raise TimeoutError("hung write finally gave up")
        if self.always or self.down > 0:
            self.down -= 1
            raise ConnectionError("sink down: password=hunter2")
        self.got.extend((session, str(e.id)) for e in events)

    def flush(self):
        return None

    def close(self):
        return None


def sinks(*objs):
    """A code plugin contributing `objs` as sinks."""
    return SimpleNamespace(name="test_sinks", make_sinks=hookimpl(lambda settings: list(objs)))


def warn_graph(steps: int | None, before: Callable[[Any], None] | None = None) -> GraphBuilder:
    """A one-node loop emitting one node event per step (``"step N"``) for `steps` steps (``None``:
    the session's input ``extra["limit"]``); `before(ctx)`, if given, runs first in each step."""
    def warn(s, ctx):
        if before is not None:
            before(ctx)
        return {"extra": {"n": s.extra.get("n", 0) + 1}, "errors": [ctx.event(f"step {ctx.step}")]}
    b = GraphBuilder().add_node("w", warn).add_edge(START, "w")
    b.add_conditional_edges("w", lambda s: "w" if s.extra["n"] < (steps if steps is not None else s.extra["limit"])
                            else END)
    return b


def sqlite(path: Path, **runner) -> Settings:
    """Settings on a real SQLite file."""
    return Settings(runner=runner, plugins={"sqlite_store": {"path": str(path)}})


class Clock:
    """A UTC clock advancing `step` per call."""

    def __init__(self, step: timedelta) -> None:
        self.now, self.step = datetime(2026, 1, 1, tzinfo=timezone.utc), step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def test_raising_hanging_and_flapping_sinks_never_stop_the_run_or_the_good_sink(tmp_path: Path) -> None:
    """One sink raises always, one hangs, one is down for 3 deliveries: the run completes, the good sink
    gets every event, each failing sink is reported once as an app event, the flapping one catches up."""
    release = threading.Event()
    good, bad, hung, flap = ListSink("good"), ListSink("bad", always=True), ListSink("hung", hang=release), \
        ListSink("flap", down=3)
    g = warn_graph(10).compile(settings=sqlite(tmp_path / "s.db", sink_timeout=0.2, sink_report_interval=3600),
                               plugins=[sinks(good, bad, hung, flap)])
    start = time.monotonic()
    try:
        st = g.invoke({}, session="s")
        elapsed = time.monotonic() - start
        assert st.status == "completed" and st.extra["n"] == 10
        assert elapsed < 3, f"a hung sink cost more than one timeout: {elapsed:.2f}s"
        events = g.errors("s")
        node_ids = [str(e.id) for e in events if e.scope.kind == "node"]
        assert len(node_ids) == 10
        all_ids = [str(e.id) for e in events]
        assert [i for _, i in good.got] == all_ids  # every committed event, in order, exactly once
        assert [i for _, i in flap.got if i in node_ids] == node_ids
        reports = [e for e in events if e.code == SINK_FAILED]
        assert sorted(e.error.details["plugin"] for e in reports) == ["bad", "flap", "hung"]
        assert all(e.scope.kind == "app" and "sink-failure" in e.tags for e in reports)
        assert bad.calls >= 2  # retried (at commits that find its last attempt ended), reported once
        assert all("hunter2" not in e.to_json() for e in reports)  # the sink's message is not copied
    finally:
        release.set()
        g.close()


def test_sink_reports_are_rate_limited_by_the_interval(tmp_path: Path) -> None:
    """A sink failing at every step is reported at most once per `sink_report_interval` of clock time."""
    bad = ListSink("bad", always=True)
    clock = Clock(timedelta(seconds=1))

    def last_attempt_ended(ctx) -> None:  # each commit then makes a new attempt
        deadline = time.monotonic() + 5
        while bad.calls < ctx.step - 2 and time.monotonic() < deadline:  # the first node run is step 2
            time.sleep(0.001)
        time.sleep(0.001)
    g = warn_graph(40, last_attempt_ended).compile(settings=sqlite(tmp_path / "s.db", sink_report_interval=30.0), plugins=[sinks(bad)], clock=clock)
    with g:
        g.invoke({}, session="s")
        reports = [e for e in g.errors("s") if e.code == SINK_FAILED]
    span = (clock.now - datetime(2026, 1, 1, tzinfo=timezone.utc)).total_seconds()
    assert bad.calls >= 20  # 40 steps: an attempt at each commit that finds the last one ended
    assert 2 <= len(reports) <= span / 30 + 1, (len(reports), span)
    failures = [e.error.details["failures"] for e in reports]
    assert failures == sorted(failures) and failures[-1] > len(reports)  # counts, not one event per failure


def test_sink_down_for_a_whole_process_catches_up_after_restart(tmp_path: Path) -> None:
    """A sink that failed for the whole life of one process gets every missed event, once, from the
    SQLite cursor when a later process (here: after a real subprocess exits) delivers again."""
    db = tmp_path / "s.db"
    script = tmp_path / "first.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_faults import ListSink, sinks, warn_graph, sqlite
        from pathlib import Path
        g = warn_graph(6).compile(settings=sqlite(Path({str(db)!r})), plugins=[sinks(ListSink("late", always=True))])
        g.invoke({{}}, session="s")
        g.close()
        print("ok")
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    late = ListSink("late")
    g = warn_graph(2).compile(settings=sqlite(db), plugins=[sinks(late)])
    with g:
        missed = [str(e.id) for e in g.errors("s")]
        assert len([e for e in g.errors("s") if e.scope.kind == "node"]) == 6
        assert g.runner.deliver() == len(missed)
        assert [i for _, i in late.got] == missed
        assert g.runner.deliver() == 0  # the cursor moved: nothing is delivered twice
        g.invoke({}, session="t")  # a later run delivers only its own events
        assert len(late.got) == len(missed) + len(g.errors("t"))


def test_a_sink_writes_while_the_next_superstep_runs(tmp_path: Path) -> None:
    """A sink's write does not hold up the run: a sink that returns only once the *next* step's node
    has run (a write the run waited for would time out first) is never reported, gets every event,
    and the run returns only when the last batch is written and its cursor recorded."""
    ran: list[threading.Event] = [threading.Event() for _ in range(8)]

    class Waiting(ListSink):
        def write(self, session, events):
            step = max(int(e.error.message.split()[1]) for e in events)
            if step < 5:  # the node of a later step runs meanwhile, or this write times out
                assert ran[step + 1].wait(5), f"step {step + 1} did not run while step {step}'s events were written"
            super().write(session, events)

    sink = Waiting("waiting")
    g = warn_graph(5, lambda ctx: ran[ctx.step].set()).compile(settings=sqlite(tmp_path / "s.db", sink_timeout=2.0), plugins=[sinks(sink)])
    with g:
        assert g.invoke({}, session="s").status == "completed"
        assert [e.code for e in g.errors("s")] == [None] * 5  # no sink failure reported
        assert [i for _, i in sink.got] == [str(e.id) for e in g.errors("s")]
    assert SqliteCheckpointer(tmp_path / "s.db").undelivered("waiting", 10) == []  # cursor recorded


def test_a_worker_in_a_long_superstep_does_not_hold_a_sinks_lease(tmp_path: Path) -> None:
    """A sink's delivery lease is given back as soon as its batch is written, not at the worker's next
    commit: while one worker (a store instance of its own, as another process would be) sits in a
    long superstep, another worker's run delivers its own events and returns without waiting."""
    got: list[tuple[str, str]] = []
    lock, slow_started, finish = threading.Lock(), threading.Event(), threading.Event()

    class Shared(ListSink):
        def write(self, session, events):
            with lock:
                got.extend((session, str(e.id)) for e in events)

    def slow_at_step_3(ctx) -> None:
        if ctx.step == 3:
            slow_started.set()
            finish.wait(10)
    settings = sqlite(tmp_path / "s.db", sink_timeout=2.0)
    slow = warn_graph(3, slow_at_step_3).compile(settings=settings, plugins=[sinks(Shared("shared"))])
    fast = warn_graph(3).compile(settings=settings, plugins=[sinks(Shared("shared"))])
    worker = threading.Thread(target=slow.invoke, args=({},), kwargs={"session": "slow"})
    worker.start()
    try:
        assert slow_started.wait(10)  # the slow worker committed a step with an event, and waits in the next
        start = time.monotonic()
        fast.invoke({}, session="fast")
        elapsed = time.monotonic() - start
        mine = {str(e.id) for e in fast.errors("fast")}
        with lock:
            assert mine <= {i for _, i in got}, "the run returned with its events undelivered"
        assert elapsed < 1.5, f"the run waited {elapsed:.2f}s for another worker's lease"
    finally:
        finish.set()
        worker.join(10)
        slow.close()
        fast.close()


def test_events_reach_a_sink_while_the_next_superstep_is_still_running(tmp_path: Path) -> None:
    """A step's events do not wait for the next commit: the node of a long step (an LLM call) finds
    the previous step's event written by the sink while it is still running."""
    seen = threading.Event()

    class Watch(ListSink):
        def write(self, session, events):
            super().write(session, events)
            if any(e.error.message == "step 3" for e in events):
                seen.set()
    found: list[bool] = []

    def long_step_4(ctx) -> None:
        if ctx.step == 4:  # the long step: the event of step 3 arrives meanwhile
            found.append(seen.wait(5))
    with warn_graph(4, long_step_4).compile(settings=sqlite(tmp_path / "s.db"), plugins=[sinks(Watch("watch"))]) as g:
        g.invoke({}, session="s")
    assert found == [True]


def test_a_runs_end_does_not_wait_for_other_sessions_events(tmp_path: Path) -> None:
    """The end of a run waits for a delivery that covers its own events, not for an empty outbox:
    while another session of the same process keeps committing, a short run returns at once, its
    events delivered."""
    class Slowish(ListSink):
        def write(self, session, events):
            time.sleep(0.003)  # 3 ms a batch: the other session commits faster than the sink drains
            super().write(session, events)

    sink = Slowish("all")
    stop = threading.Event()
    with warn_graph(None, lambda ctx: time.sleep(0.0005)).compile(settings=sqlite(tmp_path / "s.db"), plugins=[sinks(sink)]) as g:
        def background() -> None:
            j = 0
            while not stop.is_set():
                g.invoke({"extra": {"limit": 50}}, session=f"bg{j}")
                j += 1
        t = threading.Thread(target=background)
        t.start()
        try:
            time.sleep(0.2)
            start = time.monotonic()
            g.invoke({"extra": {"limit": 3}}, session="a")
            elapsed = time.monotonic() - start
            mine = [str(e.id) for e in g.errors("a")]
            assert set(mine) <= {i for _, i in list(sink.got)}
            assert elapsed < 1.5, f"a 3-step run took {elapsed:.2f}s: it waited for the other session"
        finally:
            stop.set()
            t.join(30)


def test_two_graphs_sharing_one_store_deliver_each_event_once(tmp_path: Path) -> None:
    """Two graphs on one store object (``compile(checkpointer=...)``) running concurrently with
    ``ainvoke``: the sink's lease belongs to each runner's sink thread, so one delivers at a time and
    every event is written exactly once."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    lines: list[str] = []
    lock = threading.Lock()

    class Shared(ListSink):
        def write(self, session, events):
            time.sleep(0.005)
            with lock:
                lines.extend(str(e.id) for e in events)

    b = warn_graph(30, lambda ctx: time.sleep(0.002))
    store = SqliteCheckpointer(tmp_path / "s.db")
    settings = sqlite(tmp_path / "s.db")
    g1 = b.compile(settings=settings, checkpointer=store, plugins=[sinks(Shared("shared"))])
    g2 = b.compile(settings=settings, checkpointer=store, plugins=[sinks(Shared("shared"))])

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(4))
        await asyncio.gather(g1.ainvoke({}, session="a"), g2.ainvoke({}, session="b"))
    try:
        asyncio.run(main())
        g1.runner.deliver()
        g2.runner.deliver()
        committed = [str(e.id) for e in store.session_events("a") + store.session_events("b")]
        with lock:
            assert sorted(lines) == sorted(committed)  # each once: none missing, none twice
    finally:
        g1.close()
        g2.close()


def test_a_sink_raising_past_exception_is_reported_and_does_not_hold_up_the_run(tmp_path: Path) -> None:
    """A sink whose write raises a BaseException that is not an Exception ends its delivery loop: the
    failure is reported like any other, the run's end does not wait for a cycle that will not come,
    and the events stay in the outbox for the next delivery."""
    class Stop(BaseException):
        pass

    class Raising(ListSink):
        def write(self, session, events):
            raise Stop("sink stopped")
    g = warn_graph(2).compile(settings=sqlite(tmp_path / "s.db", sink_timeout=2.0), plugins=[sinks(Raising("r"))])
    with g:
        start = time.monotonic()
        g.invoke({}, session="s")
        assert time.monotonic() - start < 1.5
        assert [e.error.details["cause"] for e in g.errors("s") if e.code == SINK_FAILED] == ["Stop"]
        assert len(g.runner.checkpointer.undelivered("r", 10)) == len(g.errors("s"))  # none recorded as delivered


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_delivers_with_sink_threads_of_its_own(tmp_path: Path) -> None:
    """A process forked from one that ran sessions (a worker pool forking a loaded app) has none of
    the parent's sink threads: its runs start their own and deliver, without waiting for threads
    that do not exist."""
    jsonl = tmp_path / "e.jsonl"
    settings = Settings(runner={"sink_timeout": 2.0}, plugins={
        "sqlite_store": {"path": str(tmp_path / "s.db")}, "jsonl_sink": {"enabled": True, "path": str(jsonl),
                                                                         "fsync": False}})
    g = warn_graph(3).compile(settings=settings)
    try:
        g.invoke({}, session="parent")
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 when its run returned fast with its events written
            code = 1
            try:
                start = time.monotonic()
                g.invoke({}, session="child")
                fast = time.monotonic() - start < 1.5
                lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
                code = 0 if fast and sum(1 for x in lines if x["session"] == "child") == 3 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        g.close()


def test_close_records_the_cursor_of_a_batch_still_being_written(tmp_path: Path) -> None:
    """A batch handed to a sink outside a run (``deliver(wait=False)``) is settled by `close`: the
    sink's cursor moves once the write returns, so a later process does not deliver it again."""
    release = threading.Event()

    class Slow(ListSink):
        def write(self, session, events):
            release.wait(5)
            super().write(session, events)
    db = tmp_path / "s.db"
    with warn_graph(3).compile(settings=sqlite(db)) as g:
        g.invoke({}, session="s")
        count = len(g.errors("s"))
    sink = Slow("slow")
    g = warn_graph(3).compile(settings=sqlite(db), plugins=[sinks(sink)])
    assert g.runner.deliver(wait=False) == 0 and sink.got == []  # handed over, not written yet
    threading.Timer(0.1, release.set).start()
    g.close()
    assert len(sink.got) == count
    assert SqliteCheckpointer(db).undelivered("slow", 10) == []


def test_close_logs_what_no_run_is_left_to_report(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A delivery that failed outside any run (its report waits for a run that never comes) and a
    sink whose close() raises are logged as warnings on the ``railgraph`` logger at close, by code
    and exception type only (a message may hold a secret); the events stay in the outbox."""
    db = tmp_path / "s.db"
    with warn_graph(2).compile(settings=sqlite(db)) as g:
        g.invoke({}, session="s")

    class BadClose(ListSink):
        def close(self):
            raise OSError("cannot flush to https://user:hunter2@example.com")
    sink = BadClose("bad", always=True)
    g = warn_graph(2).compile(settings=sqlite(db), plugins=[sinks(sink)])
    g.runner.deliver(wait=True)  # fails: reported to no run
    with caplog.at_level(logging.WARNING, logger="railgraph"):
        g.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "railgraph"]
    assert messages == ["sink 'bad': close() raised OSError; its undelivered events stay in the outbox",
                        f"an app-scope event no run committed: {SINK_FAILED} (plugin 'bad')"]
    assert "hunter2" not in caplog.text
    assert len(SqliteCheckpointer(db).undelivered("bad", 10)) == 2
    # a delivery asked for without waiting (no one reads its outcome) that fails
    caplog.clear()
    g = warn_graph(2).compile(settings=sqlite(db), plugins=[sinks(ListSink("down", always=True))])
    g.runner.deliver(wait=False)
    state = g.runner._sink_states["down"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with state.cv:
            if state.served >= state.wanted and not state.running:
                break
        time.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="railgraph"):
        g.close()
    assert [r.getMessage() for r in caplog.records if r.name == "railgraph"] == [
        "sink 'down': 1 delivery attempt(s) failed since the last run's report (ConnectionError); the events "
        "stay in the outbox for the next run"]


def test_a_hung_sink_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    """A sink stuck forever in `write` costs one `sink_timeout`; close and interpreter exit still return."""
    script = tmp_path / "hang.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_faults import sinks, warn_graph, sqlite
        from pathlib import Path
        class Stuck:
            name = "stuck"
            def write(self, session, events): time.sleep(3600)
            def flush(self): pass
            def close(self): time.sleep(3600)
        g = warn_graph(3).compile(settings=sqlite(Path({str(tmp_path / "s.db")!r}), sink_timeout=0.3),
                                  plugins=[sinks(Stuck())])
        st = g.invoke({{}}, session="s")
        g.close()
        print(st.status)
    """))
    start = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "completed", out.stderr
    assert time.monotonic() - start < 15


def test_a_failing_cursor_write_is_a_sink_failure_not_a_run_failure(tmp_path: Path) -> None:
    """When the store cannot move a sink's cursor, the run goes on and the batch is simply delivered again."""
    class FlakyAck(SqliteCheckpointer):
        fails = 2

        def ack(self, sink, seq):
            if self.fails:
                self.fails -= 1
                raise OSError("disk hiccup")
            super().ack(sink, seq)
    store = FlakyAck(tmp_path / "s.db")
    sink = ListSink("s1")
    g = warn_graph(5).compile(settings=sqlite(tmp_path / "s.db"), checkpointer=store, plugins=[sinks(sink)])
    with g:
        assert g.invoke({}, session="s").status == "completed"
        ids = [str(e.id) for e in g.errors("s")]
        assert set(ids) <= {i for _, i in sink.got}  # at-least-once: everything arrived
        assert len(sink.got) > len(set(sink.got)) or store.fails == 0
        assert any(e.code == SINK_FAILED for e in g.errors("s"))


# -- plugin hooks that raise ----------------------------------------------------------------------


def test_hook_raising_at_setup_is_a_plugin_error_naming_plugin_and_hook(tmp_path: Path) -> None:
    """A plugin whose `make_sinks` raises stops `compile` with a PluginError that names plugin and hook."""
    class Broken:
        name = "broken_sinks"

        @hookimpl
        def make_sinks(self, settings):
            raise RuntimeError("no socket")
    with pytest.raises(PluginError) as info:
        warn_graph(1).compile(settings=sqlite(tmp_path / "s.db"), plugins=[Broken()])
    err = info.value
    assert (err.plugin, err.hook) == ("broken_sinks", "make_sinks")
    assert "broken_sinks" in str(err) and "make_sinks" in str(err) and err.exit_code == 4
    assert isinstance(err.__cause__, RuntimeError)


def test_notification_hooks_raising_become_app_events_naming_plugin_and_hook(tmp_path: Path) -> None:
    """A raising `before_session` or `after_step` never stops the run: each becomes an app-scope
    PluginError event whose message and details name the plugin and the hook."""
    class Noisy:
        name = "noisy"

        @hookimpl
        def before_session(self, session, resumed, settings):
            raise ValueError("before")

        @hookimpl
        def after_step(self, report):
            raise ValueError("after")
    g = warn_graph(3).compile(settings=sqlite(tmp_path / "s.db"), plugins=[Noisy()])
    with g:
        assert g.invoke({}, session="s").status == "completed"
        app = [e for e in g.errors("s") if e.scope.kind == "app"]
    assert app and all(e.code == PluginError.code and "plugin-error" in e.tags for e in app)
    assert {(e.error.details["plugin"], e.error.details["hook"]) for e in app} == {
        ("noisy", "before_session"), ("noisy", "after_step")}
    assert all("noisy" in e.error.message for e in app)


def test_a_raising_event_processor_replaces_the_event_without_its_text(tmp_path: Path) -> None:
    """An event processor that raises turns each event into an app-scope PluginError event naming plugin
    and hook, keeping the id but none of the original text (it may hold what was to be scrubbed)."""
    class Broken:
        name = "broken_proc"

        @hookimpl
        def event_processor(self, settings):
            def proc(event):
                raise KeyError("processor")
            return proc
    g = warn_graph(3).compile(settings=sqlite(tmp_path / "s.db"), plugins=[Broken()])
    with g:
        assert g.invoke({}, session="s").status == "completed"
        events = g.errors("s")
    assert len(events) == 3
    for e in events:
        assert e.scope.kind == "app" and e.code == PluginError.code
        assert (e.error.details["plugin"], e.error.details["hook"]) == ("broken_proc", "event_processor")
        assert "step " not in e.to_json()


def test_jsonl_sink_on_an_unwritable_path_never_fails_the_run(tmp_path: Path) -> None:
    """The built-in JSON Lines sink pointed at a path it cannot create is reported, and the run completes."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    s = Settings(runner={"sink_report_interval": 3600},
                 plugins={"sqlite_store": {"path": str(tmp_path / "s.db")},
                          "jsonl_sink": {"enabled": True, "path": str(blocker / "sub" / "e.jsonl")}})
    g = warn_graph(4).compile(settings=s)
    with g:
        assert g.invoke({}, session="s").status == "completed"
        reports = [e for e in g.errors("s") if e.code == SINK_FAILED]
    assert len(reports) == 1 and reports[0].error.details["plugin"] == "jsonl_sink"
    assert json.loads(reports[0].to_json())["scope"] == {"kind": "app"}


def test_a_sink_whose_cursor_was_set_past_the_outbox_end_is_reported(tmp_path: Path) -> None:
    """The next run reports the sink as failing (cause CheckpointError) instead of running on with
    a sink that silently receives nothing."""
    import sqlite3

    db = tmp_path / "s.db"
    sink = ListSink("late")
    with warn_graph(2).compile(settings=sqlite(db), plugins=[sinks(sink)]) as g:
        g.invoke({}, session="a")
    assert len(sink.got) == 2
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE cursors SET seq = seq + 1000 WHERE sink = 'late'")
    conn.close()
    with warn_graph(2).compile(settings=sqlite(db), plugins=[sinks(sink)]) as g:
        g.invoke({}, session="b")
        reports = [e for e in g.errors("b") if e.code == SINK_FAILED]
    assert len(sink.got) == 2  # nothing more delivered...
    assert [e.error.details["cause"] for e in reports] == ["CheckpointError"]  # ...and it says so
