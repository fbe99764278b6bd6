"""Ship a console's database to the central server: what is not there yet, once.

A sync ships in chunks, each one PostgreSQL transaction over one SQLite read snapshot:
the rows of a run of chain links (at most `chunk_rows` rows of any table) go in with COPY,
the high-water marks and the console's chain head move to the end of that run, and it
commits, or nothing of that chunk happened. Each chunk ends on a chain link, so the server
verifies at every chunk boundary: a sync killed half-way keeps the chunks it committed and
the next one ships the rest. Rows keep the console's ids, keyed on the server by
(console, id), so nothing can arrive twice.
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
from laserlog.storage.chain import CHAINED, parse_ranges
from laserlog.storage.schema import SCHEMA_VERSION as STORE_SCHEMA

_FETCH = 5000
#: Rows of any one table (and chain links) one chunk ships at most: one transaction each.
CHUNK_ROWS = 500_000


@dataclass(slots=True)
class SyncResult:
    """What one sync shipped."""

    console_uuid: str
    console_id: int
    server: str
    rows: dict[str, int] = field(default_factory=dict)
    head_link: int = 0
    elapsed_s: float = 0.0
    chunks: int = 0
    #: False when `max_chunks` stopped the sync before the head it set out for.
    complete: bool = True

    @property
    def pulses_per_s(self) -> float:
        return self.rows.get("pulses", 0) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        shipped = ", ".join(f"{n} {t}" for t, n in self.rows.items() if n) or "nothing new"
        chunks = f", {self.chunks} transactions" if self.chunks > 1 else ""
        return (f"synced console {self.console_uuid} to {self.server}: {shipped}; chain head "
                f"link {self.head_link} ({self.elapsed_s:.2f} s{chunks})")


def sync(db_path: str | Path, url: str, *, name: str | None = None, site: str | None = None,
         new_server: bool = False, connect_timeout_s: float = 10,
         on_table: Callable[[str, int], None] | None = None, chunk_rows: int = CHUNK_ROWS,
         on_chunk: Callable[[SyncResult], None] | None = None,
         max_chunks: int | None = None) -> SyncResult:
    """Ship everything of `db_path` the server at `url` lacks, chunk by chunk; return what went.

    The sync ships up to the chain head the file has when it starts, or `max_chunks`
    chunks of it. `on_table(table, rows)` is called after each table's COPY, inside a
    chunk's transaction; `on_chunk(result so far)` after each chunk commits (tests use them
    to cut a sync off half-way).
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    from laserlog.storage.store import connect, schema_version

    started = time.perf_counter()
    where = redact(url)
    lite = connect(db_path, readonly=True)  # raises StoreError naming a missing file
    try:
        version = schema_version(lite, db_path)  # a newer laserlog's database: StoreError
    finally:
        lite.close()
    if version < STORE_SCHEMA:
        raise CentralError(f"database {db_path} has schema {version}, before signed checkpoints "
                           f"({STORE_SCHEMA}): open it once with any recording command to "
                           "upgrade it, then sync")
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
        result = SyncResult(me.console_uuid, 0, where)
        target: int | None = None  # the chain head this sync ships up to
        done = False
        while not done:
            lite = connect(db_path, readonly=True)
            try:
                lite.execute("BEGIN")  # one snapshot for every table of this chunk
                if target is None:
                    target = lite.execute("SELECT coalesce(max(id), -1) FROM chain").fetchone()[0]
                done = _ship(pg, lite, result, str(db_path), name, site, on_table, target,
                             chunk_rows)
                pg.commit()
                lite.rollback()
            finally:
                lite.close()
            result.chunks += 1
            if result.chunks == 1 and server_uuid not in known:
                ident.remember_server(db_path, server_uuid, where)
            if on_chunk is not None:
                on_chunk(result)
            if not done and max_chunks is not None and result.chunks >= max_chunks:
                result.complete = False
                break
    except BaseException:
        _rollback(pg)
        raise
    finally:
        pg.close()
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


