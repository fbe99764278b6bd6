"""Treatment courses: the plan (client x area x indication, sessions, window) and the dose.

A course is a row of `courses`; each session's kind (course, one-off, test spot) is its
newest row in `session_kinds`, so attaching a past session is a new row, never an edit.
The interval is counted from the course's last full session with pulses delivered (test
spots and starts that fired nothing do not count), in calendar days of the site's time
zone. Test spots qualify a client on a console once read out after the wait for their skin
type, uneventful and unexpired; their highest fluence per wavelength bounds full sessions.

`now` is the one clock these rules read: tests replace it in process. No option of any
command moves it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from laserlog.config.courses import FINDINGS, CoursePolicy, Window
from laserlog.domain import localtime
from laserlog.errors import LaserlogError
from laserlog.storage import chain
from laserlog.storage.rows import EventRow, PulseAt
from laserlog.storage.store import Store

KINDS = ("course", "one_off", "test_spot")
COURSE_COLUMNS = ("client_ref", "area", "indication", "profile_id", "planned_sessions",
                  "min_interval_days", "max_interval_days", "target_interval_days", "note",
                  "created_utc")
KIND_COLUMNS = ("session_id", "kind", "course_id", "how", "override_by", "override_role",
                "override_reason", "recorded_utc")
READOUT_COLUMNS = ("session_id", *FINDINGS, "note", "user_id", "read_utc")


def now() -> datetime:
    """Return the time course rules are held to (UTC)."""
    return datetime.now(UTC)


def utc_text(moment: datetime) -> str:
    """Return a time as stored: ISO 8601 UTC with milliseconds and Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Course:
    """One course as planned, and whether it was closed."""

    id: int
    client_ref: str
    area: str
    indication: str
    profile_id: str | None
    planned_sessions: int
    window: Window
    note: str | None
    created_utc: str
    closed_utc: str | None = None
    close_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_utc is None


@dataclass(frozen=True, slots=True)
class LastSession:
    """The dose of a course's last full session."""

    session_id: int
    started_utc: str
    pulses: int
    energy_j: float
    mean_fluence_j_cm2: float | None
    max_fluence_j_cm2: float | None
    handpiece: int | None


@dataclass(frozen=True, slots=True)
class Interval:
    """Where a session about to start stands in its course's plan."""

    course: Course
    number: int  # the number of the session about to start
    days_since: int | None  # None: the course's first full session
    last: LastSession | None

    @property
    def status(self) -> str:
        """Return 'first', 'early', 'late' or 'in_window'."""
        if self.days_since is None:
            return "first"
        if self.days_since < self.course.window.min_days:
            return "early"
        if self.days_since > self.course.window.max_days:
            return "late"
        return "in_window"

    def line(self) -> str:
        """Return the form's course line: session k of n, days since the last, its dose."""
        course = self.course
        parts = [f"session {self.number} of {course.planned_sessions}"]
        if self.days_since is None or self.last is None:
            parts.append(f"the first (window {course.window.text()} days after it)")
            return " \u00b7 ".join(parts)
        parts.append(f"{self.days_since} days since the last (window {course.window.text()})")
        last = self.last
        dose = (f"last: mean {last.mean_fluence_j_cm2:.1f} J/cm\u00b2 (max "
                f"{last.max_fluence_j_cm2:.1f})" if last.mean_fluence_j_cm2 is not None
                and last.max_fluence_j_cm2 is not None else "last: no fluence recorded")
        if last.handpiece is not None:
            dose += f" on HP {last.handpiece}"
        parts.append(f"{dose}, {last.energy_j:.1f} J")
        return " \u00b7 ".join(parts)

    def window_text(self) -> str:
        """Return the days since the last session against the window, for messages."""
        last = self.last
        since = (f"{self.days_since} day(s) since session {last.session_id} on "
                 f"{last.started_utc[:10]}" if last is not None else "")
        return f"{since}, window {self.course.window.text()} days"


