"""A third-party railgraph plugin: a sink writing one line per committed error event.

``[plugins.sample_sink]``: ``path`` (unset: the plugin stays inert) and ``prefix`` (put before
each line). Registered through the ``railgraph`` entry-point group as ``sample_sink``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from railgraph import ErrorEvent, Settings, Sink, hookimpl


class SampleSinkSettings(BaseModel):
    """``[plugins.sample_sink]``: where the sample sink writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str | None = Field(None, description="File to append to (unset: no sink, the plugin is inert).")
    prefix: str = Field("", description="Text put before each line.")


class SampleSink:
    """Appends ``<prefix><session> <event id> <code or type>`` per event."""

    name = "sample_sink"

    def __init__(self, path: str, prefix: str) -> None:
        self.path, self.prefix = Path(path), prefix

    def write(self, session: str, events: Sequence[ErrorEvent]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(f"{self.prefix}{session} {e.id} {e.code or e.error.type}\n" for e in events)

    def flush(self) -> None:
        """Each write closes the file; nothing is buffered."""

    def close(self) -> None:
        """Nothing to release."""


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.sample_sink]``."""
    return SampleSinkSettings


@hookimpl
def make_sinks(settings: Settings) -> list[Sink] | None:
    """One `SampleSink` when ``path`` is set."""
    section = settings.plugin("sample_sink")
    if not isinstance(section, SampleSinkSettings) or section.path is None:
        return None
    return [SampleSink(section.path, section.prefix)]
