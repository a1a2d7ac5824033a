"""Built-in plugin ``otel_sink`` (extra ``otel``): committed events exported to OpenTelemetry.

``kind = "logs"`` emits one log record per event (severity ERROR, body = the summary line,
``railgraph.*`` and ``exception.*`` attributes, the full event JSON in ``railgraph.event``);
``kind = "span-events"`` records one span per delivery batch (``railgraph.errors``) with one span
event per error event. ``exporter = "global"`` uses the providers the application configured
(``set_logger_provider`` / ``set_tracer_provider``); ``"console"`` builds providers printing to
stdout, with ``service.name = service_name``. OpenTelemetry is imported lazily, so the plugin
loads (and stays inert) without the extra installed. Off unless ``enabled = true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from railgraph import ErrorEvent, PluginError, Settings, Sink, hookimpl

NAME = "otel_sink"


class OtelSinkSettings(BaseModel):
    """``[plugins.otel_sink]``: export committed events to OpenTelemetry (needs the `otel` extra)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(False, description="Export committed events to OpenTelemetry.")
    kind: Literal["logs", "span-events"] = Field("logs", description="logs: one log record per event; "
                                                 "span-events: one span per batch, one span event per event.")
    exporter: Literal["global", "console"] = Field("global", description="global: the providers the application "
                                                   "configured; console: print to stdout.")
    service_name: str = Field("railgraph", min_length=1, description="service.name of providers railgraph builds "
                              "(exporter = console).")


def attributes(session: str, event: ErrorEvent) -> dict[str, Any]:
    """OpenTelemetry attributes for `event` (no ``None`` values)."""
    attrs: dict[str, Any] = {
        "railgraph.session": session, "railgraph.event.id": str(event.id), "railgraph.scope": event.scope.kind,
        "railgraph.tags": list(event.tags), "exception.type": event.error.type,
        "exception.message": event.error.message, "railgraph.event": event.to_json(),
    }
    for key, value in (("railgraph.node", event.node), ("railgraph.step", event.step), ("railgraph.code", event.code)):
        if value is not None:
            attrs[key] = value
    return attrs


def _nanos(event: ErrorEvent) -> int:
    return int(event.when.timestamp() * 1_000_000_000)


class OtelSink:
    """A `Sink` exporting events as log records or span events.

    Args:
        kind: ``logs`` or ``span-events``.
        logger_provider, tracer_provider: providers to use (default: the global ones).
    """

    def __init__(self, kind: str = "logs", *, logger_provider: Any = None, tracer_provider: Any = None,
                 name: str = NAME) -> None:
        self.name, self.kind = name, kind
        self.logger_provider, self.tracer_provider = logger_provider, tracer_provider

    def write(self, session: str, events: Sequence[ErrorEvent]) -> None:
        """Export `events` of `session`."""
        if self.kind == "logs":
            from opentelemetry._logs import SeverityNumber, get_logger_provider

            provider = self.logger_provider or get_logger_provider()
            logger = provider.get_logger("railgraph")
            for event in events:
                logger.emit(timestamp=_nanos(event), severity_number=SeverityNumber.ERROR, severity_text="ERROR",
                            body=event.summary_line(), attributes=attributes(session, event),
                            event_name=event.code or "railgraph.error_event")
            return
        from opentelemetry import trace

        tracer = (self.tracer_provider or trace.get_tracer_provider()).get_tracer("railgraph")
        start = min(_nanos(e) for e in events) if events else None
        span = tracer.start_span("railgraph.errors", start_time=start, attributes={"railgraph.session": session})
        for event in events:
            span.add_event(event.code or event.error.type, attributes=attributes(session, event),
                           timestamp=_nanos(event))
        span.end()

    def flush(self) -> None:
        """Ask the providers to export what they buffered."""
        for provider in (self.logger_provider, self.tracer_provider):
            if provider is not None and hasattr(provider, "force_flush"):
                provider.force_flush()

    def close(self) -> None:
        """Flush; providers railgraph did not build are left to the application."""
        self.flush()


def console_providers(service_name: str) -> tuple[Any, Any]:
    """Providers printing to stdout, with ``service.name`` set."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs import export as log_export
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    resource = Resource.create({"service.name": service_name})
    logs = LoggerProvider(resource=resource)
    console = getattr(log_export, "ConsoleLogRecordExporter", None) or log_export.ConsoleLogExporter  # renamed in 1.3x
    logs.add_log_record_processor(log_export.SimpleLogRecordProcessor(console()))
    traces = TracerProvider(resource=resource)
    traces.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return logs, traces


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.otel_sink]``."""
    return OtelSinkSettings


@hookimpl(trylast=True)
def make_sinks(settings: Settings) -> list[Sink] | None:
    """One `OtelSink` when enabled; a `PluginError` if the `otel` extra is missing."""
    section = settings.plugin(NAME)
    if not isinstance(section, OtelSinkSettings) or not section.enabled:
        return None
    try:
        import opentelemetry  # noqa: F401
    except ImportError:
        raise PluginError("plugins.otel_sink.enabled is true but OpenTelemetry is not installed: "
                          "pip install 'railgraph[otel]'", plugin=NAME, hook="make_sinks") from None
    logs = traces = None
    if section.exporter == "console":
        logs, traces = console_providers(section.service_name)
    return [OtelSink(section.kind, logger_provider=logs, tracer_provider=traces)]
