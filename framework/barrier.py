"""The barrier: merges the partials of one superstep into new state, deterministically.

Partials are merged in frontier order (never completion order). Reducers: ``messages`` append;
``extra`` key-wise, the later node wins a key; ``errors`` append. Error events are routed:
event processors (a chain; ``None`` drops) → the errors channel → ``extra["errors"]`` if the
extra-errors mode writes it → the cap. A channel's version rises by exactly one iff its content
changed; for a change that touches only reserved keys, the gating toggle decides for ``extra``.

Pure module: no I/O, no clock. Policies come in as a `BarrierPolicy` resolved from hooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .checkpoint import Delta
from .errors import ReservedKeyError, UnstorableValueError
from .events import ErrorEvent
from .state import ERRORS_KEY, RESERVED_KEYS, FrozenDict, Message, NodePartial, freeze

WRITES_EXTRA = frozenset({"legacy", "dual", "verify"})
WRITES_STORE = frozenset({"dual", "verify", "store-only"})


@dataclass(frozen=True, slots=True)
class BarrierPolicy:
    """The policies a merge applies (resolved once from plugin hooks).

    Attributes:
        processors: the event-processor chain, in order.
        mode: the extra-errors mode (``legacy``, ``dual``, ``verify``, ``store-only``).
        capper: trims ``extra["errors"]``, or ``None`` for no cap.
        reserved_bumps_version: the gating toggle (``True``: the seed behaviour).
        channel_limit: newest events kept in the in-memory errors channel (``None``: all).
        on_processor_error: turns a processor's exception into a replacement event (or ``None``).
    """

    processors: tuple[Callable[[ErrorEvent], ErrorEvent | None], ...] = ()
    mode: str = "dual"
    capper: Callable[[tuple[ErrorEvent, ...]], tuple[ErrorEvent, ...]] | None = None
    reserved_bumps_version: bool = True
    channel_limit: int | None = None
    on_processor_error: Callable[[int, ErrorEvent, Exception], ErrorEvent | None] | None = None

    @property
    def writes_extra(self) -> bool:
        """Whether events are written to ``extra["errors"]`` in this mode."""
        return self.mode in WRITES_EXTRA


class Channels(NamedTuple):
    """The channel contents a merge reads and produces (a named tuple: one is built per superstep,
    and a tuple is built in a fraction of a frozen dataclass's time)."""

    messages: tuple[Message, ...]
    extra: Mapping[str, Any]
    errors: tuple[ErrorEvent, ...]
    versions: Mapping[str, int]


class MergeResult(NamedTuple):
    """The merged channels, the events that made it through the processors, and the store delta."""

    channels: Channels
    events: tuple[ErrorEvent, ...]
    delta: Delta
    changed: frozenset[str] = frozenset()


def storable(value: Any, _depth: int = 0) -> bool:
    """True when `value` is JSON data: str, int, finite float, bool, None, lists and str-keyed dicts."""
    cls = type(value)
    if cls is str or cls is int or cls is bool or value is None:
        return True
    if cls is float:
        return math.isfinite(value)
    if _depth > 64:
        return False
    if isinstance(value, (list, tuple)):
        return all(storable(v, _depth + 1) for v in value)
    if isinstance(value, Mapping):
        return all(type(k) is str and storable(v, _depth + 1) for k, v in value.items())
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return True  # str/int subclasses (enums) serialise as their value
    return False


_LISTS = (list, tuple)


def same(a: Any, b: Any) -> bool:
    """Equal as stored JSON: like ``==``, but ``True`` is not ``1`` and ``1.0`` is not ``1``.

    Lists and tuples (and their frozen twins) compare alike, as do dicts and frozen dicts: they
    store the same.
    """
    if a is b:
        return True
    ta, tb = type(a), type(b)
    if ta is tb and (ta is str or ta is int):
        return a == b
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, _LISTS):
        return isinstance(b, _LISTS) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if ta is not tb and not (issubclass(ta, str) and issubclass(tb, str)):
        return False
    return bool(a == b)


