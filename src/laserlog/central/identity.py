"""A console database's identity: a UUID born with its first sync, and the servers it feeds.

Both live in small tables of the console's own file, outside the numbered migrations and
the chain (laserlog.storage.schema.OUTSIDE_MIGRATIONS: they describe the file, not the
treatments), so the identity travels with the file, and a copy of the file is caught by
the server as a chain that forks.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from laserlog.storage.schema import OUTSIDE_MIGRATIONS
from laserlog.storage.store import connect, utc_now


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this database is to the server, and which servers it has shipped to."""

    console_uuid: str
    servers: dict[str, str]  # server uuid -> URL (without password)


def _read(conn: sqlite3.Connection) -> Identity | None:
    try:
        row = conn.execute("SELECT console_uuid FROM central_identity LIMIT 1").fetchone()
        servers = dict(conn.execute("SELECT server_uuid, url FROM central_servers").fetchall())
    except sqlite3.OperationalError:  # never synced: the tables are not there yet
        return None
    return Identity(str(row[0]), servers) if row else None


def identity(path: str | Path) -> Identity:
    """Return the database's identity, giving it one on first use."""
    conn = connect(path, readonly=True)
    try:
        found = _read(conn)
    finally:
        conn.close()
    if found is not None:
        return found
    conn = connect(path)
    try:
        conn.executescript(OUTSIDE_MIGRATIONS)
        conn.execute("BEGIN IMMEDIATE")  # two first syncs at once still make one identity
        try:
            found = _read(conn)
            if found is None:
                conn.execute("INSERT INTO central_identity VALUES (?, ?)",
                             (str(uuid.uuid4()), utc_now()))
                found = _read(conn)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    finally:
        conn.close()
    assert found is not None
    return found


def remember_server(path: str | Path, server_uuid: str, url: str) -> None:
    """Record that this database now ships to a server (after its first sync there)."""
    conn = connect(path)
    try:
        with conn:
            conn.execute("INSERT OR IGNORE INTO central_servers VALUES (?, ?, ?)",
                         (server_uuid, url, utc_now()))
    finally:
        conn.close()
