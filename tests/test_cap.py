"""The ``cap`` plugin: bounded, ordered, newest kept, every drop accounted for, idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import railgraph.plugins.cap as cap_plugin
from railgraph import END, START, ConfigError, ErrorEvent, GraphBuilder, NodePartial, Settings
from railgraph.events import SUMMARY_CODE
from railgraph.manager import make_plugins
from strategies import event_batches, small_events


def capper_for(**section: Any) -> Any:
    """The capper the plugin contributes for `section`, through a fresh manager with only this plugin."""
    plugins = make_plugins(load_entrypoints=False, plugins=[cap_plugin])
    settings = plugins.bind(Settings(persistence={"backend": "memory"}, plugins={"cap": section}))
    _, capper = plugins.first("error_capper", settings=settings)
    return capper


def feed(capper: Any, batches: list[list[ErrorEvent]]) -> tuple[ErrorEvent, ...]:
    """Append each batch and cap, as the barrier does after every merge."""
    arr: tuple[ErrorEvent, ...] = ()
    for batch in batches:
        arr = tuple(capper(arr + tuple(batch)))
    return arr


def test_no_max_events_means_no_capper() -> None:
    """Without `max_events` the plugin has no opinion, so the array is not capped."""
    assert capper_for() is None


@given(batches=event_batches, max_events=st.integers(1, 8))
def test_summarize_is_bounded_ordered_newest_kept_and_accounts_for_every_drop(batches: list[list[ErrorEvent]],
                                                                              max_events: int) -> None:
    """For any stream and cap, summarize keeps the newest in order, by identity, and counts every dropped event."""
    capper = capper_for(max_events=max_events, strategy="summarize")
    emitted = [e for batch in batches for e in batch]
    arr = feed(capper, batches)
    assert len(arr) <= max_events
    summary = arr[0] if arr and arr[0].is_summary else None
    kept = arr[1:] if summary else arr
    assert all(not e.is_summary for e in kept)
    tail = emitted[len(emitted) - len(kept):]
    assert all(a is b for a, b in zip(kept, tail, strict=True))  # the same objects, newest, in order
    dropped = emitted[: len(emitted) - len(kept)]
    if not dropped:
        assert summary is None
        return
    assert summary is not None and len(kept) == max_events - 1
    d = summary.error.details
    assert d["dropped"] == len(dropped)
    assert sum(d["by_scope"].values()) == len(dropped)
    assert sum(d["by_code"].values()) == len(dropped)
    assert sum(d["by_node"].values()) == sum(1 for e in dropped if e.node is not None)
    assert d["first"] == min(e.when for e in dropped).isoformat()
    assert d["last"] == max(e.when for e in dropped).isoformat() == summary.when.isoformat()
    assert summary.code == SUMMARY_CODE and summary.tags == ("summary",) and summary.scope.kind == "app"


@given(batches=event_batches, max_events=st.integers(1, 8), strategy=st.sampled_from(["summarize", "drop-oldest"]))
def test_capping_twice_equals_capping_once(batches: list[list[ErrorEvent]], max_events: int, strategy: str) -> None:
    """cap(cap(x)) == cap(x) for any array, whatever the strategy."""
    capper = capper_for(max_events=max_events, strategy=strategy)
    once = tuple(capper(tuple(e for b in batches for e in b)))
    assert tuple(capper(once)) == once
    fed = feed(capper, batches)
    assert tuple(capper(fed)) == fed


@given(events=st.lists(small_events, max_size=20), max_events=st.integers(1, 8))
def test_summary_is_a_pure_function_of_the_input(events: list[ErrorEvent], max_events: int) -> None:
    """The same input always gives an equal result (summary id and time included)."""
    capper = capper_for(max_events=max_events)
    assert capper(tuple(events)) == capper(tuple(events))


@given(batches=event_batches, max_events=st.integers(1, 8))
def test_drop_oldest_keeps_a_window_of_the_newest(batches: list[list[ErrorEvent]], max_events: int) -> None:
    """drop-oldest keeps exactly the newest `max_events` entries and adds no summary."""
    capper = capper_for(max_events=max_events, strategy="drop-oldest")
    emitted = tuple(e for b in batches for e in b)
    arr = feed(capper, batches)
    assert arr == emitted[-max_events:]
    assert not any(e.is_summary for e in arr)


def test_graph_with_cap_keeps_every_event_in_errors(ids: Any, clock: Any) -> None:
    """A capped extra["errors"] still leaves runner.errors(session) with every emitted event, in order."""
    def emit(state: Any, ctx: Any) -> NodePartial:
        return NodePartial(errors=[ctx.event(f"warning {i}") for i in range(7)])

    builder = GraphBuilder()
    builder.add_node("emit", emit)
    builder.add_edge(START, "emit")
    builder.add_edge("emit", END)
    graph = builder.compile(Settings(persistence={"backend": "memory"}, plugins={"cap": {"max_events": 3}}),
                            ids=ids, clock=clock)
    state = graph.invoke({}, session="s")
    arr = state.extra["errors"]
    assert len(arr) == 3 and arr[0].is_summary and arr[0].error.details["dropped"] == 5
    assert [e.error.message for e in graph.errors("s")] == [f"warning {i}" for i in range(7)]


@pytest.mark.parametrize("value", [0, -3])
def test_cap_of_zero_or_less_is_a_one_line_config_error(value: int) -> None:
    """max_events <= 0 fails binding with a one-line ConfigError naming the key path."""
    plugins = make_plugins(load_entrypoints=False, plugins=[cap_plugin])
    with pytest.raises(ConfigError) as info:
        plugins.bind(Settings(plugins={"cap": {"max_events": value}}))
    assert "plugins.cap.max_events" in str(info.value) and "\n" not in str(info.value)
