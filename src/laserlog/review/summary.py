"""Plain-text and JSON views of sessions and profiles, for the terminal."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from typing import TYPE_CHECKING, Any

from laserlog.review.reactions import assessment_lines

if TYPE_CHECKING:
    from laserlog.config.profile import Profile
    from laserlog.storage.store import Store

REGIME_NAMES = {"ps": "picosecond", "ns": "nanosecond", "long": "long pulse"}


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "-" if value is None else format(value, fmt)


def format_sessions(rows: list[dict[str, Any]]) -> str:
    """Return a table of sessions, one line each."""
    if not rows:
        return "no sessions recorded yet"
    head = (f"{'id':>5}  {'started (UTC)':<24} {'status':<11} {'profile':<12} {'operator':<10} "
            f"{'client':<10} {'pulses':>7} {'energy J':>10} {'max F J/cm2':>11} regimes")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['id']:>5}  {r['started_utc']:<24} {r['status']:<11} {r['profile_id']:<12} "
            f"{r['operator_id']:<10} {r['client_ref']:<10} {r['pulse_count']:>7} "
            f"{r['total_energy_j']:>10.3f} {_num(r['max_fluence_j_cm2'], '.3f'):>11} "
            f"{r['regimes'] or '-'}"
            + (f"  signed {r['signatures']}" if r.get("signatures", "-") != "-" else ""))
    return "\n".join(lines)


def session_duration(started: str | None, ended: str | None) -> str:
    """Return how long a session lasted ('20:14', '1:02:09'); '' when an end is missing,
    unreadable or before the start."""
    from datetime import datetime

    try:
        start = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
    except ValueError:
        return ""
    seconds = int((end - start).total_seconds())
    if seconds < 0:
        return ""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_session(store: Store, session_id: int, events_shown: int = 12) -> str:
    """Return a one-screen summary of a session: who, what console, totals, its last events."""
    s = store.session(session_id)
    if s is None:
        return f"no session {session_id}"
    regimes = ", ".join(REGIME_NAMES.get(r, r) for r in s["regimes"].split(",") if r) or "-"
    events = store.events(session_id)
    unknown = unknown_dose_shots(store.conn, session_id, events)
    lasted = session_duration(s["started_utc"], s["ended_utc"])
    # Each line fits 80 columns for the usual values: the summary is read at a terminal.
    lines = [
        f"Session {s['id']}  [{s['status']}]  {s['uuid']}",
        f"  console   {s['profile_id']}  model {s['model']}  serial {s['serial'] or 'unknown'}",
        f"  port      {s['port']}",
        f"  operator  {s['operator_id']}   client {s['client_ref']}   area {s['area'] or '-'}",
        f"  skin type {s['skin_type'] or '-'}   eyewear checked "
        f"{'yes' if s['eyewear_checked'] else 'NO'}",
        f"  started   {s['started_utc']}   ended {s['ended_utc'] or '-'}",
    ]
    if lasted or s["end_reason"]:
        lines.append(f"  lasted    {lasted or '-'}"
                     + (f"   ({s['end_reason']})" if s["end_reason"] else ""))
    lines += [
        f"  pulses    {s['pulse_count']}   total energy {s['total_energy_j']:.4f} J"
        f"   regimes {regimes}",
        f"  fluence   {_num(s['min_fluence_j_cm2'], '.3f')}..{_num(s['max_fluence_j_cm2'], '.3f')}"
        " J/cm2" + (f"   + {unknown} shot(s) of unknown dose" if unknown else ""),
        f"  missing   {s['missing_pulses']} pulse(s) in gaps   events {s['event_count']}",
    ]
    lines += course_lines(store.conn, session_id, events)
    lines += envelope_lines(events)
    lines += aftercare_lines(store.conn, session_id)
    lines += pass_lines(store.conn, session_id)
    lines += assessment_lines(store.conn, session_id)
    if events:
        lines.append("  events:")
        shown = events[len(events) - max(0, events_shown):]
        if len(events) > len(shown):
            lines.append(f"    ... {len(events) - len(shown)} earlier event(s)")
        for e in shown:
            mark = {"alarm": "!!", "warning": "! ", "info": "  "}[e["severity"]]
            count = f" x{e['count']}" if e["count"] > 1 else ""
            head = f"  {mark} {e['received_utc']} {e['severity'].upper():<7} {e['kind']}{count}"
            if len(head) + 2 + len(e["message"]) <= 80:
                lines.append(f"{head}: {e['message']}")
            else:  # a long message under its event, wrapped, rather than wrapped at column 0
                lines.append(head)
                lines += textwrap.wrap(e["message"], 74, initial_indent="      ",
                                       subsequent_indent="      ") or ["      -"]
    from laserlog.review.signoff import review_lines

    lines += review_lines(store.conn, session_id)  # corrections, signatures (VALID/INVALID)
    return "\n".join(lines)


#: Events that say how a session stands against its course's window.
COURSE_EVENTS = ("interval_late", "interval_override")


def course_lines(conn: sqlite3.Connection, session_id: int,
                 events: list[dict[str, Any]]) -> list[str]:
    """Return the summary's lines on the session's kind, course and window."""
    row = conn.execute("SELECT kind, course_id, override_by, override_reason FROM session_kind"
                       " WHERE session_id = ?", (session_id,)).fetchone()
    if row is None:
        return []
    kind, course_id, by, _ = row
    text = {"course": "course session", "one_off": "one-off", "test_spot": "test spot"}[kind]
    lines = [f"  kind      {text}" + (f" of course {course_id}" if course_id else "")
             + (f"   override by {by}" if by else "")]
    above = sum(e["count"] for e in events if e["kind"] == "above_test_spot")
    for e in events:
        if e["kind"] in COURSE_EVENTS:
            lines.append(f"  !  {e['kind'].replace('_', ' ')}: {e['message']}")
    if above:
        lines.append(f"  !! {above} pulse(s) above the fluence the client's test spot tested")
    return lines


def aftercare_lines(conn: sqlite3.Connection, session_id: int) -> list[str]:
    """Return the summary's line on the aftercare given: none for a one-off without it."""
    from laserlog.review.documents import latest_aftercare

    given = latest_aftercare(conn, session_id)
    if given is not None:
        return [f"  aftercare {given.version} ({given.file_name}) given "
                f"{given.at_utc[:16].replace('T', ' ')} UTC"]
    row = conn.execute("SELECT kind FROM session_kind WHERE session_id = ?",
                       (session_id,)).fetchone()
    if row is None or row[0] == "one_off":
        return []
    return [f"  aftercare none recorded (`laserlog aftercare {session_id}` records it)"]


