"""A course on a time axis, as `laserlog course show` prints it and the web view draws it.

One entry per session in date order (site's local dates): its kind, the days since the
previous full session against the window (the window's first and last day too), the dose
delivered (energy, mean and highest fluence, per pass) and the course's cumulative energy;
test spots with their read-outs; overrides and late starts marked; the course's photos.
"""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from laserlog.config.courses import FINDINGS
from laserlog.config.siteconfig import site_for
from laserlog.domain import localtime
from laserlog.recording import courses, photos
from laserlog.review import outcomes
from laserlog.review.summary import pass_totals

if TYPE_CHECKING:
    from laserlog.storage.store import Store


def timeline(conn: sqlite3.Connection, course: courses.Course,
             where: tzinfo | None) -> list[dict[str, Any]]:
    """Return the course's sessions in order, each with its window, dose and cumulative
    energy; a full session's window runs from the previous full session's local date."""
    out: list[dict[str, Any]] = []
    window = course.window
    total_j = 0.0
    previous: date | None = None
    number = 0
    sessions = courses.course_sessions(conn, course.id)
    late = _late_sessions(conn, [s["id"] for s in sessions])
    for s in sessions:
        day = localtime.local(s["started_utc"], where).date()
        full = s["kind"] == "course" and s["pulse_count"] > 0
        entry: dict[str, Any] = {
            "session": s["id"], "started_utc": s["started_utc"], "date": day.isoformat(),
            "kind": s["kind"], "full": full, "number": None, "days": None, "status": "",
            "window_from": None, "window_to": None, "pulses": s["pulse_count"],
            "energy_j": float(s["total_energy_j"]),
            "max_fluence_j_cm2": s["max_fluence_j_cm2"], "mean_fluence_j_cm2": None,
            "cumulative_energy_j": None, "override_by": s["override_by"],
            "override_reason": s["override_reason"], "late": late.get(s["id"]),
            "readouts": [], "passes": []}
        if full and previous is not None and s["resumes_session_id"] is None:
            since = (day - previous).days
            entry["days"] = since
            entry["status"] = ("early" if since < window.min_days else "late"
                               if since > window.max_days else "in window")
            entry["window_from"] = (previous + timedelta(days=window.min_days)).isoformat()
            entry["window_to"] = (previous + timedelta(days=window.max_days)).isoformat()
        if full:
            total_j += entry["energy_j"]
            previous = day
            number += s["resumes_session_id"] is None
            entry["number"] = number
            entry["cumulative_energy_j"] = total_j
        entry["mean_fluence_j_cm2"] = conn.execute(
            "SELECT avg(fluence_j_cm2) FROM pulses WHERE session_id = ?",
            (s["id"],)).fetchone()[0]
        if s["kind"] == "test_spot":
            entry["readouts"] = readouts(conn, s["id"])
        entry["passes"] = pass_totals(conn, s["id"])
        out.append(entry)
    return out


def next_window(course: courses.Course, entries: list[dict[str, Any]]) -> tuple[str, str] | None:
    """Return the local dates the next full session's window opens and closes (None when the
    course is closed, complete, or has no full session yet)."""
    full = [e for e in entries if e["full"]]
    if not course.is_open or not full or (full[-1]["number"] or 0) >= course.planned_sessions:
        return None
    last = date.fromisoformat(full[-1]["date"])
    return ((last + timedelta(days=course.window.min_days)).isoformat(),
            (last + timedelta(days=course.window.max_days)).isoformat())


def readouts(conn: sqlite3.Connection, session_id: int) -> list[dict[str, Any]]:
    """Return a test spot's read-outs in order: when, the findings above 0, the note."""
    out = []
    for r in conn.execute(f"SELECT {', '.join(FINDINGS)}, read_utc, note FROM"
                          " test_spot_readouts WHERE session_id = ? ORDER BY id", (session_id,)):
        found = ", ".join(f"{n} {g}" for n, g in zip(FINDINGS, r, strict=False) if g)
        out.append({"read_utc": r[len(FINDINGS)], "findings": found or "no finding",
                    "worst": max(r[:len(FINDINGS)]), "note": r[len(FINDINGS) + 1]})
    return out


