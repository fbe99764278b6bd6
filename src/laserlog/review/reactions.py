"""What a session caused: its immediate endpoints, and adverse events reported later.

An assessment (erythema and oedema 0-3, pain NRS 0-10, blister and purpura yes/no, a note)
belongs to a session, or to one of its passes. One made more than 24 h after the session's
end is stored as a correction: a new row marked so; nothing is edited. An adverse event
names a session (and through it the dose delivered), its kind, onset day and seriousness;
its updates (outcome) and its retraction are rows of their own. Every adverse-event row is
signed with the key of the user who reports it (review.users: their passphrase opens it),
over the row's values, so a signature cannot be moved to another row.

The clock is `laserlog.recording.courses.now`, the one the course rules read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from laserlog.domain import localtime
from laserlog.domain.reactions import (
    ADVERSE_KINDS,
    GRADES,
    IMMEDIATE_WINDOW_H,
    OUTCOMES,
    SERIOUSNESS,
)
from laserlog.errors import LaserlogError
from laserlog.recording import courses
from laserlog.storage import chain, signing
from laserlog.storage.store import Store

ASSESSMENT_COLUMNS = ("session_id", "pass_number", "erythema", "oedema", "pain_nrs", "blister",
                      "purpura", "note", "correction", "hours_after_end", "user_id",
                      "assessed_utc")
ADVERSE_COLUMNS = ("session_id", "kind", "onset_date", "seriousness", "area", "pass_number",
                   "note", "by_user_id", "recorded_utc", "signature")
CHANGE_COLUMNS = ("adverse_event_id", "change", "outcome", "outcome_date", "reason",
                  "by_user_id", "recorded_utc", "signature")


class ReactionError(LaserlogError):
    """Raise when an assessment or an adverse event cannot be recorded as given."""


@dataclass(frozen=True, slots=True)
class Assessment:
    """One session's (or pass's) immediate endpoints as recorded."""

    id: int
    session_id: int
    pass_number: int | None
    erythema: int
    oedema: int
    pain_nrs: int
    blister: bool
    purpura: bool
    note: str | None
    correction: bool
    hours_after_end: float | None
    assessed_utc: str
    user_id: str | None = None


def session_row(conn: sqlite3.Connection, session_id: int, path: object) -> dict[str, Any]:
    """Return the session's row (with its end), or raise naming the database."""
    cur = conn.execute("SELECT id, operator_id, client_ref, area, skin_type, profile_id,"
                       " started_utc, ended_utc, status, pulse_count FROM sessions WHERE id = ?",
                       (session_id,))
    row = cur.fetchone()
    if row is None:
        raise ReactionError(f"session {session_id}: no such session in {path} "
                            "(see `laserlog sessions list`); nothing was written")
    return dict(zip([d[0] for d in cur.description], tuple(row), strict=True))


def pass_numbers(conn: sqlite3.Connection, session_id: int) -> list[int]:
    """Return the passes marked in a session, in order."""
    return sorted({int(r[0]) for r in conn.execute(
        "SELECT code FROM events WHERE session_id = ? AND kind = 'pass' AND code IS NOT NULL",
        (session_id,))})


def _check_pass(conn: sqlite3.Connection, session: dict[str, Any], number: int | None) -> None:
    if number is None:
        return
    known = pass_numbers(conn, session["id"])
    if number not in known:
        marked = (f"its passes are {', '.join(map(str, known))}" if known
                  else "it has no passes marked")
        raise ReactionError(f"--pass {number}: session {session['id']} has no pass {number} "
                            f"({marked}); nothing was written")


def _hours_after_end(session: dict[str, Any], at: datetime) -> float:
    end = localtime.local(session["ended_utc"] or session["started_utc"], None)
    return (at - end).total_seconds() / 3600.0


def check_grades(erythema: int, oedema: int, pain_nrs: int) -> None:
    """Refuse a grade outside its scale, naming it."""
    for name, value in (("erythema", erythema), ("oedema", oedema), ("pain", pain_nrs)):
        low, high = GRADES["pain_nrs" if name == "pain" else name]
        if not low <= value <= high:
            raise ReactionError(f"--{name} {value}: outside its scale; expected {low}-{high}; "
                                "nothing was written")


def assess(store: Store, session_id: int, *, erythema: int, oedema: int, pain_nrs: int,
           blister: bool = False, purpura: bool = False, note: str | None = None,
           pass_number: int | None = None, user_id: str | None = None) -> Assessment:
    """Record a session's immediate endpoints (a correction after 24 h); return the row."""
    check_grades(erythema, oedema, pain_nrs)
    session = session_row(store.conn, session_id, store.path)
    _check_pass(store.conn, session, pass_number)
    at = courses.now()
    hours = _hours_after_end(session, at)
    correction = hours > IMMEDIATE_WINDOW_H
    values = (session_id, pass_number, erythema, oedema, pain_nrs, int(blister), int(purpura),
              _clean(note), int(correction), round(hours, 3), user_id, courses.utc_text(at))
    new_id = _insert(store, "assessments", values, ASSESSMENT_COLUMNS, session_id)
    return Assessment(new_id, session_id, pass_number, erythema, oedema, pain_nrs, blister,
                      purpura, values[7], correction, values[9], values[11], user_id)


