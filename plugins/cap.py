"""Built-in plugin ``cap``: bounds the persisted ``extra["errors"]`` array.

``[plugins.cap]`` sets ``max_events`` (unset: no cap) and a ``strategy``:

* ``summarize`` (default) keeps the newest ``max_events - 1`` events and ONE summary event first
  in the array (app scope, tag ``summary``, code ``railgraph.errors.capped``) whose details count
  every event ever dropped: how many, first / last time, by scope kind, by node and by code. A
  later cap merges the previous summary's counts, so nothing dropped goes unaccounted.
* ``drop-oldest`` keeps the newest ``max_events`` entries and no summary: the array becomes a
  window. It is not silent because the array is not the record of truth: the outbox and the
  dedicated errors store keep every event, and ``runner.errors(session)`` still returns them. Use
  it when tools reading ``extra["errors"]`` cannot handle a summary entry.

The capper is a pure function: the summary's id is a UUID5 of the previous summary's id and the
dropped ids, its time the newest dropped event's time. Kept events are the same objects (the
barrier computes its store delta by identity). Capping twice equals capping once.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from railgraph import AppScope, ErrorEvent, ErrorLadder, Settings, hookimpl
from railgraph.events import SUMMARY_CODE
from railgraph.hookspecs import Capper

NAME = "cap"
SUMMARY_NAMESPACE = uuid.UUID("6f1c4b52-5d0e-4b8e-9a57-2f3f6c1d7a10")


class CapSettings(BaseModel):
    """``[plugins.cap]``: bound the persisted extra["errors"] array."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_events: int | None = Field(None, ge=1, description="Entries kept in extra[\"errors\"], a summary counting "
                                   "as one (unset: no cap).")
    strategy: Literal["summarize", "drop-oldest"] = Field(
        "summarize", description="summarize: one summary entry counts what was dropped; drop-oldest: keep a window "
        "of the newest (the errors store and outbox keep everything).")


def _counts(previous: dict[str, Any], key: str, items: Iterable[str]) -> dict[str, int]:
    merged = Counter({str(k): int(v) for k, v in (previous.get(key) or {}).items()})
    merged.update(items)
    return dict(sorted(merged.items()))


def summarize(previous: ErrorEvent | None, dropped: tuple[ErrorEvent, ...], max_events: int) -> ErrorEvent:
    """The summary standing for `dropped` plus everything `previous` (an older summary) stood for."""
    old: dict[str, Any] = dict(previous.error.details) if previous is not None else {}
    whens = [e.when for e in dropped]
    if "first" in old:
        whens += [datetime.fromisoformat(str(old["first"])), datetime.fromisoformat(str(old["last"]))]
    first, last = min(whens), max(whens)
    count = int(old.get("dropped", 0)) + len(dropped)
    details = {
        "dropped": count,
        "first": first.isoformat(),
        "last": last.isoformat(),
        "by_scope": _counts(old, "by_scope", (e.scope.kind for e in dropped)),
        "by_node": _counts(old, "by_node", (e.node for e in dropped if e.node is not None)),
        "by_code": _counts(old, "by_code", (e.code or "(none)" for e in dropped)),
    }
    seed = ",".join([str(previous.id) if previous is not None else "", *(str(e.id) for e in dropped)])
    return ErrorEvent(
        id=uuid.uuid5(SUMMARY_NAMESPACE, seed), when=last, scope=AppScope(), tags=("summary",),
        error=ErrorLadder(type="railgraph.CapSummary", code=SUMMARY_CODE, details=details,
                          message=f"{count} earlier error event(s) were dropped from extra[\"errors\"] by the cap "
                                  f"(max_events={max_events}); the errors store and outbox keep them"),
    )


def make_capper(max_events: int, strategy: str) -> Capper:
    """Build the pure capping function for `max_events` and `strategy`."""

    def cap(arr: tuple[ErrorEvent, ...]) -> tuple[ErrorEvent, ...]:
        arr = tuple(arr)
        if len(arr) <= max_events:
            return arr
        if strategy == "drop-oldest":
            return arr[-max_events:]
        previous, entries = (arr[0], arr[1:]) if arr[0].is_summary else (None, arr)
        keep = max_events - 1
        dropped = entries[: len(entries) - keep]
        kept = entries[len(entries) - keep:] if keep else ()
        return (summarize(previous, dropped, max_events), *kept)

    # what `railgraph config explain` shows as this decision's answer
    cap.__doc__ = (f"keep the newest {max_events} entries of extra[\"errors\"]"
                   + (", the first a summary of the dropped ones" if strategy == "summarize" else ", drop the oldest"))
    return cap


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.cap]``."""
    return CapSettings


@hookimpl(trylast=True)
def error_capper(settings: Settings) -> Capper | None:
    """The default capper: ``None`` (no cap) unless ``max_events`` is set."""
    section = settings.plugin(NAME)
    if not isinstance(section, CapSettings) or section.max_events is None:
        return None
    return make_capper(section.max_events, section.strategy)
