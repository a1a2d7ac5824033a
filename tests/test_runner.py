"""The runner: failures become committed events then RunnerErrors, pending writes, resume, limits, interrupts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from railgraph import (
    END,
    START,
    CheckpointError,
    GraphBuilder,
    MemoryCheckpointer,
    NodeFailed,
    NodeTimeout,
    ReservedKeyError,
    RetryDecision,
    RouterError,
    RunnerError,
    SessionNotFoundError,
    Settings,
    StepLimitError,
    UnstorableValueError,
    hookimpl,
)


def mem(**sections) -> Settings:
    return Settings(persistence={"backend": "memory"}, **sections)


def counter_graph(limit: int = 5, **compile_kw):
    b = GraphBuilder()
    b.add_node("inc", lambda s, ctx: {"extra": {"n": s.extra.get("n", 0) + 1}})
    b.add_edge(START, "inc")
    b.add_conditional_edges("inc", lambda s: "inc" if s.extra["n"] < limit else END)
    compile_kw.setdefault("settings", mem())
    return b.compile(**compile_kw)


def test_invoke_runs_to_completion_with_versions_from_one() -> None:
    """A loop graph runs until its router says END; versions start at 1 and extra rose once per change."""
    g = counter_graph(5)
    st = g.invoke({"extra": {"n": 0}}, session="s")
    assert st.extra == {"n": 5} and st.status == "completed" and st.next == ()
    assert st.versions == {"messages": 1, "extra": 6, "errors": 1}
    assert st.step == 6  # the input checkpoint + five supersteps
    assert [h[1] for h in g.history("s")] == ["running"] * 5 + ["completed"]


def two_node_graph(calls: Counter, fail: dict):
    def ok(s, ctx):
        calls["ok"] += 1
        return {"extra": {"ok": True}}

    def flaky(s, ctx):
        calls["flaky"] += 1
        if fail["on"]:
            raise ValueError("upstream said no")
        return {"extra": {"flaky": True}}

    b = GraphBuilder()
    b.add_node("ok", ok).add_node("flaky", flaky).add_node("after", lambda s: {"extra": {"after": True}})
    b.add_edge(START, "ok").add_edge(START, "flaky").add_edge("ok", "after").add_edge("flaky", "after")
    return b


def test_node_failure_commits_event_then_raises_and_resume_reruns_only_failed() -> None:
    """A failing node yields a committed node-scope event, a NodeFailed carrying it, and resume re-runs only it."""
    calls, fail = Counter(), {"on": True}
    store = MemoryCheckpointer()
    g = two_node_graph(calls, fail).compile(settings=mem(), checkpointer=store)
    with pytest.raises(NodeFailed) as info:
        g.invoke({}, session="s")
    err = info.value
    assert err.code == "railgraph.runner.node_failed" and err.exit_code == 10
    assert (err.session, err.step, err.node) == ("s", 2, "flaky")
    assert isinstance(err.__cause__, ValueError)
    ev = err.event
    assert ev is not None and ev.scope.kind == "node" and ev.node == "flaky" and ev.step == 2
    assert ev.error.cause is not None and ev.error.cause.message == "upstream said no"
    cp = store.latest("s")
    assert cp.status == "failed" and cp.frontier == ("ok", "flaky")
    assert set(cp.pending_writes) == {"ok"} and "ok" not in cp.extra  # kept, not merged
    assert cp.events == (ev,) and cp.extra["errors"] == (ev,)
    assert g.errors("s") == [ev]
    fail["on"] = False
    st = g.invoke(None, session="s")
    assert calls == Counter(ok=1, flaky=2)
    assert st.extra["ok"] and st.extra["flaky"] and st.extra["after"] and st.status == "completed"
    assert g.errors("s") == [ev]


def test_resume_from_another_runner_restores_everything() -> None:
    """A second runner on the same store (a restart) resumes from pending writes and keeps the errors channel."""
    calls, fail = Counter(), {"on": True}
    store = MemoryCheckpointer()
    b = two_node_graph(calls, fail)
    with pytest.raises(NodeFailed):
        b.compile(settings=mem(), checkpointer=store).invoke({}, session="s")
    fail["on"] = False
    again = b.compile(settings=mem(), checkpointer=store)
    st = again.invoke(None, session="s")
    assert calls["ok"] == 1 and st.status == "completed"
    assert len(st.errors) == 1 and st.errors[0].node == "flaky"
    failure, event = again.runner.failure("s") or ({}, None)
    assert failure == {}  # the latest checkpoint is the completed one


def test_stored_failure_diagnostic_matches_the_raised_error() -> None:
    """The failed checkpoint keeps code, message, help, exit code and the event id of the raised error."""
    calls, fail = Counter(), {"on": True}
    g = two_node_graph(calls, fail).compile(settings=mem())
    with pytest.raises(NodeFailed) as info:
        g.invoke({}, session="s")
    failure, event = g.runner.failure("s")
    err = info.value
    assert failure["code"] == err.code and failure["message"] == err.message and failure["help"] == err.help
    assert failure["exit_code"] == 10 and failure["where"] == {"session": "s", "step": 2, "node": "flaky"}
    assert event == err.event


def test_node_timeout_is_a_timeout_error_event() -> None:
    """A node past its timeout fails with NodeTimeout (a TimeoutError) and a node_timeout event."""
    b = GraphBuilder().add_node("slow", lambda s: time.sleep(2), timeout=0.05).add_edge(START, "slow")
    g = b.compile(settings=mem())
    t0 = time.perf_counter()
    with pytest.raises(NodeTimeout) as info:
        g.invoke({}, session="s")
    assert time.perf_counter() - t0 < 1.5
    assert isinstance(info.value, TimeoutError)
    assert info.value.event.code == "railgraph.runner.node_timeout"


def test_timeout_applies_among_concurrent_nodes() -> None:
    """With several nodes in a step, only the slow one times out; the fast one's partial is kept pending."""
    b = GraphBuilder().add_node("slow", lambda s: time.sleep(2)).add_node("fast", lambda s: {"extra": {"f": 1}})
    b.add_edge(START, "slow").add_edge(START, "fast")
    store = MemoryCheckpointer()
    g = b.compile(settings=mem(runner={"node_timeout": 0.05}), checkpointer=store)
    with pytest.raises(NodeTimeout) as info:
        g.invoke({}, session="s")
    assert info.value.node == "slow"
    assert set(store.latest("s").pending_writes) == {"fast"}


