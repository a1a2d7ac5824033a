"""Rendering: a `RunnerError` as a compiler-style diagnostic, and error events as a readable ladder.

Everything here is pure: functions take errors, stored data or events and return rich renderables
(`rich.text.Text`) or plain strings. Printing them is the caller's business; a rich console that
is not a terminal prints them without ANSI codes, and `to_plain` renders any of them to a string.

A diagnostic reads::

    error[railgraph.runner.node_failed]: node 'lookup' failed at step 3 (ConnectionError)
      ┌─ session demo · step 3 · node lookup
      │
      ├─▶ caused by ConnectionError: CRM returned HTTP 503
      │   └─▶ caused by TimeoutError: read timed out after 2.0s
      │
      └─ help: The node raised; fix the cause above, then resume with ...

The cause ladder comes from the *stored* event (``err.event.error``): the ladder after the event
processors ran, so whatever the redact plugin scrubbed never reaches the output, and a later
process renders the very same report from the store (`diagnostic_from_failure`). Only an error
that emitted no event at all (a bad config file, an invalid graph) is rendered from the live
exception chain.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

from .errors import CODES, RunnerError
from .events import ErrorEvent, ErrorLadder, ladder_from_exception

# keys of a top rung's details that the `where` line already shows
_WHERE_KEYS = frozenset({"session", "step", "node", "file", "key", "line", "plugin", "hook"})
_VIA = {"cause": "caused by", "context": "while handling", None: "caused by"}

STYLE_ERROR = "bold red"
STYLE_CODE = "bold"
STYLE_GUTTER = "blue"
STYLE_DIM = "dim"
STYLE_HELP = "cyan"
STYLE_TYPE = "yellow"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Everything a diagnostic shows, whether built from a live error or from stored data.

    Attributes:
        code: the stable dotted code (``railgraph.runner.node_failed``).
        message: the headline (the stored event's message when there is an event).
        help: the one-line help.
        exit_code: the process exit code the CLI uses.
        where: location fields (session, step, node; file, key, line; plugin, hook).
        ladder: the top rung of the cause ladder (its causes and group members are shown), if any.
        details: structured details beyond `where`.
        event_id: the id of the stored event, if any.
        tags, context, redacted, truncated: from the stored event, if any.
    """

    code: str
    message: str
    help: str | None = None
    exit_code: int = 1
    where: Mapping[str, Any] = field(default_factory=dict)
    ladder: ErrorLadder | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    tags: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    redacted: tuple[str, ...] = ()
    truncated: tuple[str, ...] = ()


def _from_event(event: ErrorEvent) -> dict[str, Any]:
    details = {k: v for k, v in event.error.details.items() if k not in _WHERE_KEYS}
    return {"ladder": event.error, "details": details, "event_id": str(event.id), "tags": tuple(event.tags),
            "context": {k: v for k, v in event.context.items() if k != "session"},
            "redacted": tuple(event.redacted), "truncated": tuple(event.truncated)}


def diagnostic_of(err: RunnerError) -> Diagnostic:
    """Build the diagnostic of a live `RunnerError`.

    With an emitted event, the headline, the help line and the ladder come from the event (redacted,
    as stored); without one, from the exception and its ``__cause__`` / ``__context__`` chain.
    """
    event = err.event
    base: dict[str, Any] = {"code": err.code, "help": err.help, "exit_code": err.exit_code, "where": err.where()}
    if event is not None:
        base["help"] = err.stored_help()
        return Diagnostic(message=event.error.message, **base, **_from_event(event))
    ladder, _ = ladder_from_exception(err)
    return Diagnostic(message=err.message, ladder=ladder, details=dict(err.details), **base)


def diagnostic_from_failure(failure: Mapping[str, Any], event: ErrorEvent | None) -> Diagnostic:
    """Build the diagnostic from what the failed checkpoint stored (`Runner.failure`).

    Renders exactly like `diagnostic_of` on the live error did, in any later process.
    """
    code = str(failure.get("code") or "railgraph.error")
    help_, exit_code = CODES.get(code, (None, 1))
    base: dict[str, Any] = {
        "code": code,
        "help": failure.get("help") or help_,
        "exit_code": int(failure.get("exit_code") or exit_code),
        "where": dict(failure.get("where") or {}),
    }
    if event is not None:
        return Diagnostic(message=event.error.message, **base, **_from_event(event))
    return Diagnostic(message=str(failure.get("message", "")), **base)


# ---------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------


