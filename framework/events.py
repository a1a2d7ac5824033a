"""`ErrorEvent`: structured, immutable error telemetry whose JSON round-trips exactly.

An event says *where* (a discriminated `scope`), *when* (UTC), and *what* (an `ErrorLadder`: the
whole exception chain stored as data — type, message, code, help, details, notes, the cause
and exception-group members — never live exceptions or tracebacks), plus `tags` and `context`.
A later process renders the same report from the stored JSON.

The constructors, `ErrorEvent.from_json` and `ErrorEvent.from_data` validate what they are given.
The builders (`make_event`, `event_from_exception`) convert and bound their inputs first, and then
skip validating again whatever that conversion has already made valid: their events equal the
validated ones, field for field and byte for byte in JSON.

This module does no I/O: clocks and id factories are passed in by the caller.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar, Union
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from .errors import EventDecodeError, RunnerError

_FROZEN = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------------------------
# Scope: where an event was emitted
# ---------------------------------------------------------------------------------------------


class NodeScope(BaseModel):
    """A node's failure or a node's non-fatal event."""

    model_config = _FROZEN
    kind: Literal["node"] = "node"
    node: str
    step: int


class SchedulerScope(BaseModel):
    """Scheduling of a superstep: routers, gating, concurrency."""

    model_config = _FROZEN
    kind: Literal["scheduler"] = "scheduler"
    step: int


class RunnerScope(BaseModel):
    """The runner itself: step limits, checkpoint failures."""

    model_config = _FROZEN
    kind: Literal["runner"] = "runner"
    session: str
    step: int


class AppScope(BaseModel):
    """Process-wide: plugins, sinks, configuration, cap summaries."""

    model_config = _FROZEN
    kind: Literal["app"] = "app"


Scope = Annotated[Union[NodeScope, SchedulerScope, RunnerScope, AppScope], Field(discriminator="kind")]


# ---------------------------------------------------------------------------------------------
# The error ladder
# ---------------------------------------------------------------------------------------------


class ErrorLadder(BaseModel):
    """One rung of an exception chain, with the next rung in `cause` and group members in `group`.

    `via` says how this rung hangs from its parent: ``"cause"`` (``raise ... from``),
    ``"context"`` (raised while handling) or ``"group"`` (a member of an exception group).
    """

    model_config = _FROZEN
    type: str
    message: str
    code: str | None = None
    help: str | None = None
    details: dict[str, JsonValue] = Field(default_factory=dict)
    notes: tuple[str, ...] = ()
    via: Literal["cause", "context", "group"] | None = None
    cause: ErrorLadder | None = None
    group: tuple[ErrorLadder, ...] = ()

    def rungs(self) -> list[ErrorLadder]:
        """Return this rung and every rung below it, depth first (group members before the cause)."""
        out: list[ErrorLadder] = []
        stack: list[ErrorLadder] = [self]
        while stack:
            rung = stack.pop()
            out.append(rung)
            if rung.cause is not None:
                stack.append(rung.cause)
            stack.extend(reversed(rung.group))
        return out


class ErrorEvent(BaseModel):
    """A structured error breadcrumb. Immutable; `id` is the deduplication key everywhere.

    Attributes:
        id: a UUID, unique per event; stores and sinks are idempotent on it.
        when: the UTC time the event was built.
        scope: where it was emitted: node, scheduler, runner or app.
        error: the exception ladder, as data.
        tags: short labels (``"retry"``, ``"attempt:2/3"``, ``"summary"``...).
        context: JSON data about the circumstances (session, attempt, delay...).
        redacted: paths of values a redaction processor scrubbed (``"context.token"``).
        truncated: paths of values cut to the configured size limits.
    """

    model_config = _FROZEN
    id: UUID
    when: AwareDatetime
    scope: Scope
    error: ErrorLadder
    tags: tuple[str, ...] = ()
    context: dict[str, JsonValue] = Field(default_factory=dict)
    redacted: tuple[str, ...] = ()
    truncated: tuple[str, ...] = ()

    @field_validator("when")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(timezone.utc)

    # -- convenience read-only views -----------------------------------------------------------

    @property
    def code(self) -> str | None:
        """The top rung's code (``railgraph.runner.node_failed``...), if any."""
        return self.error.code

    @property
    def node(self) -> str | None:
        """The node of a node-scope event, else ``None``."""
        return self.scope.node if isinstance(self.scope, NodeScope) else None

    @property
    def step(self) -> int | None:
        """The step of a node, scheduler or runner event, else ``None``."""
        return getattr(self.scope, "step", None)

    @property
    def is_summary(self) -> bool:
        """True for a cap summary (stands for events dropped from ``extra["errors"]``)."""
        return self.error.code == SUMMARY_CODE

    def summary_line(self) -> str:
        """One line: scope, code and message."""
        where = self.scope.kind + (f":{self.node}" if self.node else "")
        step = f" step {self.step}" if self.step is not None else ""
        code = f" [{self.code}]" if self.code else ""
        return f"{where}{step}{code} {self.error.type}: {self.error.message}"

    # -- JSON ----------------------------------------------------------------------------------

    def to_json(self) -> str:
        """Serialise to compact JSON; `from_json` of the result equals this event."""
        # model_dump_json() with its defaults, less its Python wrapper (an eighth of the time)
        return self.__pydantic_serializer__.to_json(self).decode()

    @classmethod
    def from_json(cls, data: str | bytes) -> ErrorEvent:
        """Decode and validate untrusted JSON.

        Raises:
            EventDecodeError: the data is not JSON, or not an ErrorEvent; the message names the
                first failing field path.
        """
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise EventDecodeError(
                f"invalid ErrorEvent: {path}: {first['msg']} ({exc.error_count()} error(s))",
                details={"path": path},
            ) from None

    @classmethod
    def from_data(cls, data: Any) -> ErrorEvent:
        """Validate a decoded mapping (from a store or a sink); raises `EventDecodeError`."""
        if isinstance(data, ErrorEvent):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise EventDecodeError(f"invalid ErrorEvent: {path}: {first['msg']}", details={"path": path}) from None


