"""Give each session row of a page its reactions and the course outcomes that followed it.

Three queries for the sessions' reactions and one per course for its outcomes, whatever the
number of rows (review.reaction_history).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from laserlog.review.reaction_history import course_outcomes, session_reactions


def attach(conn: sqlite3.Connection, rows: list[dict[str, Any]], key: str = "session") -> None:
    """Set `reactions` and `outcomes` (those whose last session before them is the row's)
    on every row; `key` names the row's session id."""
    ids = [int(r[key]) for r in rows]
    reactions = session_reactions(conn, ids)
    followed = course_outcomes(conn, ids)
    for r in rows:
        sid = int(r[key])
        r["reactions"] = reactions[sid]
        r["outcomes"] = [o for o in followed.get(sid, (0, []))[1] if o["after_session"] == sid]
