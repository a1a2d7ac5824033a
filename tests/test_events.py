"""ErrorEvent: JSON round trip, validation of untrusted input, ladders built from exception chains."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgraph import ErrorEvent, EventDecodeError, NodeFailed
from railgraph.events import (
    AppScope,
    EventLimits,
    NodeScope,
    event_from_exception,
    ladder_from_exception,
    make_event,
)
from tests.strategies import events

WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


@given(events)
def test_json_round_trip_is_identity(event: ErrorEvent) -> None:
    """Any event encoded to JSON and decoded again equals the original, and re-encodes to the same bytes."""
    decoded = ErrorEvent.from_json(event.to_json())
    assert decoded == event
    assert decoded.to_json() == event.to_json()


@pytest.mark.parametrize("payload, path", [
    ("not json", "(root)"),
    ('{"id": "nope"}', "id"),
    (json.dumps({"id": str(uuid.uuid4()), "when": "2026-01-01T00:00:00Z", "scope": {"kind": "moon"},
                 "error": {"type": "X", "message": "m"}}), "scope"),
    (json.dumps({"id": str(uuid.uuid4()), "when": "2026-01-01T00:00:00", "scope": {"kind": "app"},
                 "error": {"type": "X", "message": "m"}}), "when"),
    (json.dumps({"id": str(uuid.uuid4()), "when": "2026-01-01T00:00:00Z", "scope": {"kind": "app"},
                 "error": {"type": "X", "message": "m"}, "evil": 1}), "evil"),
])
def test_untrusted_json_fails_with_the_failing_field(payload: str, path: str) -> None:
    """Decoding invalid JSON raises EventDecodeError whose message names the first failing field."""
    with pytest.raises(EventDecodeError) as info:
        ErrorEvent.from_json(payload)
    assert path in str(info.value)
    assert info.value.exit_code == 5


def test_when_is_normalised_to_utc() -> None:
    """A timestamp given in another zone is stored as the same instant in UTC."""
    plus2 = timezone(timedelta(hours=2))
    ev = make_event("x", scope=AppScope(), id=uuid.uuid4(), when=datetime(2026, 1, 1, 12, tzinfo=plus2))
    assert ev.when.utcoffset() == timedelta(0) and ev.when.hour == 10


def _chain(spec: list[tuple[str, str, str]]) -> BaseException:
    """Raise a chain: each (type, message, link) links to the next one by cause or context."""
    classes = {"ValueError": ValueError, "KeyError": KeyError, "RuntimeError": RuntimeError,
               "TypeError": TypeError, "OSError": OSError}
    exc: BaseException | None = None
    for kind, message, link in reversed(spec):
        new = classes[kind](message)
        if exc is not None:
            if link == "cause":
                new.__cause__ = exc
            else:
                new.__context__ = exc
        exc = new
    assert exc is not None
    return exc


@given(st.lists(st.tuples(st.sampled_from(["ValueError", "RuntimeError", "TypeError", "OSError"]),
                          st.text(max_size=30), st.sampled_from(["cause", "context"])), min_size=1, max_size=8))
def test_ladder_keeps_every_type_and_message_in_order(spec: list[tuple[str, str, str]]) -> None:
    """The ladder built from any chain of causes and contexts lists every exception's type and message, in order."""
    ladder, cut = ladder_from_exception(_chain(spec))
    rungs = ladder.rungs()
    assert [(r.type, r.message) for r in rungs] == [(k, m) for k, m, _ in spec]
    assert [r.via for r in rungs[1:]] == [link for _, _, link in spec[:-1]]
    assert cut == []


