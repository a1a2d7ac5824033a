"""State: three versioned channels, immutable snapshots, and what nodes return.

Channels:
    ``messages`` — append-only list of `Message`.
    ``extra``    — a map merged key by key (the later node in frontier order wins a key).
                   ``extra["errors"]`` is reserved: only the runner writes it.
    ``errors``   — append-only `ErrorEvent`s, kept in memory (the runtime errors channel).

Versions start at 1 and rise by exactly one when a channel's content changes.

Values stored in ``extra`` are frozen when merged (lists become `FrozenList`, dicts `FrozenDict`:
they compare equal to, and serialise like, plain lists and dicts but refuse mutation), so no node
can change another node's view or the committed state. Pure module: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .errors import InputError
from .events import ErrorEvent

ERRORS_KEY = "errors"
RESERVED_KEYS: frozenset[str] = frozenset({ERRORS_KEY})
CHANNELS: tuple[str, ...] = ("messages", "extra", "errors")


def _refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError(f"{type(self).__name__} is read-only: state seen by nodes is an immutable snapshot")


class FrozenList(list):  # noqa: FURB189 - a list subclass keeps json.dumps and == with lists working
    """A list that refuses mutation. Equal to a list with the same items; JSON-serialises as a list."""

    __slots__ = ()
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> Any:
        return (FrozenList, (list(self),))


class FrozenDict(dict):  # noqa: FURB189
    """A dict that refuses mutation. Equal to a dict with the same items; JSON-serialises as a dict."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> Any:
        return (FrozenDict, (dict(self),))


