"""The schema's definitions: what laserlog's migrations make, what a file holds, their record.

Views and triggers are code stored in the file: redefining `pulse_log` changes every reader
without touching a row, and a guard trigger recreated as a no-op under its own name still
looks present. So the definitions (the SQL text SQLite keeps in sqlite_master) are compared
with those the migrations make on an empty database, and each migration records them in the
chain as a `schema` link whose snapshot is their canonical JSON.

SQLite stores a definition as the statement's text from the object's name on, after a
normalised `CREATE TABLE` (or VIEW, TRIGGER, INDEX) with any `IF NOT EXISTS` dropped, and
rewrites a table's text on ALTER TABLE ADD COLUMN. The reference is made by the same SQLite
running the same statements, so the texts are compared exactly, whitespace included.
"""

from __future__ import annotations

import json
import sqlite3
from functools import lru_cache

from laserlog.storage import chain
from laserlog.storage.schema import MIGRATIONS, OUTSIDE_MIGRATIONS

#: (type, name) -> SQL text, for every table, view, trigger and index but SQLite's own.
Definitions = dict[tuple[str, str], str]

SNAPSHOT_FORMAT = 1


def read(conn: sqlite3.Connection) -> Definitions:
    """Return the definitions a database holds (sqlite_% internals left out)."""
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master"
                        " WHERE substr(name, 1, 7) != 'sqlite_'").fetchall()
    return {(str(r[0]), str(r[1])): str(r[2]) for r in rows if r[2] is not None}


def _made_by(scripts: tuple[str, ...]) -> Definitions:
    conn = sqlite3.connect(":memory:")
    try:
        for script in scripts:
            conn.executescript(script)
        return read(conn)
    finally:
        conn.close()


@lru_cache(maxsize=8)
def expected(version: int) -> Definitions:
    """Return the definitions laserlog's migrations 1..version make."""
    return _made_by(MIGRATIONS[:version])


@lru_cache(maxsize=1)
def outside_migrations() -> Definitions:
    """Return the definitions of the tables laserlog may add outside the migrations."""
    return _made_by((OUTSIDE_MIGRATIONS,))


def migrated(found: Definitions) -> Definitions:
    """Return the definitions less the known tables made outside the migrations."""
    extra = outside_migrations()
    return {key: sql for key, sql in found.items() if extra.get(key) != sql}


def snapshot(found: Definitions, version: int) -> str:
    """Return the canonical JSON of definitions, sorted by type and name."""
    return json.dumps({"format": SNAPSHOT_FORMAT, "schema_version": version,
                       "definitions": [[t, n, found[t, n]] for t, n in sorted(found)]},
                      separators=(",", ":"), ensure_ascii=True)


def from_snapshot(text: str | None) -> Definitions | None:
    """Return the definitions a schema link recorded; None when its snapshot is not one."""
    try:
        data = json.loads(text or "")
        return {(str(t), str(n)): str(sql) for t, n, sql in data["definitions"]}
    except (ValueError, TypeError, KeyError):
        return None


def record(conn: sqlite3.Connection, version: int,
           ranges: list[tuple[str, int, int]] | None = None) -> chain.Head | None:
    """Append a `schema` link holding the definitions now (inside the migration's transaction).

    None before the schema has a chain (migrations 1 and 2). The tables made outside the
    migrations come and go with the file's use (a first sync adds them), so the link
    records the migrated schema only. `ranges`: rows the migrations wrote into chained
    tables (sessions recorded before courses, as one-offs), covered by the same link.
    """
    found = read(conn)
    if ("table", "chain") not in found:
        return None
    return chain.append(conn, session_id=None, kind="schema", ranges=ranges or (),
                        snapshot=snapshot(migrated(found), version))


def latest_record(conn: sqlite3.Connection) -> tuple[int, str | None] | None:
    """Return (link id, snapshot) of the newest `schema` link, None when there is none."""
    # Schema links belong to no session: the chain_session index finds them among few.
    row = conn.execute("SELECT id, snapshot FROM chain WHERE session_id IS NULL"
                       " AND kind = 'schema' ORDER BY id DESC LIMIT 1").fetchone()
    return (int(row[0]), row[1]) if row else None
