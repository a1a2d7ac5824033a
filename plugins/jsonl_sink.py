"""Built-in plugin `jsonl_sink` (being written)."""