def freeze(value: Any) -> Any:
    """Return `value` with every nested list and dict replaced by its frozen twin (scalars as is)."""
    cls = type(value)
    if cls is FrozenDict or cls is FrozenList or cls in (str, int, float, bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return FrozenList(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Return a mutable deep copy of a frozen value (plain lists and dicts)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Message:
    """One message in the ``messages`` channel."""

    role: str
    content: Any
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"role", "content"}`` (and ``name`` when set)."""
        out = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def coerce(cls, value: Any, where: str = "messages") -> Message:
        """Accept a `Message` or a ``{"role", "content"}`` mapping; raise `InputError` otherwise."""
        if isinstance(value, Message):
            return value
        if isinstance(value, Mapping) and "role" in value and "content" in value:
            unknown = set(value) - {"role", "content", "name"}
            if unknown:
                raise InputError(f"{where}: unknown message field(s) {sorted(unknown)}")
            if not isinstance(value["role"], str):
                raise InputError(f"{where}: message role must be a string")
            return cls(value["role"], freeze(value["content"]), value.get("name"))
        raise InputError(f"{where}: expected a Message or a {{'role', 'content'}} mapping, got {type(value).__name__}")


@dataclass(slots=True)
class NodePartial:
    """What a node returns: messages to append, ``extra`` keys to set, events to emit.

    A node may also return a mapping with these keys, or ``None`` (no writes).
    """

    messages: list[Message] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    errors: list[ErrorEvent] = field(default_factory=list)

    def is_empty(self) -> bool:
        """True when the partial writes nothing."""
        return not (self.messages or self.extra or self.errors)


EMPTY_PARTIAL_KEYS = frozenset({"messages", "extra", "errors"})


def coerce_partial(value: Any, node: str) -> NodePartial:
    """Turn a node's return value into a `NodePartial`; raise `InputError` naming the node otherwise."""
    if value is None:
        return NodePartial()
    # exact-type checks first: this runs once per node run, and ABC isinstance checks are slow
    cls = type(value)
    if cls is NodePartial or (cls is not dict and isinstance(value, NodePartial)):
        partial = value
        if type(partial.messages) is not list or type(partial.errors) is not list or partial.extra is None:
            # None or another iterable in a field: normalise into a new partial (never mutate the node's)
            try:
                if isinstance(partial.messages, (str, bytes, Mapping)) or isinstance(partial.errors,
                                                                                      (str, bytes, Mapping)):
                    raise TypeError("a string or mapping")
                partial = NodePartial(list(partial.messages or ()), partial.extra if partial.extra is not None
                                      else {}, list(partial.errors or ()))
            except TypeError:
                raise InputError(f"node {node!r} returned a NodePartial whose messages/errors are not lists",
                                 node=node) from None
    elif cls is dict or isinstance(value, Mapping):
        if not EMPTY_PARTIAL_KEYS.issuperset(value):
            unknown = set(value) - EMPTY_PARTIAL_KEYS
            raise InputError(f"node {node!r} returned unknown partial key(s) {sorted(map(str, unknown))}; "
                             "expected messages, extra, errors", node=node)
        extra = value.get("extra") or {}
        if type(extra) is not dict and not isinstance(extra, Mapping):
            raise InputError(f"node {node!r} returned extra of type {type(extra).__name__}; expected a mapping",
                             node=node)
        messages, errors = value.get("messages") or (), value.get("errors") or ()
        if (messages and isinstance(messages, (str, bytes, Mapping))) or \
                (errors and isinstance(errors, (str, bytes, Mapping))):
            raise InputError(f"node {node!r} returned messages/errors that are not lists", node=node)
        partial = NodePartial(list(messages), dict(extra), list(errors))
    else:
        raise InputError(f"node {node!r} returned {type(value).__name__}; expected NodePartial, a mapping or None",
                         node=node)
    if partial.messages and any(type(m) is not Message for m in partial.messages):
        try:
            messages = [Message.coerce(m, f"node {node!r} messages") for m in partial.messages]
        except InputError as exc:
            exc.node = node
            raise
        partial = NodePartial(messages, partial.extra, partial.errors)
    if type(partial.extra) is not dict and not isinstance(partial.extra, Mapping):
        raise InputError(f"node {node!r} returned extra of type {type(partial.extra).__name__}; expected a mapping",
                         node=node)
    if partial.errors or type(partial.errors) is not list:
        for ev in partial.errors:
            if not isinstance(ev, ErrorEvent):
                raise InputError(f"node {node!r} returned errors entry of type {type(ev).__name__}; "
                                 "expected ErrorEvent", node=node)
    return partial


@dataclass(frozen=True, slots=True)
class State:
    """Committed state of a session (also what `invoke` returns).

    Attributes:
        messages: the messages channel.
        extra: the extra channel, reserved keys included (``extra["errors"]``).
        errors: the in-memory errors channel.
        versions: channel name → version.
        session: the session id.
        step: the number of committed checkpoints.
        status: ``running``, ``interrupted``, ``completed`` or ``failed``.
        next: the frontier: nodes the next superstep will consider.
    """

    messages: tuple[Message, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=FrozenDict)
    errors: tuple[ErrorEvent, ...] = ()
    versions: Mapping[str, int] = field(default_factory=lambda: FrozenDict(messages=1, extra=1, errors=1))
    session: str = ""
    step: int = 0
    status: str = "running"
    next: tuple[str, ...] = ()

    @property
    def user_extra(self) -> Mapping[str, Any]:
        """``extra`` without reserved keys: the view most nodes want."""
        return user_view(self.extra)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The immutable view every node of one superstep receives."""

    messages: tuple[Message, ...]
    extra: Mapping[str, Any]
    errors: tuple[ErrorEvent, ...]
    versions: Mapping[str, int]

    @property
    def user_extra(self) -> Mapping[str, Any]:
        """``extra`` without reserved keys (``extra["errors"]``)."""
        return user_view(self.extra)


def user_view(extra: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return `extra` without its reserved keys (read-only)."""
    if not RESERVED_KEYS.intersection(extra):
        return extra
    return FrozenDict({k: v for k, v in extra.items() if k not in RESERVED_KEYS})


def coerce_input(value: Any) -> tuple[list[Message], dict[str, Any]]:
    """Validate a run input: a mapping with optional ``messages`` and ``extra``; raise `InputError`."""
    if not isinstance(value, Mapping):
        raise InputError(f"input must be a mapping with 'messages' and/or 'extra', got {type(value).__name__}")
    unknown = set(value) - {"messages", "extra"}
    if unknown:
        raise InputError(f"input has unknown key(s) {sorted(map(str, unknown))}; expected 'messages' and/or 'extra'")
    raw_messages = value.get("messages") or []
    if not isinstance(raw_messages, Iterable) or isinstance(raw_messages, (str, bytes, Mapping)):
        raise InputError("input 'messages' must be a list")
    messages = [Message.coerce(m, f"input messages[{i}]") for i, m in enumerate(raw_messages)]
    extra = value.get("extra") or {}
    if not isinstance(extra, Mapping):
        raise InputError(f"input 'extra' must be a mapping, got {type(extra).__name__}")
    bad = RESERVED_KEYS.intersection(extra)
    if bad:
        raise InputError(f"input 'extra' sets reserved key(s) {sorted(bad)}; only the runner writes them")
    for key in extra:
        if not isinstance(key, str):
            raise InputError(f"input 'extra' keys must be strings, got {key!r}")
    return messages, dict(extra)


__all__ = [
    "CHANNELS",
    "ERRORS_KEY",
    "RESERVED_KEYS",
    "FrozenDict",
    "FrozenList",
    "Message",
    "NodePartial",
    "Snapshot",
    "State",
    "coerce_input",
    "coerce_partial",
    "freeze",
    "thaw",
    "user_view",
]