@pytest.mark.parametrize("router, fragment", [
    (lambda s: "nowhere", "returned 'nowhere'"),
    (lambda s: 1 / 0, "raised ZeroDivisionError"),
])
def test_router_errors_are_scheduler_failures(router, fragment) -> None:
    """A router returning an unknown node or raising fails with RouterError and a scheduler-scope event."""
    b = GraphBuilder().add_node("a", lambda s: {"extra": {"a": 1}}).add_edge(START, "a")
    b.add_conditional_edges("a", router)
    store = MemoryCheckpointer()
    g = b.compile(settings=mem(), checkpointer=store)
    with pytest.raises(RouterError, match=fragment) as info:
        g.invoke({}, session="s")
    assert info.value.event.scope.kind == "scheduler" and info.value.exit_code == 13
    cp = store.latest("s")
    assert set(cp.pending_writes) == {"a"} and cp.frontier == ("a",)


def test_step_limit_fails_then_resume_continues() -> None:
    """Hitting max_steps raises StepLimitError with a runner-scope event; resuming finishes the loop."""
    g = counter_graph(10)
    with pytest.raises(StepLimitError) as info:
        g.invoke({"extra": {"n": 0}}, session="s", max_steps=4)
    assert info.value.event.scope.kind == "runner" and info.value.details["max_steps"] == 4
    assert g.state("s").extra["n"] == 4
    st = g.invoke(None, session="s", max_steps=100)
    assert st.extra["n"] == 10 and st.status == "completed"
    assert [e.code for e in g.errors("s")] == ["railgraph.runner.step_limit"]


def test_reserved_key_write_names_the_node() -> None:
    """A node writing extra["errors"] directly fails with ReservedKeyError naming it."""
    b = GraphBuilder().add_node("sneaky", lambda s: {"extra": {"errors": ["x"]}}).add_edge(START, "sneaky")
    with pytest.raises(ReservedKeyError, match="sneaky") as info:
        b.compile(settings=mem()).invoke({}, session="s")
    assert info.value.node == "sneaky" and info.value.event.node == "sneaky"


def test_unstorable_value_names_node_and_key() -> None:
    """A node returning a value that cannot be stored fails naming the node and the key."""
    b = GraphBuilder().add_node("bad", lambda s: {"extra": {"when": object()}}).add_edge(START, "bad")
    with pytest.raises(UnstorableValueError, match="bad.*when") as info:
        b.compile(settings=mem()).invoke({}, session="s")
    assert info.value.details["key"] == "when"


