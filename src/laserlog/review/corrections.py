"""Corrections: a wrong session detail is never edited, it is corrected by a new row.

Each correction names the session, the column, the old and the new value, the reason, who
and when; it joins the hash chain like any log row. Views and reports show the corrected
value and list the corrections beside it. A corrected client reference (most often a name
typed where a pseudonym belongs) is kept in the correction only as its SHA-256 hash; the new
one must meet the site's pseudonym rule (recording.contract).
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from laserlog.errors import LaserlogError
from laserlog.review.users import User
from laserlog.storage import chain
from laserlog.storage.store import Store, utc_now

#: What can be corrected: command-line name -> sessions column.
CORRECTABLE = {"client": "client_ref", "area": "area", "skin-type": "skin_type"}
COLUMNS = ("session_id", "table_name", "row_id", "column_name", "old_value", "new_value",
           "reason", "user_id", "corrected_utc")


def _validate(store: Store, column: str, value: str) -> str | None:
    from laserlog.recording.contract import Contract, normalise_skin_type

    if column == "client_ref":  # the site's pseudonym rule, as at a session's start
        return Contract.for_database(store.path).client_ref(value)
    if column == "skin_type":
        return normalise_skin_type(value)
    return " ".join(value.split()) or None


def kept_as_hash(value: str) -> str:
    """Return how a corrected client reference is kept: `sha256:` and the hex digest."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def current(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Return, per session, the corrected value of each corrected column (latest wins)."""
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(session_ids), 500):
        part = session_ids[start:start + 500]
        for row in conn.execute(
                "SELECT row_id, column_name, new_value FROM corrections WHERE table_name ="
                f" 'sessions' AND row_id IN ({', '.join('?' * len(part))}) ORDER BY id", part):
            out.setdefault(int(row[0]), {})[row[1]] = row[2]
    return out


def apply(conn: sqlite3.Connection, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return session dicts with corrected details in place (and 'corrected' listing columns)."""
    fixes = current(conn, [int(s["id"]) for s in sessions])
    out = []
    for s in sessions:
        row = dict(s)
        changed = fixes.get(int(s["id"]), {})
        row.update(changed)
        row["corrected"] = ",".join(sorted(changed))
        out.append(row)
    return out


def corrections_for(conn: sqlite3.Connection, session_id: int) -> list[dict[str, Any]]:
    """Return a session's corrections in order, as dicts."""
    cur = conn.execute("SELECT * FROM corrections WHERE session_id = ? ORDER BY id", (session_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, tuple(r), strict=True)) for r in cur.fetchall()]


def correct(store: Store, session_id: int, field: str, value: str, reason: str,
            user: User) -> dict[str, Any]:
    """Record a correction of a session detail; return it."""
    column = CORRECTABLE.get(field)
    if column is None:
        raise LaserlogError(f"field {field!r} cannot be corrected; expected one of "
                            f"{', '.join(CORRECTABLE)}")
    reason = " ".join(reason.split())
    if not reason:
        raise LaserlogError("a correction needs a reason (--reason TEXT)")
    row = store.conn.execute(f"SELECT id, {column} FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
    if row is None:
        raise LaserlogError(f"no session {session_id} in {store.path} "
                            "(see `laserlog sessions list`)")
    new = _validate(store, column, value)
    old = current(store.conn, [session_id]).get(session_id, {}).get(column, row[1])
    if new == old:
        raise LaserlogError(f"session {session_id} {field} is already {old!r}; nothing to correct")
    # A client reference corrected is most often a name typed by mistake: the correction
    # keeps it only as its hash, never a second copy of the name.
    kept = kept_as_hash(old) if column == "client_ref" and old is not None else old
    values = (session_id, "sessions", session_id, column, kept, new, reason, user.user_id,
              utc_now())
    with store.conn:
        head = chain.insert(store.conn, "corrections", [values], COLUMNS, session_id=session_id,
                            kind="correction")
    chain.write_anchor(store.path, head)
    return dict(zip(COLUMNS, values, strict=True))
