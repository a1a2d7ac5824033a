"""The ``memory`` persistence backend: checkpoints in process memory (for tests; opt-in)."""

from __future__ import annotations

from railgraph import Settings, hookimpl
from railgraph.checkpoint import Checkpointer, MemoryCheckpointer


@hookimpl
def make_checkpointer(backend: str, settings: Settings) -> Checkpointer | None:
    """Serve ``persistence.backend = "memory"``."""
    return MemoryCheckpointer() if backend == "memory" else None
