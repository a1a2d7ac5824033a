"""The ``otel_sink`` plugin: events exported as OpenTelemetry log records or span events."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import railgraph.plugins.otel_sink as otel_sink
from railgraph import END, START, ErrorEvent, GraphBuilder, NodePartial, Settings
from railgraph.manager import make_plugins
from strategies import event_with_id


def test_off_by_default_and_console_exporter_builds() -> None:
    """Disabled contributes nothing; enabled with the console exporter contributes one sink."""
    plugins = make_plugins(load_entrypoints=False, plugins=[otel_sink])
    assert plugins.call("make_sinks", settings=plugins.bind(Settings())) == []
    on = plugins.bind(Settings(plugins={"otel_sink": {"enabled": True, "exporter": "console", "kind": "span-events"}}))
    ((_, sinks),) = plugins.call("make_sinks", settings=on)
    assert [s.name for s in sinks] == ["otel_sink"] and sinks[0].kind == "span-events"


def test_events_become_log_records() -> None:
    """Each event is one ERROR log record carrying its id, scope, node, code and full JSON."""
    exporter = (getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter)()
    provider = LoggerProvider()
    provider.add_log_record_processor(log_export.SimpleLogRecordProcessor(exporter))
    sink = otel_sink.OtelSink("logs", logger_provider=provider)
    events = [event_with_id(1, node="a"), event_with_id(2, node="b")]
    sink.write("s1", events)
    sink.flush()
    records = [d.log_record for d in exporter.get_finished_logs()]
    assert len(records) == 2
    for record, event in zip(records, events, strict=True):
        assert record.severity_text == "ERROR" and record.body == event.summary_line()
        assert record.attributes["railgraph.session"] == "s1"
        assert record.attributes["railgraph.node"] == event.node
        assert ErrorEvent.from_json(record.attributes["railgraph.event"]) == event
        assert record.timestamp == int(event.when.timestamp() * 1e9)


def test_events_become_span_events_in_a_graph_run() -> None:
    """With kind = span-events, a graph's committed events arrive as span events, one span per batch."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    class Provider:
        """Contributes an OtelSink bound to the in-memory provider (as an application would configure it)."""

        @staticmethod
        @otel_sink.hookimpl
        def make_sinks(settings: Settings) -> list[Any]:
            return [otel_sink.OtelSink("span-events", tracer_provider=provider)]

    def emit(state: Any, ctx: Any) -> NodePartial:
        return NodePartial(errors=[ctx.event("w1", code="app.warning"), ctx.event("w2")])

    builder = GraphBuilder()
    builder.add_node("emit", emit)
    builder.add_edge(START, "emit")
    builder.add_edge("emit", END)
    with builder.compile(Settings(persistence={"backend": "memory"}), plugins=[Provider]) as graph:
        graph.invoke({}, session="s")
        ids = [str(e.id) for e in graph.errors("s")]
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["railgraph.errors"]
    assert [e.attributes["railgraph.event.id"] for e in spans[0].events] == ids
    assert [e.name for e in spans[0].events] == ["app.warning", "railgraph.NodeEvent"]
