"""Many consoles, one review: each console's SQLite shipped to a central PostgreSQL.

The flow is one way: `sync` reads a console's file and copies what the server lacks
(`pgschema` owns the server's tables, `identity` names the console); `pgconn` lets the
report and verify code written for SQLite read one console's rows on the server;
`fleet` runs the reports console by console and joins them; `shipper` is the child
process that runs `sync` in the background while a session records. psycopg is imported
only here, and only when used.
"""
