"""Built-in plugin `otel_sink` (being written)."""