SUMMARY_CODE = "railgraph.errors.capped"


# ---------------------------------------------------------------------------------------------
# Building events from exceptions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Size bounds for one event; anything cut is listed in `ErrorEvent.truncated`."""

    max_message: int = 4096
    max_depth: int = 32
    max_group: int = 64
    max_notes: int = 16
    max_context_bytes: int = 16384


DEFAULT_LIMITS = EventLimits()


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception's own ``__str__`` raises."""
    try:
        return str(exc)
    except Exception as inner:  # a broken __str__ must not break the error path
        return f"<unprintable {type(exc).__name__}: its __str__ raised {type(inner).__name__}>"


def qualified_type(exc: BaseException) -> str:
    """``ValueError`` for builtins, ``module.Qualname`` for everything else."""
    cls = type(exc)
    if cls.__module__ in ("builtins", "exceptions"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def to_json_value(value: Any, _depth: int = 0) -> JsonValue:
    """Best-effort conversion of arbitrary data to JSON data (unknown objects become ``repr``)."""
    return _JsonWalk().convert(value, _depth)


class _JsonWalk:
    """One pass of `to_json_value` that also learns what the builders need to know of the result.

    `exact` says whether the result is made only of dict, list, str, int, bool, float and None
    themselves, which validation stores unchanged; to_json_value keeps a subclass (an ``IntEnum``, a
    str subclass) as it is, and validation would convert it. For an exact result, `bound` is a
    never-low bound on the length of its JSON text (counted as `_upper_bound` counts).
    """

    __slots__ = ("bound", "exact")

    def __init__(self) -> None:
        self.bound = 2
        self.exact = True

    def text(self, value: str) -> str:
        """Count a string of the result (a key, a ``repr``) and return it."""
        self.bound += 12 * len(value) + 2
        if type(value) is not str:
            self.exact = False
        return value

    def convert(self, value: Any, depth: int = 0) -> JsonValue:
        """`to_json_value(value)`, counted into `bound` and `exact`."""
        cls = type(value)
        if cls is str:
            self.bound += 12 * len(value) + 2
            return value
        if value is None or cls is bool or (cls is int and -10**20 < value < 10**20):
            self.bound += 26
            return value
        if cls is dict and depth <= 16:
            return self.mapping(value, depth)
        if cls is int:
            self.bound += len(str(value))
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                return self.text(repr(value))
            self.bound += 26
            if cls is not float:
                self.exact = False
            return value
        if isinstance(value, (int, str)):  # a subclass (an IntEnum...), kept as it is
            self.exact = False
            return value
        if depth > 16:
            return self.text(repr(value))
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self.convert(v, depth + 1) for v in value]
            self.bound += 2 + 2 * len(items)  # brackets and the ", " separators
            return items
        return self.text(repr(value))

    def mapping(self, value: Mapping[Any, Any], depth: int = 0) -> dict[str, JsonValue]:
        """`to_json_value` of a mapping, counted into `bound` and `exact`."""
        self.bound += 2  # the braces
        out: dict[str, JsonValue] = {}
        for k, v in value.items():
            key = str(k)
            if type(key) is not str:
                self.exact = False
            self.bound += 12 * len(key) + 6  # the quoted key, the colon and the ", " separator
            out[key] = self.convert(v, depth + 1)
        return out