# -- reading ----------------------------------------------------------------------------------
def _course(row: sqlite3.Row | tuple) -> Course:
    (cid, client, area, indication, profile_id, planned, low, high, target, note, created,
     closed, reason) = tuple(row)
    return Course(int(cid), client, area, indication, profile_id, int(planned),
                  Window(int(low), int(high), target), note, created, closed, reason)


_SELECT = ("SELECT c.id, c.client_ref, c.area, c.indication, c.profile_id, c.planned_sessions,"
           " c.min_interval_days, c.max_interval_days, c.target_interval_days, c.note,"
           " c.created_utc, x.closed_utc, x.reason FROM courses c LEFT JOIN course_closures x"
           " ON x.id = (SELECT min(id) FROM course_closures WHERE course_id = c.id)")


def find(conn: sqlite3.Connection, course_id: int) -> Course | None:
    """Return a course by id, None when there is none."""
    row = conn.execute(_SELECT + " WHERE c.id = ?", (course_id,)).fetchone()
    return _course(row) if row is not None else None


def listed(conn: sqlite3.Connection, client: str | None = None) -> list[Course]:
    """Return every course (one client's), newest first."""
    if client is None:
        rows = conn.execute(_SELECT + " ORDER BY c.id DESC").fetchall()
    else:
        rows = conn.execute(_SELECT + " WHERE c.client_ref = ? ORDER BY c.id DESC",
                            (client,)).fetchall()
    return [_course(r) for r in rows]


def kind_of(conn: sqlite3.Connection, session_id: int) -> tuple[str, int | None]:
    """Return a session's kind and course (its newest kind row; a one-off without one)."""
    row = conn.execute("SELECT kind, course_id FROM session_kinds WHERE session_id = ?"
                       " ORDER BY id DESC LIMIT 1", (session_id,)).fetchone()
    return (str(row[0]), row[1]) if row is not None else ("one_off", None)


def course_sessions(conn: sqlite3.Connection, course_id: int) -> list[dict[str, Any]]:
    """Return the sessions a course holds now (full sessions and test spots), in order."""
    cur = conn.execute(
        "SELECT s.id, s.started_utc, s.status, s.pulse_count, s.total_energy_j,"
        " s.max_fluence_j_cm2, s.resumes_session_id, k.kind, k.override_by, k.override_reason"
        " FROM session_kinds k JOIN sessions s ON s.id = k.session_id"
        " WHERE k.course_id = ? AND k.id = (SELECT max(id) FROM session_kinds"
        " WHERE session_id = k.session_id) ORDER BY s.started_utc, s.id", (course_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, tuple(r), strict=True)) for r in cur.fetchall()]


def _dose(conn: sqlite3.Connection, session: dict[str, Any]) -> LastSession:
    row = conn.execute("SELECT avg(fluence_j_cm2), max(fluence_j_cm2), max(handpiece)"
                       " FROM pulses WHERE session_id = ?", (session["id"],)).fetchone()
    return LastSession(int(session["id"]), str(session["started_utc"]),
                       int(session["pulse_count"]), float(session["total_energy_j"]),
                       row[0], row[1], row[2])


def calendar_days(earlier_utc: str, later: datetime, where: tzinfo | None) -> int:
    """Return the calendar days between a stored time and a moment, in the site's zone."""
    first = localtime.local(earlier_utc, where).date()
    return (later.astimezone(where).date() - first).days


def interval(conn: sqlite3.Connection, course: Course, at: datetime,
             where: tzinfo | None) -> Interval:
    """Return where a full session starting at `at` stands in the course."""
    full = [s for s in course_sessions(conn, course.id)
            if s["kind"] == "course" and s["pulse_count"] > 0]
    visits = [s for s in full if s["resumes_session_id"] is None]
    if not full:
        return Interval(course, 1, None, None)
    last = full[-1]
    return Interval(course, len(visits) + 1, calendar_days(last["started_utc"], at, where),
                    _dose(conn, last))


