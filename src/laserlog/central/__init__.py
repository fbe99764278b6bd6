"""Many consoles, one review: each console's SQLite shipped to a central PostgreSQL.

The flow is one way: `sync` reads a console's file and copies what the server lacks
(`pgschema` owns the server's tables, `identity` names the console); `pgconn` lets the
report and verify code written for SQLite read one console's rows on the server;
`fleet` runs the reports console by console and joins them; `shipper` runs `sync` in the
background while a session records. psycopg is imported only here, and only when used.
"""

from __future__ import annotations


def is_url(text: str | None) -> bool:
    """Return True when a --db or --to value names a PostgreSQL server, not a file."""
    return bool(text) and str(text).startswith(("postgresql://", "postgres://"))
