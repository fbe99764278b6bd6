"""The SQLite record: schema, store, row names, batch writer, hash chain, verify, recovery."""