def _ship(pg: Any, lite: Any, result: SyncResult, db_path: str, name: str | None,
          site: str | None, on_table: Callable[[str, int], None] | None, target: int,
          chunk_rows: int) -> bool:
    import psycopg

    where = result.server
    if result.chunks:
        kept = (f"the {result.chunks} chunk(s) committed before stay, the next sync ships the "
                "rest")
    else:
        kept = "nothing was written"
    try:
        return _ship_chunk(pg, lite, result, db_path, name, site, on_table, target, chunk_rows)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CentralError(f"{where} refused the sync: {exc.diag.message_primary} (this login "
                           f"lacks the laserlog_console role?); {kept}") from None
    except psycopg.OperationalError as exc:
        again = "" if result.chunks else ", the next sync ships it again"
        raise CentralError(f"lost the central server {where} during the sync: "
                           f"{str(exc).strip().splitlines()[-1]}; {kept}{again}") from None
    except psycopg.Error as exc:
        raise CentralError(f"{where} refused the sync: {exc}; {kept}") from None


def _ship_chunk(pg: Any, lite: Any, result: SyncResult, db_path: str, name: str | None,
                site: str | None, on_table: Callable[[str, int], None] | None, target: int,
                chunk_rows: int) -> bool:
    """Ship the next chunk after the server's marks, up to link `target` at most.

    Return True when the server then holds everything up to `target`.
    """
    where, console_uuid = result.server, result.console_uuid
    row = pg.execute(f"SELECT console_id, head_link, head_hash FROM {SCHEMA}.consoles"
                     " WHERE console_uuid = %s", (console_uuid,)).fetchone()
    if row is None:
        label = name or f"{socket.gethostname()}:{Path(db_path).name}"
        row = pg.execute(f"INSERT INTO {SCHEMA}.consoles (console_uuid, name, site)"
                         " VALUES (%s, %s, %s) RETURNING console_id, head_link, head_hash",
                         (console_uuid, label, site)).fetchone()
    console_id = int(row[0])
    _register_key(pg, console_id)
    # Two syncs of one console (the background shipper and a manual one) take turns.
    pg.execute("SELECT pg_advisory_xact_lock(hashtext('laserlog sync'), %s)", (console_id,))
    row = pg.execute(f"SELECT head_link, head_hash FROM {SCHEMA}.consoles WHERE console_id = %s",
                     (console_id,)).fetchone()
    server_head, server_hash = int(row[0]), row[1]
    _check_same_history(lite, db_path, where, console_uuid, server_head, server_hash)
    result.console_id = console_id
    marks = dict(pg.execute(f"SELECT table_name, last_id FROM {SCHEMA}.sync_marks"
                            " WHERE console_id = %s", (console_id,)).fetchall())
    maxima = {t: lite.execute(f"SELECT coalesce(max(id), -1) FROM {t}").fetchone()[0]
              for t in TABLES}
    uptos, complete = _plan(lite, marks, target, chunk_rows)
    upto_link = uptos["chain"]
    # The last chunk also ships rows no link covers (as verify then reports them).
    final = complete and upto_link >= maxima["chain"]
    after_link = marks.get("chain", -1)
    resealed: set[int] = set()
    later: set[int] = set()
    if maxima["chain"] > after_link:
        for link_id, session_id in lite.execute(
                "SELECT id, session_id FROM chain WHERE kind = 'seal' AND id > ?", (after_link,)):
            (resealed if link_id <= upto_link else later).add(session_id)
    if final:
        later.clear()
    cur = pg.cursor()
    for table in TABLES:
        after = marks.get(table, -1)
        upto = maxima[table] if final or table not in uptos else uptos[table]
        if table == "sessions":
            count = _ship_sessions(pg, lite, console_id, after, upto, resealed, later, upto_link)
        else:
            count = _copy(cur, lite, console_id, table, after, upto)
        result.rows[table] = result.rows.get(table, 0) + count
        if upto > after:
            pg.execute(f"INSERT INTO {SCHEMA}.sync_marks VALUES (%s, %s, %s) ON CONFLICT"
                       " (console_id, table_name) DO UPDATE SET last_id = EXCLUDED.last_id",
                       (console_id, table, upto))
        if on_table is not None:
            on_table(table, count)
    head = lite.execute("SELECT id, hash FROM chain WHERE id <= ? ORDER BY id DESC LIMIT 1",
                        (upto_link,)).fetchone()
    last_ids = {t: max(0, maxima[t] if final else uptos[t]) for t in CHAINED}
    pg.execute(f"UPDATE {SCHEMA}.consoles SET last_synced_utc = now(), head_link = %s,"
               " head_hash = %s, last_ids = %s, name = coalesce(%s, name),"
               " site = coalesce(%s, site) WHERE console_id = %s",
               (head[0] if head else 0, head[1] if head else "", json.dumps(last_ids), name,
                site, console_id))
    result.head_link = int(head[0]) if head else 0
    return complete


