"""Built-in plugin ``postgres_store``: the shared store (``persistence.backend = "postgres"``).

For many workers on many machines: the same contract and layout as the SQLite store, in one
PostgreSQL schema. One worker runs a session at a time (an advisory lock held while it runs; a
second worker gets `SessionBusyError`). Needs psycopg 3: ``pip install 'railgraph[postgres]'``
(imported only when the backend is used, so this plugin loads without it).

``[plugins.postgres_store]``:

* ``dsn`` — a libpq connection string or URL (also ``RAILGRAPH_PLUGINS__POSTGRES_STORE__DSN``).
* ``schema`` — the schema holding railgraph's tables (created on first use).
"""

from __future__ import annotations

import warnings

from pydantic import BaseModel, ConfigDict, Field

from railgraph import ConfigError, Settings, hookimpl
from railgraph.checkpoint import Checkpointer

from ._postgres import PostgresCheckpointer

NAME = "postgres_store"


with warnings.catch_warnings():  # the TOML key `schema` shadows the deprecated BaseModel.schema()
    warnings.filterwarnings("ignore", message=".*shadows an attribute.*", category=UserWarning)

    class PostgresStoreSettings(BaseModel):
        """``[plugins.postgres_store]``: which server and schema the shared store uses."""

        model_config = ConfigDict(extra="forbid", frozen=True)
        dsn: str = Field("", description="libpq connection string or URL, e.g. postgresql://user@host:5432/db "
                         "(env: RAILGRAPH_PLUGINS__POSTGRES_STORE__DSN).")
        schema: str = Field("railgraph", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",  # type: ignore[assignment]
                            description="The schema holding railgraph's tables (created on first use).")


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.postgres_store]``."""
    return PostgresStoreSettings


def _section(settings: Settings) -> PostgresStoreSettings:
    section = settings.plugin(NAME)
    return section if isinstance(section, PostgresStoreSettings) else PostgresStoreSettings()


@hookimpl
def store_missing(backend: str, settings: Settings) -> str | None:
    """For the read-only commands: the schema when it holds no railgraph store (nothing is created)."""
    if backend != "postgres":
        return None
    section = _section(settings)
    if not section.dsn:
        return None  # make_checkpointer names the missing DSN
    return PostgresCheckpointer.missing(section.dsn, section.schema)


@hookimpl
def make_checkpointer(backend: str, settings: Settings) -> Checkpointer | None:
    """Serve ``persistence.backend = "postgres"``: connect, and create or migrate the schema."""
    if backend != "postgres":
        return None
    section = _section(settings)
    if not section.dsn:
        raise ConfigError("persistence.backend = \"postgres\" needs [plugins.postgres_store] dsn "
                          "(or RAILGRAPH_PLUGINS__POSTGRES_STORE__DSN)", key="plugins.postgres_store.dsn")
    return PostgresCheckpointer(section.dsn, schema=section.schema)


__all__ = ["PostgresCheckpointer", "PostgresStoreSettings"]
