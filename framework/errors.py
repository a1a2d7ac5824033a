"""The `RunnerError` tree: typed errors for control flow and diagnostics.

Every error railgraph raises on purpose is a `RunnerError`. Each class declares a stable dotted
`code`, a one-line `help` and the process `exit_code` the CLI uses. Instances carry where it
happened (session, step, node), the `ErrorEvent`(s) the runner emitted for it, and the cause
chain through ``raise ... from``.

    RunnerError                      railgraph.error                      exit 1
    ├── GraphError                   railgraph.graph.invalid              exit 2
    ├── ConfigError                  railgraph.config.invalid             exit 3
    ├── PluginError                  railgraph.plugin.failed              exit 4
    ├── EventDecodeError (ValueError) railgraph.events.invalid            exit 5
    ├── InputError (ValueError)      railgraph.input.invalid              exit 6
    ├── NodeError                    railgraph.runner.node_error          exit 10
    │   ├── NodeFailed               railgraph.runner.node_failed         exit 10
    │   ├── NodeTimeout (TimeoutError) railgraph.runner.node_timeout      exit 11
    │   ├── ReservedKeyError         railgraph.barrier.reserved_key       exit 12
    │   └── UnstorableValueError     railgraph.barrier.unstorable_value   exit 12
    ├── RouterError                  railgraph.scheduler.router_failed    exit 13
    ├── BarrierError                 railgraph.barrier.failed             exit 14
    ├── StepLimitError               railgraph.runner.step_limit          exit 15
    └── CheckpointError              railgraph.persistence.checkpoint_failed exit 16
        ├── SessionBusyError         railgraph.persistence.session_busy   exit 17
        └── SessionNotFoundError     railgraph.persistence.session_not_found exit 18

Control-flow signals (an interrupt) are not errors and are not in this tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .events import ErrorEvent

# Every code in one place: the CLI, the docs and the tests read this table.
CODES: dict[str, tuple[str, int]] = {}


def _register(cls: type[RunnerError]) -> type[RunnerError]:
    existing = CODES.get(cls.code)
    if existing is not None and existing != (cls.help, cls.exit_code):
        raise RuntimeError(f"duplicate error code {cls.code}")  # pragma: no cover - import-time guard
    CODES[cls.code] = (cls.help, cls.exit_code)
    return cls


class RunnerError(Exception):
    """Root of every error railgraph raises on purpose.

    Args:
        message: what went wrong, in one sentence.
        session: the session id, when one is known.
        step: the superstep, when one is known.
        node: the node, when one is known.
        event: the `ErrorEvent` the runner emitted for this failure, if any.
        events: every event emitted for this failure (``event`` is the first).
        details: extra structured data for the diagnostic.
    """

    code: ClassVar[str] = "railgraph.error"
    help: ClassVar[str] = "See the cause ladder above for what failed."
    exit_code: ClassVar[int] = 1

    def __init__(
        self,
        message: str,
        *,
        session: str | None = None,
        step: int | None = None,
        node: str | None = None,
        event: ErrorEvent | None = None,
        events: tuple[ErrorEvent, ...] = (),
        details: dict[str, Any] | None = None,
        help: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.session = session
        self.step = step
        self.node = node
        self.events: tuple[ErrorEvent, ...] = tuple(events) or ((event,) if event is not None else ())
        self.event = event if event is not None else (self.events[0] if self.events else None)
        self.details = dict(details or {})
        if help is not None:
            self.help = help  # instance-specific help overrides the class line

    def where(self) -> dict[str, Any]:
        """Return the known location fields (session, step, node) without the empty ones."""
        found = {"session": self.session, "step": self.step, "node": self.node}
        return {k: v for k, v in found.items() if v is not None}

    def stored_help(self) -> str | None:
        """The help line as stored and shown: the committed event's (redacted, as an instance's own
        ``help=`` is free text), else the class's line, which is code."""
        if self.event is not None and self.event.error.help is not None:
            return self.event.error.help
        return type(self).help

    def with_events(self, events: tuple[ErrorEvent, ...]) -> RunnerError:
        """Attach the events the runner emitted for this error and return it."""
        self.events = tuple(events)
        self.event = self.events[0] if self.events else None
        return self

    def __str__(self) -> str:
        return self.message

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)


_register(RunnerError)


class GraphError(RunnerError):
    """The graph definition is invalid (found by `GraphBuilder.compile`)."""

    code = "railgraph.graph.invalid"
    help = "Fix the graph definition: every node named in an edge must be added, reachable and unique."
    exit_code = 2