def test_snapshot_is_immutable_for_nodes() -> None:
    """A node that tries to mutate its snapshot fails, and a sibling's view and the state are untouched."""
    seen = {}

    def mutator(s):
        s.extra["items"].append(99)

    def reader(s):
        time.sleep(0.01)
        seen["items"] = list(s.extra["items"])

    b = GraphBuilder().add_node("mutator", mutator).add_node("reader", reader)
    b.add_edge(START, "mutator").add_edge(START, "reader")
    g = b.compile(settings=mem())
    with pytest.raises(NodeFailed) as info:
        g.invoke({"extra": {"items": [1, 2]}}, session="s")
    assert info.value.node == "mutator" and isinstance(info.value.__cause__, TypeError)
    assert seen["items"] == [1, 2] and g.state("s").extra["items"] == [1, 2]


def test_version_gating_skips_nodes_that_saw_nothing_new() -> None:
    """A node looping on itself without changing state is skipped by the gate, which ends the run."""
    calls = Counter()

    def idle(s):
        calls["idle"] += 1
    b = GraphBuilder().add_node("idle", idle).add_edge(START, "idle").add_edge("idle", "idle")
    reports = []

    class Spy:
        name = "spy"

        @hookimpl
        def after_step(self, report):
            reports.append(report)
    st = b.compile(settings=mem(), plugins=[Spy()]).invoke({}, session="s")
    assert calls["idle"] == 1 and st.status == "completed"
    assert "idle" in reports[-1].skipped and "gated" in reports[-1].skipped["idle"]


def test_interrupts_before_and_after_then_resume() -> None:
    """interrupt_before pauses before the node; interrupt_after pauses after; invoke(None) continues."""
    b = GraphBuilder()
    for n in ("a", "b", "c"):
        b.add_node(n, lambda s, ctx: {"extra": {ctx.node: True}})
    b.add_edge(START, "a").add_edge("a", "b").add_edge("b", "c")
    g = b.compile(settings=mem(), interrupt_before=["b"], interrupt_after=["c"])
    st = g.invoke({}, session="s")
    assert st.status == "interrupted" and st.next == ("b",) and "b" not in st.extra
    st = g.invoke(None, session="s")
    assert st.extra == {"a": True, "b": True, "c": True} and st.status == "completed"


def test_interrupt_after_each_step() -> None:
    """runner.interrupt_after_step pauses after every superstep."""
    g = counter_graph(3, settings=mem(runner={"interrupt_after_step": True}))
    st = g.invoke({"extra": {"n": 0}}, session="s")
    assert st.status == "interrupted" and st.extra["n"] == 1
    assert g.invoke(None, session="s").extra["n"] == 2


def test_async_nodes_run_on_the_loop_with_sync_ones_in_threads() -> None:
    """A graph mixing async and sync nodes runs under ainvoke and under invoke."""
    async def fetch(s, ctx):
        await asyncio.sleep(0.01)
        return {"extra": {"fetched": ctx.node}}

    b = GraphBuilder().add_node("fetch", fetch).add_node("sync", lambda s: {"extra": {"sync": threading.get_ident()}})
    b.add_edge(START, "fetch").add_edge(START, "sync")
    g = b.compile(settings=mem())
    st = asyncio.run(g.ainvoke({}, session="a"))
    assert st.extra["fetched"] == "fetch" and st.extra["sync"] != threading.get_ident()
    assert g.invoke({}, session="b").extra["fetched"] == "fetch"


def test_invoke_inside_running_loop_points_to_ainvoke() -> None:
    """Calling invoke on an async graph from inside an event loop raises a RunnerError naming ainvoke."""
    async def node(s):
        return None
    g = GraphBuilder().add_node("n", node).add_edge(START, "n").compile(settings=mem())

    async def main():
        g.invoke({}, session="s")
    with pytest.raises(RunnerError, match="ainvoke"):
        asyncio.run(main())


def test_async_node_failure_and_timeout() -> None:
    """An async node that raises or overruns its timeout fails like a sync one."""
    async def boom(s):
        raise KeyError("k")

    async def slow(s):
        await asyncio.sleep(5)
    g = GraphBuilder().add_node("boom", boom).add_edge(START, "boom").compile(settings=mem())
    with pytest.raises(NodeFailed):
        g.invoke({}, session="s")
    g = GraphBuilder().add_node("slow", slow, timeout=0.05).add_edge(START, "slow").compile(settings=mem())
    with pytest.raises(NodeTimeout):
        g.invoke({}, session="s")


