"""Ship a console's database to the central server: what is not there yet, once.

One sync is one PostgreSQL transaction over one SQLite read snapshot: every table's new
rows (after the server's high-water mark for this console) go in with COPY, the marks and
the console's chain head move, and it commits, or nothing happened. A sync killed at any
point leaves the server as it was; the next one ships the same rows again. Rows keep the
console's ids, keyed on the server by (console, id), so nothing can arrive twice.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laserlog.central import identity as ident
from laserlog.central.pgschema import (
    SCHEMA,
    SCHEMA_VERSION,
    SESSION_MUTABLE,
    TABLES,
    CentralError,
    check_version,
    columns,
    migrate,
)
from laserlog.central.server import open_server, redact
from laserlog.chain import CHAINED

_FETCH = 5000


@dataclass(slots=True)
class SyncResult:
    """What one sync shipped."""

    console_uuid: str
    console_id: int
    server: str
    rows: dict[str, int] = field(default_factory=dict)
    head_link: int = 0
    elapsed_s: float = 0.0

    @property
    def pulses_per_s(self) -> float:
        return self.rows.get("pulses", 0) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        shipped = ", ".join(f"{n} {t}" for t, n in self.rows.items() if n) or "nothing new"
        return (f"synced console {self.console_uuid} to {self.server}: {shipped}; chain head "
                f"link {self.head_link} ({self.elapsed_s:.2f} s)")


def sync(db_path: str | Path, url: str, *, name: str | None = None, site: str | None = None,
         new_server: bool = False, connect_timeout_s: float = 10,
         on_table: Callable[[str, int], None] | None = None) -> SyncResult:
    """Ship everything of `db_path` the server at `url` lacks; return what went.

    `on_table(table, rows)` is called after each table's COPY, inside the transaction
    (tests use it to cut a sync off half-way).
    """
    from laserlog.store import connect

    started = time.perf_counter()
    where = redact(url)
    lite = connect(db_path, readonly=True)  # raises StoreError naming a missing file
    try:
        version = lite.execute("PRAGMA user_version").fetchone()[0]
    finally:
        lite.close()
    if version < 3:
        raise CentralError(f"database {db_path} has schema {version}, before the hash chain (3): "
                           "open it once with any recording command to upgrade it, then sync")
    me = ident.identity(db_path)
    pg = open_server(url, connect_timeout_s=connect_timeout_s)
    try:
        server_uuid = _prepare(pg, where)
        known = me.servers
        if known and server_uuid not in known and not new_server:
            others = ", ".join(sorted(known.values()))
            raise CentralError(f"database {db_path} already ships to {others}; {where} is "
                               "another server. Shipping one console to two servers splits its "
                               "review: pass --new-server if the central server was replaced "
                               "on purpose (nothing was written)")
        lite = connect(db_path, readonly=True)
        try:
            lite.execute("BEGIN")  # one snapshot for every table below
            result = _ship(pg, lite, me.console_uuid, where, str(db_path), name, site, on_table)
            pg.commit()
            lite.rollback()
        finally:
            lite.close()
    except BaseException:
        _rollback(pg)
        raise
    finally:
        pg.close()
    if server_uuid not in known:
        ident.remember_server(db_path, server_uuid, where)
    result.elapsed_s = time.perf_counter() - started
    return result


def _rollback(pg: Any) -> None:
    # When the connection is already gone, the server rolls back on its own.
    with contextlib.suppress(Exception):
        pg.rollback()


def _prepare(pg: Any, where: str) -> str:
    """Make sure the server's schema is this laserlog's (creating it); return the server uuid."""
    import psycopg

    try:
        version = check_version(pg, where)
        if version < SCHEMA_VERSION:
            pg.rollback()
            migrate(pg, where)
            pg.commit()
        row = pg.execute(f"SELECT value FROM {SCHEMA}.laserlog_meta WHERE key = 'server_uuid'"
                         ).fetchone()
        pg.commit()
    except psycopg.Error as exc:
        raise CentralError(f"{where}: cannot prepare the central schema: {exc}") from None
    return str(row[0])


def _ship(pg: Any, lite: Any, console_uuid: str, where: str, db_path: str, name: str | None,
          site: str | None, on_table: Callable[[str, int], None] | None) -> SyncResult:
    import psycopg

    try:
        return _ship_rows(pg, lite, console_uuid, where, db_path, name, site, on_table)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CentralError(f"{where} refused the sync: {exc.diag.message_primary} (this login "
                           "lacks the laserlog_console role?); nothing was written") from None
    except psycopg.OperationalError as exc:
        raise CentralError(f"lost the central server {where} during the sync: "
                           f"{str(exc).strip().splitlines()[-1]}; nothing was written, the next "
                           "sync ships it again") from None
    except psycopg.Error as exc:
        raise CentralError(f"{where} refused the sync: {exc}; nothing was written") from None


def _ship_rows(pg: Any, lite: Any, console_uuid: str, where: str, db_path: str,
               name: str | None, site: str | None,
               on_table: Callable[[str, int], None] | None) -> SyncResult:
    row = pg.execute(f"SELECT console_id, head_link, head_hash FROM {SCHEMA}.consoles"
                     " WHERE console_uuid = %s", (console_uuid,)).fetchone()
    if row is None:
        label = name or f"{socket.gethostname()}:{Path(db_path).name}"
        row = pg.execute(f"INSERT INTO {SCHEMA}.consoles (console_uuid, name, site)"
                         " VALUES (%s, %s, %s) RETURNING console_id, head_link, head_hash",
                         (console_uuid, label, site)).fetchone()
    console_id, server_head, server_hash = int(row[0]), int(row[1]), row[2]
    # Two syncs of one console (the background shipper and a manual one) take turns.
    pg.execute("SELECT pg_advisory_xact_lock(hashtext('laserlog sync'), %s)", (console_id,))
    row = pg.execute(f"SELECT head_link, head_hash FROM {SCHEMA}.consoles WHERE console_id = %s",
                     (console_id,)).fetchone()
    server_head, server_hash = int(row[0]), row[1]
    _check_same_history(lite, db_path, where, console_uuid, server_head, server_hash)
    marks = dict(pg.execute(f"SELECT table_name, last_id FROM {SCHEMA}.sync_marks"
                            " WHERE console_id = %s", (console_id,)).fetchall())
    result = SyncResult(console_uuid, console_id, where)
    maxima = {t: lite.execute(f"SELECT coalesce(max(id), -1) FROM {t}").fetchone()[0]
              for t in TABLES}
    resealed: set[int] = set()
    if maxima["chain"] > marks.get("chain", -1):
        resealed = {r[0] for r in lite.execute(
            "SELECT DISTINCT session_id FROM chain WHERE kind = 'seal' AND id > ?",
            (marks.get("chain", -1),))}
    cur = pg.cursor()
    for table in TABLES:
        if table == "sessions":
            count = _ship_sessions(pg, lite, console_id, marks.get(table, -1), maxima[table],
                                   resealed)
        else:
            count = _copy(cur, lite, console_id, table, marks.get(table, -1), maxima[table])
        result.rows[table] = count
        if maxima[table] > marks.get(table, -1):
            pg.execute(f"INSERT INTO {SCHEMA}.sync_marks VALUES (%s, %s, %s) ON CONFLICT"
                       " (console_id, table_name) DO UPDATE SET last_id = EXCLUDED.last_id",
                       (console_id, table, maxima[table]))
        if on_table is not None:
            on_table(table, count)
    head = lite.execute("SELECT id, hash FROM chain ORDER BY id DESC LIMIT 1").fetchone()
    last_ids = {t: max(0, maxima[t]) for t in CHAINED}
    pg.execute(f"UPDATE {SCHEMA}.consoles SET last_synced_utc = now(), head_link = %s,"
               " head_hash = %s, last_ids = %s, name = coalesce(%s, name),"
               " site = coalesce(%s, site) WHERE console_id = %s",
               (head[0] if head else 0, head[1] if head else "", json.dumps(last_ids), name,
                site, console_id))
    result.head_link = int(head[0]) if head else 0
    return result


def _check_same_history(lite: Any, db_path: str, where: str, console_uuid: str,
                        server_head: int, server_hash: str) -> None:
    """Refuse a file whose chain is not the one the server holds for this console."""
    if server_head <= 0:
        return
    row = lite.execute("SELECT hash FROM chain WHERE id = ?", (server_head,)).fetchone()
    if row is None:
        top = lite.execute("SELECT coalesce(max(id), 0) FROM chain").fetchone()[0]
        raise CentralError(f"{where} holds console {console_uuid} up to chain link "
                           f"{server_head}, but {db_path} ends at link {top}: this file is an "
                           "older copy or a restored backup of that console's database; "
                           "nothing was written")
    if row[0] != server_hash:
        raise CentralError(f"{db_path} and {where} disagree about console {console_uuid}'s "
                           f"chain link {server_head}: this file is a copy of another "
                           "console's database (or its chain was rewritten); nothing was "
                           "written")


def _copy(cur: Any, lite: Any, console_id: int, table: str, after: int, upto: int) -> int:
    """COPY rows after..upto of one table into the server's twin; return how many."""
    if upto <= after:
        return 0
    names = columns(table)
    source = lite.cursor()
    source.row_factory = None
    source.execute(f"SELECT {', '.join(names)} FROM {table} WHERE id > ? AND id <= ?"
                   " ORDER BY id", (after, upto))
    count = 0
    prefix = (console_id,)
    with cur.copy(f"COPY {SCHEMA}.{table} (console_id, {', '.join(names)}) FROM STDIN") as copy:
        write = copy.write_row
        while True:
            rows = source.fetchmany(_FETCH)
            if not rows:
                break
            for row in rows:
                write(prefix + row)
            count += len(rows)
    return count


