"""ErrorEvent: JSON round trip, validation of untrusted input, ladders built from exception chains."""

from __future__ import annotations

import copy
import json
import math
import pickle
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import IntEnum
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

import railgraph.events as events_module
from railgraph import ErrorEvent, EventDecodeError, NodeFailed
from railgraph.events import (
    DEFAULT_LIMITS,
    AppScope,
    ErrorLadder,
    EventLimits,
    NodeScope,
    _JsonWalk,
    _fits,
    bound_event,
    event_from_exception,
    ladder_from_exception,
    make_event,
    node_scope,
    to_json_value,
)
from tests.strategies import events, scopes

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
    deep = _chain([("ValueError", "m " * 250, "cause")] * 10)
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


# -- the builders skip validating what they have made valid: differential tests -------------------------


class _Code(IntEnum):
    """An int subclass: to_json_value keeps it, validation stores a plain int."""

    A = 3


class _Text(str):
    """A str subclass whose ``str()`` and ``repr()`` are not its value."""

    def __str__(self) -> str:
        return "other text"

    def __repr__(self) -> str:
        return "T"


class _Ratio(float):
    """A float subclass with a short repr."""

    def __repr__(self) -> str:
        return "R"


class _Odd:
    """An object whose ``str()`` and ``repr()`` are a str subclass (as keys and reprs, validation converts them)."""

    def __str__(self) -> str:
        return _Text("odd key")

    def __repr__(self) -> str:
        return _Text("odd repr")


class _OddMessage(Exception):
    """An exception whose ``str()`` is a str subclass, so its rung must be validated."""

    def __str__(self) -> str:
        return _Text("odd")


def _old_to_json_value(value: Any, _depth: int = 0) -> Any:
    """to_json_value as it was before the fast path: the reference its output must match, type for type."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if _depth > 16:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _old_to_json_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_old_to_json_value(v, _depth + 1) for v in value]
    return repr(value)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same type all the way down (``==`` alone lets an IntEnum pass for an int)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, BaseModel):
        return list(a.__dict__) == list(b.__dict__) and all(_same(a.__dict__[k], b.__dict__[k]) for k in a.__dict__)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(k, j) and _same(a[k], b[j]) for k, j in zip(a, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _exact(value: Any) -> bool:
    """Whether JSON data is made only of dict, list, str, int, bool, float and None themselves."""
    if type(value) is dict:
        return all(type(k) is str and _exact(v) for k, v in value.items())
    if type(value) is list:
        return all(_exact(v) for v in value)
    return value is None or type(value) in (str, int, bool, float)


class _Distrusting(events_module._Cutter):
    """A cutter that vouches for nothing, so the builders validate every model, as they all did before the fast path."""

    @property  # type: ignore[override]
    def exact(self) -> bool:
        return False

    @exact.setter
    def exact(self, value: bool) -> None:
        pass


def _outcome(build: Callable[[], ErrorEvent]) -> ErrorEvent | tuple[type[BaseException], str]:
    """The event `build` returns, or the type and text of what it raises."""
    try:
        return build()
    except Exception as exc:
        return type(exc), str(exc)


def _fast_and_validated(build: Callable[[], ErrorEvent]) -> tuple[Any, Any]:
    """Run `build` as the builders run, then again with every model built by its validating constructor."""
    fast = _outcome(build)
    with mock.patch.object(events_module, "_Cutter", _Distrusting):
        validated = _outcome(build)
    return fast, validated


def _assert_same_event(fast: Any, validated: Any) -> None:
    """Both raised the same error, or both built the same event, down to types, fields given and JSON."""
    if not isinstance(validated, ErrorEvent):
        assert fast == validated
        return
    assert isinstance(fast, ErrorEvent)
    assert fast == validated and _same(fast, validated) and repr(fast) == repr(validated)
    for mine, theirs in zip(fast.error.rungs(), validated.error.rungs(), strict=True):
        assert mine.model_fields_set == theirs.model_fields_set
    assert fast.model_fields_set == validated.model_fields_set
    try:
        text = validated.to_json()
    except PydanticSerializationError:  # both refuse the same unencodable text
        with pytest.raises(PydanticSerializationError):
            fast.to_json()
        return
    assert fast.to_json() == text == fast.model_dump_json()
    assert ErrorEvent.from_json(text) == fast == ErrorEvent.model_validate(fast.model_dump())
    assert pickle.loads(pickle.dumps(fast)) == fast and copy.deepcopy(fast) == fast
    changed = fast.model_copy(update={"tags": ("changed",)})
    assert changed.tags == ("changed",) and "tags" in changed.model_fields_set
    assert fast == validated  # the copy left the original as it was


def _json_size(value: Mapping[str, Any]) -> int:
    """The size the limits compare: the JSON text of the converted data."""
    return len(json.dumps(_old_to_json_value(dict(value)), default=str))


def _json_inputs(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Nested data as callers pass it: dicts with any keys, lists, tuples, sets, objects needing repr."""
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=3).map(tuple)
                        | st.frozensets(st.integers(0, 9), max_size=3) | st.dictionaries(keys, inner, max_size=4),
                        max_leaves=25)


