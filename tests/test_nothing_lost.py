"""Nothing lost: for any interleaving of emits, failures, flag flips, caps and restarts, runner.errors(session)
returns every emitted event exactly once, in order (checked after every step against a plain list)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, rule

from railgraph import (END, START, ErrorEvent, GraphBuilder, MemoryCheckpointer, NodeFailed, NodePartial, Settings,
                       StepReport, hookimpl)
from railgraph.runner import VERIFY_MISMATCH
from conftest import FixedClock

MODES = ("legacy", "dual", "verify", "store-only")
SESSION = "s"


class NothingLost(RuleBasedStateMachine):
    """The system under test is a graph whose node emits what a rule hands it; the model is a list."""

    name = "nothing_lost_machine"

    backend = "memory"
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.model: list[ErrorEvent] = []
        self.to_emit: list[ErrorEvent] = []
        self.fail_next = False
        self.tick = 0
        self.clock = FixedClock()
        self.mode, self.cap, self.strategy = "dual", None, "summarize"
        self.dir = Path(tempfile.mkdtemp(prefix="railgraph-nothing-lost-"))
        self.memory = MemoryCheckpointer()
        self.graph: Any = None
        self.diagnostics: list[ErrorEvent] = []

    # -- the system --------------------------------------------------------------------------------

    def build(self) -> None:
        """A new runner on the same store: a restart, a flag flip or a new cap (closes the old one)."""
        if self.graph is not None:
            self.graph.close()
        plugins: dict[str, Any] = {"extra_errors": {"mode": self.mode},
                                   "cap": {"max_events": self.cap, "strategy": self.strategy}}
        persistence = {"backend": self.backend}
        if self.backend == "sqlite":
            plugins["sqlite_store"] = {"path": str(self.dir / "railgraph.db")}
        builder = GraphBuilder()
        builder.add_node("emit", self.node)
        builder.add_edge(START, "emit")
        builder.add_edge("emit", END)
        self.graph = builder.compile(Settings(persistence=persistence, plugins=plugins), clock=self.clock,
                                     checkpointer=self.memory if self.backend == "memory" else None,
                                     plugins=[self])

    @hookimpl
    def after_step(self, report: StepReport) -> None:
        """Collect the system's own diagnostics: verify mode reports extra["errors"] vs store mismatches
        (after a flip from legacy, or when two different events share an id) as events, which count too."""
        self.diagnostics.extend(e for e in report.events if e.code == VERIFY_MISMATCH)

    def node(self, state: Any) -> NodePartial:
        if self.fail_next:
            raise RuntimeError("planned failure")
        return NodePartial(errors=list(self.to_emit))

    def run(self, events: list[ErrorEvent], fail: bool = False) -> None:
        """Invoke the session once, the node emitting `events` (or failing); update the model."""
        self.to_emit, self.fail_next = events, fail
        self.tick += 1  # a new input value, so version gating lets the node run
        try:
            self.graph.invoke({"extra": {"tick": self.tick}}, session=SESSION)
        except NodeFailed as err:
            assert fail
            events = list(err.events)
        events += self.diagnostics  # committed after the node's events, in the same step
        self.diagnostics = []
        known = {e.id for e in self.model}
        for event in events:
            if event.id not in known:  # a reused id is the same event: stores are idempotent on id
                known.add(event.id)
                self.model.append(event)

    def event(self, event_id: uuid.UUID, label: str) -> ErrorEvent:
        return ErrorEvent.model_validate({"id": event_id, "when": self.clock(), "error": {"type": "Warning",
                                          "message": label}, "scope": {"kind": "node", "node": "emit", "step": 1},
                                          "tags": ["nothing-lost"]})

    # -- rules -------------------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        self.build()

    @rule(target=ids, new=st.lists(st.uuids(version=4), min_size=1, max_size=4, unique=True))
    def emit(self, new: list[uuid.UUID]) -> Any:
        self.run([self.event(i, f"new {i}") for i in new])
        return multiple(*new)

    @rule(old=ids, fresh=st.none() | st.uuids(version=4))
    def emit_colliding(self, old: uuid.UUID, fresh: uuid.UUID | None) -> None:
        """Re-emit an earlier id (with different content), maybe beside a fresh one."""
        events = [self.event(old, f"again {old}")]
        if fresh is not None and fresh not in {e.id for e in self.model}:
            events.append(self.event(fresh, f"fresh {fresh}"))
        self.run(events)

    @rule()
    def fail(self) -> None:
        self.run([], fail=True)

    @rule(mode=st.sampled_from(MODES))
    def switch_mode(self, mode: str) -> None:
        self.mode = mode
        self.build()

    @rule(cap=st.none() | st.integers(1, 4), strategy=st.sampled_from(["summarize", "drop-oldest"]))
    def set_cap(self, cap: int | None, strategy: str) -> None:
        self.cap, self.strategy = cap, strategy
        self.build()

    @rule()
    def restart(self) -> None:
        self.build()

    # -- the invariant -----------------------------------------------------------------------------

    @invariant()
    def every_event_exactly_once_in_order(self) -> None:
        if self.graph is None or not self.model:
            return
        got = self.graph.errors(SESSION)
        assert [e.id for e in got] == [e.id for e in self.model]
        assert got == self.model

    def teardown(self) -> None:
        if self.graph is not None:
            self.graph.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class NothingLostSqlite(NothingLost):
    """The same machine on a real SQLite file; a restart opens a new store on the file."""

    backend = "sqlite"


TestNothingLostMemory = NothingLost.TestCase
TestNothingLostMemory.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)
TestNothingLostSqlite = NothingLostSqlite.TestCase
TestNothingLostSqlite.settings = settings(max_examples=20, stateful_step_count=15, deadline=None)
