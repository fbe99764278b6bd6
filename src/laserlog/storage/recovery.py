"""Import rows that a full disk or a locked database forced into a recovery file back into
the database, and end the session when the file holds the end its recorder could not write."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from laserlog.config.files import read_text
from laserlog.errors import LaserlogError
from laserlog.storage import chain
from laserlog.storage.rows import (
    EVENT_COLUMNS,
    PULSE_COLUMNS,
    SESSION_END_COLUMNS,
    SETTING_COLUMNS,
    SessionEnd,
)
from laserlog.storage.store import (
    INSERT_EVENT,
    INSERT_PULSE,
    INSERT_SETTING,
    LOST_RECORDER_REASON,
    Store,
)

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


def _number(value: object, *, positive: bool = False, optional: bool = False) -> bool:
    if value is None:
        return optional
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value > 0 if positive else True


def _count(value: object, *, optional: bool = True, least: int = 0) -> bool:
    if value is None:
        return optional
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _text(value: object, *, optional: bool = False) -> bool:
    return isinstance(value, str) or (optional and value is None)


def _utc(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


#: Per table, what each column of a recovered row must be: what the recorder writes.
_COLUMN_CHECKS = {
    "pulses": (_count, _count, _number, lambda v: _number(v, positive=True), _text,
               *[lambda v: _number(v, positive=True, optional=True)] * 5, _count,
               lambda v: _number(v, positive=True, optional=True), _text),
    "events": (_count, _number, _text,
               lambda v: v in ("info", "warning", "alarm"),
               lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
               _text, _count, lambda v: _count(v, optional=False, least=1),
               lambda v: _text(v, optional=True)),
    "settings": (_count, _number, _text, _number, _text),
    "session_end": (lambda v: _count(v, optional=False, least=1), _utc,
                    lambda v: v in ("ended", "interrupted"), _text),
}
#: Columns per line of each kind a recovery file holds.
_WIDTH = {**{table: width for table, (_, width) in _TABLES.items()},
          "session_end": len(SESSION_END_COLUMNS)}


def _row_ok(table: str, row: list) -> bool:
    """Return whether a recovered row holds what the recorder would have written."""
    return all(check(value) for check, value in zip(_COLUMN_CHECKS[table], row, strict=True))


def _read(path: Path) -> str:
    """Return a recovery file's text (a leading BOM dropped, as from any laserlog text file),
    refusing what is not a regular UTF-8 file of sane size."""
    try:
        return read_text(path, "recovery file", max_bytes=MAX_FILE_BYTES)
    except FileNotFoundError:
        raise LaserlogError(f"recovery file {path} does not exist") from None
    except ValueError as exc:
        raise LaserlogError(f"{exc}; not a laserlog recovery file") from None
    except OSError as exc:
        raise LaserlogError(f"cannot read recovery file {path}: {exc.strerror}") from None


def recover(path: str | Path, store: Store) -> dict[str, int]:
    """Insert a recovery file's rows in one transaction; return the count per table.

    A file is imported once (its SHA-256 is recorded in a `recovered` event of each session
    it fills); a malformed line, or a row for a session the database does not hold, is
    refused with its line number and nothing is imported.
    """
    path = Path(path)
    lines = _read(path).splitlines()
    rows: dict[str, list[tuple]] = {name: [] for name in _WIDTH}
    first_line: dict[int, int] = {}
    for number, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
            table, row = item["table"], item["row"]
            if (table not in _WIDTH or not isinstance(row, list)
                    or len(row) != _WIDTH[table] or not all(map(_value_ok, row))
                    or not _row_ok(table, row)):
                raise ValueError(table)
        except (ValueError, KeyError, TypeError, RecursionError):
            raise LaserlogError(f"{path}:{number}: not a laserlog recovery line (expected "
                                '{"table": "pulses"|"events"|"settings"|"session_end", '
                                '"row": [...]}); nothing was imported') from None
        rows[table].append(tuple(row))
        first_line.setdefault(int(row[0]), number)
    ends = {end.session_id: end for end in map(SessionEnd._make, rows.pop("session_end"))}
    # The rows themselves, not the file's bytes, say whether it was imported before: the same
    # rows with other line ends or spacing are the same rows.
    canonical = json.dumps(sorted([(table, list(r)) for table, table_rows in rows.items()
                                   for r in table_rows]
                                  + [("session_end", list(end)) for end in ends.values()]),
                           separators=(",", ":"))
    digest = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    done = store.conn.execute("SELECT session_id FROM events WHERE kind = 'recovered' AND raw = ?"
                              " LIMIT 1", (digest,)).fetchone()
    if done is not None:
        raise LaserlogError(f"{path} was already imported (into session {done[0]}); nothing "
                            "was imported again")
    sessions = set(first_line)
    for session_id in sorted(sessions):
        known = store.conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,))
        if known.fetchone() is None:
            raise LaserlogError(f"{path}:{first_line[session_id]}: session {session_id} is not "
                                f"in {store.path}; nothing was imported")
    per_session = Counter(int(r[0]) for table_rows in rows.values() for r in table_rows)
    try:
        head = _insert(store, rows, sessions, per_session, digest, path.name, set(ends))
    except sqlite3.IntegrityError as exc:
        raise LaserlogError(f"{path}: the database refuses its rows ({exc}); nothing was "
                            "imported") from None
    chain.write_anchor(store.path, head)
    for session_id in sessions:
        store.recount(session_id)
    ended = 0
    for end in ends.values():
        ended += _end(store, end)
    return {**{table: len(r) for table, r in rows.items()}, "session_end": ended}


def _end(store: Store, end: SessionEnd) -> int:
    """End a session as its recorder had, unless the database already holds an end that is
    not merely a later start's guess (LOST_RECORDER_REASON); return 1 if it ended it."""
    status, reason = store.conn.execute("SELECT status, end_reason FROM sessions WHERE id = ?",
                                        (end.session_id,)).fetchone()
    if status != "recording" and not (status == "interrupted" and reason == LOST_RECORDER_REASON):
        return 0
    store.end_session(end.session_id, end.status, end.end_reason, ended_utc=end.ended_utc)
    return 1


def _insert(store: Store, rows: dict[str, list[tuple]], sessions: set[int],
            per_session: Counter[int], digest: str, name: str,
            ends: set[int]) -> chain.Head | None:
    """Insert the rows, one chain link per session, in one transaction; return the head."""
    head = None
    now = time.time()
    with store.conn:
        # One hash-chain link per session, as its writer would have made (laserlog.storage.chain).
        for session_id in sorted(sessions):
            counts: dict[str, int] = {}
            for table, (sql, _) in _TABLES.items():
                mine = [r for r in rows[table] if int(r[0]) == session_id]
                if table == "events":
                    ended = " and the session's end" if session_id in ends else ""
                    mine.append((session_id, now, "recovered", "info", None,
                                 f"imported {per_session[session_id]} row(s){ended} from "
                                 f"recovery file {name}", None, 1, digest))
                if mine:
                    store.conn.executemany(sql, mine)
                counts[table] = len(mine)
            head = chain.append_batch(store.conn, session_id, counts)
    return head