_keys = st.text(max_size=6) | st.integers(-3, 3) | st.none()
_leaves = (st.none() | st.booleans() | st.integers() | st.integers(2**64, 2**300) | st.floats() | st.text()
           | st.sampled_from([b"\x00bytes", Decimal("1.5")]) | st.builds(object) | st.datetimes())
_subclasses = st.sampled_from([_Code.A, _Text("sub"), _Ratio(2.5), _Ratio("inf"), _Odd()])
_data = _json_inputs(_leaves, _keys)
_any_data = _json_inputs(_leaves | _subclasses, _keys | st.builds(_Text, st.text(max_size=3)) | st.builds(_Odd))
_limits = st.builds(EventLimits, max_message=st.integers(1, 80), max_depth=st.integers(0, 4),
                    max_group=st.integers(0, 3), max_notes=st.integers(0, 3),
                    max_context_bytes=st.integers(2, 400)) | st.just(DEFAULT_LIMITS)
_offsets = st.builds(timezone, st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                                             max_value=timedelta(hours=23, minutes=59)))
_aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                      timezones=st.just(timezone.utc) | _offsets)
_any_time = st.datetimes(timezones=st.none() | st.timezones() | _offsets)  # naive, named zones, overflow at the ends
_text_subclass = st.builds(_Text, st.text(max_size=5))


def _pick(draw: st.DrawFn, odd: bool, usual: st.SearchStrategy[Any], unusual: st.SearchStrategy[Any]) -> Any:
    """A usual value, or, in an odd example, either kind."""
    return draw(usual | unusual if odd else usual)


def _common_arguments(draw: st.DrawFn, odd: bool) -> dict[str, Any]:
    """The arguments both builders take."""
    mappings = st.none() | st.dictionaries(_keys, _data, max_size=5)
    return {
        "scope": _pick(draw, odd, scopes, st.just({"kind": "app"})),
        "id": _pick(draw, odd, st.uuids(), st.uuids().map(str)),
        "when": _pick(draw, odd, _aware, _any_time),
        "tags": _pick(draw, odd, st.lists(st.text(max_size=5), max_size=3), st.lists(_text_subclass, min_size=1)),
        "context": _pick(draw, odd, mappings, st.dictionaries(_keys, _any_data, max_size=5)),
        "limits": draw(_limits),
    }


@st.composite
def _make_event_calls(draw: st.DrawFn) -> dict[str, Any]:
    """make_event's arguments: mostly what callers pass, one example in four anything it accepts or refuses."""
    odd = draw(st.integers(0, 3)) == 3
    texts = st.text(max_size=20) | st.text(min_size=20, max_size=200)
    return {
        "message": _pick(draw, odd, texts, _text_subclass),
        "type": _pick(draw, odd, st.text(min_size=1, max_size=20), _text_subclass),
        "code": _pick(draw, odd, st.none() | texts, _text_subclass),
        "help": _pick(draw, odd, st.none() | texts, _text_subclass),
        "details": _pick(draw, odd, st.none() | st.dictionaries(_keys, _data, max_size=5),
                         st.dictionaries(_keys, _any_data, max_size=5)),
        **_common_arguments(draw, odd),
    }