def _upper_bound(value: Any, budget: int) -> int:
    """A cheap upper bound on ``len(json.dumps(value))`` — exact enough to skip encoding small data.

    Counts 12 characters per character of text (a surrogate pair of ``\\uXXXX`` escapes) and stops as soon as
    the bound passes `budget` (the caller then measures exactly).
    """
    total = 2
    stack = [value]
    while stack:
        v = stack.pop()
        cls = type(v)
        if cls is str:
            total += 12 * len(v) + 2
        elif v is None or cls is bool or cls is float:
            total += 26
        elif cls is int:
            total += 26 if -10**20 < v < 10**20 else len(str(v))
        elif cls is dict or isinstance(v, Mapping):
            total += 2  # the braces
            for k, item in v.items():
                total += 12 * len(str(k)) + 6
                stack.append(item)
        elif cls is list or isinstance(v, (list, tuple)):
            total += 2 + 2 * len(v)  # brackets and the ", " separators
            stack.extend(v)
        else:
            total += 12 * len(repr(v)) + 2
        if total > budget:
            return total
    return total


def _json_size_over(value: Any, limit: int) -> tuple[bool, int]:
    """Whether the JSON text of `value` is longer than `limit`, and its size when it was measured."""
    if _upper_bound(value, limit) <= limit:
        return False, 0
    size = len(json.dumps(value, default=str))
    return size > limit, size


_CUT_MARK = re.compile(r"… \[truncated \d+ chars\]\Z")


def _fits(text: str, limit: int) -> bool:
    """Whether `text` is within `limit` characters, not counting the marker a cut ends with: a text
    cut once (by a builder) is not cut again (by `bound_event`), which would lose the count it states."""
    if len(text) <= limit:
        return True
    mark = _CUT_MARK.search(text, max(0, len(text) - 48))
    return mark is not None and mark.start() <= limit


# where a cut may fall: after whitespace only. The redactor's patterns span every other character
# (a URL password may hold `,;&()`, a quoted value `;` — cutting after one left half a secret)
_TOKEN_END = re.compile(r"\s")


class _Cutter:
    """Applies `EventLimits` while building, remembering which paths were cut."""

    __slots__ = ("limits", "cut", "exact")

    def __init__(self, limits: EventLimits) -> None:
        self.limits = limits
        self.cut: list[str] = []
        self.exact = True  # all `data` has returned is exact (see `_JsonWalk`): models may hold it unvalidated

    def text(self, value: str, path: str) -> str:
        limit = self.limits.max_message
        if _fits(value, limit):
            return value
        self.cut.append(path)
        kept = value[:limit]
        if not value[limit].isspace():
            # never keep the head of a token cut in two (half a URL password or key would escape
            # the redactor's patterns, which run after the cut and need the whole token): back off
            # to the last whitespace, however far back; a message that is one huge token keeps none
            end = _TOKEN_END.search(kept[::-1])
            kept = kept[:len(kept) - end.start()] if end is not None else ""
        return kept + f"… [truncated {len(value) - len(kept)} chars]"

    def data(self, value: dict[str, Any], path: str) -> dict[str, JsonValue]:
        walk = _JsonWalk()
        data = walk.mapping(value)
        limit = self.limits.max_context_bytes
        if walk.exact and walk.bound <= limit:
            return data
        size = len(json.dumps(data, default=str))
        if size <= limit:
            self.exact = self.exact and walk.exact
            return data
        self.cut.append(path)
        return {"truncated": f"{size} bytes of JSON exceeded the {limit}-byte limit"}