def test_ladder_covers_groups_notes_and_runner_errors() -> None:
    """Exception-group members, notes, and RunnerError code/help/where are all stored as data."""
    inner = ValueError("bad value")
    inner.add_note("while parsing ticket 7")
    group = ExceptionGroup("two failed", [inner, KeyError("k")])
    err = NodeFailed("node 'x' failed", session="s", step=3, node="x")
    err.__cause__ = group
    ev = event_from_exception(err, scope=NodeScope(node="x", step=3), id=uuid.uuid4(), when=WHEN)
    top = ev.error
    assert top.code == "railgraph.runner.node_failed" and top.help == NodeFailed.help
    assert top.details == {"session": "s", "step": 3, "node": "x"}
    assert top.cause is not None and top.cause.type == "ExceptionGroup"
    assert [m.type for m in top.cause.group] == ["ValueError", "KeyError"]
    assert top.cause.group[0].notes == ("while parsing ticket 7",)
    assert ErrorEvent.from_json(ev.to_json()) == ev


def test_suppressed_context_is_not_in_the_ladder() -> None:
    """`raise ... from None` hides the context, so the ladder has a single rung."""
    try:
        try:
            raise KeyError("hidden")
        except KeyError:
            raise ValueError("shown") from None
    except ValueError as exc:
        ladder, _ = ladder_from_exception(exc)
    assert [r.message for r in ladder.rungs()] == ["shown"]


def test_cyclic_chain_terminates() -> None:
    """A chain whose context points back at itself is walked once, without recursion errors."""
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    ladder, _ = ladder_from_exception(a)
    assert [r.message for r in ladder.rungs()] == ["a", "b"]


def test_limits_truncate_and_mark_the_event() -> None:
    """Oversized messages, chains and context are cut to the limits, and the event lists what was cut."""
    deep = _chain([("ValueError", "m" * 500, "cause")] * 10)
    limits = EventLimits(max_message=100, max_depth=3, max_context_bytes=300)
    ev = event_from_exception(deep, scope=AppScope(), id=uuid.uuid4(), when=WHEN, limits=limits,
                              context={"blob": "x" * 1000})
    rungs = ev.error.rungs()
    assert len(rungs) == 4
    assert all(len(r.message) < 140 and "truncated 400 chars" in r.message for r in rungs)
    assert "error.message" in ev.truncated and "context" in ev.truncated
    assert "error.cause.cause.cause.cause" in ev.truncated
    assert "truncated" in ev.context


def test_context_values_that_are_not_json_become_strings() -> None:
    """Arbitrary objects in context are stored as their repr, and non-finite floats as strings."""
    ev = make_event("x", scope=AppScope(), id=uuid.uuid4(), when=WHEN,
                    context={"obj": object(), "inf": float("inf"), "nested": {"set": {1}}})
    assert ev.context["inf"] == "inf" and ev.context["obj"].startswith("<object")
    assert ev.context["nested"] == {"set": [1]}
    assert ErrorEvent.from_json(ev.to_json()) == ev


def test_events_are_immutable() -> None:
    """Assigning to an event's field is refused."""
    ev = make_event("x", scope=AppScope(), id=uuid.uuid4(), when=WHEN)
    with pytest.raises(Exception):
        ev.tags = ("changed",)  # type: ignore[misc]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(), lambda c: st.lists(c, max_size=40) | st.dictionaries(st.text(max_size=5), c, max_size=40),
                    max_leaves=120), st.integers(0, 4000))
def test_size_upper_bound_never_underestimates(value, budget: int) -> None:
    """The cheap size bound that lets small context skip JSON encoding is never below the real size."""
    from railgraph.events import _upper_bound
    bound = _upper_bound(value, budget)
    real = len(json.dumps(value))
    assert bound >= real or bound > budget


@pytest.mark.parametrize("value", [[""] * 100, [[]] * 100, [{}] * 30, {"": ""}, [None] * 50, ["\U00010000"] * 9,
                                   {"k": [{"a": {}}] * 20}, [10**30] * 5])
def test_size_upper_bound_on_degenerate_shapes(value) -> None:
    """Many empty containers or strings, astral characters and huge integers are never underestimated."""
    from railgraph.events import _upper_bound
    assert _upper_bound(value, 10**9) >= len(json.dumps(value))
