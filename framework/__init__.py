"""railgraph: graph-driven workflows whose errors are typed, durable, bounded and pluggable.

Public names are re-exported here; see the README for a tour.
"""

from .checkpoint import Checkpoint, Checkpointer, MemoryCheckpointer
from .config import Settings
from .errors import (
    BarrierError,
    CheckpointError,
    ConfigError,
    EventDecodeError,
    GraphError,
    InputError,
    NodeError,
    NodeFailed,
    NodeTimeout,
    PluginError,
    ReservedKeyError,
    RouterError,
    RunnerError,
    SessionBusyError,
    SessionNotFoundError,
    StepLimitError,
    UnstorableValueError,
)
from .events import AppScope, ErrorEvent, ErrorLadder, NodeScope, RunnerScope, SchedulerScope, event_from_exception
from .graph import END, START, GraphBuilder
from .hookspecs import RetryDecision, Sink, StepReport, hookimpl
from .runner import CompiledGraph, Runner
from .scheduler import NodeContext
from .state import FrozenDict, FrozenList, Message, NodePartial, Snapshot, State, user_view

__version__ = "0.1.0"

__all__ = [
    "END",
    "START",
    "AppScope",
    "BarrierError",
    "Checkpoint",
    "CheckpointError",
    "Checkpointer",
    "CompiledGraph",
    "ConfigError",
    "ErrorEvent",
    "ErrorLadder",
    "EventDecodeError",
    "FrozenDict",
    "FrozenList",
    "GraphBuilder",
    "GraphError",
    "InputError",
    "MemoryCheckpointer",
    "Message",
    "NodeContext",
    "NodeError",
    "NodeFailed",
    "NodePartial",
    "NodeScope",
    "NodeTimeout",
    "PluginError",
    "ReservedKeyError",
    "RetryDecision",
    "RouterError",
    "Runner",
    "RunnerError",
    "RunnerScope",
    "SchedulerScope",
    "SessionBusyError",
    "SessionNotFoundError",
    "Settings",
    "Sink",
    "Snapshot",
    "State",
    "StepLimitError",
    "StepReport",
    "UnstorableValueError",
    "event_from_exception",
    "hookimpl",
    "user_view",
]