_SCOPES = (NodeScope, SchedulerScope, RunnerScope, AppScope)
_NO_CHAIN: dict[str, Any] = {"notes": (), "via": None, "cause": None, "group": ()}  # ErrorLadder's defaults
# the fields the builders pass (`BaseModel.model_fields_set`): all of a rung's, five of make_event's
_LADDER_FIELDS = frozenset(ErrorLadder.model_fields)
_LADDER_GIVEN = frozenset(("type", "message", "code", "help", "details"))
_EVENT_GIVEN = frozenset(ErrorEvent.model_fields) - {"redacted"}
_Model = TypeVar("_Model", bound=BaseModel)
_new = object.__new__
_setattr = object.__setattr__


def _trusted(cls: type[_Model], fields: dict[str, Any], given: frozenset[str]) -> _Model:
    """A `cls` holding `fields` (every field, in declaration order) without validating them.

    Only for values that validation would store unchanged. Sets what `BaseModel.model_construct`
    sets (the values, the names `given`, no extra or private values) without its per-field alias
    and default look-ups, which cost more than validating does.
    """
    model = _new(cls)
    _setattr(model, "__dict__", fields)
    _setattr(model, "__pydantic_fields_set__", set(given))
    _setattr(model, "__pydantic_extra__", None)
    _setattr(model, "__pydantic_private__", None)
    return model


_SCOPE_GIVEN = frozenset(("node", "step"))


def node_scope(node: str, step: int) -> NodeScope:
    """``NodeScope(node=node, step=step)``, not validated again when `node` is a str and `step` an int."""
    if type(node) is str and type(step) is int:
        return _trusted(NodeScope, {"kind": "node", "node": node, "step": step}, _SCOPE_GIVEN)
    return NodeScope(node=node, step=step)


def _all_text(values: Iterable[Any]) -> bool:
    """Whether every value is a str itself (validation converts a subclass)."""
    for value in values:
        if type(value) is not str:
            return False
    return True


def _ladder(cut: _Cutter, fields: dict[str, Any], given: frozenset[str]) -> ErrorLadder:
    """``ErrorLadder(**fields)`` of the fields `given`, not validated again when they are already valid.

    `fields` names every field, in declaration order. The builders make `via`, the rungs and (with
    `cut`) the details valid; the text, from a caller or an exception, is checked here.
    """
    code, help_, notes = fields["code"], fields["help"], fields["notes"]
    if cut.exact and type(fields["type"]) is str and type(fields["message"]) is str \
            and (code is None or type(code) is str) and (help_ is None or type(help_) is str) \
            and (not notes or _all_text(notes)):
        return _trusted(ErrorLadder, fields, given)
    return ErrorLadder(**{name: fields[name] for name in given})


def _event(cut: _Cutter, *, id: UUID, when: datetime, scope: Any, error: ErrorLadder, tags: tuple[str, ...],
           context: dict[str, JsonValue], truncated: tuple[str, ...]) -> ErrorEvent:
    """``ErrorEvent(...)`` of these parts, not validated again when they are already valid.

    The caller's `id`, `when`, `scope` and `tags` are checked here. Anything else (a naive time, a
    zone that is not a fixed offset, a subclass) is validated, which converts or rejects it.
    """
    if cut.exact and type(id) is UUID and type(when) is datetime and type(when.tzinfo) is timezone \
            and type(scope) in _SCOPES and (not tags or _all_text(tags)):
        fields = {"id": id, "when": when.astimezone(timezone.utc),  # as the `_utc` validator does
                  "scope": scope, "error": error, "tags": tags, "context": context, "redacted": (),
                  "truncated": truncated}
        return _trusted(ErrorEvent, fields, _EVENT_GIVEN)
    return ErrorEvent(id=id, when=when, scope=scope, error=error, tags=tags, context=context, truncated=truncated)