@given(_data)
def test_to_json_value_is_unchanged_and_its_walk_knows_exact_data(value: Any) -> None:
    """to_json_value returns what it always did, type for type; data its walk calls exact is, and is bounded."""
    assert _same(to_json_value(value), _old_to_json_value(value))
    walk = _JsonWalk()
    data = walk.convert(value)
    if walk.exact:  # it may call exact data inexact (a subclass under a key written twice): that only costs time
        assert _exact(data) and walk.bound >= len(json.dumps(data))


@given(_make_event_calls())
def test_make_event_equals_the_validated_event(call: dict[str, Any]) -> None:
    """make_event builds the event the validating constructors build, and cuts exactly what exceeds the limits."""
    fast, validated = _fast_and_validated(lambda: make_event(**call))
    _assert_same_event(fast, validated)
    if isinstance(fast, ErrorEvent):
        limit = call["limits"].max_context_bytes
        expected = [path for path, over in [
            ("error.message", not _fits(call["message"], call["limits"].max_message)),
            ("error.details", bool(call["details"]) and _json_size(call["details"]) > limit),
            ("context", bool(call["context"]) and _json_size(call["context"]) > limit),
        ] if over]
        assert fast.truncated == tuple(expected)


@st.composite
def _event_from_exception_calls(draw: st.DrawFn) -> dict[str, Any]:
    """An exception chain (causes, contexts, notes, maybe a group and a RunnerError on top) and the other arguments."""
    odd = draw(st.integers(0, 3)) == 3
    kinds = st.sampled_from([ValueError, KeyError, RuntimeError, *([_OddMessage] if odd else [])])
    exc: BaseException | None = None
    messages = st.text(max_size=20) | st.text(min_size=20, max_size=100)
    for kind, message, link in draw(st.lists(st.tuples(kinds, messages, st.sampled_from(["cause", "context"])),
                                             min_size=1, max_size=4)):
        new = kind(message)
        notes = draw(st.lists(st.text(max_size=30) | st.integers() | (_text_subclass if odd else st.nothing()),
                              max_size=4))
        if notes:
            new.__notes__ = notes  # an int among them is stored as its repr
        if exc is not None:
            setattr(new, "__cause__" if link == "cause" else "__context__", exc)
        exc = new
    assert exc is not None
    if draw(st.booleans()):
        exc = ExceptionGroup("group", [exc, *draw(st.lists(st.builds(TypeError, st.text(max_size=10)), max_size=4))])
    if draw(st.booleans()):
        top = NodeFailed(draw(messages), session="s", step=draw(st.integers(0, 9)), node="n",
                         details=_pick(draw, odd, st.dictionaries(_keys, _data, max_size=5),
                                       st.dictionaries(_keys, _any_data, max_size=5)),
                         help=_pick(draw, odd, st.none() | st.text(max_size=120), _text_subclass))
        top.__cause__ = exc
        exc = top
    return {"exc": exc, **_common_arguments(draw, odd)}


@given(_event_from_exception_calls())
def test_event_from_exception_equals_the_validated_event(call: dict[str, Any]) -> None:
    """event_from_exception builds the event the validating constructors build, and cuts what exceeds the limits."""
    fast, validated = _fast_and_validated(lambda: event_from_exception(**call))
    _assert_same_event(fast, validated)
    if isinstance(fast, ErrorEvent):
        exc, limits, context = call["exc"], call["limits"], call["context"]
        details = {**exc.where(), **exc.details} if isinstance(exc, NodeFailed) else {}
        assert ("error.message" in fast.truncated) == (len(events_module.safe_str(exc)) > limits.max_message)
        assert ("error.details" in fast.truncated) == (bool(details) and _json_size(details) > limits.max_context_bytes)
        assert ("context" in fast.truncated) == (bool(context) and _json_size(context) > limits.max_context_bytes)


def test_unvalidated_models_match_model_construct() -> None:
    """A model built without validation holds what model_construct would set: values, fields given, no extras."""
    for cls in (ErrorLadder, ErrorEvent, NodeScope):
        assert cls.__pydantic_post_init__ is None and not cls.__private_attributes__  # nothing _trusted skips
    fields = {"type": "T", "message": "m", "code": None, "help": None, "details": {"n": 1}, "notes": (), "via": None,
              "cause": None, "group": ()}
    given = frozenset(("type", "message", "details"))
    fast = events_module._trusted(ErrorLadder, dict(fields), given)
    reference = ErrorLadder.model_construct(**{name: fields[name] for name in given})
    for slot in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"):
        assert getattr(fast, slot) == getattr(reference, slot), slot
    assert list(fast.__dict__) == list(reference.__dict__)