def envelope_lines(events: list[dict[str, Any]]) -> list[str]:
    """Return the summary's lines on a wavelength to avoid the start warned of and on pulses
    outside the skin type's envelope (none within)."""
    passed = {"alarm": 0, "warning": 0}
    for e in events:
        if e["kind"] == "out_of_envelope" and e["severity"] in passed:
            passed[e["severity"]] += e["count"]
    lines = [f"  !  envelope avoid: {e['message']}" for e in events
             if e["kind"] == "envelope_avoid"]
    if passed["alarm"]:
        lines.append(f"  !! {passed['alarm']} pulse(s) beyond the skin type's envelope "
                     "(above its maximum, or at a wavelength to avoid)")
    if passed["warning"]:
        lines.append(f"  !  {passed['warning']} pulse(s) above the skin type's recommended "
                     "fluence")
    return lines


def pass_totals(conn: sqlite3.Connection, session_id: int) -> list[dict[str, Any]]:
    """Return per pass (as marked): pass number, sub-area, pulses, energy, mean and max
    fluence; pulses before the first mark are pass None. Empty when no pass was marked."""
    starts = conn.execute("SELECT pass_number, sub_area, started_unix_s FROM pass_starts"
                          " WHERE session_id = ? ORDER BY started_unix_s, id",
                          (session_id,)).fetchall()
    if not starts:
        return []
    bounds = [(None, None, float("-inf"))] + [tuple(r) for r in starts]
    out = []
    for index, (number, sub_area, start) in enumerate(bounds):
        end = bounds[index + 1][2] if index + 1 < len(bounds) else float("inf")
        row = conn.execute(
            "SELECT count(*), coalesce(sum(energy_j), 0), avg(fluence_j_cm2),"
            " max(fluence_j_cm2) FROM pulses WHERE session_id = ? AND received_unix_s >= ?"
            " AND received_unix_s < ?", (session_id, start, end)).fetchone()
        if number is None and not row[0]:
            continue
        out.append({"pass_number": number, "sub_area": sub_area, "pulses": row[0],
                    "energy_j": row[1], "mean_fluence_j_cm2": row[2],
                    "max_fluence_j_cm2": row[3]})
    return out


def pass_lines(conn: sqlite3.Connection, session_id: int) -> list[str]:
    """Return the summary's per-pass lines (none when no pass was marked)."""
    lines = []
    for p in pass_totals(conn, session_id):
        name = f"pass {p['pass_number']}" if p["pass_number"] is not None else "before pass 1"
        where = f" ({p['sub_area']})" if p["sub_area"] else ""
        lines.append(f"  {name + where:<22} {p['pulses']:>6} pulses  {p['energy_j']:.4f} J"
                     f"  fluence mean {_num(p['mean_fluence_j_cm2'], '.3f')}"
                     f" max {_num(p['max_fluence_j_cm2'], '.3f')} J/cm2")
    return (["  passes:"] + lines) if lines else []