def _rung(exc: BaseException, via: str | None, depth: int, seen: set[int], cut: _Cutter, path: str) -> ErrorLadder:
    seen.add(id(exc))
    code = help_ = None
    details: dict[str, Any] = {}
    if isinstance(exc, RunnerError):
        code, help_ = exc.code, exc.help
        details = {**exc.where(), **exc.details}
    raw_notes = getattr(exc, "__notes__", None)
    notes = tuple(n if isinstance(n, str) else repr(n) for n in raw_notes) if raw_notes else ()
    if len(notes) > cut.limits.max_notes:
        cut.cut.append(f"{path}.notes")
        notes = notes[: cut.limits.max_notes]
    group: list[ErrorLadder] = []
    members = getattr(exc, "exceptions", None) if isinstance(exc, BaseExceptionGroup) else None
    if members:
        deep = depth + 1 > cut.limits.max_depth  # the members would be one rung deeper than the limit
        if deep or len(members) > cut.limits.max_group:
            cut.cut.append(f"{path}.group")
        if not deep:
            for i, member in enumerate(members[: cut.limits.max_group]):
                if id(member) not in seen:
                    group.append(_rung(member, "group", depth + 1, seen, cut, f"{path}.group.{i}"))
    nxt: BaseException | None = exc.__cause__
    nxt_via = "cause"
    if nxt is None and not exc.__suppress_context__:
        nxt, nxt_via = exc.__context__, "context"
    cause = None
    if nxt is not None and id(nxt) not in seen:
        if depth + 1 > cut.limits.max_depth:
            cut.cut.append(f"{path}.cause")
        else:
            cause = _rung(nxt, nxt_via, depth + 1, seen, cut, f"{path}.cause")
    return _ladder(cut, {
        "type": qualified_type(exc),
        "message": cut.text(safe_str(exc), f"{path}.message"),
        "code": code,
        "help": help_,
        "details": cut.data(details, f"{path}.details") if details else {},
        "notes": notes,
        "via": via,
        "cause": cause,
        "group": tuple(group),
    }, _LADDER_FIELDS)


def ladder_from_exception(exc: BaseException, limits: EventLimits = DEFAULT_LIMITS) -> tuple[ErrorLadder, list[str]]:
    """Build the ladder for `exc` and its whole chain; return it with the list of truncated paths."""
    cut = _Cutter(limits)
    return _rung(exc, None, 0, set(), cut, "error"), cut.cut


def event_from_exception(
    exc: BaseException,
    *,
    scope: NodeScope | SchedulerScope | RunnerScope | AppScope,
    id: UUID,
    when: datetime,
    tags: Iterable[str] = (),
    context: Mapping[str, Any] | None = None,
    limits: EventLimits = DEFAULT_LIMITS,
) -> ErrorEvent:
    """Build an `ErrorEvent` from an exception and its chain. Pure: the caller passes `id` and `when`.

    The result equals ``ErrorEvent(...)`` of the same parts; parts this function has already made
    valid are not validated a second time.
    """
    cut = _Cutter(limits)
    ladder = _rung(exc, None, 0, set(), cut, "error")
    ctx = cut.data(dict(context), "context") if context else {}
    return _event(cut, id=id, when=when, scope=scope, error=ladder, tags=tuple(tags), context=ctx,
                  truncated=tuple(cut.cut))