class ConfigError(RunnerError):
    """A setting is invalid: the message names the file, the key path and, where known, the line."""

    code = "railgraph.config.invalid"
    help = "Fix the named key; `railgraph config validate FILE` checks a file, `config schema` lists every key."
    exit_code = 3

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.file, self.key, self.line = file, key, line

    def where(self) -> dict[str, Any]:
        found = super().where()
        found.update({k: v for k, v in {"file": self.file, "key": self.key, "line": self.line}.items() if v is not None})
        return found


class PluginError(RunnerError):
    """A plugin failed to load or raised inside a hook; names the plugin and the hook."""

    code = "railgraph.plugin.failed"
    help = "The named plugin raised. Fix it, or block it with `plugins.disable = [\"NAME\"]`."
    exit_code = 4

    def __init__(self, message: str, *, plugin: str | None = None, hook: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.plugin, self.hook = plugin, hook

    def where(self) -> dict[str, Any]:
        found = super().where()
        found.update({k: v for k, v in {"plugin": self.plugin, "hook": self.hook}.items() if v is not None})
        return found


class EventDecodeError(RunnerError, ValueError):
    """Stored or received event JSON is not a valid `ErrorEvent`."""

    code = "railgraph.events.invalid"
    help = "The data is not an ErrorEvent; the message names the first field that failed validation."
    exit_code = 5


class InputError(RunnerError, ValueError):
    """The input given to a run is not valid (not a mapping, bad messages, reserved keys)."""

    code = "railgraph.input.invalid"
    help = "Input is a mapping with optional `messages` (list of {role, content}) and `extra` (a mapping)."
    exit_code = 6


class NodeError(RunnerError):
    """Base for failures attributed to one node."""

    code = "railgraph.runner.node_error"
    help = "A node failed; its partial was not merged. Resume the session to re-run only failed nodes."
    exit_code = 10


class NodeFailed(NodeError):
    """A node raised an exception (after any retries)."""

    code = "railgraph.runner.node_failed"
    help = "The node raised; fix the cause above, then resume: `graph.invoke(None, SESSION_ID)` or `railgraph run TARGET --session ID --resume`."
    exit_code = 10


class NodeTimeout(NodeError, TimeoutError):
    """A node ran longer than its timeout."""

    code = "railgraph.runner.node_timeout"
    help = "Raise `runner.node_timeout` (or the node's own timeout), or make the node faster."
    exit_code = 11


class ReservedKeyError(NodeError):
    """A node wrote a reserved key of `extra` (such as `extra["errors"]`) directly."""

    code = "railgraph.barrier.reserved_key"
    help = "extra[\"errors\"] is written by the runner only: return events in NodePartial(errors=[...])."
    exit_code = 12


class UnstorableValueError(NodeError):
    """A node returned a value that cannot be stored (not JSON-representable, or too large)."""

    code = "railgraph.barrier.unstorable_value"
    help = "Return JSON-representable values (str, int, float, bool, None, lists, string-keyed dicts)."
    exit_code = 12


class RouterError(RunnerError):
    """A conditional-edge router raised or returned a node that does not exist."""

    code = "railgraph.scheduler.router_failed"
    help = "A router must return a node name (or a list of them) that the graph has, or END."
    exit_code = 13


class BarrierError(RunnerError):
    """Merging the partials of a superstep failed."""

    code = "railgraph.barrier.failed"
    help = "A reducer or event processor failed while merging; see the cause ladder."
    exit_code = 14


class StepLimitError(RunnerError):
    """The run reached `runner.max_steps` with nodes still to run."""

    code = "railgraph.runner.step_limit"
    help = "Raise `runner.max_steps`, or check the graph for an unintended cycle; resume to continue."
    exit_code = 15


class CheckpointError(RunnerError):
    """Reading or writing a checkpoint failed; names the session and step. Stored data is never overwritten."""

    code = "railgraph.persistence.checkpoint_failed"
    help = "The store could not read or write a checkpoint; nothing stored was overwritten."
    exit_code = 16


class SessionBusyError(CheckpointError):
    """Another worker is running this session."""

    code = "railgraph.persistence.session_busy"
    help = "One worker runs a session at a time; wait for the other worker or use another session id."
    exit_code = 17


class SessionNotFoundError(CheckpointError):
    """No stored checkpoint exists for the session."""

    code = "railgraph.persistence.session_not_found"
    help = "Start the session with an input first; `railgraph sessions` lists the stored ones."
    exit_code = 18


__all__ = [
    "CODES",
    "BarrierError",
    "CheckpointError",
    "ConfigError",
    "EventDecodeError",
    "GraphError",
    "InputError",
    "NodeError",
    "NodeFailed",
    "NodeTimeout",
    "PluginError",
    "ReservedKeyError",
    "RouterError",
    "RunnerError",
    "SessionBusyError",
    "SessionNotFoundError",
    "StepLimitError",
    "UnstorableValueError",
]