def format_pulses(store: Store, session_id: int, page_size: int = 5000) -> str:
    """Return every pulse of a session as a table (paged from the database)."""
    head = (f"{'seq':>8} {'received (UTC)':<26} {'duration ps':>11} {'regime':<6} {'energy J':>10} "
            f"{'fluence J/cm2':>13} {'spot mm':>7} {'nm':>6} {'hp':>3}")
    lines = [head]
    after = 0
    while True:
        page = store.pulses(session_id, after_id=after, limit=page_size)
        if not page:
            break
        for p in page:
            lines.append(
                f"{_num(p['seq'], 'd'):>8} {p['received_utc']:<26} {p['pulse_duration_ps']:>11.1f} "
                f"{p['regime']:<6} {_num(p['energy_j'], '.5f'):>10} {_num(p['fluence_j_cm2'], '.4f'):>13} "
                f"{_num(p['spot_mm'], '.2f'):>7} {_num(p['wavelength_nm'], '.0f'):>6} "
                f"{_num(p['handpiece'], 'd'):>3}")
        after = page[-1]["id"]
    return "\n".join(lines)


def unknown_dose_shots(conn: sqlite3.Connection, session_id: int,
                       events: list[dict[str, Any]]) -> int:
    """Return how many shots of a session have no known dose: readings that could not be
    physical (never pulses) and pulses stored without energy."""
    return sum(1 for e in events if e["kind"] == "invalid_reading") + conn.execute(
        "SELECT count(*) FROM pulses WHERE session_id = ? AND energy_j IS NULL",
        (session_id,)).fetchone()[0]


def session_json(store: Store, session_id: int, *, pulses: bool = False) -> str:
    """Return a session, its events and settings (and pulses if asked) as JSON."""
    data: dict[str, Any] = dict(store.session(session_id) or {})
    data["events"] = store.events(session_id)
    data["unknown_dose_shots"] = unknown_dose_shots(store.conn, session_id, data["events"])
    data["settings"] = store.settings(session_id)
    from laserlog.review.signoff import review_data

    data.update(review_data(store.conn, session_id))
    if pulses:
        rows: list[dict[str, Any]] = []
        after = 0
        while page := store.pulses(session_id, after_id=after, limit=5000):
            rows.extend(page)
            after = page[-1]["id"]
        data["pulses"] = rows
    return to_json(data)


def format_profile(p: Profile) -> str:
    """Return a profile's identity, transport, parameter ranges, handpieces and faults."""
    from laserlog.domain.units import CANONICAL, display_unit

    t = p.transport
    lines = [
        f"{p.id}: {p.name}",
        f"  kind {p.kind}   protocol {p.protocol}   model {p.identity.model}   "
        f"wavelengths {', '.join(f'{w:g}' for w in p.wavelengths_nm)} nm",
        f"  file {p.source}",
        f"  serial {t.baud} baud {t.bytesize}{t.parity}{t.stopbits:g}   timeout {t.timeout_s:g} s"
        f"   command gap {t.command_gap_s * 1000:g} ms",
        f"  pulses {p.pulses.mode}" + (f" (counter {p.pulses.counter})" if p.pulses.counter else ""),
    ]
    if p.description:
        lines.append(f"  {p.description}")
    lines.append("  parameters:")
    for name, param in p.parameters.items():
        unit = display_unit(CANONICAL[param.conversion.quantity][0])
        span = (f"{_num(param.min)}..{_num(param.max)} {unit}".rstrip()
                if param.min is not None or param.max is not None else "any")
        access = "rw" if param.settable else "r "
        speaks = display_unit(param.conversion.unit) or "a plain number"
        lines.append(f"    {name:<16} {access} {span:<24} (console speaks {speaks})")
    if p.handpieces:
        lines.append("  handpieces:")
        for hp in p.handpieces.values():
            spot = (f"{hp.spot_mm:g} mm" if hp.spot_mm is not None
                    else f"zoom {hp.spot_min_mm:g}-{hp.spot_max_mm:g} mm")
            extra = (f", {hp.beamlet_rows}x{hp.beamlet_cols} beamlets of "
                     f"{hp.beamlet_diameter_mm * 1000:g} um ({hp.beamlet_energy_fraction:.0%} of energy)"
                     if hp.fractional else "")
            lines.append(f"    {hp.code:>3} {hp.name}: {hp.shape} {spot}{extra}")
    if p.status.faults:
        lines.append("  faults:")
        for f in p.status.faults.values():
            lines.append(f"    {f.code:>4} {f.severity:<7} {f.name}: {f.message}")
    return "\n".join(lines)
