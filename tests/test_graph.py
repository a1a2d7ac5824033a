"""GraphBuilder.compile: every structural mistake is a GraphError naming the node."""

from __future__ import annotations

import pytest

from railgraph import END, START, GraphBuilder, GraphError, Settings


def _noop(state, ctx):
    return None


def _builder(*nodes: str) -> GraphBuilder:
    b = GraphBuilder()
    for n in nodes:
        b.add_node(n, _noop)
    return b


def _compile(b: GraphBuilder):
    return b.compile(settings=Settings(persistence={"backend": "memory"}))


@pytest.mark.parametrize("build, node, fragment", [
    (lambda: _builder("a", "a").add_edge(START, "a"), "a", "duplicate node name"),
    (lambda: _builder("a").add_edge(START, "a").add_edge("a", "ghost"), "ghost", "unknown target node"),
    (lambda: _builder("a").add_edge(START, "ghost"), "ghost", "unknown target node"),
    (lambda: _builder("a"), None, "no entry"),
    (lambda: _builder("a", "b").add_edge(START, "a"), "b", "unreachable"),
    (lambda: _builder(START), START, "reserved"),
    (lambda: _builder("a").add_edge(START, "a").add_conditional_edges("ghost", lambda s: END), "ghost",
     "conditional edge from unknown node"),
    (lambda: _builder("a").add_edge(START, "a").add_conditional_edges("a", lambda s: "x", {"x": "nowhere"}),
     "nowhere", "unknown target node"),
    (lambda: _builder("a").add_edge(START, "a").add_edge(END, "a"), END, "END has no outgoing"),
])
def test_compile_rejects_invalid_graphs_naming_the_node(build, node, fragment) -> None:
    """Each structural mistake raises GraphError with the offending node in the message and in .node."""
    with pytest.raises(GraphError) as info:
        _compile(build())
    assert fragment in str(info.value)
    if node is not None:
        assert info.value.node == node and repr(node) in str(info.value)
    assert info.value.exit_code == 2


def test_conditional_targets_make_nodes_reachable() -> None:
    """A node reached only through a router's path map is reachable, so compile accepts it."""
    b = _builder("a", "b").add_edge(START, "a").add_conditional_edges("a", lambda s: "go", {"go": "b"})
    assert set(_compile(b).spec.nodes) == {"a", "b"}


def test_router_without_path_map_may_reach_any_node() -> None:
    """Without a path map a router may go anywhere, so no node is reported unreachable."""
    b = _builder("a", "b").add_edge(START, "a").add_conditional_edges("a", lambda s: "b")
    assert _compile(b).spec.entry == ("a",)


def test_async_and_sync_nodes_are_detected() -> None:
    """compile records which nodes are coroutines and which take ctx."""
    async def anode(state):
        return None
    b = GraphBuilder().add_node("s", _noop).add_node("a", anode).add_edge(START, "s").add_edge("s", "a")
    spec = _compile(b).spec
    assert spec.nodes["a"].is_async and not spec.nodes["s"].is_async
    assert spec.nodes["s"].takes_ctx and not spec.nodes["a"].takes_ctx
    assert spec.any_async


def test_interrupt_naming_unknown_node_is_rejected() -> None:
    """An interrupt on a node the graph lacks is a GraphError at compile time."""
    with pytest.raises(GraphError, match="ghost"):
        _builder("a").add_edge(START, "a").compile(settings=Settings(persistence={"backend": "memory"}),
                                                   interrupt_before=["ghost"])
