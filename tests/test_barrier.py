"""The barrier: frontier-order merge, version bumps iff content changed, error routing, reserved keys."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgraph import END, START, GraphBuilder, Message, NodePartial, ReservedKeyError, Settings, UnstorableValueError
from railgraph.barrier import BarrierPolicy, Channels, check_partial, merge, storable
from railgraph.state import FrozenDict
from tests.strategies import event_with_id

EMPTY = Channels((), FrozenDict(), (), FrozenDict(messages=1, extra=1, errors=1))
keys = st.sampled_from(["a", "b", "c"])
small = st.integers(0, 2)
partials = st.builds(
    NodePartial,
    messages=st.lists(st.builds(Message, role=st.just("ai"), content=st.text(max_size=3)), max_size=2),
    extra=st.dictionaries(keys, small, max_size=2),
    errors=st.lists(st.integers(1, 10**6).map(event_with_id), max_size=2),
)


@given(st.lists(partials, min_size=1, max_size=6), st.randoms())
def test_merge_depends_on_frontier_order_not_on_completion_order(parts: list[NodePartial], rnd) -> None:
    """Partials that completed in any order, re-sorted by frontier position, merge to the same state."""
    frontier = [f"n{i}" for i in range(len(parts))]
    completed = list(zip(frontier, parts, strict=True))
    rnd.shuffle(completed)
    position = {n: i for i, n in enumerate(frontier)}
    ordered = sorted(completed, key=lambda item: position[item[0]])
    a = merge(EMPTY, list(zip(frontier, parts, strict=True)), BarrierPolicy())
    b = merge(EMPTY, ordered, BarrierPolicy())
    assert a.channels == b.channels
    assert [e.id for e in a.events] == [e.id for e in b.events]


@given(st.lists(st.lists(partials, max_size=3), min_size=1, max_size=8), st.booleans())
def test_version_rises_by_exactly_one_iff_content_changed(steps: list[list[NodePartial]], bump_reserved: bool) -> None:
    """Across any sequence of merges, each channel's version rises by one exactly when its content changed."""
    policy = BarrierPolicy(reserved_bumps_version=bump_reserved)
    ch = EMPTY
    seen_ids: set = set()
    for step in steps:
        # events are unique per run in practice; keep each id once so "changed" is well defined
        fresh = []
        for p in step:
            evs = [e for e in p.errors if e.id not in seen_ids]
            seen_ids.update(e.id for e in evs)
            fresh.append(NodePartial(p.messages, p.extra, evs))
        new = merge(ch, [(f"n{i}", p) for i, p in enumerate(fresh)], policy).channels
        user_old = {k: v for k, v in ch.extra.items() if k != "errors"}
        user_new = {k: v for k, v in new.extra.items() if k != "errors"}
        errors_changed = tuple(new.extra.get("errors", ())) != tuple(ch.extra.get("errors", ()))
        assert new.versions["messages"] - ch.versions["messages"] == int(new.messages != ch.messages)
        assert new.versions["errors"] - ch.versions["errors"] == int(new.errors != ch.errors)
        expected_extra = user_new != user_old or (errors_changed and bump_reserved)
        assert new.versions["extra"] - ch.versions["extra"] == int(expected_extra)
        ch = new


def test_later_node_in_frontier_order_wins_a_key() -> None:
    """Two nodes writing the same key: the one later in frontier order wins."""
    res = merge(EMPTY, [("a", NodePartial(extra={"k": "a"})), ("b", NodePartial(extra={"k": "b"}))], BarrierPolicy())
    assert res.channels.extra["k"] == "b"


def test_events_route_to_channel_and_extra_by_mode() -> None:
    """Events reach the errors channel always, and extra["errors"] only in legacy/dual/verify modes."""
    ev = event_with_id(1)
    for mode, in_extra in (("legacy", True), ("dual", True), ("verify", True), ("store-only", False)):
        res = merge(EMPTY, [("n", NodePartial(errors=[ev]))], BarrierPolicy(mode=mode))
        assert res.channels.errors == (ev,)
        assert ("errors" in res.channels.extra) is in_extra
        assert res.delta.write_errors_store is (mode != "legacy")


def test_processors_chain_in_order_and_may_drop() -> None:
    """Processors run in order, each on the previous output; returning None drops the event."""
    calls: list[str] = []

    def tag(name: str):
        def proc(event):
            calls.append(name)
            return event.model_copy(update={"tags": (*event.tags, name)})
        return proc

    def drop_odd(event):
        return None if event.id.int % 2 else event

    res = merge(EMPTY, [("n", NodePartial(errors=[event_with_id(1), event_with_id(2)]))],
                BarrierPolicy(processors=(tag("first"), drop_odd, tag("last"))))
    assert [e.id.int for e in res.events] == [2]
    assert res.events[0].tags == ("first", "last")
    assert calls == ["first", "first", "last"]


