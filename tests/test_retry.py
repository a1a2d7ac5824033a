"""The ``retry`` plugin: backoff with jitter, retry_on, per-node rules, and one event per attempt."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import railgraph.plugins.retry as retry
from railgraph import END, START, GraphBuilder, NodeFailed, RetryDecision, Settings
from railgraph.manager import make_plugins


PLUGINS = make_plugins(load_entrypoints=False, plugins=[retry])


def decide(section: dict[str, Any], node: str, attempt: int, error: BaseException) -> RetryDecision | None:
    """The plugin's decision for one failed attempt, through a manager holding only this plugin."""
    settings = PLUGINS.bind(Settings(plugins={"retry": section}))
    return PLUGINS.first("retry_decision", node=node, attempt=attempt, error=error, settings=settings)[1]


class Flaky(ConnectionError):
    """A project exception whose base class is a builtin."""


def test_off_unless_configured() -> None:
    """With max_attempts = 1 (the default) the plugin has no opinion, so a failure is final."""
    assert decide({}, "n", 1, ValueError("x")) is None


@given(max_attempts=st.integers(2, 6), backoff=st.floats(0, 5), multiplier=st.floats(1, 4),
       max_delay=st.floats(0, 20), jitter=st.floats(0, 1), seed=st.integers(0, 10))
def test_delays_grow_are_bounded_and_stop_at_max_attempts(max_attempts: int, backoff: float, multiplier: float,
                                                         max_delay: float, jitter: float, seed: int) -> None:
    """Every attempt before the last retries after a delay in [0, max_delay]; the last stops; seeded jitter repeats."""
    section = {"max_attempts": max_attempts, "backoff": backoff, "multiplier": multiplier, "max_delay": max_delay,
               "jitter": jitter, "seed": seed}
    for attempt in range(1, max_attempts + 1):
        d = decide(section, "n", attempt, ValueError("x"))
        assert d is not None and d.max_attempts == max_attempts and d.rule == "global"
        assert d.retry is (attempt < max_attempts)
        assert 0 <= d.delay <= max_delay
        if not d.retry:
            continue
        base = min(backoff * multiplier ** (attempt - 1), max_delay)
        assert abs(d.delay - base) <= base * jitter + 1e-9
        assert decide(section, "n", attempt, ValueError("x")) == d  # pure for a given seed
    no_jitter = [decide({**section, "jitter": 0}, "n", a, ValueError("x")).delay for a in range(1, max_attempts)]
    assert no_jitter == sorted(no_jitter)


@pytest.mark.parametrize(("retry_on", "error", "expected"), [
    (["ConnectionError"], Flaky(), True),  # a base class, by plain name
    (["Flaky"], Flaky(), True),
    ([f"{__name__}.Flaky"], Flaky(), True),  # dotted module path
    (["OSError"], Flaky(), True),  # further up the MRO
    (["ValueError"], Flaky(), False),
    ([], KeyError("k"), True),  # empty: any Exception
])
def test_retry_on_matches_the_class_and_its_bases(retry_on: list[str], error: BaseException, expected: bool) -> None:
    """retry_on matches an exception by its class or any base class, by name, qualified or dotted name."""
    d = decide({"max_attempts": 3, "retry_on": retry_on}, "n", 1, error)
    assert (d is not None and d.retry) is expected


def test_per_node_rule_overrides_and_inherits() -> None:
    """nodes.NAME overrides only the fields it sets and names itself as the rule."""
    section = {"max_attempts": 2, "backoff": 1.0, "jitter": 0, "nodes": {"fetch": {"max_attempts": 4}}}
    d = decide(section, "fetch", 2, ValueError())
    assert d == RetryDecision(retry=True, delay=2.0, max_attempts=4, rule="nodes.fetch")
    assert decide(section, "other", 2, ValueError()) == RetryDecision(False, 0.0, 2, "global")


def attempt_graph(fail_times: int, max_attempts: int) -> tuple[Any, dict[str, int]]:
    """A one-node graph that fails `fail_times` times, with retries configured."""
    calls = {"n": 0}

    def flaky(state: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= fail_times:
            raise TimeoutError(f"upstream slow ({calls['n']})")

    builder = GraphBuilder()
    builder.add_node("flaky", flaky)
    builder.add_edge(START, "flaky")
    builder.add_edge("flaky", END)
    settings = Settings(persistence={"backend": "memory"},
                        plugins={"retry": {"max_attempts": max_attempts, "backoff": 0, "retry_on": ["TimeoutError"]}})
    return builder.compile(settings), calls


def test_two_failures_then_success_commits_two_attempt_events() -> None:
    """A node failing twice then succeeding under max_attempts=3 completes with 2 attempt events committed."""
    graph, calls = attempt_graph(fail_times=2, max_attempts=3)
    assert graph.invoke({}, session="s").status == "completed"
    events = graph.errors("s")
    assert calls["n"] == 3
    assert [e.tags for e in events] == [("retry", "attempt:1/3"), ("retry", "attempt:2/3")]
    assert [e.context["rule"] for e in events] == ["global", "global"]
    assert all(e.context["will_retry"] is True and e.node == "flaky" for e in events)


def test_permanent_failure_commits_one_event_per_attempt() -> None:
    """A node that always fails yields N events: N-1 attempts plus the final failure tagged attempt:N/N."""
    graph, calls = attempt_graph(fail_times=99, max_attempts=4)
    with pytest.raises(NodeFailed) as info:
        graph.invoke({}, session="s")
    events = graph.errors("s")
    assert calls["n"] == 4 and len(events) == 4
    assert [e.tags[-1] for e in events] == ["attempt:1/4", "attempt:2/4", "attempt:3/4", "attempt:4/4"]
    assert events[-1].context["will_retry"] is False and events[-1].code == NodeFailed.code
    assert info.value.event is not None and info.value.event.id == events[-1].id