def recorded_text(row: Assessment) -> str:
    """Return what a recorded assessment says (`laserlog assess`, the session screen)."""
    of = f" pass {row.pass_number}" if row.pass_number is not None else ""
    marked = (f" as a CORRECTION ({row.hours_after_end:.0f} h after the session's end)"
              if row.correction and row.hours_after_end is not None else "")
    return (f"assessment {row.id} of session {row.session_id}{of} recorded{marked}: "
            + findings_text(row))


def findings_text(a: Assessment) -> str:
    """Return an assessment's findings: 'erythema 2, oedema 1, pain 4/10, blister'."""
    return ", ".join([f"erythema {a.erythema}", f"oedema {a.oedema}", f"pain {a.pain_nrs}/10"]
                     + (["blister"] if a.blister else []) + (["purpura"] if a.purpura else []))


def assessment_lines(conn: sqlite3.Connection, session_id: int) -> list[str]:
    """Return a session summary's lines on its assessments (none when it has none)."""
    lines = []
    for a in assessments(conn, session_id):
        of = f"pass {a.pass_number}: " if a.pass_number is not None else ""
        lines.append(f"  assessed  {of}{findings_text(a)}  ({a.user_id or '-'} "
                     f"{a.assessed_utc[:16]}Z"
                     + (", correction" if a.correction else "") + ")")
    return lines


def assessments(conn: sqlite3.Connection, session_id: int) -> list[Assessment]:
    """Return a session's assessments in the order recorded."""
    return assessments_of(conn, [session_id])


def assessments_of(conn: sqlite3.Connection, session_ids: list[int]) -> list[Assessment]:
    """Return these sessions' assessments in the order recorded, in one query."""
    rows = conn.execute(f"SELECT id, {', '.join(ASSESSMENT_COLUMNS[:-2])}, assessed_utc,"
                        f" user_id FROM assessments WHERE session_id IN {marks(session_ids)}"
                        " ORDER BY id", [int(i) for i in session_ids])
    return [Assessment(int(r[0]), int(r[1]), r[2], int(r[3]), int(r[4]), int(r[5]), bool(r[6]),
                       bool(r[7]), r[8], bool(r[9]), r[10], r[11], r[12]) for r in rows]


# -- adverse events ------------------------------------------------------------------------
def parse_day(text: str, what: str) -> date:
    """Return a calendar day given as YYYY-MM-DD, or raise naming the option."""
    try:
        return localtime.calendar_day(text)
    except ValueError:
        raise ReactionError(f"{what} {text[:40]!r} is not a date; expected YYYY-MM-DD "
                            "(e.g. 2026-04-14); nothing was written") from None


def today(where: tzinfo | None) -> date:
    """Return today's date in the site's zone, by the course rules' clock."""
    return courses.now().astimezone(where).date()


def _signed(signer: Any, table: str, values: dict[str, Any]) -> str:
    """Return the signature of a row's values, bound to its table."""
    message = json.dumps({"table": table, **values}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=True)
    return signing.sign(signer.key, ("laserlog reaction 1\n" + message).encode("ascii"))


def signature_holds(public_key: str | None, table: str, row: dict[str, Any]) -> bool:
    """Return whether a stored adverse-event row's signature holds for its values."""
    values = {k: v for k, v in row.items() if k not in ("id", "signature")}
    message = json.dumps({"table": table, **values}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=True)
    return signing.verifies(public_key, ("laserlog reaction 1\n" + message).encode("ascii"),
                            row.get("signature"))


#: Opens a user's key once every other check has passed (review.users.unlock with the
#: passphrase from a prompt, stdin or the environment): user ID -> Signer.
Unlock = Callable[[str], Any]


