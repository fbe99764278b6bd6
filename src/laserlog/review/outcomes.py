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
import math
import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from laserlog.config.files import NotARegularFile, control_character, open_regular, stored_name
from laserlog.config.siteconfig import site_for
from laserlog.domain import localtime
from laserlog.domain.reactions import SCALES
from laserlog.errors import LaserlogError
from laserlog.recording import courses
from laserlog.recording.contract import Contract
from laserlog.review.reactions import Unlock, today
from laserlog.storage import chain
from laserlog.storage.store import Store

MAX_ROWS = 100_000
#: The longest line of an import; a row of five short fields is far below it.
MAX_LINE_BYTES = 2**16
MAX_METRIC_CHARS = 80
MAX_AREA_CHARS = 200
#: A value as a skin analyser writes it: decimal, optionally with an exponent; no 1_0 or nan.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
CSV_COLUMNS = ("client", "date", "area", "metric", "value")
COLUMNS = ("course_id", "client_ref", "area", "metric", "value", "assessed_date", "source",
           "source_file", "source_sha256", "user_id", "recorded_utc")


class OutcomeError(LaserlogError):
    """Raise when an outcome or an import cannot be recorded as given."""


def _day(text: str, where: str) -> date:
    try:
        return localtime.calendar_day(text)
    except ValueError:
        raise OutcomeError(f"{where}: {text[:40]!r} is not a date; expected YYYY-MM-DD; "
                           "nothing was written") from None


#: A baseline may be scored at the consultation, before a course is planned, but not longer
#: before it than this; a skin-analysis row older than EARLIEST_DAY is a typing error.
BASELINE_BEFORE_PLAN_DAYS = 366
EARLIEST_DAY = date(2000, 1, 1)


def _today(store: Store) -> date:
    """Return today in the site's time zone of this database, by the course rules' clock."""
    return today(site_for(store.path).zone)


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
    if day > _today(store):
        raise OutcomeError(f"--date {day.isoformat()}: in the future; nothing was written")
    planned = date.fromisoformat(course.created_utc[:10])
    if (planned - day).days > BASELINE_BEFORE_PLAN_DAYS:
        raise OutcomeError(f"--date {day.isoformat()}: more than {BASELINE_BEFORE_PLAN_DAYS} "
                           f"days before course {course.id} was planned ({planned}); expected a "
                           "baseline or follow-up date; nothing was written")
    user_id = unlock(by).user.user_id if by is not None else None
    values = (course.id, course.client_ref, course.area, scale, float(score), day.isoformat(),
              "entered", None, None, user_id, courses.utc_text(courses.now()))
    return _write(store, [values])


def import_csv(store: Store, path: Path) -> int:
    """Import a skin-analysis CSV; return the rows written (all of them, or raise).

    The file is read as a stream: a row past MAX_ROWS stops the import before anything is
    written, whatever the file's size.
    """
    try:
        fd = open_regular(path)
    except NotARegularFile as exc:
        raise OutcomeError(f"{path}: {exc.kind.removeprefix('not ')}, not a CSV file; "
                           "nothing was written") from None
    except OSError as exc:
        raise OutcomeError(f"{path}: cannot be read ({exc.strerror}); nothing was written") \
            from None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as raw:
        rows = _checked_rows(store, path, _lines(raw, path, digest))
    for row in rows:
        row[8] = digest.hexdigest()
    _write(store, [tuple(row) for row in rows])
    return len(rows)


def _lines(raw: BinaryIO, path: Path, digest: Any) -> Iterator[str]:
    """Yield a file's lines as text (a leading BOM dropped), each hashed as read; raise
    naming the line that is not UTF-8 or too long."""
    number = offset = 0
    while line := raw.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise OutcomeError(f"{path}, line {number}: longer than {MAX_LINE_BYTES} bytes; "
                               "nothing was written")
        digest.update(line)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OutcomeError(f"{path}, line {number}: not UTF-8 text (byte "
                               f"{offset + exc.start}); nothing was written") from None
        offset += len(line)
        yield text.removeprefix("\ufeff") if number == 1 else text


