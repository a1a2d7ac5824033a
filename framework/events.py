"""`ErrorEvent`: structured, immutable error telemetry whose JSON round-trips exactly.

An event says *where* (a discriminated `scope`), *when* (UTC), and *what* (an `ErrorLadder`: the
whole exception chain stored as data — type, message, code, help, details, notes, the cause
and exception-group members — never live exceptions or tracebacks), plus `tags` and `context`.
A later process renders the same report from the stored JSON.

This module does no I/O: clocks and id factories are passed in by the caller.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union
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
        return self.model_dump_json()

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
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if _depth > 16:
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_value(v, _depth + 1) for v in value]
    return repr(value)


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
        elif isinstance(v, Mapping):
            total += 2  # the braces
            for k, item in v.items():
                total += 12 * len(str(k)) + 6
                stack.append(item)
        elif isinstance(v, (list, tuple)):
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


class _Cutter:
    """Applies `EventLimits` while building, remembering which paths were cut."""

    def __init__(self, limits: EventLimits) -> None:
        self.limits = limits
        self.cut: list[str] = []

    def text(self, value: str, path: str) -> str:
        limit = self.limits.max_message
        if len(value) <= limit:
            return value
        self.cut.append(path)
        kept = value[:limit]
        if not value[limit].isspace():
            # never keep the head of a token cut in two (half a URL password or key would escape
            # the redactor's patterns, which need the whole token): back off to the last space
            space = max(kept.rfind(" ", -256), kept.rfind("\n", -256), kept.rfind("\t", -256))
            if space >= 0:
                kept = kept[:space]
        return kept + f"… [truncated {len(value) - len(kept)} chars]"

    def data(self, value: dict[str, Any], path: str) -> dict[str, JsonValue]:
        data = to_json_value(value)
        assert isinstance(data, dict)
        over, size = _json_size_over(data, self.limits.max_context_bytes)
        if not over:
            return data
        self.cut.append(path)
        return {"truncated": f"{size} bytes of JSON exceeded the {self.limits.max_context_bytes}-byte limit"}


def _rung(exc: BaseException, via: str | None, depth: int, seen: set[int], cut: _Cutter, path: str) -> ErrorLadder:
    seen.add(id(exc))
    code = help_ = None
    details: dict[str, Any] = {}
    if isinstance(exc, RunnerError):
        code, help_ = exc.code, exc.help
        details = {**exc.where(), **exc.details}
    notes = tuple(n if isinstance(n, str) else repr(n) for n in getattr(exc, "__notes__", ()) or ())
    if len(notes) > cut.limits.max_notes:
        cut.cut.append(f"{path}.notes")
        notes = notes[: cut.limits.max_notes]
    group: list[ErrorLadder] = []
    members = getattr(exc, "exceptions", None) if isinstance(exc, BaseExceptionGroup) else None
    if members:
        if len(members) > cut.limits.max_group:
            cut.cut.append(f"{path}.group")
        for i, member in enumerate(members[: cut.limits.max_group]):
            if id(member) in seen or depth + 1 > cut.limits.max_depth:
                continue
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
    return ErrorLadder(
        type=qualified_type(exc),
        message=cut.text(safe_str(exc), f"{path}.message"),
        code=code,
        help=help_,
        details=cut.data(details, f"{path}.details") if details else {},
        notes=notes,
        via=via,  # type: ignore[arg-type]
        cause=cause,
        group=tuple(group),
    )


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
    """Build an `ErrorEvent` from an exception and its chain. Pure: the caller passes `id` and `when`."""
    ladder, truncated = ladder_from_exception(exc, limits)
    cut = _Cutter(limits)
    ctx = cut.data(dict(context or {}), "context")
    return ErrorEvent(
        id=id, when=when, scope=scope, error=ladder, tags=tuple(tags), context=ctx,
        truncated=tuple(truncated + cut.cut),
    )


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
    """Build an event that has no exception behind it (a warning a node emits, a summary...)."""
    cut = _Cutter(limits)
    ladder = ErrorLadder(
        type=type, message=cut.text(message, "error.message"), code=code, help=help,
        details=cut.data(dict(details or {}), "error.details") if details else {},
    )
    ctx = cut.data(dict(context or {}), "context")
    return ErrorEvent(id=id, when=when, scope=scope, error=ladder, tags=tuple(tags), context=ctx,
                      truncated=tuple(cut.cut))


def _bound_rung(rung: ErrorLadder, depth: int, cut: _Cutter, path: str) -> ErrorLadder:
    lim = cut.limits
    update: dict[str, Any] = {}
    if len(rung.message) > lim.max_message:
        update["message"] = cut.text(rung.message, f"{path}.message")
    if rung.help is not None and len(rung.help) > lim.max_message:
        update["help"] = cut.text(rung.help, f"{path}.help")
    if rung.details and _json_size_over(rung.details, lim.max_context_bytes)[0]:
        update["details"] = cut.data(dict(rung.details), f"{path}.details")
    notes = rung.notes
    if len(notes) > lim.max_notes:
        cut.cut.append(f"{path}.notes")
        notes = notes[: lim.max_notes]
    if any(len(n) > lim.max_message for n in notes):
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
    "qualified_type",
    "to_json_value",
    "utc_now",
]