# -- test spots --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Tested:
    """The highest fluence a client's test spots tested: per wavelength and handpiece where
    their pulses carried a handpiece, per wavelength (any handpiece) always; and which test
    spot tested each."""

    #: (nm, handpiece) -> J/cm2; (nm, None): the highest at that wavelength, any handpiece.
    fluence_j_cm2: dict[tuple[float, int | None], float] = field(default_factory=dict)
    spot_of: dict[tuple[float, int | None], int] = field(default_factory=dict)
    #: The wavelengths whose test pulses carried a handpiece: there a pulse's handpiece counts.
    by_handpiece: frozenset[float] = frozenset()

    def key(self, wavelength_nm: float | None,
            handpiece: int | None) -> tuple[float, int | None]:
        """Return the key a pulse (or a set value) is held to: its wavelength and handpiece,
        or its wavelength alone when it or the test spots carry no handpiece."""
        at = float(wavelength_nm) if wavelength_nm is not None else math.nan
        return (at, handpiece if handpiece is not None and at in self.by_handpiece else None)

    @staticmethod
    def where(key: tuple[float, int | None]) -> str:
        """Return what a key names in messages: "755 nm on handpiece 2", "755 nm, any
        handpiece"."""
        at, handpiece = key
        nm = f"{at:g} nm" if at == at else "an unknown wavelength"
        return f"{nm} on handpiece {handpiece}" if handpiece is not None else f"{nm}, any handpiece"


@dataclass(frozen=True, slots=True)
class SpotClearance:
    """What a client's test spots on one console allow: whether one clears the gate, and the
    highest fluence they tested."""

    cleared: bool
    why: str
    tested: Tested = field(default_factory=Tested)


def spots_for(conn: sqlite3.Connection, client: str, profile_id: str, skin_type: str | None,
              policy: CoursePolicy, at: datetime) -> SpotClearance:
    """Return the client's unexpired test spots on this console and what they clear."""
    since = utc_text(at - timedelta(days=policy.test_spot_valid_days))
    spots = conn.execute(
        "SELECT s.id, s.started_utc, s.skin_type FROM sessions s JOIN session_kinds k"
        " ON k.id = (SELECT max(id) FROM session_kinds WHERE session_id = s.id)"
        " WHERE k.kind = 'test_spot' AND s.client_ref = ? AND s.profile_id = ?"
        " AND s.pulse_count > 0 AND s.started_utc >= ? ORDER BY s.id",
        (client, profile_id, since)).fetchall()
    if not spots:
        return SpotClearance(False, f"no test spot for {client} on {profile_id} in the last "
                             f"{policy.test_spot_valid_days} days")
    tested: dict[tuple[float, int | None], float] = {}
    spot_of: dict[tuple[float, int | None], int] = {}
    by_handpiece: set[float] = set()
    reasons = []
    cleared = False
    for spot_id, started, spot_skin in spots:
        for wavelength, handpiece, high in conn.execute(
                "SELECT wavelength_nm, handpiece, max(fluence_j_cm2) FROM pulses"
                " WHERE session_id = ? AND fluence_j_cm2 IS NOT NULL"
                " GROUP BY wavelength_nm, handpiece", (spot_id,)):
            nm = float(wavelength) if wavelength is not None else math.nan
            keys: list[tuple[float, int | None]] = [(nm, None)]
            if handpiece is not None:
                by_handpiece.add(nm)
                keys.append((nm, int(handpiece)))
            for key in keys:
                if float(high) > tested.get(key, 0.0):
                    tested[key], spot_of[key] = float(high), int(spot_id)
        ok, why = _spot_clears(conn, spot_id, started, spot_skin or skin_type, policy)
        cleared = cleared or ok
        reasons.append(why)
    return SpotClearance(cleared, "; ".join(reasons),
                         Tested(tested, spot_of, frozenset(by_handpiece)))