def _fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value and " " not in value else repr(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pairs(data: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in data.items())


def where_line(where: Mapping[str, Any]) -> str:
    """``session demo · step 3 · node lookup`` (file locations as ``file:line``)."""
    parts: list[str] = []
    if "file" in where:
        parts.append(f"{where['file']}:{where['line']}" if where.get("line") else str(where["file"]))
    if "key" in where:
        parts.append(f"key {where['key']}")
    for name in ("session", "step", "node", "plugin", "hook"):
        if name in where:
            parts.append(f"{name} {where[name]}")
    return " · ".join(parts)


def _span(text: str, style: str) -> Text:
    """`text` styled as a span (a base style would leak into everything appended after it)."""
    return Text.assemble((text, style))


def _rung_text(rung: ErrorLadder, label: str) -> Text:
    text = Text()
    if label:
        text.append(label + " ", style=STYLE_DIM)
    text.append(rung.type, style=STYLE_TYPE)
    text.append(": ")
    text.append(rung.message)
    if rung.code:
        text.append(f" [{rung.code}]", style=STYLE_DIM)
    return text


def ladder_lines(top: ErrorLadder, gutter: str = "", *, trunk: bool = False) -> list[Text]:
    """The rungs under `top`, one per line, drawn as a tree indented under `gutter`.

    A rung's children are its exception-group members (``[1]``, ``[2]`` ...) then its cause,
    labelled ``caused by`` (``raise ... from``) or ``while handling`` (implicit context). With
    `trunk`, the first level never closes its branch (the caller draws more lines below it).
    """
    lines: list[Text] = []

    def children(rung: ErrorLadder) -> list[tuple[ErrorLadder, str]]:
        kids = [(m, f"[{i}]") for i, m in enumerate(rung.group, 1)]
        if rung.cause is not None:
            kids.append((rung.cause, _VIA.get(rung.cause.via, "caused by")))
        return kids

    def walk(rung: ErrorLadder, label: str, prefix: str, last: bool) -> None:
        arrow = "─ " if label.startswith("[") else "─▶ "
        line = _span(gutter + prefix + ("└" if last else "├") + arrow, STYLE_GUTTER)
        line.append_text(_rung_text(rung, label))
        lines.append(line)
        inner = prefix + ("    " if last else "│   ")
        for note in rung.notes:
            lines.append(_span(gutter + inner, STYLE_GUTTER) + _span("note: " + note, STYLE_DIM))
        kids = children(rung)
        for i, (kid, kid_label) in enumerate(kids):
            walk(kid, kid_label, inner, i == len(kids) - 1)

    kids = children(top)
    for i, (kid, label) in enumerate(kids):
        walk(kid, label, "", (i == len(kids) - 1) and not trunk)
    return lines


# ---------------------------------------------------------------------------------------------
# The diagnostic
# ---------------------------------------------------------------------------------------------


def render_diagnostic(diag: Diagnostic | RunnerError) -> Text:
    """Render a diagnostic (or a `RunnerError`, via `diagnostic_of`) as compiler-style text."""
    if isinstance(diag, RunnerError):
        diag = diagnostic_of(diag)
    out = Text()
    out.append("error", style=STYLE_ERROR)
    out.append(f"[{diag.code}]", style=STYLE_ERROR)
    out.append(": ", style=STYLE_CODE)
    out.append(diag.message, style=STYLE_CODE)
    body: list[Text] = []
    if diag.ladder is not None:
        for note in diag.ladder.notes:
            body.append(_span("  ├─ ", STYLE_GUTTER) + Text("note: " + note))
        ladder = ladder_lines(diag.ladder, "  ", trunk=True)
        if ladder:
            body.append(Text("  │", style=STYLE_GUTTER))
            body.extend(ladder)
            body.append(Text("  │", style=STYLE_GUTTER))
    extras: list[tuple[str, str]] = []
    if diag.details:
        extras.append(("details", _pairs(diag.details)))
    if diag.context:
        extras.append(("context", _pairs(diag.context)))
    if diag.tags:
        extras.append(("tags", ", ".join(diag.tags)))
    if diag.redacted:
        extras.append(("redacted", ", ".join(diag.redacted)))
    if diag.truncated:
        extras.append(("truncated", ", ".join(diag.truncated)))
    for name, value in extras:
        body.append(_span("  ├─ ", STYLE_GUTTER) + _span(f"{name}: ", STYLE_DIM) + Text(value))
    where = where_line(diag.where)
    lines: list[Text] = []
    if where:
        lines.append(_span("  ┌─ ", STYLE_GUTTER) + Text(where))
    lines.extend(body)
    if diag.help:
        lines.append(_span("  └─ ", STYLE_GUTTER) + _span("help: ", STYLE_HELP) + Text(diag.help))
    elif lines:
        lines.append(Text("  ╵", style=STYLE_GUTTER))
    for line in lines:
        out.append("\n")
        out.append_text(line)
    return out


# ---------------------------------------------------------------------------------------------
# Event lists
# ---------------------------------------------------------------------------------------------


def when_text(event: ErrorEvent) -> str:
    """The event time as ``2026-01-01 12:00:00.001Z``."""
    return event.when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def scope_text(event: ErrorEvent) -> str:
    """``node lookup · step 3``, ``scheduler · step 2``, ``runner · step 4`` or ``app``."""
    parts = [event.scope.kind + (f" {event.node}" if event.node else "")]
    if event.step is not None:
        parts.append(f"step {event.step}")
    return " · ".join(parts)


def render_event(event: ErrorEvent, index: int | None = None) -> Text:
    """One event: a header (number, time, scope, tags), its message and its cause ladder."""
    head = Text()
    num = f"#{index}" if index is not None else "•"
    head.append(f"{num:>4}  ", style=STYLE_DIM)
    head.append(when_text(event), style=STYLE_DIM)
    head.append("  ")
    head.append(scope_text(event), style="bold")
    if event.tags:
        head.append("  [" + ", ".join(event.tags) + "]", style="magenta")
    gutter = "      "
    lines = [head]
    top = Text(gutter)
    if event.code:
        top.append(event.code, style=STYLE_ERROR if not event.is_summary else STYLE_DIM)
        top.append("  ")
    top.append(event.error.type, style=STYLE_TYPE)
    top.append(": ")
    top.append(event.error.message)
    lines.append(top)
    for note in event.error.notes:
        lines.append(Text(gutter + "note: " + note, style=STYLE_DIM))
    lines.extend(ladder_lines(event.error, gutter))
    details = {k: v for k, v in event.error.details.items() if k not in _WHERE_KEYS}
    context = {k: v for k, v in event.context.items() if k != "session"}
    for name, data in (("details", details), ("context", context)):
        if data:
            lines.append(Text(gutter) + _span(f"{name}: ", STYLE_DIM) + Text(_pairs(data)))
    if event.redacted:
        lines.append(Text(gutter + "redacted: " + ", ".join(event.redacted), style=STYLE_DIM))
    if event.truncated:
        lines.append(Text(gutter + "truncated: " + ", ".join(event.truncated), style=STYLE_DIM))
    return Text("\n").join(lines)


def summarize_events(events: Sequence[ErrorEvent]) -> str:
    """``4 events: node 3, runner 1 · 1 retry``: a one-line count by scope (and retries)."""
    if not events:
        return "no error events"
    by_scope = Counter(e.scope.kind for e in events)
    parts = [f"{len(events)} event{'s' if len(events) != 1 else ''}: "
             + ", ".join(f"{k} {n}" for k, n in sorted(by_scope.items()))]
    retries = sum(1 for e in events if "retry" in e.tags)
    if retries:
        parts.append(f"{retries} retr{'ies' if retries != 1 else 'y'}")
    summaries = sum(1 for e in events if e.is_summary)
    if summaries:
        parts.append(f"{summaries} cap summar{'ies' if summaries != 1 else 'y'}")
    return " · ".join(parts)


def render_events(events: Iterable[ErrorEvent], *, title: str | None = None, start: int = 1,
                  numbers: Sequence[int] | None = None) -> Text:
    """A list of events as a numbered ladder, oldest first, with a one-line summary at the end.

    Events are numbered from `start`, or by `numbers` (one per event: a filtered list keeps the
    numbers its events have in the whole trail)."""
    events = list(events)
    out = Text()
    if title:
        out.append(title + "\n", style="bold underline")
    for i, event in zip(numbers if numbers is not None else range(start, start + len(events)), events, strict=True):
        out.append_text(render_event(event, i))
        out.append("\n")
    out.append(summarize_events(events), style=STYLE_DIM)
    return out


# ---------------------------------------------------------------------------------------------
# Plain text
# ---------------------------------------------------------------------------------------------


def to_plain(renderable: RenderableType, width: int = 100) -> str:
    """Render anything rich can print to a plain string (no ANSI codes, lines not wrapped)."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False, highlight=False,
                      emoji=False, markup=False)
    console.print(renderable, soft_wrap=True)
    return buf.getvalue().rstrip("\n")


def format_diagnostic(diag: Diagnostic | RunnerError) -> str:
    """`render_diagnostic` as plain text."""
    return to_plain(render_diagnostic(diag))


def format_events(events: Iterable[ErrorEvent], *, title: str | None = None) -> str:
    """`render_events` as plain text."""
    return to_plain(render_events(events, title=title))


__all__ = [
    "Diagnostic",
    "diagnostic_from_failure",
    "diagnostic_of",
    "format_diagnostic",
    "format_events",
    "ladder_lines",
    "render_diagnostic",
    "render_event",
    "render_events",
    "scope_text",
    "summarize_events",
    "to_plain",
    "when_text",
    "where_line",
]