def _checked_rows(store: Store, path: Path, lines: Iterator[str]) -> list[list[Any]]:
    """Return the rows to write (the file's SHA-256 still to fill in), every one checked;
    raise naming the file and line of the first that is wrong."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
        if header is None:
            raise OutcomeError(f"{path}: empty; expected the header {','.join(CSV_COLUMNS)}; "
                               "nothing was written")
        at = _columns(path, header)
        rows: list[list[Any]] = []
        check = _RowCheck(store, path)
        while True:
            number = reader.line_num + 1
            record = next(reader, None)
            if record is None:
                break
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= MAX_ROWS:
                raise OutcomeError(f"{path}, line {number}: more than {MAX_ROWS} rows; split "
                                   "the file; nothing was written")
            if len(record) != len(CSV_COLUMNS):
                raise OutcomeError(f"{path}, line {number}: {len(record)} field(s), expected "
                                   f"{len(CSV_COLUMNS)}; nothing was written")
            rows.append(check(f"{path}, line {number}", *(record[at[c]] for c in CSV_COLUMNS)))
    except csv.Error as exc:
        raise OutcomeError(f"{path}, line {reader.line_num}: not CSV ({exc}); nothing was "
                           "written") from None
    if not rows:
        raise OutcomeError(f"{path}: no rows under the header; nothing was written")
    return rows


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    """Return where each column is, or raise naming what is missing, extra or twice."""
    found = [h.strip().lower() for h in header]
    missing = [c for c in CSV_COLUMNS if c not in found]
    extra = [h[:40] for h in found if h not in CSV_COLUMNS]
    if missing or extra or len(found) != len(CSV_COLUMNS):
        said = "; ".join(filter(None, [
            f"missing column(s) {', '.join(missing)}" if missing else "",
            f"extra column(s) {', '.join(extra)}" if extra else "",
            "a column twice" if not missing and not extra else ""]))
        raise OutcomeError(f"{path}, line 1: {said}; expected exactly "
                           f"{','.join(CSV_COLUMNS)}; nothing was written")
    return {name: found.index(name) for name in CSV_COLUMNS}


class _RowCheck:
    """Turn one CSV row into the outcome row to write, or raise naming its line."""

    def __init__(self, store: Store, path: Path) -> None:
        self.client_ref = Contract.for_database(store.path).client_ref
        self.course_of = _course_finder(store.conn)
        self.today = _today(store)
        self.recorded = courses.utc_text(courses.now())
        self.file_name = stored_name(path)

    def __call__(self, where: str, client: str, day_text: str, area: str, metric: str,
                 value_text: str) -> list[Any]:
        for name, cell in (("client", client), ("area", area), ("metric", metric)):
            at = control_character(cell)
            if at is not None:
                raise OutcomeError(f"{where}: {name} holds control character "
                                   f"U+{ord(cell[at]):04X}; nothing was written")
        client, metric, area_text = client.strip(), metric.strip(), " ".join(area.split())
        if not client or not metric:
            raise OutcomeError(f"{where}: client and metric are required; nothing was written")
        try:
            client = self.client_ref(client)
        except LaserlogError as exc:
            raise OutcomeError(f"{where}: {exc}; nothing was written") from None
        if len(metric) > MAX_METRIC_CHARS or len(area_text) > MAX_AREA_CHARS:
            raise OutcomeError(f"{where}: a metric of at most {MAX_METRIC_CHARS} and an area "
                               f"of at most {MAX_AREA_CHARS} characters expected; nothing was "
                               "written")
        day = _day(day_text, where)
        if day > self.today:
            raise OutcomeError(f"{where}: date {day.isoformat()} is in the future; nothing "
                               "was written")
        if day < EARLIEST_DAY:
            raise OutcomeError(f"{where}: date {day.isoformat()} is before {EARLIEST_DAY}; "
                               "expected the day the skin was analysed; nothing was written")
        value = float(value_text) if _NUMBER.fullmatch(value_text.strip()) else math.nan
        if not math.isfinite(value):
            raise OutcomeError(f"{where}: value {value_text[:40]!r} is not a finite number; "
                               "nothing was written")
        return [self.course_of(client, area_text or None, day.isoformat()), client,
                area_text or None, metric, value, day.isoformat(), "import", self.file_name,
                None, None, self.recorded]


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
    """Return a course's outcomes by date, each with who entered it (or the file it came
    from), the sessions, cumulative energy and days since the first full session up to that
    date, and the last full session on or before it (`after_session`, None: none yet)."""
    cur = conn.execute("SELECT assessed_date, metric, value, source, user_id, source_file"
                       " FROM outcomes WHERE course_id = ? ORDER BY assessed_date, id",
                       (course.id,))
    found = [dict(zip(("date", "metric", "value", "source", "user_id", "source_file"),
                      tuple(r), strict=True)) for r in cur.fetchall()]
    full = [s for s in courses.course_sessions(conn, course.id)
            if s["kind"] == "course" and s["pulse_count"] > 0]
    first = full[0]["started_utc"][:10] if full else None
    for o in found:
        before = [s for s in full if s["started_utc"][:10] <= o["date"]]
        o["sessions"] = sum(1 for s in before if s["resumes_session_id"] is None)
        o["after_session"] = before[-1]["id"] if before else None
        o["energy_j"] = sum(float(s["total_energy_j"]) for s in before)
        o["days"] = ((date.fromisoformat(o["date"]) - date.fromisoformat(first)).days
                     if first else None)
    return found
