"""The central server as a witness: what it received of a console's chain, compared with the
console's file now.

Someone holding the file and even the installation key can rebuild the chain so that it
recomputes and every checkpoint holds; they cannot change what the server already
received. `laserlog verify --witness URL` compares each link the server holds with the
file's, and trusts for the file's checkpoints the installation key the console registered
on its first sync.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from laserlog.central.pgschema import SCHEMA, CentralError, check_version
from laserlog.central.server import open_server, redact
from laserlog.storage.store import connect


@dataclass(slots=True)
class Testimony:
    """What the server says about one console's chain."""

    console: str
    links: int
    problems: list[tuple[int, str]] = field(default_factory=list)  # (link id, what)
    keys: set[str] = field(default_factory=set)


def _console_uuid(db_path: str | Path) -> str:
    conn = connect(db_path, readonly=True)
    try:
        row = conn.execute("SELECT console_uuid FROM central_identity LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        row = None
    finally:
        conn.close()
    if row is None:
        raise CentralError(f"database {db_path} has never synced to a central server: there is "
                           "no witness to ask (run `laserlog sync --to URL` first)")
    return str(row[0])


def testify(db_path: str | Path, url: str) -> Testimony:
    """Return how the server's copy of this file's chain compares with the file's chain."""
    where = redact(url)
    console_uuid = _console_uuid(db_path)
    pg = open_server(url, after=" (nothing was written)")
    try:
        check_version(pg, where)
        row = pg.execute(f"SELECT console_id, name, installation_keys FROM {SCHEMA}.consoles"
                         " WHERE console_uuid = %s", (console_uuid,)).fetchone()
        if row is None:
            raise CentralError(f"{where} holds no console {console_uuid} (this file's identity): "
                               "it never synced there")
        theirs = dict(pg.execute(f"SELECT id, hash FROM {SCHEMA}.chain WHERE console_id = %s"
                                 " ORDER BY id", (row[0],)).fetchall())
    finally:
        pg.close()
    out = Testimony(f"{row[1]} on {where}", len(theirs),
                    keys={k for k in str(row[2] or "").split(",") if k})
    conn = connect(db_path, readonly=True)
    try:
        ours = dict(conn.execute("SELECT id, hash FROM chain ORDER BY id").fetchall())
    finally:
        conn.close()
    for link_id in sorted(theirs):
        if link_id not in ours:
            out.problems.append((link_id, f"link {link_id} reached {out.console} but is gone "
                                 "from the file: the chain was cut or rebuilt shorter"))
            break
        if ours[link_id] != theirs[link_id]:
            out.problems.append((link_id, f"link {link_id} differs from what {out.console} "
                                 f"received ({theirs[link_id][:16]}... there, "
                                 f"{ours[link_id][:16]}... here): the chain was rebuilt"))
            break
    return out
