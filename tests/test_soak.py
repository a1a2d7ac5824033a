"""A small, fast version of the soak's kill scenario (bench/soak.py): concurrent workers SIGKILLed at
random and resumed lose and duplicate nothing, and the soak script itself keeps working."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


@pytest.fixture(scope="module")
def soak():
    """bench/soak.py imported as a module."""
    spec = importlib.util.spec_from_file_location("railgraph_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_killed_concurrent_workers_resume_with_nothing_lost_or_duplicated(soak, tmp_path: Path) -> None:
    """3 processes × 60 steps on one SQLite file, SIGKILLed 5 times at random and restarted: every
    session's errors() and outbox hold each event id exactly once, in order; the JSON Lines sink has all."""
    result = soak.run_kill(procs=3, steps=60, workdir=tmp_path, seed=7, max_kills=5)
    assert result["kills"] == 5 and result["restarts"] >= 1
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["jsonl_missing"] == 0
    assert result["integrity"] == "ok"


def test_soak_section_replaces_itself_in_results(soak, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing the soak section twice leaves one "## Soak" section and the rest of the file untouched."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n\n## Figures\n\nkeep me\n")
    monkeypatch.setattr(soak, "RESULTS", results)
    kill = {"procs": 1, "steps": 2, "kills": 0, "restarts": 0, "elapsed_s": 1.0, "lost": 0, "duplicated": 0,
            "jsonl_lines": 2, "jsonl_redelivered": 0, "jsonl_missing": 0, "integrity": "ok", "db_mb": 0.1}
    soak.write_results(soak.section(None, kill))
    soak.write_results(soak.section(None, kill))
    text = results.read_text()
    assert text.count("## Soak") == 1 and "keep me" in text and text.startswith("# Benchmarks")


def test_concurrent_workers_deliver_each_event_to_the_sink_once(soak, tmp_path: Path) -> None:
    """4 processes × 100 steps sharing one SQLite store and one JSON Lines file, nobody killed: the
    sink's delivery lease makes them take turns, so every event is written exactly once (without
    it each process delivered the shared backlog: ~90% repeated lines)."""
    result = soak.run_kill(procs=4, steps=100, workdir=tmp_path, seed=11, max_kills=0)
    assert result["kills"] == 0 and result["lost"] == 0 and result["duplicated"] == 0
    assert result["jsonl_lines"] == 400 and result["jsonl_redelivered"] == 0 and result["jsonl_missing"] == 0


def test_the_benchmark_keeps_the_soak_section_when_it_rewrites_results(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/run.py rewrites RESULTS.md but keeps the "## Soak" section soak.py wrote."""
    import argparse

    spec = importlib.util.spec_from_file_location("railgraph_bench_run", SOAK.parent / "run.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n\nold figures\n\n## Soak\n\nsoak figures\n")
    monkeypatch.setattr(bench, "RESULTS", results)
    args = argparse.Namespace(repeat=21, lg_repeat=7, quick=False, only=",".join(bench.ALL))
    info = dict.fromkeys(("date", "cpu", "cores", "os", "python", "sqlite", "load", "packages"), "x")
    bench.write_results([], [], info, args)
    text = results.read_text()
    assert "old figures" not in text and text.count("## Soak") == 1 and text.endswith("## Soak\n\nsoak figures\n")