def readout_due(started_utc: str, skin_type: str | None,
                policy: CoursePolicy) -> tuple[datetime, float]:
    """Return when a test spot's read-out may clear the gate (UTC) and the skin type's wait
    in hours (a missing or unknown type waits as long as the longest, whichever type the
    site gave it to)."""
    wait_h = policy.wait_hours.get(skin_type or "", max(policy.wait_hours.values()))
    return localtime.local(started_utc, UTC) + timedelta(hours=wait_h), wait_h


def early_readout_refusal(session: dict[str, Any], grades: dict[str, int],
                          policy: CoursePolicy, at: datetime, where: tzinfo | None) -> str:
    """Return why a read-out taken at `at` is refused ("" when it is recorded): before its
    due time only a finding above the uneventful grade (an early blister) is recorded, since
    an uneventful read-out then says nothing about the reaction still to come."""
    due, wait_h = readout_due(str(session["started_utc"]), session["skin_type"], policy)
    if at >= due or max(grades.values(), default=0) > policy.uneventful_max_grade:
        return ""
    shown = due.astimezone(where).strftime("%Y-%m-%d %H:%M")
    return (f"session {session['id']}: a read-out before its due time {shown} "
            f"({localtime.zone_name(where)}), {wait_h:g} h after the test spot for skin type "
            f"{session['skin_type'] or '? (the longest wait)'}: before then only a finding "
            f"above grade {policy.uneventful_max_grade} is recorded; nothing was written")


def _spot_clears(conn: sqlite3.Connection, spot_id: int, started_utc: str,
                 skin_type: str | None, policy: CoursePolicy) -> tuple[bool, str]:
    due, wait_h = readout_due(started_utc, skin_type, policy)
    readouts = conn.execute(f"SELECT {', '.join(FINDINGS)}, read_utc FROM test_spot_readouts"
                            " WHERE session_id = ? ORDER BY id", (spot_id,)).fetchall()
    if not readouts:
        return False, f"test spot {spot_id} has no read-out (due from {utc_text(due)[:16]}Z)"
    for row in readouts:
        worst = max(row[:len(FINDINGS)])
        if worst > policy.uneventful_max_grade:
            found = ", ".join(f"{name} {grade}" for name, grade in zip(FINDINGS, row, strict=False)
                              if grade > policy.uneventful_max_grade)
            return False, f"test spot {spot_id} was not uneventful ({found})"
    if not any(localtime.local(row[-1], UTC) >= due for row in readouts):
        return False, (f"test spot {spot_id} was read out before its wait of {wait_h:g} h "
                       f"(skin type {skin_type or '?'}) ended at {utc_text(due)[:16]}Z")
    return True, f"test spot {spot_id} read out and uneventful"


class SpotFluenceCheck:
    """Raise `above_test_spot` for a pulse above the highest fluence tested at its wavelength
    and handpiece (its wavelength alone where it or the test spots carry none)."""

    __slots__ = ("above", "tested")

    def __init__(self, tested: Tested) -> None:
        self.tested = tested
        #: Pulses found above what was tested (or untested), for the recorder to act on.
        self.above = 0

    def check(self, row: tuple, events: list[EventRow]) -> None:
        """Append an alarm event when this pulse row passes the fluence tested for it."""
        fluence = row[PulseAt.FLUENCE_J_CM2]
        if fluence is None:
            return
        tested = self.tested
        key = tested.key(row[PulseAt.WAVELENGTH_NM], row[PulseAt.HANDPIECE])
        high = tested.fluence_j_cm2.get(key)
        if high is not None and fluence <= high:
            return
        seq = row[PulseAt.SEQ]
        where = Tested.where(key)
        if high is None:
            message = (f"pulse {seq if seq is not None else '?'}: {fluence:.4g} J/cm2 at "
                       f"{where}, which no test spot tested")
        else:
            message = (f"pulse {seq if seq is not None else '?'}: fluence {fluence:.4g} J/cm2 "
                       f"above the highest tested at {where} ({high:.4g} J/cm2, test spot "
                       f"{tested.spot_of[key]})")
        self.above += 1
        events.append(EventRow(row[PulseAt.RECEIVED_UNIX_S], "above_test_spot", "alarm", None,
                               message, raw="fluence_j_cm2"))


