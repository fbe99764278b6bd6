"""Outcomes over a course: scales entered by hand and skin-analysis numbers imported.

`add` records one score on a scale (GAIS 1-5, an investigator's pore score 0-4,
satisfaction 1-5) for a course. `import_csv` reads a long CSV with exactly the columns
`client,date,area,metric,value` (UTF-8, at most 100 000 rows): every row is checked before
any is written, and the whole file goes in one transaction, or nothing does. An imported row
belongs to its client's course for that area (the newest created on or before its date),
else to none.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from laserlog.domain.reactions import SCALES
from laserlog.errors import LaserlogError
from laserlog.recording import courses
from laserlog.review.reactions import Unlock
from laserlog.storage import chain
from laserlog.storage.store import Store

MAX_ROWS = 100_000
CSV_COLUMNS = ("client", "date", "area", "metric", "value")
COLUMNS = ("course_id", "client_ref", "area", "metric", "value", "assessed_date", "source",
           "source_file", "source_sha256", "user_id", "recorded_utc")


class OutcomeError(LaserlogError):
    """Raise when an outcome or an import cannot be recorded as given."""


def _day(text: str, where: str) -> date:
    try:
        if len(text.strip()) != 10:
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    except ValueError:
        raise OutcomeError(f"{where}: {text!r} is not a date; expected YYYY-MM-DD; nothing was "
                           "written") from None


def add(store: Store, course: courses.Course, scale: str, score: int, day_text: str,
        by: str | None, unlock: Unlock) -> int:
    """Record one score on a scale for a course; return its id.

    `by`, when given, is asked for their passphrase (`unlock`, as an adverse event's
    reporter is) once every other check has passed; a wrong one writes nothing.
    """
    if scale not in SCALES:
        raise OutcomeError(f"--scale {scale!r}: expected one of {', '.join(SCALES)}; nothing "
                           "was written")
    low, high = SCALES[scale]
    if not low <= score <= high:
        raise OutcomeError(f"--score {score}: outside the {scale} scale ({low}-{high}); "
                           "nothing was written")
    day = _day(day_text, "--date")
    if day > courses.now().date():
        raise OutcomeError(f"--date {day.isoformat()}: in the future; nothing was written")
    user_id = unlock(by).user.user_id if by is not None else None
    values = (course.id, course.client_ref, course.area, scale, float(score), day.isoformat(),
              "entered", None, None, user_id, courses.utc_text(courses.now()))
    return _write(store, [values])


def import_csv(store: Store, path: Path) -> int:
    """Import a skin-analysis CSV; return the rows written (all of them, or raise)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OutcomeError(f"{path}: cannot be read ({exc.strerror}); nothing was written") \
            from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise OutcomeError(f"{path}, line {line}: not UTF-8 text (byte {exc.start}); "
                           "nothing was written") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise OutcomeError(f"{path}: empty; expected the header {','.join(CSV_COLUMNS)}; "
                           "nothing was written")
    found = [h.strip().lower() for h in header]
    missing = [c for c in CSV_COLUMNS if c not in found]
    extra = [h for h in found if h not in CSV_COLUMNS]
    if missing or extra or len(found) != len(CSV_COLUMNS):
        said = "; ".join(filter(None, [
            f"missing column(s) {', '.join(missing)}" if missing else "",
            f"extra column(s) {', '.join(extra)}" if extra else "",
            "a column twice" if not missing and not extra else ""]))
        raise OutcomeError(f"{path}, line 1: {said}; expected exactly "
                           f"{','.join(CSV_COLUMNS)}; nothing was written")
    at = {name: found.index(name) for name in CSV_COLUMNS}
    digest = hashlib.sha256(data).hexdigest()
    recorded = courses.utc_text(courses.now())
    today = courses.now().date()
    rows: list[tuple] = []
    course_of = _course_finder(store.conn)
    for number, record in enumerate(reader, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(rows) >= MAX_ROWS:
            raise OutcomeError(f"{path}, line {number}: more than {MAX_ROWS} rows; split the "
                               "file; nothing was written")
        if len(record) != len(CSV_COLUMNS):
            raise OutcomeError(f"{path}, line {number}: {len(record)} field(s), expected "
                               f"{len(CSV_COLUMNS)}; nothing was written")
        client, day_text, area, metric, value_text = (record[at[c]].strip()
                                                      for c in CSV_COLUMNS)
        where = f"{path}, line {number}"
        if not client or not metric:
            raise OutcomeError(f"{where}: client and metric are required; nothing was written")
        day = _day(day_text, where)
        if day > today:
            raise OutcomeError(f"{where}: date {day.isoformat()} is in the future; nothing "
                               "was written")
        try:
            value = float(value_text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise OutcomeError(f"{where}: value {value_text!r} is not a finite number; "
                               "nothing was written")
        area_text = " ".join(area.split()) or None
        rows.append((course_of(client, area_text, day.isoformat()), client, area_text,
                     metric[:80], value, day.isoformat(), "import", path.name[:200], digest,
                     None, recorded))
    if not rows:
        raise OutcomeError(f"{path}: no rows under the header; nothing was written")
    _write(store, rows)
    return len(rows)


def _course_finder(conn: sqlite3.Connection) -> Any:
    known = conn.execute("SELECT id, client_ref, lower(area), created_utc FROM courses"
                         " ORDER BY id").fetchall()

    def find(client: str, area: str | None, day: str) -> int | None:
        if area is None:
            return None
        mine = [c for c in known if c[1] == client and c[2] == area.lower()]
        before = [c for c in mine if c[3][:10] <= day]
        chosen = (before or mine)[-1:]
        return int(chosen[0][0]) if chosen else None
    return find


def _write(store: Store, rows: list[tuple]) -> int:
    with store.conn:
        head = chain.insert(store.conn, "outcomes", rows, COLUMNS, kind="outcome")
        last = int(store.conn.execute("SELECT max(id) FROM outcomes").fetchone()[0])
    chain.write_anchor(store.path, head)
    return last


def for_course(conn: sqlite3.Connection, course: courses.Course) -> list[dict[str, Any]]:
    """Return a course's outcomes by date, each with the sessions, cumulative energy and
    days since the first full session up to that date."""
    cur = conn.execute("SELECT assessed_date, metric, value, source FROM outcomes"
                       " WHERE course_id = ? ORDER BY assessed_date, id", (course.id,))
    found = [dict(zip(("date", "metric", "value", "source"), tuple(r), strict=True))
             for r in cur.fetchall()]
    full = [s for s in courses.course_sessions(conn, course.id)
            if s["kind"] == "course" and s["pulse_count"] > 0]
    first = full[0]["started_utc"][:10] if full else None
    for o in found:
        before = [s for s in full if s["started_utc"][:10] <= o["date"]]
        o["sessions"] = sum(1 for s in before if s["resumes_session_id"] is None)
        o["energy_j"] = sum(float(s["total_energy_j"]) for s in before)
        o["days"] = ((date.fromisoformat(o["date"]) - date.fromisoformat(first)).days
                     if first else None)
    return found