def test_gating_toggle_on_keeps_extra_version_for_error_only_changes() -> None:
    """With the toggle on (no bump), an error-only merge leaves extra.version while storing the events."""
    res = merge(EMPTY, [("n", NodePartial(errors=[event_with_id(1)]))], BarrierPolicy(reserved_bumps_version=False))
    assert res.channels.versions["extra"] == 1 and len(res.channels.extra["errors"]) == 1
    res = merge(EMPTY, [("n", NodePartial(errors=[event_with_id(1)]))], BarrierPolicy(reserved_bumps_version=True))
    assert res.channels.versions["extra"] == 2


def test_channel_limit_keeps_newest() -> None:
    """The in-memory errors channel keeps only the newest channel_limit events."""
    evs = [event_with_id(i) for i in range(1, 6)]
    res = merge(EMPTY, [("n", NodePartial(errors=evs))], BarrierPolicy(channel_limit=2))
    assert [e.id.int for e in res.channels.errors] == [4, 5]


def test_cap_delta_describes_drop_and_append() -> None:
    """A capper that keeps the newest two yields a delta of dropped-from-front plus appended."""
    first = merge(EMPTY, [("n", NodePartial(errors=[event_with_id(1), event_with_id(2)]))], BarrierPolicy())
    policy = BarrierPolicy(capper=lambda arr: arr[-2:])
    res = merge(first.channels, [("n", NodePartial(errors=[event_with_id(3)]))], policy)
    assert [e.id.int for e in res.channels.extra["errors"]] == [2, 3]
    assert res.delta.errors_dropped == 1 and not res.delta.errors_rewritten
    assert [e.id.int for e in res.delta.errors_appended] == [3]


def test_odd_capper_is_marked_rewritten() -> None:
    """A capper that reorders entries makes the delta say 'rewritten' so stores write the array whole."""
    first = merge(EMPTY, [("n", NodePartial(errors=[event_with_id(1), event_with_id(2)]))], BarrierPolicy())
    res = merge(first.channels, [("n", NodePartial(errors=[event_with_id(3)]))],
                BarrierPolicy(capper=lambda arr: tuple(reversed(arr))))
    assert res.delta.errors_rewritten


def test_check_partial_names_node_and_key() -> None:
    """Reserved keys and unstorable values are refused with the node and key in the error."""
    with pytest.raises(ReservedKeyError, match="node 'n' wrote reserved key extra\\['errors'\\]"):
        check_partial("n", NodePartial(extra={"errors": []}))
    with pytest.raises(UnstorableValueError, match="extra\\['when'\\]") as info:
        check_partial("n", NodePartial(extra={"when": object()}))
    assert info.value.node == "n" and info.value.details["key"] == "when"
    with pytest.raises(UnstorableValueError, match="messages\\[0\\]"):
        check_partial("n", NodePartial(messages=[Message("ai", {1, 2})]))


def test_storable_accepts_json_data_only() -> None:
    """storable is true for JSON data and false for sets, NaN, bytes and non-string keys."""
    assert storable({"a": [1, 2.5, None, True, "x", {"b": []}]})
    for bad in ({1, 2}, float("nan"), b"x", {1: "a"}, object()):
        assert not storable(bad)


@given(st.permutations(list(range(6))))
def test_real_concurrent_completion_order_does_not_change_state(order: list[int]) -> None:
    """Six concurrent nodes finishing in any order (forced by a turnstile) produce the same committed state."""
    turn = {"next": 0}
    cond = threading.Condition()

    def make(i: int):
        def node(state, ctx):
            with cond:
                cond.wait_for(lambda: order[turn["next"]] == i, timeout=5)
                turn["next"] += 1
                cond.notify_all()
            return {"extra": {"shared": i, f"k{i}": i}, "messages": [{"role": "ai", "content": str(i)}],
                    "errors": [ctx.event(f"from {i}")]}
        return node

    b = GraphBuilder()
    for i in range(6):
        b.add_node(f"n{i}", make(i))
        b.add_edge(START, f"n{i}")
        b.add_edge(f"n{i}", END)
    counter = iter(range(1, 10**6))
    import uuid as _uuid
    g = b.compile(settings=Settings(persistence={"backend": "memory"}, runner={"max_concurrency": 6}),
                  ids=lambda: _uuid.UUID(int=next(counter)))
    st_ = g.invoke({}, session="s")
    assert st_.extra["shared"] == 5
    assert [m.content for m in st_.messages] == [str(i) for i in range(6)]
    assert [e.node for e in st_.errors] == [f"n{i}" for i in range(6)]


def test_a_change_of_type_alone_is_a_change() -> None:
    """Overwriting 1 with True or 1.0 (equal under ==, different as stored JSON) stores it and bumps the version."""
    ch = merge(EMPTY, [("n", NodePartial(extra={"k": 1, "l": [1]}))], BarrierPolicy()).channels
    for new in ({"k": True}, {"k": 1.0}, {"l": [True]}):
        res = merge(ch, [("n", NodePartial(extra=new))], BarrierPolicy())
        assert res.channels.versions["extra"] == ch.versions["extra"] + 1, new
        key = next(iter(new))
        assert type(res.channels.extra[key]) is type(new[key]) or res.channels.extra[key] == new[key]
    same_again = merge(ch, [("n", NodePartial(extra={"k": 1, "l": (1,)}))], BarrierPolicy())
    assert same_again.channels.versions["extra"] == ch.versions["extra"]