# -- writing -----------------------------------------------------------------------------------
def _insert(store: Store, table: str, rows: list[tuple], columns: tuple[str, ...],
            session_id: int | None = None) -> int:
    with store.conn:
        head = chain.insert(store.conn, table, rows, columns, session_id=session_id,
                            kind="course")
        last = int(store.conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0])
    chain.write_anchor(store.path, head)
    return last


#: What adds rows that belong with a new course (its consent) inside the transaction that
#: creates it: given the connection, the new id and the client, it returns the ranges written.
AddAlso = Callable[[sqlite3.Connection, int, str], list[tuple[str, int, int]]]


def create(store: Store, *, client: str, area: str, indication: str, sessions: int,
           window: Window, profile_id: str | None, note: str | None,
           also: AddAlso | None = None) -> int:
    """Record a new course; return its id. `also` adds rows that belong with it (its
    consent) in the same transaction and chain link, given the new id and the client, and
    returns their ranges: when it fails, nothing is written."""
    values = (client, area, indication, profile_id, sessions, window.min_days,
              window.max_days, window.target_days, note, utc_text(now()))
    if also is None:
        return _insert(store, "courses", [values], COURSE_COLUMNS)
    conn = store.conn
    with conn:
        conn.execute(f"INSERT INTO courses ({', '.join(COURSE_COLUMNS)})"
                     f" VALUES ({', '.join('?' * len(COURSE_COLUMNS))})", values)
        new_id = int(conn.execute("SELECT max(id) FROM courses").fetchone()[0])
        ranges = [("courses", new_id, new_id), *also(conn, new_id, client)]
        head = chain.append(conn, session_id=None, kind="course", ranges=ranges)
    chain.write_anchor(store.path, head)
    return new_id


def close(store: Store, course: Course, reason: str) -> None:
    """Record that a course is closed, and why."""
    _insert(store, "course_closures", [(course.id, reason, utc_text(now()))],
            ("course_id", "reason", "closed_utc"))


def attach(store: Store, course: Course, session_ids: list[int]) -> None:
    """Record past sessions as full sessions of the course (test spots stay test spots)."""
    rows = []
    for session_id in session_ids:
        kind, _ = kind_of(store.conn, session_id)
        rows.append((session_id, "test_spot" if kind == "test_spot" else "course", course.id,
                     "attach", None, None, None, utc_text(now())))
    _insert(store, "session_kinds", rows, KIND_COLUMNS)


def record_readout(store: Store, session_id: int, grades: dict[str, int], note: str | None,
                   user_id: str | None) -> int:
    """Record a test spot's read-out (each finding graded 0-3); return its id."""
    values = (session_id, *(grades.get(name, 0) for name in FINDINGS), note, user_id,
              utc_text(now()))
    return _insert(store, "test_spot_readouts", [values], READOUT_COLUMNS, session_id)


def require_session(conn: sqlite3.Connection, session_id: int, path: object) -> dict[str, Any]:
    """Return a session's row as a dict, or raise LaserlogError naming the database."""
    cur = conn.execute("SELECT id, client_ref, area, skin_type, started_utc, pulse_count,"
                       " profile_id FROM sessions WHERE id = ?", (session_id,))
    row = cur.fetchone()
    if row is None:
        raise LaserlogError(f"session {session_id}: no such session in {path} "
                            "(see `laserlog sessions list`); nothing was written")
    return dict(zip([d[0] for d in cur.description], tuple(row), strict=True))