def test_concurrency_limit_is_respected() -> None:
    """With max_concurrency=2, no more than two of six nodes ever run at once, and all of them run."""
    running, peak, lock = [0], [0], threading.Lock()

    def node(s, ctx):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return {"extra": {ctx.node: 1}}
    b = GraphBuilder()
    for i in range(6):
        b.add_node(f"n{i}", node).add_edge(START, f"n{i}")
    st = b.compile(settings=mem(runner={"max_concurrency": 2})).invoke({}, session="s")
    assert peak[0] == 2 and len(st.extra) == 6


def test_resume_of_unknown_session_is_clear() -> None:
    """invoke(None) for a session that was never started raises SessionNotFoundError."""
    with pytest.raises(SessionNotFoundError, match="ghost"):
        counter_graph().invoke(None, session="ghost")


def test_nodes_emit_non_fatal_events() -> None:
    """A node returning events through ctx.event keeps running; the events reach every rail once."""
    def warn(s, ctx):
        return {"extra": {"done": True}, "errors": [ctx.event("slow upstream", code="app.slow", details={"ms": 900})]}
    g = GraphBuilder().add_node("warn", warn).add_edge(START, "warn").compile(settings=mem())
    st = g.invoke({}, session="s")
    assert st.status == "completed" and len(st.errors) == 1
    ev = st.errors[0]
    assert ev.code == "app.slow" and ev.node == "warn" and ev.error.details == {"ms": 900}
    assert st.extra["errors"] == (ev,) and g.errors("s") == [ev]


class Retry:
    """A code plugin: retry every node up to 3 attempts."""

    name = "test_retry"

    @hookimpl
    def retry_decision(self, node, attempt, error, settings):
        return RetryDecision(retry=True, delay=0, max_attempts=3, rule="test")


def test_every_retry_attempt_is_an_event() -> None:
    """A node failing twice then succeeding commits two attempt events tagged attempt:n/3."""
    tries = Counter()

    def flaky(s, ctx):
        tries["n"] += 1
        if ctx.attempt < 3:
            raise ConnectionError(f"try {ctx.attempt}")
        return {"extra": {"ok": ctx.attempt}}
    g = GraphBuilder().add_node("flaky", flaky).add_edge(START, "flaky").compile(settings=mem(), plugins=[Retry()])
    st = g.invoke({}, session="s")
    assert st.extra["ok"] == 3 and tries["n"] == 3
    assert [e.tags for e in g.errors("s")] == [("retry", "attempt:1/3"), ("retry", "attempt:2/3")]


def test_permanent_failure_after_retries_records_all_attempts() -> None:
    """A node failing every attempt records attempts 1 and 2 and the final failure tagged attempt:3/3."""
    def dead(s):
        raise ConnectionError("down")
    g = GraphBuilder().add_node("dead", dead).add_edge(START, "dead").compile(settings=mem(), plugins=[Retry()])
    with pytest.raises(NodeFailed) as info:
        g.invoke({}, session="s")
    tags = [e.tags[-1] for e in g.errors("s")]
    assert tags == ["attempt:1/3", "attempt:2/3", "attempt:3/3"]
    assert info.value.event.context["attempt"] == 3