def check_partial(node: str, partial: NodePartial) -> None:
    """Refuse reserved keys and unstorable values, naming the node and the key.

    Raises:
        ReservedKeyError: the partial writes a reserved key of ``extra``.
        UnstorableValueError: a value is not JSON data.
    """
    for key, value in partial.extra.items():
        if key in RESERVED_KEYS:
            raise ReservedKeyError(
                f"node {node!r} wrote reserved key extra[{key!r}]; emit events with NodePartial(errors=[...])",
                node=node, details={"key": key})
        if type(key) is not str:
            raise UnstorableValueError(f"node {node!r} wrote extra key {key!r}: keys must be strings",
                                       node=node, details={"key": repr(key)})
        if not storable(value):
            raise UnstorableValueError(
                f"node {node!r} wrote extra[{key!r}] = a value of type {type(value).__name__} that cannot be stored as JSON",
                node=node, details={"key": key, "type": type(value).__name__})
    for i, message in enumerate(partial.messages):
        if not storable(message.content):
            raise UnstorableValueError(
                f"node {node!r} wrote messages[{i}] with content of type {type(message.content).__name__} "
                "that cannot be stored as JSON", node=node, details={"key": f"messages[{i}]"})


def process(events: Sequence[ErrorEvent], policy: BarrierPolicy) -> tuple[ErrorEvent, ...]:
    """Run `events` through the processor chain; a processor returning ``None`` drops the event."""
    if not policy.processors:
        return tuple(events)
    out = []
    for event in events:
        current: ErrorEvent | None = event
        for index, proc in enumerate(policy.processors):
            try:
                current = proc(current)
            except Exception as exc:  # a plugin failure becomes an event, never a lost step
                if policy.on_processor_error is None:
                    raise
                current = policy.on_processor_error(index, current, exc)
            if current is None:
                break
        if current is not None:
            out.append(current)
    return tuple(out)


def _split(arr: tuple[ErrorEvent, ...]) -> tuple[ErrorEvent | None, tuple[ErrorEvent, ...]]:
    if arr and arr[0].is_summary:
        return arr[0], arr[1:]
    return None, arr


def errors_delta(old: tuple[ErrorEvent, ...], appended: tuple[ErrorEvent, ...],
                 new: tuple[ErrorEvent, ...]) -> tuple[int, ErrorEvent | None, bool, bool]:
    """Describe how ``extra["errors"]`` went from `old` to `new` after `appended` was added.

    Returns ``(dropped_from_front, summary, summary_changed, rewritten)``: the new entries are the
    old entries plus `appended`, less `dropped_from_front` from the front — unless `rewritten`.
    """
    old_summary, old_entries = _split(old)
    summary, entries = _split(new)
    n_old = len(old_entries)
    n_total = n_old + len(appended)

    def total(k: int) -> ErrorEvent:  # item k of old_entries + appended, without copying both per step
        return old_entries[k] if k < n_old else appended[k - n_old]

    dropped = n_total - len(entries)
    ok = dropped >= 0 and (not entries or (entries[0] is total(dropped) and entries[-1] is total(n_total - 1)))
    if ok and len(entries) > 2:
        mid = len(entries) // 2
        ok = entries[mid] is total(dropped + mid)
    return max(dropped, 0), summary, summary is not old_summary, not ok


_set = dict.__setitem__  # fills a FrozenDict merge() has just built and no one else has seen yet
_DELTAS: dict[tuple[int, frozenset[str], bool, bool], Delta] = {}


def _plain_delta(messages: int, keys: frozenset[str], write_store: bool, first: bool) -> Delta:
    """The (immutable, so shared) `Delta` of a merge without events: most steps repeat a few shapes."""
    key = (messages, keys, write_store, first)
    delta = _DELTAS.get(key)
    if delta is None:
        if len(_DELTAS) >= 256:
            _DELTAS.clear()
        delta = _DELTAS[key] = Delta(messages_appended=messages, extra_keys=keys, write_errors_store=write_store,
                                     first=first)
    return delta