def _ship_sessions(pg: Any, lite: Any, console_id: int, after: int, upto: int,
                   resealed: set[int]) -> int:
    """Insert new sessions and bring up to date those still recording on the server."""
    recording = {r[0] for r in pg.execute(f"SELECT id FROM {SCHEMA}.sessions WHERE console_id = %s"
                                          " AND status = 'recording'", (console_id,))}
    changed = sorted((recording | resealed) - set(range(after + 1, upto + 1)))
    names = columns("sessions")
    select = f"SELECT {', '.join(names)} FROM sessions"
    rows = lite.execute(f"{select} WHERE id > ? AND id <= ? ORDER BY id", (after, upto)).fetchall()
    for start in range(0, len(changed), 500):
        part = changed[start:start + 500]
        rows += lite.execute(f"{select} WHERE id IN ({', '.join('?' * len(part))})",
                             part).fetchall()
    if not rows:
        return 0
    pg_types = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text"}
    body = ", ".join(f"{n} {pg_types[k]}" for n, k in TABLES["sessions"])
    pg.execute(f"CREATE TEMP TABLE sync_sessions (console_id integer, {body}) ON COMMIT DROP")
    with pg.cursor().copy(f"COPY sync_sessions (console_id, {', '.join(names)}) FROM STDIN"
                          ) as copy:
        for row in rows:
            copy.write_row((console_id, *tuple(row)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in SESSION_MUTABLE)
    pg.execute(f"INSERT INTO {SCHEMA}.sessions (console_id, {', '.join(names)})"
               f" SELECT console_id, {', '.join(names)} FROM sync_sessions"
               f" ON CONFLICT (console_id, id) DO UPDATE SET {updates}")
    return len(rows)
