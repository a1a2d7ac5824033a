"""Graph definition: `GraphBuilder` collects nodes and edges; `compile` checks them and returns a graph.

A node is any sync or async callable taking ``(snapshot, ctx)`` (or just ``(snapshot)``) and
returning a `NodePartial`, a mapping with ``messages`` / ``extra`` / ``errors``, or ``None``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import GraphError

if TYPE_CHECKING:
    from .config import Settings
    from .runner import CompiledGraph

START = "__start__"
END = "__end__"
RESERVED_NODE_NAMES = frozenset({START, END, "__runner__", "__input__"})

Router = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node as compiled: its callable and how to call it."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    takes_ctx: bool
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class RouterSpec:
    """A conditional edge: `router(state)` returns a key of `path_map`, a node name, a list, or END."""

    source: str
    router: Router
    path_map: Mapping[Hashable, str] | None
    takes_ctx: bool


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """The validated structure of a graph (immutable)."""

    nodes: Mapping[str, NodeSpec]
    entry: tuple[str, ...]
    edges: Mapping[str, tuple[str, ...]]
    routers: Mapping[str, tuple[RouterSpec, ...]]
    name: str = "graph"
    any_async: bool = False


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        variadic = any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return 2
    return 2 if variadic else len(params)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


@dataclass
class GraphBuilder:
    """Collects nodes and edges, then `compile()` validates them.

    Example:
        >>> b = GraphBuilder()
        >>> b.add_node("hello", lambda s, ctx: {"extra": {"greeted": True}})
        >>> b.add_edge(START, "hello"); b.add_edge("hello", END)
        >>> graph = b.compile(settings=Settings(persistence={"backend": "memory"}))
    """

    name: str = "graph"
    _nodes: list[tuple[str, Callable[..., Any], float | None]] = field(default_factory=list)
    _edges: list[tuple[str, str]] = field(default_factory=list)
    _routers: list[tuple[str, Router, Mapping[Hashable, str] | Sequence[str] | None]] = field(default_factory=list)

    def add_node(self, name: str, fn: Callable[..., Any], *, timeout: float | None = None) -> GraphBuilder:
        """Add a node called `name` running `fn`; `timeout` (seconds) overrides ``runner.node_timeout``."""
        self._nodes.append((name, fn, timeout))
        return self

    def add_edge(self, source: str, target: str) -> GraphBuilder:
        """Run `target` in the superstep after `source` ran (`START` marks an entry, `END` an exit)."""
        self._edges.append((source, target))
        return self

    def set_entry_point(self, name: str) -> GraphBuilder:
        """Shorthand for ``add_edge(START, name)``."""
        return self.add_edge(START, name)

    def add_conditional_edges(self, source: str, router: Router,
                              path_map: Mapping[Hashable, str] | Sequence[str] | None = None) -> GraphBuilder:
        """After `source` runs, call `router(state)` (or ``(state, ctx)``) to choose what runs next.

        The router returns a node name, a list of names, or `END` — or a key of `path_map`. A name
        the graph does not have is a `RouterError` at run time, like any other runner failure.
        """
        self._routers.append((source, router, path_map))
        return self

    def validate(self) -> GraphSpec:
        """Check the definition and return its `GraphSpec`.

        Raises:
            GraphError: a duplicate or reserved node name, an edge naming an unknown node, no entry
                edge from START, or a node no path from START reaches; the message names the node.
        """
        nodes: dict[str, NodeSpec] = {}
        for name, fn, timeout in self._nodes:
            if not isinstance(name, str) or not name:
                raise GraphError(f"node name must be a non-empty string, got {name!r}")
            if name in RESERVED_NODE_NAMES:
                raise GraphError(f"node name {name!r} is reserved", node=name)
            if name in nodes:
                raise GraphError(f"duplicate node name {name!r}", node=name)
            if not callable(fn):
                raise GraphError(f"node {name!r} is not callable: {fn!r}", node=name)
            if timeout is not None and timeout <= 0:
                raise GraphError(f"node {name!r} timeout must be positive, got {timeout}", node=name)
            nodes[name] = NodeSpec(name, fn, _is_async(fn), _arity(fn) >= 2, timeout)
        edges: dict[str, list[str]] = {}
        entry: list[str] = []
        for source, target in self._edges:
            for end, label in ((source, "source"), (target, "target")):
                if end not in nodes and end not in (START, END):
                    raise GraphError(f"edge {source!r} -> {target!r}: unknown {label} node {end!r}", node=end)
            if source == END:
                raise GraphError(f"edge {source!r} -> {target!r}: END has no outgoing edges", node=source)
            if target == START:
                raise GraphError(f"edge {source!r} -> {target!r}: nothing may lead to START", node=source)
            if source == START:
                if target != END and target not in entry:
                    entry.append(target)
                continue
            targets = edges.setdefault(source, [])
            if target not in targets:
                targets.append(target)
        routers: dict[str, list[RouterSpec]] = {}
        for source, router, path_map in self._routers:
            if source not in nodes:
                raise GraphError(f"conditional edge from unknown node {source!r}", node=source)
            if not callable(router):
                raise GraphError(f"conditional edge from {source!r}: router is not callable", node=source)
            mapping: Mapping[Hashable, str] | None
            if path_map is None:
                mapping = None
            elif isinstance(path_map, Mapping):
                mapping = dict(path_map)
            else:
                mapping = {name: name for name in path_map}
            for target in (mapping or {}).values():
                if target not in nodes and target != END:
                    raise GraphError(f"conditional edge from {source!r}: unknown target node {target!r}", node=target)
            routers.setdefault(source, []).append(RouterSpec(source, router, mapping, _arity(router) >= 2))
        if not entry:
            raise GraphError("graph has no entry: add an edge from START to a node (add_edge(START, name))")
        reachable = set(entry)
        todo = list(entry)
        while todo:
            node = todo.pop()
            nxt = list(edges.get(node, ()))
            for spec in routers.get(node, ()):
                nxt.extend(spec.path_map.values() if spec.path_map is not None else nodes)
            for t in nxt:
                if t != END and t not in reachable:
                    reachable.add(t)
                    todo.append(t)
        for name in nodes:
            if name not in reachable:
                raise GraphError(f"node {name!r} is unreachable from START", node=name)
        return GraphSpec(
            nodes=nodes, entry=tuple(entry), edges={k: tuple(v) for k, v in edges.items()},
            routers={k: tuple(v) for k, v in routers.items()}, name=self.name,
            any_async=any(n.is_async for n in nodes.values()),
        )

    def compile(self, settings: Settings | None = None, *, plugins: Sequence[Any] = (),
                checkpointer: Any = None, load_entrypoints: bool = True,
                interrupt_before: Sequence[str] = (), interrupt_after: Sequence[str] = (),
                clock: Callable[[], Any] | None = None, ids: Callable[[], Any] | None = None) -> CompiledGraph:
        """Validate the graph and bind it to a runner.

        Args:
            settings: the configuration; ``None`` reads the usual sources (env, TOML, defaults).
            plugins: plugin objects registered from code, besides the installed entry points.
            checkpointer: a store to use instead of the ``persistence.backend`` plugin's.
            load_entrypoints: load installed plugins (turn off for a bare core in tests).
            interrupt_before, interrupt_after: node names to pause at (added to the settings').
            clock, ids: the time source and UUID factory for events (tests pass fixed ones).

        Raises:
            GraphError: the definition is invalid. ConfigError / PluginError: see `Runner`.
        """
        from .runner import CompiledGraph, Runner

        spec = self.validate()
        for name in (*interrupt_before, *interrupt_after):
            if name not in spec.nodes:
                raise GraphError(f"interrupt names unknown node {name!r}", node=name)
        runner = Runner(spec, settings=settings, plugins=plugins, checkpointer=checkpointer,
                        load_entrypoints=load_entrypoints, interrupt_before=interrupt_before,
                        interrupt_after=interrupt_after, clock=clock, ids=ids)
        return CompiledGraph(spec, runner)


__all__ = ["END", "START", "GraphBuilder", "GraphSpec", "NodeSpec", "RouterSpec"]