def make_event(
    message: str,
    *,
    scope: NodeScope | SchedulerScope | RunnerScope | AppScope,
    id: UUID,
    when: datetime,
    type: str = "railgraph.Event",
    code: str | None = None,
    help: str | None = None,
    details: Mapping[str, Any] | None = None,
    tags: Iterable[str] = (),
    context: Mapping[str, Any] | None = None,
    limits: EventLimits = DEFAULT_LIMITS,
) -> ErrorEvent:
    """Build an event that has no exception behind it (a warning a node emits, a summary...).

    Like `event_from_exception`, it validates only what it has not made valid itself.
    """
    cut = _Cutter(limits)
    ladder = _ladder(cut, {"type": type, "message": cut.text(message, "error.message"), "code": code, "help": help,
                           "details": cut.data(dict(details), "error.details") if details else {}, **_NO_CHAIN},
                     _LADDER_GIVEN)
    ctx = cut.data(dict(context), "context") if context else {}
    return _event(cut, id=id, when=when, scope=scope, error=ladder, tags=tuple(tags), context=ctx,
                  truncated=tuple(cut.cut))


def _bound_rung(rung: ErrorLadder, depth: int, cut: _Cutter, path: str) -> ErrorLadder:
    lim = cut.limits
    update: dict[str, Any] = {}
    if not _fits(rung.message, lim.max_message):
        update["message"] = cut.text(rung.message, f"{path}.message")
    if rung.help is not None and not _fits(rung.help, lim.max_message):
        update["help"] = cut.text(rung.help, f"{path}.help")
    if rung.details and _json_size_over(rung.details, lim.max_context_bytes)[0]:
        update["details"] = cut.data(dict(rung.details), f"{path}.details")
    notes = rung.notes
    if len(notes) > lim.max_notes:
        cut.cut.append(f"{path}.notes")
        notes = notes[: lim.max_notes]
    if notes and not all(_fits(n, lim.max_message) for n in notes):
        notes = tuple(cut.text(n, f"{path}.notes.{i}") for i, n in enumerate(notes))
    if notes is not rung.notes:
        update["notes"] = notes
    if rung.group:
        group = rung.group
        if len(group) > lim.max_group:
            cut.cut.append(f"{path}.group")
            group = group[: lim.max_group]
        if depth + 1 > lim.max_depth:
            cut.cut.append(f"{path}.group")
            group = ()
        else:
            group = tuple(_bound_rung(g, depth + 1, cut, f"{path}.group.{i}") for i, g in enumerate(group))
        if any(a is not b for a, b in zip(group, rung.group)) or len(group) != len(rung.group):
            update["group"] = group
    if rung.cause is not None:
        if depth + 1 > lim.max_depth:
            cut.cut.append(f"{path}.cause")
            update["cause"] = None
        else:
            cause = _bound_rung(rung.cause, depth + 1, cut, f"{path}.cause")
            if cause is not rung.cause:
                update["cause"] = cause
    return rung.model_copy(update=update) if update else rung


def bound_event(event: ErrorEvent, limits: EventLimits = DEFAULT_LIMITS) -> ErrorEvent:
    """Apply `limits` to an event built elsewhere (by a node, a plugin, a processor).

    Returns `event` itself when it is within the limits; otherwise a copy (same ``id``) with the
    oversized parts cut as `event_from_exception` cuts them, and the cut paths added to ``truncated``.
    """
    cut = _Cutter(limits)
    error = _bound_rung(event.error, 0, cut, "error")
    update: dict[str, Any] = {}
    if error is not event.error:
        update["error"] = error
    if event.context and _json_size_over(event.context, limits.max_context_bytes)[0]:
        update["context"] = cut.data(dict(event.context), "context")
    if not update:
        return event
    update["truncated"] = tuple(dict.fromkeys((*event.truncated, *cut.cut)))
    return event.model_copy(update=update)


IdFactory = Callable[[], UUID]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: the current UTC time."""
    return datetime.now(timezone.utc)


__all__ = [
    "SUMMARY_CODE",
    "AppScope",
    "Clock",
    "DEFAULT_LIMITS",
    "ErrorEvent",
    "ErrorLadder",
    "EventLimits",
    "IdFactory",
    "NodeScope",
    "RunnerScope",
    "SchedulerScope",
    "Scope",
    "bound_event",
    "event_from_exception",
    "ladder_from_exception",
    "make_event",
    "node_scope",
    "qualified_type",
    "to_json_value",
    "utc_now",
]
