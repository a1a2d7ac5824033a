"""The smallest railgraph graph: greet, then count to three.

    railgraph run examples/hello.py:graph --input '{"extra": {"name": "Ada"}}'
"""

from __future__ import annotations

from railgraph import END, START, GraphBuilder, Message


def greet(state, ctx):
    """Say hello to ``extra["name"]`` (default: world)."""
    name = state.extra.get("name", "world")
    return {"messages": [Message("assistant", f"hello, {name}!")], "extra": {"n": 0}}


def count(state, ctx):
    """Add one to ``extra["n"]``."""
    return {"extra": {"n": state.extra["n"] + 1}}


graph = GraphBuilder(name="hello")
graph.add_node("greet", greet)
graph.add_node("count", count)
graph.add_edge(START, "greet")
graph.add_edge("greet", "count")
graph.add_conditional_edges("count", lambda state: "count" if state.extra["n"] < 3 else END)
