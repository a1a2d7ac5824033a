"""Built-in plugin `retry` (being written)."""
