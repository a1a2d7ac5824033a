"""Built-in plugin `cap` (being written)."""
