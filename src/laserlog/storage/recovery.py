"""Import rows that a full disk forced into a recovery file back into the database."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path

from laserlog.errors import LaserlogError
from laserlog.storage import chain
from laserlog.storage.rows import EVENT_COLUMNS, PULSE_COLUMNS, SETTING_COLUMNS
from laserlog.storage.store import INSERT_EVENT, INSERT_PULSE, INSERT_SETTING, Store

_TABLES = {"pulses": (INSERT_PULSE, len(PULSE_COLUMNS)), "events": (INSERT_EVENT, len(EVENT_COLUMNS)),
           "settings": (INSERT_SETTING, len(SETTING_COLUMNS))}


#: A recovery file holds what one recorder could not commit: far less than this.
MAX_FILE_BYTES = 2**30
INT64 = (-(2**63), 2**63 - 1)


def _value_ok(value: object) -> bool:
    """Return whether a JSON value can be a stored column value as the recorder wrote it."""
    if value is None or isinstance(value, str):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return INT64[0] <= value <= INT64[1]
    return isinstance(value, float) and value == value and abs(value) != float("inf")


def _read(path: Path) -> bytes:
    """Return a recovery file's bytes, refusing what is not a regular file of sane size."""
    try:
        if not path.is_file():
            raise LaserlogError(f"recovery file {path} is not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise LaserlogError(f"recovery file {path} is larger than {MAX_FILE_BYTES} bytes; "
                                "not a laserlog recovery file")
        return path.read_bytes()
    except OSError as exc:
        raise LaserlogError(f"cannot read recovery file {path}: {exc.strerror}") from None


def recover(path: str | Path, store: Store) -> dict[str, int]:
    """Insert a recovery file's rows in one transaction; return the count per table.

    A file is imported once (its SHA-256 is recorded in a `recovered` event of each session
    it fills); a malformed line, or a row for a session the database does not hold, is
    refused with its line number and nothing is imported.
    """
    path = Path(path)
    data = _read(path)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = store.conn.execute("SELECT session_id, received_unix_s FROM events"
                              " WHERE kind = 'recovered' AND raw = ? LIMIT 1", (digest,)).fetchone()
    if done is not None:
        raise LaserlogError(f"{path} was already imported (into session {done[0]}); nothing "
                            "was imported again")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise LaserlogError(f"{path}: not UTF-8 text at byte {exc.start}; not a laserlog "
                            "recovery file") from None
    rows: dict[str, list[tuple]] = {name: [] for name in _TABLES}
    first_line: dict[int, int] = {}
    for number, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
            table, row = item["table"], item["row"]
            if (table not in _TABLES or not isinstance(row, list)
                    or len(row) != _TABLES[table][1] or not all(map(_value_ok, row))
                    or not isinstance(row[0], int) or isinstance(row[0], bool)):
                raise ValueError(table)
        except (ValueError, KeyError, TypeError, RecursionError):
            raise LaserlogError(f"{path}:{number}: not a laserlog recovery line (expected "
                                '{"table": "pulses"|"events"|"settings", "row": [...]}); '
                                "nothing was imported") from None
        rows[table].append(tuple(row))
        first_line.setdefault(int(row[0]), number)
    sessions = set(first_line)
    for session_id in sorted(sessions):
        if store.conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
            raise LaserlogError(f"{path}:{first_line[session_id]}: session {session_id} is not "
                                f"in {store.path}; nothing was imported")
    per_session = Counter(int(r[0]) for table_rows in rows.values() for r in table_rows)
    head = None
    now = time.time()
    with store.conn:
        # One hash-chain link per session, as its writer would have made (laserlog.storage.chain).
        for session_id in sorted(sessions):
            counts: dict[str, int] = {}
            for table, (sql, _) in _TABLES.items():
                mine = [r for r in rows[table] if int(r[0]) == session_id]
                if table == "events":
                    mine.append((session_id, now, "recovered", "info", None,
                                 f"imported {per_session[session_id]} row(s) from recovery file "
                                 f"{path.name}", None, 1, digest))
                if mine:
                    store.conn.executemany(sql, mine)
                counts[table] = len(mine)
            head = chain.append_batch(store.conn, session_id, counts)
    chain.write_anchor(store.path, head)
    for session_id in sessions:
        store.recount(session_id)
    return {table: len(r) for table, r in rows.items()}
