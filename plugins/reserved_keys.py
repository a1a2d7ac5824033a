"""Built-in plugin `reserved_keys` (being written)."""
