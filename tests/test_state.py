"""State contracts: frozen values, partial coercion, input validation, reserved-key view."""

from __future__ import annotations

import json

import pytest

from railgraph import FrozenDict, FrozenList, InputError, Message, NodePartial, user_view
from railgraph.state import coerce_input, coerce_partial, freeze, thaw


def test_frozen_values_refuse_mutation_but_behave_like_plain_ones() -> None:
    """Frozen lists/dicts compare equal to plain ones, serialise as JSON, and refuse every mutation."""
    value = freeze({"a": [1, {"b": 2}]})
    assert value == {"a": [1, {"b": 2}]}
    assert json.loads(json.dumps(value)) == {"a": [1, {"b": 2}]}
    assert isinstance(value, FrozenDict) and isinstance(value["a"], FrozenList)
    for mutate in (lambda: value.__setitem__("c", 1), lambda: value["a"].append(3),
                   lambda: value["a"][1].update(x=1), lambda: value.pop("a"), lambda: value["a"].sort()):
        with pytest.raises(TypeError, match="read-only"):
            mutate()
    assert thaw(value) == {"a": [1, {"b": 2}]} and type(thaw(value)["a"]) is list


def test_coerce_partial_accepts_partial_mapping_and_none() -> None:
    """A NodePartial, a mapping with the three keys, and None are all accepted."""
    assert coerce_partial(None, "n").is_empty()
    p = coerce_partial({"messages": [{"role": "user", "content": "hi"}], "extra": {"k": 1}}, "n")
    assert p.messages == [Message("user", "hi")] and p.extra == {"k": 1}
    same = NodePartial(extra={"k": 1})
    assert coerce_partial(same, "n") is same


@pytest.mark.parametrize("value, fragment", [
    (42, "returned int"),
    ({"extras": {}}, "unknown partial key"),
    ({"messages": ["hi"]}, "expected a Message"),
    ({"errors": ["not an event"]}, "errors entry"),
    ({"extra": [1, 2]}, "extra of type list"),
])
def test_coerce_partial_rejects_bad_returns_naming_the_node(value: object, fragment: str) -> None:
    """A bad node return value raises InputError naming the node and what is wrong."""
    with pytest.raises(InputError) as info:
        coerce_partial(value, "fetch")
    assert "fetch" in str(info.value) and fragment in str(info.value)
    assert info.value.node == "fetch"


@pytest.mark.parametrize("value, fragment", [
    ([1], "must be a mapping"),
    ({"extra": {"errors": []}}, "reserved key"),
    ({"extra": 3}, "'extra' must be a mapping"),
    ({"messages": "hi"}, "must be a list"),
    ({"stuff": 1}, "unknown key"),
    ({"messages": [{"role": 1, "content": "x"}]}, "role must be a string"),
])
def test_coerce_input_rejects_bad_input(value: object, fragment: str) -> None:
    """Bad run input raises InputError saying what is wrong."""
    with pytest.raises(InputError, match=fragment):
        coerce_input(value)


def test_user_view_hides_reserved_keys() -> None:
    """user_view drops extra["errors"] and leaves everything else."""
    extra = FrozenDict({"errors": (), "k": 1})
    assert user_view(extra) == {"k": 1}
    plain = FrozenDict({"k": 1})
    assert user_view(plain) is plain
