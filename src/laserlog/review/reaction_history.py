"""Read what sessions caused, as the history screen, the printed record and the web view show it.

A session's current assessment is the newest row of each pass (or of the whole session),
marked corrected when an earlier row stands replaced or the row itself came after 24 h. Its
adverse events come with their state from the view `adverse_event_state` (the newest
update's outcome, whether retracted) and every update and retraction in the order recorded.
Three queries for any number of sessions, never one per row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from laserlog.recording import courses
from laserlog.review import outcomes
from laserlog.review.reactions import Assessment, assessments_of, findings_text, marks

__all__ = ["course_outcomes", "findings_text", "session_reactions", "state_text"]


@dataclass(frozen=True, slots=True)
class CurrentAssessment:
    """The assessment that stands for a session (or one of its passes)."""

    latest: Assessment
    corrected: bool


@dataclass(frozen=True, slots=True)
class AdverseChange:
    """One update (outcome and its day) or retraction (reason) of an adverse event."""

    change: str
    outcome: str | None
    outcome_date: str | None
    reason: str | None
    by_user_id: str
    recorded_utc: str


@dataclass(frozen=True, slots=True)
class AdverseHistory:
    """An adverse event in its newest state, with every change recorded against it."""

    id: int
    session_id: int
    kind: str
    onset_date: str
    seriousness: str
    area: str | None
    pass_number: int | None
    note: str | None
    by_user_id: str
    recorded_utc: str
    outcome: str | None
    outcome_date: str | None
    retracted: bool
    changes: tuple[AdverseChange, ...] = ()

    @property
    def retraction(self) -> AdverseChange | None:
        """Return the retraction, when the event was retracted."""
        return next((c for c in self.changes if c.change == "retraction"), None)


@dataclass(frozen=True, slots=True)
class SessionReactions:
    """A session's current assessments (one per pass) and its adverse events."""

    assessments: tuple[CurrentAssessment, ...] = ()
    adverse: tuple[AdverseHistory, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.assessments or self.adverse)


_STATE = ("id", "session_id", "kind", "onset_date", "seriousness", "area", "pass_number",
          "note", "by_user_id", "recorded_utc", "outcome", "outcome_date", "retracted")


def session_reactions(conn: sqlite3.Connection,
                      session_ids: Sequence[int]) -> dict[int, SessionReactions]:
    """Return each of these sessions' reactions (an empty one where none is recorded)."""
    ids = [int(i) for i in session_ids]
    current: dict[int, dict[int | None, list[Assessment]]] = {}
    for a in assessments_of(conn, ids):
        current.setdefault(a.session_id, {}).setdefault(a.pass_number, []).append(a)
    changes: dict[int, list[AdverseChange]] = {}
    for r in conn.execute(
            "SELECT c.adverse_event_id, c.change, c.outcome, c.outcome_date, c.reason,"
            " c.by_user_id, c.recorded_utc FROM adverse_event_changes c JOIN adverse_events a"
            f" ON a.id = c.adverse_event_id WHERE a.session_id IN {marks(ids)} ORDER BY c.id", ids):
        changes.setdefault(int(r[0]), []).append(AdverseChange(*r[1:]))
    events: dict[int, list[AdverseHistory]] = {}
    for r in conn.execute(f"SELECT {', '.join(_STATE)} FROM adverse_event_state"
                          f" WHERE session_id IN {marks(ids)} ORDER BY onset_date, id", ids):
        row = dict(zip(_STATE, tuple(r), strict=True))
        row["retracted"] = bool(row["retracted"])
        events.setdefault(int(r[1]), []).append(
            AdverseHistory(**row, changes=tuple(changes.get(int(r[0]), ()))))
    out = {}
    for sid in session_ids:
        passes = current.get(int(sid), {})
        standing = tuple(
            CurrentAssessment(rows[-1], len(rows) > 1 or rows[-1].correction)
            for _, rows in sorted(passes.items(), key=lambda kv: -1 if kv[0] is None else kv[0]))
        out[int(sid)] = SessionReactions(standing, tuple(events.get(int(sid), ())))
    return out


def state_text(e: AdverseHistory) -> str:
    """Return where an adverse event stands: RETRACTED, its newest outcome, or 'no update'."""
    if e.retracted:
        reason = e.retraction.reason if e.retraction is not None else None
        return "RETRACTED" + (f": {reason}" if reason else "")
    if e.outcome:
        return f"outcome {e.outcome} ({e.outcome_date})"
    return "no outcome recorded yet"


def course_outcomes(conn: sqlite3.Connection, session_ids: Sequence[int]
                    ) -> dict[int, tuple[int, list[dict[str, Any]]]]:
    """Return, for each of these sessions that belongs to a course, the course's id and its
    outcomes (`review.outcomes.for_course`: by date, with the session each followed)."""
    ids = [int(i) for i in session_ids]
    belongs = {int(r[0]): int(r[1]) for r in conn.execute(
        f"SELECT session_id, course_id FROM session_kind WHERE session_id IN {marks(ids)}"
        " AND course_id IS NOT NULL", ids)}
    found: dict[int, list[dict[str, Any]]] = {}
    for course_id in sorted(set(belongs.values())):
        course = courses.find(conn, course_id)
        found[course_id] = outcomes.for_course(conn, course) if course is not None else []
    return {sid: (cid, found[cid]) for sid, cid in belongs.items()}
