"""The ``reserved_keys`` plugin: the gating toggle for error-only changes to ``extra``."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import railgraph.plugins.reserved_keys as reserved_keys
from railgraph import END, START, ErrorEvent, GraphBuilder, NodePartial, Settings, StepReport, hookimpl
from railgraph.barrier import BarrierPolicy, Channels, merge
from railgraph.manager import make_plugins
from railgraph.state import FrozenDict
from strategies import small_events

EMPTY = Channels((), FrozenDict(), (), FrozenDict(messages=1, extra=1, errors=1))


def bumps_for(gate: bool | None) -> bool | None:
    """The plugin's answer for ``gate_reserved_keys = gate`` (``None``: table absent)."""
    plugins = make_plugins(load_entrypoints=False, plugins=[reserved_keys])
    section = {} if gate is None else {"gate_reserved_keys": gate}
    settings = plugins.bind(Settings(plugins={"reserved_keys": section}))
    return plugins.first("reserved_change_bumps_version", settings=settings)[1]


def test_default_keeps_the_seed_behaviour() -> None:
    """Without the table, an error-only change bumps extra.version (the seed behaviour)."""
    assert bumps_for(None) is True
    assert bumps_for(False) is True
    assert bumps_for(True) is False


@given(steps=st.lists(st.lists(small_events, max_size=4), min_size=1, max_size=8))
def test_toggle_on_error_only_changes_never_bump_extra_version(steps: list[list[ErrorEvent]]) -> None:
    """With the toggle on, any sequence of error-only merges stores every event yet leaves extra.version alone."""
    policy = BarrierPolicy(reserved_bumps_version=bool(bumps_for(True)))
    ch, stored = EMPTY, 0
    for events in steps:
        ch = merge(ch, [("n", NodePartial(errors=list(events)))], policy).channels
        stored += len(events)
        assert ch.versions["extra"] == 1
    assert len(ch.extra.get("errors", ())) == stored


def gated_graph(runs: dict[str, int], per_run: int, limit: int) -> GraphBuilder:
    """Two looping nodes: `watch` writes nothing, `emit` emits only error events; each loops up to `limit` times."""
    def watch(state: Any) -> None:
        runs["watch"] += 1

    def emit(state: Any, ctx: Any) -> NodePartial:
        runs["emit"] += 1
        return NodePartial(errors=[ctx.event(f"warning {runs['emit']}.{i}") for i in range(per_run)])

    builder = GraphBuilder()
    builder.add_node("watch", watch)
    builder.add_node("emit", emit)
    builder.add_edge(START, "watch")
    builder.add_edge(START, "emit")
    builder.add_conditional_edges("watch", lambda s: "watch" if runs["watch"] < limit else END)
    builder.add_conditional_edges("emit", lambda s: "emit" if runs["emit"] < limit else END)
    return builder


@given(per_run=st.integers(1, 4), limit=st.integers(2, 5), gate=st.booleans())
def test_gated_nodes_rerun_only_when_the_toggle_is_off(per_run: int, limit: int, gate: bool) -> None:
    """Toggle on: error-only injections re-run no gated node and leave extra.version at 1; off: they re-run."""
    runs = {"watch": 0, "emit": 0}
    reports: list[StepReport] = []

    class Recorder:
        @hookimpl
        def after_step(self, report: StepReport) -> None:
            reports.append(report)

    graph = gated_graph(runs, per_run, limit).compile(
        Settings(persistence={"backend": "memory"}, plugins={"reserved_keys": {"gate_reserved_keys": gate}}),
        plugins=[Recorder()])
    state = graph.invoke({}, session="s")
    assert state.status == "completed"
    if gate:
        assert runs == {"watch": 1, "emit": 1}
        assert state.versions["extra"] == 1
        assert len(graph.errors("s")) == per_run
        skipped = reports[-1].skipped
        assert set(skipped) == {"watch", "emit"}
        assert all(reason.startswith("gated:") and "not newer" in reason for reason in skipped.values())
    else:
        assert runs == {"watch": limit, "emit": limit}
        assert state.versions["extra"] == 1 + limit
        assert len(graph.errors("s")) == per_run * limit
