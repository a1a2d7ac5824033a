"""Built-in plugin ``sqlite_store``: the embedded default store (``persistence.backend = "sqlite"``).

One SQLite file (``.railgraph/railgraph.db`` under the working directory unless ``path`` says
otherwise) holds every session's checkpoints (history kept), the outbox with a delivery cursor
per sink, and the dedicated errors store. Write cost per step follows what the step changed. See
the private module `_sqlite` (not an entry point) for the layout.

``[plugins.sqlite_store]``:

* ``path`` — the database file; relative paths are resolved against the working directory.
* ``busy_timeout`` — milliseconds to wait for another process's write before retrying.
* ``synchronous`` — ``NORMAL`` (default; in WAL mode every committed step survives a process
  crash, SIGKILL included; only a power loss or OS crash may lose the last commits) or ``FULL``
  (an fsync per step: survives power loss too, slower).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from railgraph import Settings, hookimpl
from railgraph.checkpoint import Checkpointer
from ._sqlite import SqliteCheckpointer

NAME = "sqlite_store"
DEFAULT_PATH = ".railgraph/railgraph.db"


class SqliteStoreSettings(BaseModel):
    """``[plugins.sqlite_store]``: where and how the embedded store writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(DEFAULT_PATH, min_length=1,
                      description="The SQLite file (relative paths: under the working directory).")
    busy_timeout: int = Field(5000, ge=0, description="Milliseconds to wait for another process's write lock "
                              "before retrying with backoff.")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="NORMAL: committed steps survive a process kill (WAL), not a power loss; "
        "FULL: an fsync per step, survives power loss too.")


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.sqlite_store]``."""
    return SqliteStoreSettings


@hookimpl
def make_checkpointer(backend: str, settings: Settings) -> Checkpointer | None:
    """Serve ``persistence.backend = "sqlite"``: open (creating or migrating) the configured file."""
    if backend != "sqlite":
        return None
    section = settings.plugin(NAME)
    if not isinstance(section, SqliteStoreSettings):
        section = SqliteStoreSettings()
    return SqliteCheckpointer(section.path, busy_timeout=section.busy_timeout, synchronous=section.synchronous)


__all__ = ["SqliteCheckpointer", "SqliteStoreSettings"]
