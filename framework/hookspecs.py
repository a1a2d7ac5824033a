"""The plugin contract: every hook railgraph calls, and the small types they exchange.

This module is the one place hooks are declared (pluggy project name ``railgraph``). Built-in
policies are plugins implementing these hooks, registered through the ``railgraph`` entry-point
group exactly like third-party plugins; the core only calls hooks. Plugins mark implementations
with ``railgraph.hookimpl``.

Three kinds of hook:

* **Decisions** return a value or ``None`` ("no opinion"); the first non-``None`` answer wins
  (``firstresult``). Built-in defaults are marked ``trylast`` so any other plugin overrides them.
* **Contributions** return objects (a settings model, sinks, an event processor) that the core then
  drives itself — so one failing sink cannot stop the others, and processors chain in the order the
  ``tryfirst`` / ``trylast`` markers set (pluggy itself stops at the first exception and never
  feeds one implementation's output to the next).
* **Notifications** reach every implementation and return nothing.

Decisions and contributions are resolved once per runner (when the graph is compiled), not per
step; notifications fire as things happen. Adding a parameter to a spec is safe; renaming or
removing one breaks plugins. A parameter with a default receives the hook's argument too; a
keyword-only one never could and is refused when the plugin loads. Any exception a hook raises
is wrapped by the core in a `PluginError` naming the plugin and the hook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .checkpoint import Checkpointer
    from .config import Settings
    from .events import ErrorEvent

PROJECT = "railgraph"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

EXTRA_ERRORS_MODES: tuple[str, ...] = ("legacy", "dual", "verify", "store-only")


# ---------------------------------------------------------------------------------------------
# Types the hooks exchange
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class Sink(Protocol):
    """Receives committed events. Delivery is at-least-once; deduplicate on ``event.id``.

    ``name`` keys the sink's delivery cursor in the store, so keep it stable across restarts.
    """

    name: str

    def write(self, session: str, events: Sequence[ErrorEvent]) -> None:
        """Receive events committed for `session`, in emission order. Raising means "not delivered"."""

    def flush(self) -> None:
        """Make written events durable or visible (called after each delivery batch)."""

    def close(self) -> None:
        """Release resources (called once when the runner closes)."""


EventProcessor = Callable[["ErrorEvent"], "ErrorEvent | None"]
"""Transforms, enriches, scrubs or drops (returns ``None``) one event before it is stored."""

Capper = Callable[[tuple["ErrorEvent", ...]], tuple["ErrorEvent", ...]]
"""Trims the ``extra["errors"]`` array after a merge. Must be idempotent and keep the newest."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """A retry policy's answer for one failed attempt.

    Attributes:
        retry: run the node again.
        delay: seconds to wait before the next attempt.
        max_attempts: the total number of attempts the rule allows.
        rule: which rule decided (for the attempt's `ErrorEvent`).
    """

    retry: bool
    delay: float = 0.0
    max_attempts: int = 1
    rule: str = ""


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one superstep did, passed to `after_step`.

    Attributes:
        session: the session id.
        step: the checkpoint number this step committed.
        ran: nodes that ran (or whose pending writes were reused), in frontier order.
        skipped: node → why it was skipped (version gating).
        events: events committed in this step.
        status: the session status after the step.
        versions: channel versions after the step.
        reused: the nodes of `ran` that did not run again: a resumed step reused the result they
            had stored before the step failed (pending writes).
    """

    session: str
    step: int
    ran: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    events: tuple[ErrorEvent, ...] = ()
    status: str = "running"
    versions: dict[str, int] = field(default_factory=dict)
    reused: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@hookspec
def settings_section() -> type[BaseModel] | None:
    """Contribute the pydantic model of this plugin's ``[plugins.<name>]`` TOML table.

    Fires when settings are validated (compile, ``railgraph config ...``). ``<name>`` is the name
    the plugin is registered under (its entry-point name). The model should forbid unknown keys
    and give every field a default, so an absent table means "defaults".

    Returns:
        A pydantic model class, or ``None`` when the plugin has no settings.

    Combination: every result is collected, keyed by plugin name.
    Raises: nothing on purpose; an exception becomes a `PluginError`.
    """


# ---------------------------------------------------------------------------------------------
# Persistence
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def make_checkpointer(backend: str, settings: Settings) -> Checkpointer | None:
    """Provide the checkpointer (and its errors store) for ``persistence.backend``.

    Fires once per runner, when the graph is compiled without an explicit checkpointer.

    Args:
        backend: the configured backend name (``memory``, ``sqlite``, ``postgres``, or a plugin's).
        settings: the validated settings; read your own section with ``settings.plugin(name)``.

    Returns:
        A `Checkpointer` if this plugin serves `backend`, else ``None`` (no opinion).

    Combination: first non-``None`` result wins. No answer at all is a `ConfigError`.
    Raises: `CheckpointError` when the store cannot be opened.
    """


@hookspec(firstresult=True)
def store_missing(backend: str, settings: Settings) -> str | None:
    """Say, without creating anything, that the store `make_checkpointer` would open does not exist.

    Fires before the commands that only read a store (``errors``, ``sessions``, ``store stats``,
    ``migrate errors``, ``run --resume``), which then stop with exit 66 (18 when they asked for a
    session) instead of creating an empty store where a typo in a path, DSN or schema led them.

    Args:
        backend: the configured backend name.
        settings: the validated settings.

    Returns:
        A message naming what is missing (never a password), or ``None``: the store exists, or
        this plugin does not serve `backend`, or it cannot tell (``make_checkpointer`` then
        reports any connection problem).

    Combination: first non-``None`` result wins.
    Raises: nothing on purpose (a store it cannot ask is ``None``); an exception is a `PluginError`.
    """


# ---------------------------------------------------------------------------------------------
# Error events: processing, extra["errors"], capping, gating
# ---------------------------------------------------------------------------------------------


@hookspec
def event_processor(settings: Settings) -> EventProcessor | None:
    """Contribute a processor that transforms, enriches, scrubs or drops events before storage.

    Fires once per runner. The core chains the returned callables in pluggy's call order
    (``tryfirst`` first, ``trylast`` last): each receives the previous one's output; returning
    ``None`` drops the event (nothing downstream sees it).

    Args:
        settings: the validated settings.

    Returns:
        A callable ``(ErrorEvent) -> ErrorEvent | None``, or ``None`` to contribute nothing.

    Raises: a processor that raises at run time does not fail the run: the event it was processing
        is replaced by an app-scope `PluginError` event that keeps none of its text (it may hold
        what the processor was meant to scrub), and the chain goes on with the replacement.
    """


@hookspec(firstresult=True)
def extra_errors_mode(settings: Settings) -> str | None:
    """Decide where events are persisted: the extra-errors flag.

    ``legacy`` — ``extra["errors"]`` only (the seed behaviour); ``dual`` — ``extra["errors"]`` and
    the dedicated errors store (the default); ``verify`` — dual, and any mismatch between the two
    is itself a diagnostic event; ``store-only`` — ``extra["errors"]`` is no longer written.

    Fires once per runner, when the graph is compiled.

    Args:
        settings: the validated settings.

    Returns:
        One of ``EXTRA_ERRORS_MODES``, or ``None`` for no opinion (no answer at all means ``dual``).

    Combination: first non-``None`` wins.
    Raises: nothing on purpose; the core turns an unknown mode into a `ConfigError`.
    """


@hookspec(firstresult=True)
def error_capper(settings: Settings) -> Capper | None:
    """Provide the function that trims ``extra["errors"]`` after each merge.

    The capper receives the whole array (a summary event first, if any) and returns the trimmed
    array: ``len <= max_events``, newest kept in order, dropped events accounted for (a summary,
    or rotated to the dedicated store), and capping twice equals capping once.

    Fires once per runner; the capper itself runs after every merge that added events.

    Args:
        settings: the validated settings.

    Returns:
        A `Capper`, or ``None`` for no opinion (no answer at all means "no cap").

    Combination: first non-``None`` wins.
    Raises: a capper that raises fails the superstep with a `PluginError` naming the plugin; that
        failure is committed without the cap, so no event is lost.
    """


@hookspec(firstresult=True)
def reserved_change_bumps_version(settings: Settings) -> bool | None:
    """Decide the gating toggle: does a change that touches only reserved keys bump ``extra.version``?

    ``True`` (the seed behaviour): injecting an error bumps ``extra.version`` and may re-trigger
    gated nodes. ``False``: the change is stored but no version moves, so no gated node re-runs.

    Fires once per runner.

    Args:
        settings: the validated settings.

    Returns: ``True``, ``False``, or ``None`` for no opinion (no answer at all means ``True``).
    Combination: first non-``None`` wins.
    Raises: nothing on purpose; an exception becomes a `PluginError` at compile time.
    """


@hookspec
def make_sinks(settings: Settings) -> Sequence[Sink] | None:
    """Contribute sinks that receive committed events through the outbox.

    Fires once per runner. The core delivers each sink's backlog after every commit, keeps a
    delivery cursor per sink name in the store (so a restart or an outage loses nothing), and
    isolates failures: a sink that raises or hangs never stops the run or the other sinks; its
    failure is recorded as an app-scope event (rate-limited) and delivery resumes later.

    Args:
        settings: the validated settings.

    Returns: a sequence of `Sink` objects, or ``None``.
    Combination: all results are collected, in call order.
    Raises: an exception here becomes a `PluginError` at compile time; a sink's own ``write``
        raising is handled by the core as described above.
    """


# ---------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def retry_decision(node: str, attempt: int, error: BaseException, settings: Settings) -> RetryDecision | None:
    """Decide whether and when a failed node runs again.

    Fires each time a node attempt raises (not for timeouts of the whole superstep).

    Args:
        node: the node that failed.
        attempt: the attempt that just failed, starting at 1.
        error: the exception it raised.
        settings: the validated settings.

    Returns:
        A `RetryDecision` (``retry=False`` to stop), or ``None`` for no opinion (no retry).

    Combination: first non-``None`` wins. Every attempt, retried or final, becomes an
    `ErrorEvent` tagged ``attempt:n/N`` with the delay and the rule.
    Raises: an exception becomes a `PluginError` (the node's error as its context) that ends the
        node's attempts and fails it; the failure is committed like any other.
    """


# ---------------------------------------------------------------------------------------------
# Lifecycle notifications
# ---------------------------------------------------------------------------------------------


@hookspec
def before_session(session: str, resumed: bool, settings: Settings) -> None:
    """Notify that a run of `session` is starting.

    Args:
        session: the session id.
        resumed: ``True`` when the run continues a stored session (``invoke(None, ...)``).
        settings: the validated settings.

    Returns: nothing; results are ignored.
    Raises: an exception becomes an app-scope `PluginError` event; the run goes on.
    """


@hookspec
def after_step(report: StepReport) -> None:
    """Notify that a superstep committed.

    Fires after each commit, sinks delivered. Implemented by progress displays, metrics, tracing.

    Args:
        report: the `StepReport`: nodes that ran, nodes skipped and why, events, status, versions.

    Returns: nothing; results are ignored.
    Raises: an exception becomes an app-scope `PluginError` event; the run goes on.
    """


@hookspec
def after_session(session: str, status: str, error: BaseException | None) -> None:
    """Notify that a run of `session` stopped.

    Args:
        session: the session id.
        status: ``completed``, ``interrupted``, ``failed`` or ``running`` (stopped by an error
            before a checkpoint could record the failure).
        error: the exception that ended the run, or ``None``.

    Returns: nothing; results are ignored.
    Raises: an exception becomes an app-scope `PluginError` event, committed to the same session
        right after the notification.
    """


__all__ = [
    "EXTRA_ERRORS_MODES",
    "PROJECT",
    "Capper",
    "EventProcessor",
    "RetryDecision",
    "Sink",
    "StepReport",
    "hookimpl",
    "hookspec",
]


def _spec_names() -> list[str]:
    """Names of every hook declared here (for contract tests and `railgraph plugins`)."""
    return [name for name, obj in globals().items() if callable(obj) and hasattr(obj, f"{PROJECT}_spec")]

