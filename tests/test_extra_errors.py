"""The ``extra_errors`` plugin: staged modes, and one answer from runner.errors in every mode."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import railgraph.plugins.extra_errors as extra_errors
from railgraph import END, START, ConfigError, GraphBuilder, NodeFailed, NodePartial, Settings
from railgraph.manager import make_plugins
from conftest import FixedClock, SeqIds

MODES = ("legacy", "dual", "verify", "store-only")


def test_mode_defaults_to_dual_and_follows_the_table() -> None:
    """The plugin answers "dual" without a table and the configured mode otherwise."""
    plugins = make_plugins(load_entrypoints=False, plugins=[extra_errors])
    assert plugins.first("extra_errors_mode", settings=plugins.bind(Settings()))[1] == "dual"
    for mode in MODES:
        bound = plugins.bind(Settings(plugins={"extra_errors": {"mode": mode}}))
        assert plugins.first("extra_errors_mode", settings=bound)[1] == mode


def test_unknown_mode_is_a_one_line_config_error() -> None:
    """An unknown mode fails binding with a one-line ConfigError naming plugins.extra_errors.mode."""
    plugins = make_plugins(load_entrypoints=False, plugins=[extra_errors])
    with pytest.raises(ConfigError) as info:
        plugins.bind(Settings(plugins={"extra_errors": {"mode": "shadow"}}))
    assert "plugins.extra_errors.mode" in str(info.value) and "\n" not in str(info.value)


def run(mode: str, counts: list[int], fail: bool) -> tuple[list[Any], Any]:
    """Run a looping emitter (``counts[i]`` events at step i, then maybe a failure) in `mode`."""
    step = {"n": 0}

    def emit(state: Any, ctx: Any) -> NodePartial:
        i = step["n"]
        step["n"] += 1
        if fail and i == len(counts) - 1:
            raise RuntimeError("boom")
        return NodePartial(extra={"i": i},  # a user change each step, so gating never stops the loop
                           errors=[ctx.event(f"w{i}.{j}", code="app.warning") for j in range(counts[i])])

    builder = GraphBuilder()
    builder.add_node("emit", emit)
    builder.add_edge(START, "emit")
    builder.add_conditional_edges("emit", lambda s: "emit" if step["n"] < len(counts) else END)
    graph = builder.compile(Settings(persistence={"backend": "memory"}, plugins={"extra_errors": {"mode": mode}}),
                            ids=SeqIds(), clock=FixedClock())
    try:
        graph.invoke({"messages": [{"role": "user", "content": "go"}]}, session="s")
    except NodeFailed:
        assert fail
    return graph.errors("s"), graph.state("s")


@given(counts=st.lists(st.integers(0, 4), min_size=1, max_size=5), fail=st.booleans())
def test_errors_gives_the_same_answer_in_every_mode(counts: list[int], fail: bool) -> None:
    """For any run, runner.errors(session) is identical in legacy, dual, verify and store-only."""
    answers = {mode: run(mode, counts, fail) for mode in MODES}
    reference = answers["dual"][0]
    expected = sum(counts[:-1] if fail else counts) + (1 if fail else 0)
    assert len(reference) == expected
    for mode, (errors, state) in answers.items():
        assert errors == reference, mode
        written = state.extra.get("errors", ())
        if mode == "store-only":
            assert written == ()
        else:
            assert [e.id for e in written] == [e.id for e in reference]