def add_adverse(store: Store, session_id: int, *, kind: str, onset: date, seriousness: str,
                by: str | None, unlock: Unlock, where: tzinfo | None, area: str | None = None,
                pass_number: int | None = None, note: str | None = None) -> int:
    """Record an adverse event against a session; return its id.

    Refused: an unknown kind or seriousness, an onset after today or before the session's
    day (site-local), a pass the session does not have. `by` (default: the session's
    operator) is asked for their passphrase only then.
    """
    if kind not in ADVERSE_KINDS:
        raise ReactionError(f"--kind {kind!r}: unknown; expected one of "
                            f"{', '.join(ADVERSE_KINDS)}; nothing was written")
    if seriousness not in SERIOUSNESS:
        raise ReactionError(f"--seriousness {seriousness!r}: expected serious or non-serious; "
                            "nothing was written")
    session = session_row(store.conn, session_id, store.path)
    started = localtime.local(session["started_utc"], where).date()
    if onset > today(where):
        raise ReactionError(f"--onset {onset.isoformat()}: in the future (today is "
                            f"{today(where).isoformat()}); nothing was written")
    if onset < started:
        raise ReactionError(f"--onset {onset.isoformat()}: before session {session_id} "
                            f"({started.isoformat()}); nothing was written")
    _check_pass(store.conn, session, pass_number)
    signer = unlock(by or session["operator_id"])
    values = {"session_id": session_id, "kind": kind, "onset_date": onset.isoformat(),
              "seriousness": seriousness, "area": _clean(area) or session["area"],
              "pass_number": pass_number, "note": _clean(note),
              "by_user_id": signer.user.user_id,
              "recorded_utc": courses.utc_text(courses.now())}
    values["signature"] = _signed(signer, "adverse_events", values)
    return _insert(store, "adverse_events", tuple(values[c] for c in ADVERSE_COLUMNS),
                   ADVERSE_COLUMNS, session_id)


def adverse_event(conn: sqlite3.Connection, event_id: int, path: object) -> dict[str, Any]:
    """Return an adverse event's newest state, or raise naming the database."""
    cur = conn.execute("SELECT * FROM adverse_event_state WHERE id = ?", (event_id,))
    row = cur.fetchone()
    if row is None:
        raise ReactionError(f"adverse event {event_id}: no such event in {path} "
                            "(see `laserlog adverse list`); nothing was written")
    return dict(zip([d[0] for d in cur.description], tuple(row), strict=True))


def change_adverse(store: Store, event_id: int, *, by: str | None, unlock: Unlock,
                   where: tzinfo | None,
                   outcome: str | None = None, outcome_day: date | None = None,
                   reason: str | None = None) -> int:
    """Record an adverse event's outcome (update) or its retraction (reason); return the id."""
    event = adverse_event(store.conn, event_id, store.path)
    if event["retracted"]:
        raise ReactionError(f"adverse event {event_id} was retracted; nothing was written")
    if reason is not None:
        reason = _clean(reason)
        if not reason:
            raise ReactionError("--reason is empty; say why the entry was made in error; "
                                "nothing was written")
        change = "retraction"
    else:
        if outcome not in OUTCOMES or outcome_day is None:
            raise ReactionError(f"--outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}"
                                " with --date; nothing was written")
        if outcome_day > today(where):
            raise ReactionError(f"--date {outcome_day.isoformat()}: in the future (today is "
                                f"{today(where).isoformat()}); nothing was written")
        if outcome_day.isoformat() < event["onset_date"]:
            raise ReactionError(f"--date {outcome_day.isoformat()}: before the event's onset "
                                f"({event['onset_date']}); nothing was written")
        change = "update"
    operator = session_row(store.conn, int(event["session_id"]), store.path)["operator_id"]
    signer = unlock(by or operator)
    values = {"adverse_event_id": event_id, "change": change, "outcome": outcome
              if change == "update" else None,
              "outcome_date": outcome_day.isoformat() if change == "update" and outcome_day
              else None, "reason": reason, "by_user_id": signer.user.user_id,
              "recorded_utc": courses.utc_text(courses.now())}
    values["signature"] = _signed(signer, "adverse_event_changes", values)
    return _insert(store, "adverse_event_changes", tuple(values[c] for c in CHANGE_COLUMNS),
                   CHANGE_COLUMNS, int(event["session_id"]))


def adverse_events(conn: sqlite3.Connection, session_ids: list[int] | None = None,
                   *, retracted: bool = False) -> list[dict[str, Any]]:
    """Return adverse events in their newest state (of these sessions), oldest first."""
    cur = conn.execute("SELECT * FROM adverse_event_state ORDER BY id")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, tuple(r), strict=True)) for r in cur.fetchall()]
    wanted = set(session_ids) if session_ids is not None else None
    return [r for r in rows if (retracted or not r["retracted"])
            and (wanted is None or r["session_id"] in wanted)]


# -- shared ----------------------------------------------------------------------------------
def marks(values: Sequence[object]) -> str:
    """Return '(?, ?, ...)', one placeholder per value (SQLite and the central server's view)."""
    return "(" + ", ".join("?" * len(values)) + ")" if values else "(NULL)"


def _clean(text: str | None) -> str | None:
    return " ".join((text or "").split())[:500] or None


def _insert(store: Store, table: str, values: tuple, columns: tuple[str, ...],
            session_id: int | None) -> int:
    with store.conn:
        head = chain.insert(store.conn, table, [values], columns, session_id=session_id,
                            kind="reaction")
        last = int(store.conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0])
    chain.write_anchor(store.path, head)
    return last