def merge(channels: Channels, partials: Sequence[tuple[str, NodePartial]], policy: BarrierPolicy,
          *, first: bool = False) -> MergeResult:
    """Merge `partials` (already in frontier order) into `channels` under `policy`.

    Raises:
        ReservedKeyError, UnstorableValueError: a partial is invalid (callers check earlier, with
            `check_partial`, to attribute the failure to its node).
    """
    versions = dict(channels.versions)
    changed: set[str] = set()

    # one pass in frontier order: messages to append, extra updates (later node wins), raw events
    new_messages: list[Message] = []
    updates: dict[str, Any] = {}
    raw: list[ErrorEvent] = []
    for node, partial in partials:
        if partial.messages:
            new_messages.extend(partial.messages)
        if partial.extra:
            for key, value in partial.extra.items():
                if key in RESERVED_KEYS:
                    raise ReservedKeyError(f"node {node!r} wrote reserved key extra[{key!r}]", node=node)
                updates[key] = value
        if partial.errors:
            raw.extend(partial.errors)

    # messages: append
    messages = channels.messages
    if new_messages:
        messages = messages + tuple(new_messages)
        versions["messages"] += 1
        changed.add("messages")

    # extra: key-wise, later node wins; the new map is built once, as a FrozenDict
    extra = channels.extra
    changed_keys = [k for k, v in updates.items() if k not in extra or not same(extra[k], v)] if updates else []
    user_changed = bool(changed_keys)
    if user_changed:
        merged = FrozenDict(extra)
        for key in changed_keys:
            _set(merged, key, freeze(updates[key]))
        extra = merged

    # errors: processors -> channel -> extra["errors"] -> cap
    events = process(raw, policy) if raw else ()
    errors = channels.errors
    reserved_changed = False
    dropped, summary, summary_changed, rewritten = 0, None, False, False
    appended: tuple[ErrorEvent, ...] = ()
    if events:
        old_errors = errors
        errors = errors + events
        whole = policy.channel_limit is None or len(errors) <= policy.channel_limit
        if not whole:
            errors = errors[-policy.channel_limit:]
        versions["errors"] += 1
        changed.add("errors")
        if policy.writes_extra:
            old_arr: tuple[ErrorEvent, ...] = tuple(extra.get(ERRORS_KEY, ()))
            # uncapped, extra["errors"] and the channel are one tuple (both start as the empty one):
            # share the new one rather than copy every event again
            arr = errors if old_arr is old_errors and whole and policy.capper is None else old_arr + events
            if policy.capper is not None:
                arr = tuple(policy.capper(arr))
                dropped, summary, summary_changed, rewritten = errors_delta(old_arr, events, arr)
            else:  # appended, nothing dropped: what errors_delta would find, without the probes
                summary = old_arr[0] if old_arr and old_arr[0].is_summary else None
            appended = events
            if extra is channels.extra:
                extra = FrozenDict(extra)
            _set(extra, ERRORS_KEY, arr)
            reserved_changed = True
    if user_changed or reserved_changed:
        changed.add("extra_errors" if reserved_changed else "extra")
        if user_changed:
            changed.add("extra")
        if user_changed or policy.reserved_bumps_version:
            versions["extra"] += 1

    write_store = policy.mode in WRITES_STORE
    if events:
        delta = Delta(
            messages_appended=len(new_messages), extra_keys=frozenset(changed_keys), errors_dropped=dropped,
            errors_appended=appended, errors_summary=summary, errors_summary_changed=summary_changed,
            errors_rewritten=rewritten, write_errors_store=write_store, first=first,
        )
    else:
        delta = _plain_delta(len(new_messages), frozenset(changed_keys), write_store, first)
    return MergeResult(Channels(messages, extra, errors, FrozenDict(versions)), events, delta, frozenset(changed))


__all__ = ["WRITES_EXTRA", "WRITES_STORE", "BarrierPolicy", "Channels", "MergeResult", "check_partial", "same",
           "errors_delta", "merge", "process", "storable"]
