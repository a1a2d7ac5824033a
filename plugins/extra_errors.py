"""Built-in plugin `extra_errors` (being written)."""
