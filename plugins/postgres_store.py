"""Built-in plugin `postgres_store` (being written)."""
