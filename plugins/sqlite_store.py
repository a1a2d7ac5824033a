"""Built-in plugin `sqlite_store` (being written)."""