class BrokenStore(MemoryCheckpointer):
    """A store whose commits start failing after `ok` successes."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def commit(self, checkpoint, delta):
        if self.ok <= 0:
            raise OSError("disk full")
        self.ok -= 1
        super().commit(checkpoint, delta)


def test_checkpoint_failure_raises_checkpoint_error_with_event() -> None:
    """When the store refuses a commit, the run raises CheckpointError carrying a runner-scope event."""
    store = BrokenStore(ok=2)
    g = counter_graph(10, checkpointer=store)
    with pytest.raises(CheckpointError) as info:
        g.invoke({"extra": {"n": 0}}, session="s")
    err = info.value
    assert err.event is not None and err.event.scope.kind == "runner"
    assert isinstance(err.__cause__, OSError) or isinstance(err.__cause__.__cause__, OSError)
    assert store.latest("s").step == 2  # nothing past the last good commit


def test_failure_in_lifecycle_hook_becomes_app_event() -> None:
    """A plugin raising in after_step does not stop the run; it is recorded as an app-scope PluginError event."""
    class Bad:
        name = "bad"

        @hookimpl
        def after_step(self, report):
            raise RuntimeError("nope")
    g = counter_graph(2, plugins=[Bad()])
    st = g.invoke({"extra": {"n": 0}}, session="s")
    assert st.extra["n"] == 2
    evs = g.errors("s")
    assert evs and all(e.scope.kind == "app" and e.code == "railgraph.plugin.failed" for e in evs)
    assert "bad" in evs[0].error.message and "after_step" in evs[0].error.message


class ListSink:
    def __init__(self, name: str, fail_for: int = 0) -> None:
        self.name, self.fail_for, self.got = name, fail_for, []

    def write(self, session, events):
        if self.fail_for > 0:
            self.fail_for -= 1
            raise ConnectionError("sink down")
        self.got.extend((session, e.id) for e in events)

    def flush(self):
        return None

    def close(self):
        return None


def sink_plugin(*sinks):
    return SimpleNamespace(name="sinks", make_sinks=hookimpl(lambda settings: list(sinks)))


def test_failing_sink_never_stops_run_or_other_sinks_and_catches_up() -> None:
    """A sink down for a few deliveries is reported once, the other sink gets everything, and it catches up."""
    def warn(s, ctx):
        return {"extra": {"n": s.extra.get("n", 0) + 1}, "errors": [ctx.event(f"step {ctx.step}")]}
    b = GraphBuilder().add_node("w", warn).add_edge(START, "w")
    b.add_conditional_edges("w", lambda s: "w" if s.extra["n"] < 5 else END)
    good, flaky = ListSink("good"), ListSink("flaky", fail_for=2)
    g = b.compile(settings=mem(), plugins=[sink_plugin(good, flaky)])
    g.invoke({}, session="s")
    node_events = [e.id for e in g.errors("s") if e.scope.kind == "node"]
    assert [i for _, i in good.got if i in set(node_events)] == node_events
    assert [i for _, i in flaky.got if i in set(node_events)] == node_events
    reports = [e for e in g.errors("s") if e.code == "railgraph.sink.failed"]
    assert len(reports) == 1 and "flaky" in reports[0].error.message


def test_a_healthy_sink_gets_a_new_batch_at_most_every_sink_interval() -> None:
    """During a run a healthy sink is handed a batch at most every SINK_INTERVAL (5 ms): 60 steps of
    ~1 ms, each leaving the sink time to finish its write, reach it in a few batches of several steps
    (one per step without the interval), every event once and in order, all delivered at the return."""
    writes = []

    class Counting(ListSink):
        def write(self, session, events):
            writes.append(len(events))
            super().write(session, events)

    def w(s, ctx):
        time.sleep(0.001)
        return {"extra": {"n": s.extra.get("n", 0) + 1}, "errors": [ctx.event("e")]}
    b = GraphBuilder().add_node("w", w).add_edge(START, "w")
    b.add_conditional_edges("w", lambda s: "w" if s.extra["n"] < 60 else END)
    sink = Counting("counting")
    g = b.compile(settings=mem(), plugins=[sink_plugin(sink)])
    g.invoke({}, session="s")
    assert [i for _, i in sink.got] == [e.id for e in g.errors("s")] and len(sink.got) == 60
    assert len(writes) <= 30, writes


def test_lifecycle_notifications_fire_in_order() -> None:
    """before_session, after_step (per commit) and after_session fire in that exact sequence, with status."""
    calls: list[tuple] = []

    class Recorder:
        name = "recorder"

        @hookimpl
        def before_session(self, session, resumed, settings):
            calls.append(("before_session", session, resumed))

        @hookimpl
        def after_step(self, report):
            calls.append(("after_step", report.step, report.ran, report.status))

        @hookimpl
        def after_session(self, session, status, error):
            calls.append(("after_session", session, status, type(error).__name__ if error else None))
    g = counter_graph(2, plugins=[Recorder()])
    g.invoke({"extra": {"n": 0}}, session="s")
    assert calls == [("before_session", "s", False), ("after_step", 1, ("__input__",), "running"),
                     ("after_step", 2, ("inc",), "running"), ("after_step", 3, ("inc",), "completed"),
                     ("after_session", "s", "completed", None)]
    calls.clear()
    with pytest.raises(StepLimitError):
        g.invoke({"extra": {"n": 0}}, session="t", max_steps=1)
    assert calls[-1] == ("after_session", "t", "failed", "StepLimitError")


# -- regressions from the outside review -------------------------------------------------------


def test_retry_policy_that_raises_fails_the_node_with_a_committed_plugin_error() -> None:
    """A retry_decision hook that raises ends the node with a PluginError that is committed first."""
    class BadRetry:
        name = "bad_retry"

        @hookimpl
        def retry_decision(self, node, attempt, error, settings):
            raise RuntimeError("policy bug")

    def boom(s):
        raise ValueError("x")
    store = MemoryCheckpointer()
    g = GraphBuilder().add_node("n", boom).add_edge(START, "n").compile(settings=mem(), plugins=[BadRetry()],
                                                                        checkpointer=store)
    with pytest.raises(RunnerError) as info:
        g.invoke({}, session="s")
    assert info.value.code == "railgraph.plugin.failed" and info.value.event is not None
    assert store.latest("s").status == "failed" and g.errors("s") == [info.value.event]


def test_capper_that_raises_is_committed_uncapped() -> None:
    """A capper that raises fails the step with a PluginError, committed without the cap."""
    class BadCap:
        name = "bad_cap"

        @hookimpl(tryfirst=True)
        def error_capper(self, settings):
            def cap(events):
                raise RuntimeError("cap bug")
            return cap
    g = GraphBuilder().add_node("n", lambda s, ctx: {"errors": [ctx.event("warn")]}).add_edge(START, "n")
    g = g.compile(settings=mem(), plugins=[BadCap()])
    with pytest.raises(RunnerError) as info:
        g.invoke({}, session="s")
    assert info.value.code == "railgraph.plugin.failed" and "bad_cap" in info.value.message
    assert info.value.event is not None and g.state("s").status == "failed"


def test_router_returning_unhashable_value_is_a_router_error() -> None:
    """A router with a path map returning an unhashable value fails with a committed RouterError."""
    b = GraphBuilder().add_node("a", lambda s: None).add_edge(START, "a")
    b.add_conditional_edges("a", lambda s: {"not": "hashable"}, {"x": "a"})
    g = b.compile(settings=mem())
    with pytest.raises(RouterError) as info:
        g.invoke({}, session="s")
    assert info.value.event is not None and g.state("s").status == "failed"


def test_partial_with_none_fields_is_empty() -> None:
    """NodePartial(errors=None, messages=None) is treated as writing nothing there."""
    from railgraph import NodePartial
    b = GraphBuilder().add_node("a", lambda s: NodePartial(messages=None, extra={"k": 1}, errors=None))
    st = b.add_edge(START, "a").compile(settings=mem()).invoke({}, session="s")
    assert st.extra["k"] == 1 and st.errors == ()


def test_exception_with_broken_str_is_still_committed() -> None:
    """A node raising an exception whose __str__ raises still yields a committed NodeFailed event."""
    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("no str")

    def boom(s):
        raise Weird()
    g = GraphBuilder().add_node("n", boom).add_edge(START, "n").compile(settings=mem())
    with pytest.raises(NodeFailed) as info:
        g.invoke({}, session="s")
    assert "unprintable Weird" in info.value.event.error.cause.message


def _fail_once_graph(calls: Counter, fail: dict):
    def ok(s, ctx):
        calls["ok"] += 1
        return {"extra": {"ok": calls["ok"]}, "errors": [ctx.event(f"warning from ok #{calls['ok']}")]}

    def bad(s):
        calls["bad"] += 1
        if fail["on"]:
            raise ValueError("bad")
    b = GraphBuilder().add_node("ok", ok).add_node("bad", bad)
    return b.add_edge(START, "ok").add_edge(START, "bad")


def test_events_of_successful_nodes_in_a_failed_step_are_committed_once_in_frontier_order() -> None:
    """A sibling's event is committed with the failure, before it, and resuming does not emit it again."""
    calls, fail = Counter(), {"on": True}
    g = _fail_once_graph(calls, fail).compile(settings=mem())
    with pytest.raises(NodeFailed):
        g.invoke({}, session="s")
    messages = [e.error.message for e in g.errors("s")]
    assert messages[0] == "warning from ok #1" and "failed" in messages[1] and len(messages) == 2
    fail["on"] = False
    g.invoke(None, session="s")
    assert [e.error.message for e in g.errors("s")] == messages and calls["ok"] == 1


