"""Built-in plugin `redact` (being written)."""
