"""Built-in plugin ``jsonl_sink``: committed events appended to a JSON Lines file.

Each line is ``{"session": "...", "event": <the event's JSON>}``; the file is only ever appended
to. Delivery is at-least-once (a crash between the write and the cursor moving repeats a batch),
so readers deduplicate on ``event.id``. Off unless ``enabled = true``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field

from railgraph import ErrorEvent, Settings, Sink, hookimpl

NAME = "jsonl_sink"


class JsonlSinkSettings(BaseModel):
    """``[plugins.jsonl_sink]``: append committed events to a JSON Lines file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(False, description="Write committed events to `path`.")
    path: str = Field(".railgraph/errors.jsonl", min_length=1, description="The file to append to (relative paths "
                      "start at the working directory; parent folders are created).")
    fsync: bool = Field(True, description="fsync the file after each delivery batch (durable, slower).")


class JsonlSink:
    """A `Sink` appending one JSON object per event to `path`.

    Args:
        path: the file (opened lazily, in append mode).
        fsync: call ``os.fsync`` in `flush`.
        name: the sink name that keys its delivery cursor.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True, name: str = NAME) -> None:
        self.name = name
        self.path = Path(path).absolute()
        self.fsync = fsync
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def write(self, session: str, events: Sequence[ErrorEvent]) -> None:
        """Append one line per event."""
        prefix = '{"session":' + json.dumps(session, ensure_ascii=False) + ',"event":'
        text = "".join(f"{prefix}{e.to_json()}}}\n" for e in events)
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(text)

    def flush(self) -> None:
        """Flush buffered lines (and fsync when configured)."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.jsonl_sink]``."""
    return JsonlSinkSettings


@hookimpl(trylast=True)
def make_sinks(settings: Settings) -> list[Sink] | None:
    """One `JsonlSink` when enabled."""
    section = settings.plugin(NAME)
    if not isinstance(section, JsonlSinkSettings) or not section.enabled:
        return None
    return [JsonlSink(section.path, fsync=section.fsync)]