def test_new_input_after_a_failure_keeps_the_siblings_events() -> None:
    """Restarting a failed session with new input (dropping pending writes) loses no committed event."""
    calls, fail = Counter(), {"on": True}
    g = _fail_once_graph(calls, fail).compile(settings=mem())
    with pytest.raises(NodeFailed):
        g.invoke({}, session="s")
    fail["on"] = False
    g.invoke({"extra": {"again": True}}, session="s")
    warnings = [e.error.message for e in g.errors("s") if e.error.message.startswith("warning")]
    assert warnings == ["warning from ok #1", "warning from ok #2"]


def test_app_events_stay_with_their_session() -> None:
    """A plugin failing in after_session for session A is recorded in A, not in the next session run."""
    class Noisy:
        name = "noisy"

        @hookimpl
        def after_session(self, session, status, error):
            raise RuntimeError(f"metrics push failed for {session}")
    g = counter_graph(1, plugins=[Noisy()])
    g.invoke({"extra": {"n": 0}}, session="A")
    g.invoke({"extra": {"n": 0}}, session="B")
    a, b = g.errors("A"), g.errors("B")
    assert len(a) == 1 and "metrics push failed for A" in a[0].error.cause.message
    assert len(b) == 1 and "metrics push failed for B" in b[0].error.cause.message