def _register_key(pg: Any, console_id: int) -> None:
    """Register this installation's key with the server, once (the server then witnesses
    which key signs this console's checkpoints)."""
    from laserlog.storage import signing

    key, _, _ = signing.installation_key(create=False)
    if key is not None:
        pg.execute(f"UPDATE {SCHEMA}.consoles SET installation_keys = %s"
                   " WHERE console_id = %s AND installation_keys = ''",
                   (signing.public_hex(key), console_id))


def _plan(lite: Any, marks: dict[str, int], target: int,
          chunk_rows: int) -> tuple[dict[str, int], bool]:
    """Return where the next chunk ends (its last link as "chain", each chained table's last
    id) and whether that reaches link `target`.

    A chunk takes whole links in order while no table, nor the chain, passes `chunk_rows`
    rows (one link at least), so the server's chain always ends on a link whose rows are all
    there. Rows from before the chain (the genesis link's ranges, hashed by no link) may be
    split anywhere.
    """
    reach = {t: max(0, marks.get(t, -1)) for t in CHAINED}  # ids start at 1
    used = dict.fromkeys(CHAINED, 0)
    last = marks.get("chain", -1)
    start = last
    genesis = lite.execute("SELECT ranges FROM chain WHERE id = 0 AND kind = 'genesis'").fetchone()
    if genesis is not None and target >= 0:
        last = max(last, 0)
        behind = False
        for table, _, end in parse_ranges(genesis[0]):
            if table in reach and reach[table] < end:
                take = min(end, reach[table] + chunk_rows)
                used[table], reach[table] = take - reach[table], take
                behind = behind or take < end
        if behind:
            return {**reach, "chain": last}, False
    cur = lite.cursor()
    cur.row_factory = None
    cur.execute("SELECT id, ranges FROM chain WHERE id > ? AND id <= ? ORDER BY id",
                (last, target))
    for link_id, ranges in cur:
        grow: dict[str, int] = {}
        for table, _, end in parse_ranges(ranges):
            if table in reach and end > grow.get(table, reach[table]):
                grow[table] = end
        progressed = last > start or any(used.values())
        if progressed and (last - max(start, 0) >= chunk_rows or any(
                used[t] + end - reach[t] > chunk_rows for t, end in grow.items())):
            return {**reach, "chain": last}, False
        for table, end in grow.items():
            used[table] += end - reach[table]
            reach[table] = end
        last = link_id
    return {**reach, "chain": max(last, start)}, True


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
                   resealed: set[int], later: set[int], upto_link: int) -> int:
    """Insert new sessions and bring up to date those still recording on the server.

    A session sealed after the chunk's last link (`later`) goes as the latest seal up to
    that link recorded it, or waits for the chunk that holds its seal: every seal on the
    server matches its session's row there.
    """
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
    if later:
        rows = [r for r in (_as_sealed(lite, names, row, after, resealed, upto_link)
                            if row[0] in later else row for row in rows) if r is not None]
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


def _as_sealed(lite: Any, names: tuple[str, ...], row: Any, after: int, resealed: set[int],
               upto_link: int) -> tuple | None:
    """Return a session's row as its latest seal up to `upto_link` recorded it; None if none."""
    session_id = row[0]
    if session_id > after and session_id not in resealed:
        return None  # new, and first sealed in a later chunk
    sealed = lite.execute("SELECT snapshot FROM chain WHERE session_id = ? AND kind = 'seal'"
                          " AND id <= ? ORDER BY id DESC LIMIT 1",
                          (session_id, upto_link)).fetchone()
    if sealed is None:
        return None
    snapshot = json.loads(sealed[0])["session"]
    return tuple(snapshot[name] for name in names)
