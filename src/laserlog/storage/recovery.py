"""Import rows that a full disk forced into a recovery file back into the database."""

from __future__ import annotations

import json
from pathlib import Path

from laserlog.errors import LaserlogError
from laserlog.storage import chain
from laserlog.storage.rows import EVENT_COLUMNS, PULSE_COLUMNS, SETTING_COLUMNS
from laserlog.storage.store import INSERT_EVENT, INSERT_PULSE, INSERT_SETTING, Store

_TABLES = {"pulses": (INSERT_PULSE, len(PULSE_COLUMNS)), "events": (INSERT_EVENT, len(EVENT_COLUMNS)),
           "settings": (INSERT_SETTING, len(SETTING_COLUMNS))}


def recover(path: str | Path, store: Store) -> dict[str, int]:
    """Insert a recovery file's rows in one transaction; return the count per table."""
    path = Path(path)
    rows: dict[str, list[tuple]] = {name: [] for name in _TABLES}
    sessions: set[int] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise LaserlogError(f"cannot read recovery file {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
            table, row = item["table"], item["row"]
            if table not in _TABLES or len(row) != _TABLES[table][1]:
                raise ValueError(table)
        except (ValueError, KeyError, TypeError):
            raise LaserlogError(f"{path}:{number}: not a laserlog recovery line; nothing "
                                "was imported") from None
        rows[table].append(tuple(row))
        sessions.add(int(row[0]))
    head = None
    with store.conn:
        # One hash-chain link per session, as its writer would have made (laserlog.storage.chain).
        for session_id in sorted(sessions):
            counts: dict[str, int] = {}
            for table, (sql, _) in _TABLES.items():
                mine = [r for r in rows[table] if int(r[0]) == session_id]
                if mine:
                    store.conn.executemany(sql, mine)
                counts[table] = len(mine)
            head = chain.append_batch(store.conn, session_id, counts)
    chain.write_anchor(store.path, head)
    for session_id in sessions:
        store.recount(session_id)
    return {table: len(r) for table, r in rows.items()}
