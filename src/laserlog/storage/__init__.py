"""The SQLite record: schema and migrations, the store, the batch writer, the hash chain, verify and recovery."""
