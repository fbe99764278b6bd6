"""Tell a database file from a central PostgreSQL server's address."""

from __future__ import annotations


def is_url(text: str | None) -> bool:
    """Return True when a --db or --to value names a PostgreSQL server, not a file."""
    return bool(text) and str(text).startswith(("postgresql://", "postgres://"))
