"""A course on a time axis, as `laserlog course show` prints it.

One line per session in date order (site's local dates): its kind, the days since the
previous full session against the window, the dose delivered and the course's cumulative
energy; test spots with their read-outs; overrides and late starts marked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from laserlog.config.courses import FINDINGS
from laserlog.config.siteconfig import site_for
from laserlog.domain import localtime
from laserlog.recording import courses
from laserlog.review import outcomes

if TYPE_CHECKING:
    from laserlog.storage.store import Store


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
    previous: str | None = None
    number = 0
    for s in courses.course_sessions(store.conn, course.id):
        day = localtime.local(s["started_utc"], where).date().isoformat()
        full = s["kind"] == "course" and s["pulse_count"] > 0
        days = mark = ""
        if full and previous is not None and s["resumes_session_id"] is None:
            since = courses.calendar_days(previous, localtime.local(s["started_utc"], where),
                                          where)
            days = str(since)
            mark = ("EARLY" if since < window.min_days else "LATE" if since > window.max_days
                    else "in window")
        if full:
            total_j += float(s["total_energy_j"])
            previous = s["started_utc"]
            number += s["resumes_session_id"] is None
        kind = f"#{number}" if full else ("test spot" if s["kind"] == "test_spot"
                                          else "no pulses")
        lines.append(f"  {day:<10}  {s['id']:>7}  {kind:<10} {days:>5}  {mark:<9} "
                     f"{s['pulse_count']:>6} {float(s['total_energy_j']):>9.3f} "
                     f"{total_j:>9.3f} "
                     f"{_num(s['max_fluence_j_cm2']):>9}")
        if s["override_by"]:
            lines.append(f"  {'':<10}  {'':>7}  override by {s['override_by']}: "
                         f"{s['override_reason']}")
        if s["kind"] == "test_spot":
            for r in store.conn.execute(f"SELECT {', '.join(FINDINGS)}, read_utc, note FROM"
                                        " test_spot_readouts WHERE session_id = ? ORDER BY id",
                                        (s["id"],)):
                found = ", ".join(f"{n} {g}" for n, g in zip(FINDINGS, r, strict=False) if g)
                lines.append(f"  {'':<10}  {'':>7}  read out {r[5][:16]}Z: "
                             f"{found or 'no finding'}" + (f" ({r[6]})" if r[6] else ""))
    done = number
    lines.append(f"  {done} of {course.planned_sessions} sessions delivered, {total_j:.3f} J "
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
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