@pytest.mark.parametrize(("node", "step"), [("n", 0), ("node name", 12), (_Text("n"), 1), ("n", True), ("n", _Code.A)])
def test_node_scope_equals_the_validated_scope(node: str, step: int) -> None:
    """`node_scope` is ``NodeScope(node=..., step=...)``: the same values, fields set, JSON and type of each."""
    fast, validated = node_scope(node, step), NodeScope(node=node, step=step)
    assert fast == validated and fast.model_dump_json() == validated.model_dump_json()
    assert fast.model_fields_set == validated.model_fields_set == {"node", "step"}
    assert [type(v) for v in fast.__dict__.values()] == [type(v) for v in validated.__dict__.values()]


class _NoOffset(tzinfo):
    """A zone that knows no offset: a time in it is naive."""

    def utcoffset(self, dt: datetime | None) -> None:
        return None


def _noted(note: Any) -> BaseException:
    """A ValueError with `note` among its notes."""
    exc = ValueError("noted")
    exc.__notes__ = ["plain", note]
    return exc


_ODD_CALLS = {
    "int subclass in details": {"details": {"n": _Code.A}},
    "str subclass in details": {"details": {"n": _Text("v")}},
    "float subclass in details": {"details": {"n": _Ratio(2.5)}},
    "key whose str() is a subclass": {"details": {_Odd(): 1}},
    "repr that is a subclass": {"context": {"o": _Odd()}},
    "deep int subclass in context": {"context": {"deep": [[{"n": _Code.A}]]}},
    "str subclass message": {"message": _Text("m")},
    "str subclass type": {"type": _Text("T")},
    "str subclass code": {"code": _Text("c")},
    "str subclass help": {"help": _Text("h")},
    "str subclass tag": {"tags": ("ok", _Text("t"))},
    "tag that is not text": {"tags": ("ok", 3)},
    "id as text": {"id": str(uuid.UUID(int=1))},
    "id that is no uuid": {"id": "nope"},
    "scope as data": {"scope": {"kind": "node", "node": "n", "step": 1}},
    "naive time": {"when": datetime(2026, 1, 1)},  # refused, as validation refuses it
    "zone without an offset": {"when": datetime(2026, 1, 1, tzinfo=_NoOffset())},  # naive too
    "named zone": {"when": datetime(2026, 7, 1, tzinfo=ZoneInfo("Europe/Paris"))},
    "time that overflows in UTC": {"when": datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))},
    "time as text": {"when": "2026-01-01T01:00:00+01:00"},
    "non-UTC fixed offset": {"when": datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-3, seconds=7)))},
}


@pytest.mark.parametrize("odd", list(_ODD_CALLS.values()), ids=list(_ODD_CALLS))
def test_make_event_validates_what_it_cannot_vouch_for(odd: dict[str, Any]) -> None:
    """Inputs the fast path leaves to validation (a subclass, a UUID as text, a naive time) end as validated."""
    call = {"scope": NodeScope(node="n", step=1), "id": uuid.UUID(int=1), "when": WHEN, "details": {"n": 1},
            "context": {"s": "x"}, "tags": ("t",), **odd}
    fast, validated = _fast_and_validated(lambda: make_event(call.pop("message", "m"), **call))
    _assert_same_event(fast, validated)


@pytest.mark.parametrize("exc", [
    _OddMessage("x"),
    _noted(_Text("note")),
    _noted(3),
    NodeFailed("failed", node="n", help=_Text("help")),
    NodeFailed("failed", node="n", details={"n": _Code.A, "o": _Odd()}),
], ids=["str subclass message", "str subclass note", "note that is not text", "str subclass help", "odd details"])
def test_event_from_exception_validates_what_it_cannot_vouch_for(exc: BaseException) -> None:
    """Each rung the fast path cannot vouch for is validated, and the event equals the validated one."""
    fast, validated = _fast_and_validated(lambda: event_from_exception(
        exc, scope=AppScope(), id=uuid.UUID(int=1), when=WHEN, context={"n": _Ratio(1.5)}))
    _assert_same_event(fast, validated)