def test_stored_failure_is_found_after_later_checkpoints() -> None:
    """The failure diagnostic's event is found even when app events were committed after the failure."""
    down = ListSink("down", fail_for=100)
    calls, fail = Counter(), {"on": True}
    g = _fail_once_graph(calls, fail).compile(settings=mem(), plugins=[sink_plugin(down)])
    with pytest.raises(NodeFailed) as info:
        g.invoke({}, session="s")
    failure, event = g.runner.failure("s")
    assert event == info.value.event and failure["step"] == info.value.step
    assert g.state("s").step > info.value.step  # the sink failure was committed after the failure


def test_stored_failure_text_is_the_processed_one() -> None:
    """The failure kept in the checkpoint carries the message as processors left it, not the raw one."""
    class Scrub:
        name = "scrub"

        @hookimpl
        def event_processor(self, settings):
            def proc(ev):
                return ev.model_copy(update={"error": ev.error.model_copy(update={"message": "***"})})
            return proc

    def bad(s):
        raise railgraph_error("customer hunter2 rejected")
    from railgraph import NodeFailed as railgraph_error
    g = GraphBuilder().add_node("n", bad).add_edge(START, "n").compile(settings=mem(), plugins=[Scrub()])
    with pytest.raises(RunnerError):
        g.invoke({}, session="s")
    failure, _ = g.runner.failure("s")
    assert failure["message"] == "***"


def test_timeouts_are_per_node_and_per_attempt_among_siblings() -> None:
    """With limit 1, a hung node times out alone; a slow-then-fast sibling is retried per attempt."""
    tries = Counter()

    def hung(s):
        time.sleep(1)

    def flaky(s, ctx):
        tries["n"] += 1
        if ctx.attempt == 1:
            time.sleep(0.5)  # overruns its 0.1 s deadline, then attempt 2 is quick
        return {"extra": {"flaky": ctx.attempt}}
    b = GraphBuilder().add_node("hung", hung, timeout=0.1).add_node("flaky", flaky, timeout=0.1)
    b.add_edge(START, "hung").add_edge(START, "flaky")

    class RetryTimeouts:
        name = "rt"

        @hookimpl
        def retry_decision(self, node, attempt, error, settings):
            return RetryDecision(retry=node == "flaky", max_attempts=3, rule="t")
    store = MemoryCheckpointer()
    g = b.compile(settings=mem(runner={"max_concurrency": 1}), plugins=[RetryTimeouts()], checkpointer=store)
    with pytest.raises(NodeTimeout) as info:
        g.invoke({}, session="s")
    assert info.value.node == "hung" and "more" not in info.value.message
    assert store.latest("s").pending_writes["flaky"].extra == {"flaky": 2}
    assert [e.tags for e in g.errors("s") if e.node == "flaky"] == [("retry", "attempt:1/3")]


def test_concurrent_runs_of_one_session_are_refused() -> None:
    """Two ainvoke calls on the same session in one loop: the second gets SessionBusyError."""
    async def slow(s):
        await asyncio.sleep(0.2)
    g = GraphBuilder().add_node("n", slow).add_edge(START, "n").compile(settings=mem())

    async def main():
        return await asyncio.gather(g.ainvoke({}, session="s"), g.ainvoke({}, session="s"),
                                    return_exceptions=True)
    results = asyncio.run(main())
    kinds = sorted(type(r).__name__ for r in results)
    assert kinds == ["SessionBusyError", "State"]


