"""Shared fixtures and the Hypothesis profile."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("dev", max_examples=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test runs in its own empty directory with no RAILGRAPH_* settings leaking in."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("RAILGRAPH_") and key != "RAILGRAPH_TEST_POSTGRES_DSN":
            monkeypatch.delenv(key)
    yield


class FixedClock:
    """A clock that advances one millisecond per call, from a fixed start."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


class SeqIds:
    """Deterministic UUIDs: 00000000-...-000000000001, ...002, ..."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> uuid.UUID:
        self.n += 1
        return uuid.UUID(int=self.n)


@pytest.fixture
def clock() -> FixedClock:
    """A deterministic clock."""
    return FixedClock()


@pytest.fixture
def ids() -> SeqIds:
    """A deterministic UUID factory."""
    return SeqIds()


@pytest.fixture
def memory_settings() -> Callable[..., object]:
    """Build Settings on the memory backend, with any extra keyword sections."""
    from railgraph import Settings

    def make(**sections: object) -> Settings:
        sections.setdefault("persistence", {"backend": "memory"})
        return Settings(**sections)
    return make