def test_a_cut_text_is_not_cut_again_and_keeps_its_count() -> None:
    """A message a builder cut ends with a marker that states how much went; bound_event (which the
    runner applies to every event) leaves it, so the count stays true; a longer text is still cut."""
    limits = EventLimits(max_message=100)
    event = make_event("head " + "x" * 500 + " tail", scope=NodeScope(node="n", step=1), id=uuid.uuid4(), when=WHEN,
                       limits=limits)
    assert event.error.message == "head … [truncated 505 chars]" and event.truncated == ("error.message",)
    assert bound_event(event, limits) is event
    tighter = bound_event(event, EventLimits(max_message=64))
    assert tighter.error.message.endswith("chars]") and len(tighter.error.message) < 100
    assert _fits("y" * 100 + "… [truncated 7 chars]", 100) and not _fits("y" * 101 + "… [truncated 7 chars]", 100)
    assert not _fits("y" * 101, 100) and _fits("y" * 100, 100)


@pytest.mark.parametrize("tail", [
    "https://admin:Hunter2SuperSecretPassw0rd@db.example.com/app",
    "postgres://app:Tr0ub4dor&3xyzQ@db.internal:5432/app",  # separators inside the password
    "https://bob:Zq8w(LmN4)pR7tY2uK@db/x",
    "token=\"Zq8w;LmN4pR7tY2uK\"",
    "api_key=sk-live-abcdEFGH1234ijklMNOP5678qrstUVWX",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlMTIzNDU2",
])
@pytest.mark.parametrize("gap", [" ", "x" * 300, ""])  # what stands between the text and the secret
def test_a_cut_never_keeps_half_a_token(tail: str, gap: str) -> None:
    """However long the token the limit falls in, a cut keeps none of it: half a URL password or key
    would escape the redactor's patterns, which run after the cut and need the whole token."""
    limits = EventLimits(max_message=4096)
    text = "y" * (4096 - 20 - len(gap)) + gap + tail + " and then more words"
    message = make_event(text, scope=NodeScope(node="n", step=1), id=uuid.uuid4(), when=WHEN,
                         limits=limits).error.message
    kept = message[:message.index("… [truncated")]
    assert tail[:12] not in kept and len(kept) <= 4096
    assert kept == "" or kept[-1].isspace()
    # and wherever in the secret the limit falls, the kept text ends at a whitespace of the original:
    # each word is kept whole or not at all
    for cut_at in range(1, len(tail)):
        text = "y " * 30 + tail + " and more"
        message = make_event(text, scope=NodeScope(node="n", step=1), id=uuid.uuid4(), when=WHEN,
                             limits=EventLimits(max_message=60 + cut_at)).error.message
        kept = message[:message.index("… [truncated")]
        assert text.startswith(kept) and (kept[-1].isspace() or text[len(kept)].isspace()), (cut_at, message)
        assert message.endswith(f"… [truncated {len(text) - len(kept)} chars]")


def test_an_event_changed_after_it_was_built_is_bounded_again() -> None:
    """context and details are plain dicts a node may still change after ctx.event(...): the runner's
    bound_event measures the event as it is, not as it was built."""
    limits = EventLimits(max_context_bytes=300)
    event = make_event("m", scope=NodeScope(node="n", step=1), id=uuid.uuid4(), when=WHEN, details={"k": 1},
                       context={"a": 1}, limits=limits)
    assert bound_event(event, limits) is event
    event.context["rows"] = ["x" * 100] * 100
    event.error.details["more"] = "y" * 1000
    bounded = bound_event(event, limits)
    assert bounded.truncated == ("error.details", "context") and len(bounded.to_json()) < 1500


def test_exception_groups_cut_by_depth_are_listed_in_truncated() -> None:
    """Members of an exception group below the depth limit are cut, and the cut is listed, as it is
    for a deep cause chain (it once stopped at 33 rungs with truncated empty)."""
    exc: BaseException = ValueError("leaf")
    for i in range(50):
        exc = ExceptionGroup(f"g{i}", [exc])
    ev = event_from_exception(exc, scope=AppScope(), id=uuid.uuid4(), when=WHEN, limits=EventLimits(max_depth=4))
    assert len(ev.error.rungs()) == 5
    assert ev.truncated == ("error" + ".group.0" * 4 + ".group",)