def _late_sessions(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, str]:
    if not session_ids:
        return {}
    marks = ", ".join("?" * len(session_ids))
    return {int(sid): str(message) for sid, message in conn.execute(
        f"SELECT session_id, message FROM events WHERE kind = 'interval_late'"
        f" AND session_id IN ({marks})", session_ids)}


def format_course(store: Store, course: courses.Course) -> str:
    """Return the course's plan and its sessions on a time axis."""
    where = site_for(store.path).zone
    window = course.window
    lines = [f"Course {course.id}  [{'open' if course.is_open else 'closed'}]  client "
             f"{course.client_ref}  area {course.area}  indication {course.indication}",
             f"  plan      {course.planned_sessions} sessions, every {window.text()} days"
             + (f" (target {window.target_days})" if window.target_days is not None else "")
             + (f" on {course.profile_id}" if course.profile_id else "")
             + f"   created {course.created_utc[:10]}"]
    if course.note:
        lines.append(f"  note      {course.note}")
    if not course.is_open:
        lines.append(f"  closed    {(course.closed_utc or '')[:10]}: {course.close_reason}")
    lines.append(f"  {'date':<10}  {'session':>7}  {'kind':<10} {'days':>5}  {'window':<9} "
                 f"{'pulses':>6} {'energy J':>9} {'total J':>9} {'max J/cm2':>9}")
    total_j = 0.0
    number = 0
    for e in timeline(store.conn, course, where):
        days = "" if e["days"] is None else str(e["days"])
        mark = {"early": "EARLY", "late": "LATE"}.get(e["status"], e["status"])
        if e["full"]:
            total_j = e["cumulative_energy_j"]
            number = e["number"]
        kind = f"#{e['number']}" if e["full"] else ("test spot" if e["kind"] == "test_spot"
                                                   else "no pulses")
        lines.append(f"  {e['date']:<10}  {e['session']:>7}  {kind:<10} {days:>5}  {mark:<9} "
                     f"{e['pulses']:>6} {e['energy_j']:>9.3f} {total_j:>9.3f} "
                     f"{_num(e['max_fluence_j_cm2']):>9}")
        if e["override_by"]:
            lines.append(f"  {'':<10}  {'':>7}  override by {e['override_by']}: "
                         f"{e['override_reason']}")
        for r in e["readouts"]:
            lines.append(f"  {'':<10}  {'':>7}  read out {r['read_utc'][:16]}Z: "
                         f"{r['findings']}" + (f" ({r['note']})" if r["note"] else ""))
    lines.append(f"  {number} of {course.planned_sessions} sessions delivered, {total_j:.3f} J "
                 "in all")
    followed = outcomes.for_course(store.conn, course)
    if followed:
        lines.append(f"  outcomes  {'date':<10}  {'metric':<16} {'value':>8}  {'day':>4}  "
                     f"{'sessions':>8}  {'total J':>9}")
        for o in followed:
            day = "-" if o["days"] is None else str(o["days"])
            lines.append(f"            {o['date']:<10}  {o['metric'][:16]:<16} "
                         f"{o['value']:>8g}  {day:>4}  {o['sessions']:>8}  "
                         f"{o['energy_j']:>9.3f}")
    shown = photos.listed(store.conn, course.id)
    if shown:
        lines.append(f"  photos    {len(shown)} by reference, in the site's photo folder:")
        lines += photo_lines(shown, "  ")
    return "\n".join(lines)


def photo_lines(rows: list[photos.Photo], indent: str = "") -> list[str]:
    """Return recorded photos as `photo list` and `course show` print them."""
    lines = [f"{indent}{'ID':>4}  {'course':>6} {'session':>7}  {'kind':<9} {'view':<5} "
             f"{'added':<10} {'by':<10} {'SHA-256':<12} {'consent':<12} path"]
    for p in rows:
        session = "-" if p.session_id is None else str(p.session_id)
        lines.append(f"{indent}{p.id:>4}  {p.course_id:>6} {session:>7}  {p.kind:<9} "
                     f"{p.view:<5} {p.added_utc[:10]:<10} {p.added_by[:10]:<10} "
                     f"{p.sha256[:12]:<12} {(p.consent_sha256 or '-')[:12]:<12} "
                     f"{p.relative_path}" + (f"  ({p.area})" if p.area else ""))
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