def test_ainvoke_does_not_block_the_event_loop_on_sinks() -> None:
    """A slow sink delays the run but the event loop keeps serving other tasks."""
    class SlowSink(ListSink):
        def write(self, session, events):
            time.sleep(0.3)
            super().write(session, events)

    async def node(s, ctx):
        return {"errors": [ctx.event("e")]}
    g = GraphBuilder().add_node("n", node).add_edge(START, "n").compile(settings=mem(),
                                                                         plugins=[sink_plugin(SlowSink("slow"))])

    async def main():
        stalls = []

        async def ticker():
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                stalls.append(now - last)
                last = now
        t = asyncio.create_task(ticker())
        await g.ainvoke({}, session="s")
        t.cancel()
        return max(stalls)
    assert asyncio.run(main()) < 0.2


def test_one_delivery_per_sink_at_a_time() -> None:
    """Runs of different sessions in parallel threads never call one sink's write concurrently."""
    active, peak, lock = [0], [0], threading.Lock()

    class Counting(ListSink):
        def write(self, session, events):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.005)
            with lock:
                active[0] -= 1
            super().write(session, events)
    sink = Counting("counting")
    b = GraphBuilder().add_node("w", lambda s, ctx: {"extra": {"n": s.extra.get("n", 0) + 1},
                                                     "errors": [ctx.event("e")]}).add_edge(START, "w")
    b.add_conditional_edges("w", lambda s: "w" if s.extra["n"] < 5 else END)
    g = b.compile(settings=mem(), plugins=[sink_plugin(sink)])
    threads = [threading.Thread(target=g.invoke, args=({}, f"s{i}")) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    g.runner.deliver()
    assert peak[0] == 1
    assert len({i for _, i in sink.got}) == 20


def test_interrupt_before_does_not_fire_again_after_a_failed_step() -> None:
    """After approving an interrupt, a failure of that node does not pause again on resume."""
    fail = {"on": True}

    def review(s):
        if fail["on"]:
            raise ValueError("review failed")
        return {"extra": {"reviewed": True}}
    b = GraphBuilder().add_node("review", review).add_edge(START, "review")
    g = b.compile(settings=mem(), interrupt_before=["review"])
    assert g.invoke({}, session="s").status == "interrupted"
    with pytest.raises(NodeFailed):
        g.invoke(None, session="s")
    fail["on"] = False
    st = g.invoke(None, session="s")
    assert st.status == "completed" and st.extra["reviewed"]


def test_interrupt_names_in_settings_are_checked(tmp_path) -> None:
    """A node name in runner.interrupt_before that the graph lacks is a ConfigError naming file and line."""
    from railgraph import ConfigError
    cfg = tmp_path / "c.toml"
    cfg.write_text('[persistence]\nbackend = "memory"\n[runner]\ninterrupt_before = ["nope"]\n')
    with pytest.raises(ConfigError) as info:
        counter_graph(settings=Settings.load(cfg))
    assert info.value.line == 4 and "nope" in str(info.value) and info.value.key == "runner.interrupt_before"


def test_start_step_run_api() -> None:
    """start commits the input only, step runs one superstep at a time, run is invoke."""
    g = counter_graph(3)
    st = g.start({"extra": {"n": 0}}, session="s")
    assert st.step == 1 and st.extra == {"n": 0} and st.next == ("inc",)
    assert g.step("s").extra["n"] == 1
    assert g.step("s").extra["n"] == 2
    assert g.run(None, session="s").extra["n"] == 3


def test_the_error_raised_for_several_failures_carries_every_failures_event() -> None:
    """Two nodes fail in one superstep: the first is raised, its message names the other, and its
    ``events`` hold both failures' events (its own first), as committed."""
    def bad(s):
        raise ValueError("bad failed")

    def slow(s):
        time.sleep(0.5)
    b = GraphBuilder().add_node("bad", bad).add_node("slow", slow, timeout=0.05)
    b.add_edge(START, "bad").add_edge(START, "slow").add_edge("bad", END).add_edge("slow", END)
    with b.compile(settings=mem()) as g:
        with pytest.raises(NodeFailed) as info:
            g.invoke({}, session="two")
        err = info.value
        assert "(and 1 more: slow)" in str(err) and err.event is err.events[0]
        assert [e.node for e in err.events] == ["bad", "slow"]
        assert [e.code for e in err.events] == ["railgraph.runner.node_failed", "railgraph.runner.node_timeout"]
        committed = {e.id for e in g.errors("two")}
        assert {e.id for e in err.events} <= committed
