"""The SQLite record: schema and migrations, store, batch writer, hash chain, verify, recovery."""
