"""The safety officer's reports: energy delivered, faults, limits, calibration, sign-offs.

Every query runs on a read-only connection with parameters; filter text is only ever a
parameter value, so text that looks like SQL matches nothing rather than running. Dates
are UTC, `YYYY-MM-DD` (whole days) or ISO 8601 times. Days, ISO 8601 weeks and months are
counted in the site's time zone (laserlog.domain.localtime), as the screen and the web view
count them. A report is a list of rows (dicts) with its columns, rendered as a table, CSV
or JSON.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from laserlog.domain import localtime
from laserlog.errors import LaserlogError
from laserlog.review import corrections
from laserlog.review.precision import row_text

ENERGY_GROUPS = ("session", "day", "week", "month", "device", "operator", "client", "area",
                 "pass")
FAULT_GROUPS = ("event", "kind", "device", "session", "day", "month")
#: Event kinds the faults report shows unless --kind says otherwise.
FAULT_KINDS = ("fault", "fault_cleared", "interlock_open", "interlock_closed", "link_lost",
               "link_restored", "identity_refused", "gap", "counter_reset", "duplicate",
               "disagreement", "out_of_limit", "invalid_pulse", "invalid_reading",
               "invalid_setting", "energy_unknown",
               "counter_implausible", "counter_misread", "timeout", "garbled",
               "calibration_missing", "calibration_overdue", "calibration_failed")
FORMATS = ("table", "csv", "json")


class ReportError(LaserlogError):
    """Raise when a report's options cannot be met (bad date, backwards range)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """What the officer narrowed a report to."""

    start_utc: str | None = None  # inclusive, ISO text comparable with started_utc
    end_utc: str | None = None  # exclusive
    device: str | None = None
    operator: str | None = None
    client: str | None = None
    area: str | None = None  # matched ignoring case and surrounding blanks
    last: int | None = None

    @property
    def start_unix(self) -> float | None:
        return _unix(self.start_utc) if self.start_utc else None

    @property
    def end_unix(self) -> float | None:
        return _unix(self.end_utc) if self.end_utc else None


@dataclass(slots=True)
class Report:
    """Rows to render, in column order, with an optional totals row."""

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    total: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _unix(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_moment(text: str, *, end: bool) -> str:
    """Return a UTC ISO time from a date or time given on the command line.

    A date alone means the start of that day, or (end=True) the start of the next one,
    so `--to 2026-06-30` includes the whole of 30 June.
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return _iso(moment + timedelta(days=1) if end else moment)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except OverflowError:  # the day after 9999-12-31: as late as a time can be
        return _iso(datetime.max.replace(tzinfo=UTC))
    except ValueError:
        raise ReportError(f"{text!r} is not a date; expected YYYY-MM-DD or an ISO 8601 time "
                          "such as 2026-06-30T14:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return _iso(moment)
    except OverflowError:  # an offset pushed it past year 9999 or before year 1
        extreme = datetime.max if moment.year > 1 else datetime.min
        return _iso(extreme.replace(tzinfo=UTC))


def make_filters(start: str | None = None, end: str | None = None, *, device: str | None = None,
                 operator: str | None = None, client: str | None = None,
                 area: str | None = None, last: int | None = None) -> Filters:
    """Return checked filters; a backwards date range is refused."""
    start_utc = parse_moment(start, end=False) if start else None
    end_utc = parse_moment(end, end=True) if end else None
    if start_utc and end_utc and start_utc >= end_utc:
        raise ReportError(f"the date range is backwards: --from {start} is after --to {end}")
    return Filters(start_utc, end_utc, device, operator, client, area, last)


# -- sessions -----------------------------------------------------------------------------------
def sessions(conn: sqlite3.Connection, f: Filters) -> list[dict[str, Any]]:
    """Return the sessions the filters select, corrected details applied, oldest first."""
    cur = conn.execute(
        "SELECT s.*, d.model, d.serial FROM sessions s LEFT JOIN devices d ON d.id = s.device_id"
        " WHERE (:start IS NULL OR s.started_utc >= :start)"
        " AND (:end IS NULL OR s.started_utc < :end)"
        " AND (:operator IS NULL OR s.operator_id = :operator)"
        " AND (:device IS NULL OR s.profile_id = :device OR d.serial = :device)"
        " ORDER BY s.started_utc, s.id",
        {"start": f.start_utc, "end": f.end_utc, "operator": f.operator, "device": f.device})
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, tuple(r), strict=True)) for r in cur.fetchall()]
    rows = corrections.apply(conn, rows)
    if f.client is not None:
        rows = [r for r in rows if r["client_ref"] == f.client]
    if f.area is not None:
        wanted = f.area.strip().casefold()
        rows = [r for r in rows if (r["area"] or "").strip().casefold() == wanted]
    if f.last is not None:
        rows = _last_full(conn, rows, f.last)[0]
    return rows


def _last_full(conn: sqlite3.Connection, rows: list[dict[str, Any]],
               last: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return the newest `last` full sessions of `rows` (oldest first) and, apart, the test
    spots among `rows` started after the full session before them (all of them when the N
    are every full session): a test spot is never one of the N."""
    kinds = session_kinds(conn, [r["id"] for r in rows])
    every = [r for r in rows if kinds.get(r["id"]) != "test_spot"]
    full = every[-last:]
    before = every[-last - 1] if len(every) > last else None
    since = (before["started_utc"], before["id"]) if before is not None else None
    spots = [r for r in rows if kinds.get(r["id"]) == "test_spot"
             and (since is None or (r["started_utc"], r["id"]) > since)]
    return full, spots


def session_kinds(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, str]:
    """Return each session's kind (course, one_off, test_spot; its newest kind row)."""
    kinds: dict[int, str] = {}
    for start in range(0, len(session_ids), 500):
        part = session_ids[start:start + 500]
        for sid, kind in conn.execute(
                f"SELECT session_id, kind FROM session_kinds WHERE session_id IN"
                f" ({', '.join('?' * len(part))}) ORDER BY id", part):
            kinds[int(sid)] = str(kind)
    return kinds


def spot_notes(spots: list[dict[str, Any]], last: int) -> list[str]:
    """Return the notes that list, apart, the test spots the last N sessions leave out."""
    if not spots:
        return []
    return [f"test spots, not counted in the last {last} sessions:"] + [
        f"  session {r['id']}  {r['started_utc'][:16]}Z  {r['area'] or '-'}  "
        f"{r['pulse_count']} pulses  {r['total_energy_j']:.4f} J  max "
        + ("-" if r["max_fluence_j_cm2"] is None else f"{r['max_fluence_j_cm2']:.3f}")
        + " J/cm2" for r in spots]


def client_hint(conn: sqlite3.Connection, f: Filters) -> str | None:
    """Return what to tell when --client names no recorded client: the nearest ones."""
    if f.client is None:
        return None
    rows = [{"id": r[0], "client_ref": r[1]}
            for r in conn.execute("SELECT id, client_ref FROM sessions")]
    known = {r["client_ref"] for r in corrections.apply(conn, rows)}
    if f.client in known:
        return None
    near = difflib.get_close_matches(f.client, sorted(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
    return f"no session of client {f.client!r} is recorded{hint}"


def _device(row: dict[str, Any]) -> str:
    serial = row.get("serial")
    return f"{row['profile_id']}/{serial}" if serial else row["profile_id"]


def _group_key(row: dict[str, Any], by: str, zone: tzinfo | None) -> str:
    if by in localtime.PERIODS:
        try:
            return localtime.period_key(row["started_utc"], by, zone)
        except (ValueError, OverflowError, OSError):  # not a time: grouped as stored
            return str(row["started_utc"])
    if by == "device":
        return _device(row)
    if by == "operator":
        return row["operator_id"]
    if by == "client":
        return f"{row['client_ref']}\x00{row['area'] or '-'}"
    return row["area"] or "-"


def _regimes(values: Iterable[str]) -> str:
    found = sorted({r for v in values for r in (v or "").split(",") if r})
    return ",".join(found) or "-"


def _max(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def energy_report(conn: sqlite3.Connection, by: str, f: Filters, *, in_sql: bool = True,
                  zone: tzinfo | None = None) -> Report:
    """Return pulses, total energy, maximum fluence and regimes, per session or group.

    Days, weeks and months are the site's: `zone` (None: the machine's zone).
    `in_sql=False` groups in Python even where SQLite could: the reference the fast path
    is tested against.
    """
    if by not in ENERGY_GROUPS:
        raise ReportError(f"--by {by!r} is unknown; expected one of {', '.join(ENERGY_GROUPS)}")
    periods_in_sql = isinstance(conn, sqlite3.Connection)  # a central view has no functions
    if (in_sql and by in _SQL_GROUP_KEYS and f.client is None and f.area is None
            and f.last is None
            and (periods_in_sql or by not in localtime.PERIODS)):
        return _energy_grouped_in_sql(conn, by, f, zone)
    rows = sessions(conn, replace(f, last=None))
    spots: list[dict[str, Any]] = []
    if f.last is not None:
        rows, spots = _last_full(conn, rows, f.last)
    if by == "pass":
        report = pass_report(conn, rows)
        report.notes += spot_notes(spots, f.last or 0)
        return report
    limit_counts = _event_counts(conn, [r["id"] for r in rows], "out_of_limit")
    out: list[dict[str, Any]] = []
    if by == "session":
        from laserlog.review.signoff import signature_summary, signatures

        sigs = signatures(conn, [r["id"] for r in rows])
        columns = ["session", "started_utc", "status", "device", "operator", "client", "area",
                   "pulses", "energy_j", "max_fluence_j_cm2", "regimes", "out_of_limit",
                   "signatures"]
        for r in rows:
            out.append({"session": r["id"], "started_utc": r["started_utc"],
                        "status": r["status"], "device": _device(r), "operator": r["operator_id"],
                        "client": r["client_ref"], "area": r["area"] or "-",
                        "pulses": r["pulse_count"], "energy_j": r["total_energy_j"],
                        "max_fluence_j_cm2": r["max_fluence_j_cm2"],
                        "regimes": _regimes([r["regimes"]]),
                        "out_of_limit": limit_counts.get(r["id"], 0),
                        "signatures": signature_summary(sigs.get(r["id"], []))})
    else:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(_group_key(r, by, zone), []).append(r)
        head = ["client", "area"] if by == "client" else [by]
        columns = [*head, "sessions", "first_utc", "last_utc", "pulses", "energy_j",
                   "max_fluence_j_cm2", "regimes", "out_of_limit"]
        for key in sorted(groups):
            members = groups[key]
            label = dict(zip(head, key.split("\x00"), strict=True))
            out.append({**label, "sessions": len(members),
                        "first_utc": members[0]["started_utc"],
                        "last_utc": members[-1]["started_utc"],
                        "pulses": sum(m["pulse_count"] for m in members),
                        "energy_j": sum(m["total_energy_j"] for m in members),
                        "max_fluence_j_cm2": _max(m["max_fluence_j_cm2"] for m in members),
                        "regimes": _regimes(m["regimes"] for m in members),
                        "out_of_limit": sum(limit_counts.get(m["id"], 0) for m in members)})
    total = {columns[0]: "TOTAL", "sessions": len(rows),
             "pulses": sum(r["pulse_count"] for r in rows),
             "energy_j": sum(r["total_energy_j"] for r in rows),
             "max_fluence_j_cm2": _max(r["max_fluence_j_cm2"] for r in rows),
             "regimes": _regimes(r["regimes"] for r in rows),
             "out_of_limit": sum(limit_counts.values())}
    return Report(f"Energy by {by}", columns, out, total, spot_notes(spots, f.last or 0))


PASS_COLUMNS = ["session", "started_utc", "client", "area", "pass", "sub_area", "pulses",
                "energy_j", "mean_fluence_j_cm2", "max_fluence_j_cm2"]


def pass_figures(conn: sqlite3.Connection,
                 session_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Return per session (those with a pass marked) its passes from the `pulse_passes`
    view: pass number and sub-area (None before the first mark), pulses, energy, mean and
    highest fluence."""
    out: dict[int, list[dict[str, Any]]] = {}
    for start in range(0, len(session_ids), 500):
        part = session_ids[start:start + 500]
        marks = ", ".join("?" * len(part))
        marked = [int(r[0]) for r in conn.execute(
            f"SELECT DISTINCT session_id FROM events WHERE kind = 'pass' AND session_id IN"
            f" ({marks})", part)]
        if not marked:
            continue
        for row in conn.execute(
                "SELECT pp.session_id, pp.pass_number, pp.sub_area, count(*),"
                " coalesce(sum(p.energy_j), 0), avg(p.fluence_j_cm2), max(p.fluence_j_cm2)"
                " FROM pulse_passes pp JOIN pulses p ON p.id = pp.pulse_id"
                f" WHERE pp.session_id IN ({', '.join('?' * len(marked))})"
                " GROUP BY pp.session_id, pp.pass_number, pp.sub_area"
                " ORDER BY pp.session_id, min(p.received_unix_s)", marked):
            out.setdefault(int(row[0]), []).append(
                {"pass": row[1], "sub_area": row[2], "pulses": row[3], "energy_j": row[4],
                 "mean_fluence_j_cm2": row[5], "max_fluence_j_cm2": row[6]})
    return out


def pass_report(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> Report:
    """Return one row per pass of each selected session that has its passes marked."""
    figures = pass_figures(conn, [r["id"] for r in rows])
    out = []
    for r in rows:
        for p in figures.get(r["id"], []):
            out.append({"session": r["id"], "started_utc": r["started_utc"],
                        "client": r["client_ref"], "area": r["area"] or "-",
                        **p, "pass": "-" if p["pass"] is None else p["pass"],
                        "sub_area": p["sub_area"] or "-"})
    total = {"session": "TOTAL", "pulses": sum(p["pulses"] for p in out),
             "energy_j": sum(p["energy_j"] for p in out),
             "max_fluence_j_cm2": _max(p["max_fluence_j_cm2"] for p in out)}
    unmarked = len(rows) - len(figures)
    notes = ([f"{unmarked} of the {len(rows)} sessions have no pass marked"]
             if unmarked else [])
    return Report("Energy by pass", PASS_COLUMNS, out, total, notes)


# Groupings whose key no correction can change: SQLite aggregates the sessions' totals
# itself (50 k sessions in ~30 ms, against ~500 ms fetching them into Python).
_SQL_GROUP_KEYS = {
    "day": f"{localtime.SQL_FUNCTION}(s.started_utc, 'day')",
    "week": f"{localtime.SQL_FUNCTION}(s.started_utc, 'week')",
    "month": f"{localtime.SQL_FUNCTION}(s.started_utc, 'month')",
    "device": "s.profile_id || coalesce('/' || nullif(d.serial, ''), '')",
    "operator": "s.operator_id",
}
_SESSION_FILTER = (
    " WHERE (:start IS NULL OR s.started_utc >= :start)"
    " AND (:end IS NULL OR s.started_utc < :end)"
    " AND (:operator IS NULL OR s.operator_id = :operator)"
    " AND (:device IS NULL OR s.profile_id = :device OR d.serial = :device)")


def _energy_grouped_in_sql(conn: sqlite3.Connection, by: str, f: Filters,
                           zone: tzinfo | None) -> Report:
    """Return the energy report for a grouping SQLite can compute from session totals."""
    key = _SQL_GROUP_KEYS[by]
    if by in localtime.PERIODS:
        localtime.register(conn, zone)
    params = {"start": f.start_utc, "end": f.end_utc, "operator": f.operator, "device": f.device}
    source = " FROM sessions s LEFT JOIN devices d ON d.id = s.device_id" + _SESSION_FILTER
    grouped = conn.execute(
        f"SELECT {key} AS k, count(*), min(s.started_utc), max(s.started_utc), sum(s.pulse_count),"
        f" sum(s.total_energy_j), max(s.max_fluence_j_cm2), group_concat(DISTINCT s.regimes)"
        f"{source} GROUP BY k ORDER BY k", params).fetchall()
    limits = dict(conn.execute(
        f"SELECT {key} AS k, sum(e.count) FROM events e JOIN sessions s ON s.id = e.session_id"
        f" LEFT JOIN devices d ON d.id = s.device_id{_SESSION_FILTER}"
        " AND e.kind = 'out_of_limit' GROUP BY k", params).fetchall())
    columns = [by, "sessions", "first_utc", "last_utc", "pulses", "energy_j",
               "max_fluence_j_cm2", "regimes", "out_of_limit"]
    out = [{by: k, "sessions": n, "first_utc": first, "last_utc": last, "pulses": pulses,
            "energy_j": energy or 0.0, "max_fluence_j_cm2": fmax,
            "regimes": _regimes((regimes or "").split(",")), "out_of_limit": int(limits.get(k, 0))}
           for k, n, first, last, pulses, energy, fmax, regimes in grouped]
    total = {by: "TOTAL", "sessions": sum(r["sessions"] for r in out),
             "pulses": sum(r["pulses"] for r in out),
             "energy_j": sum(r["energy_j"] for r in out),
             "max_fluence_j_cm2": _max(r["max_fluence_j_cm2"] for r in out),
             "regimes": _regimes(r["regimes"].replace("-", "") for r in out),
             "out_of_limit": sum(r["out_of_limit"] for r in out)}
    return Report(f"Energy by {by}", columns, out, total)


def _event_counts(conn: sqlite3.Connection, session_ids: list[int], kind: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for start in range(0, len(session_ids), 500):
        part = session_ids[start:start + 500]
        for sid, n in conn.execute(
                f"SELECT session_id, sum(count) FROM events WHERE kind = ? AND session_id IN"
                f" ({', '.join('?' * len(part))}) GROUP BY session_id", [kind, *part]):
            counts[int(sid)] = int(n)
    return counts


# -- events -------------------------------------------------------------------------------------
def _events(conn: sqlite3.Connection, f: Filters, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    selected = {r["id"]: r for r in sessions(conn, Filters(device=f.device, operator=f.operator,
                                                              client=f.client, area=f.area,
                                                              last=f.last))}
    kind_params = {f"k{i}": k for i, k in enumerate(kinds)}
    cur = conn.execute(
        "SELECT e.id, e.session_id, e.received_unix_s,"
        " strftime('%Y-%m-%dT%H:%M:%fZ', e.received_unix_s, 'unixepoch') AS received_utc,"
        " e.kind, e.severity, e.code, e.message, e.missing_pulses, e.count, e.raw"
        " FROM events e WHERE (:start IS NULL OR e.received_unix_s >= :start)"
        " AND (:end IS NULL OR e.received_unix_s < :end)"
        f" AND e.kind IN ({', '.join(':' + k for k in kind_params) or 'NULL'})"
        " ORDER BY e.received_unix_s, e.id",
        {"start": f.start_unix, "end": f.end_unix, **kind_params})
    names = [d[0] for d in cur.description]
    filtered = (f.device is not None or f.operator is not None or f.client is not None
                or f.area is not None or f.last is not None)
    out = []
    for r in cur:
        row = dict(zip(names, tuple(r), strict=True))
        session = selected.get(row["session_id"])
        if session is None and (filtered or row["session_id"] is not None):
            continue
        row["device"] = _device(session) if session else "-"
        row["operator"] = session["operator_id"] if session else "-"
        row["client"] = session["client_ref"] if session else "-"
        out.append(row)
    return out


def faults_report(conn: sqlite3.Connection, by: str, f: Filters,
                  kinds: tuple[str, ...] = FAULT_KINDS, *, zone: tzinfo | None = None) -> Report:
    """Return console faults, interlocks, link losses, gaps, disagreements, limits, listed or counted.

    Days and months are the site's: `zone` (None: the machine's zone).
    """
    if by not in FAULT_GROUPS:
        raise ReportError(f"--by {by!r} is unknown; expected one of {', '.join(FAULT_GROUPS)}")
    events = _events(conn, f, kinds)
    if by == "event":
        columns = ["received_utc", "session", "device", "kind", "severity", "count",
                   "missing_pulses", "message"]
        rows = [{"received_utc": e["received_utc"], "session": e["session_id"],
                 "device": e["device"], "kind": e["kind"], "severity": e["severity"],
                 "count": e["count"], "missing_pulses": e["missing_pulses"],
                 "message": e["message"]} for e in events]
    else:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for e in events:
            if by in localtime.PERIODS:
                key: tuple[str, ...] = (localtime.period_key(e["received_unix_s"], by, zone),
                                        e["kind"])
            else:
                key = {"kind": (e["kind"],), "device": (e["device"], e["kind"]),
                       "session": (str(e["session_id"]), e["kind"])}[by]
            groups.setdefault(key, []).append(e)
        head = [by] if by == "kind" else [by, "kind"]
        columns = [*head, "events", "count", "missing_pulses", "alarms", "first_utc", "last_utc"]
        rows = []
        for key in sorted(groups):
            members = groups[key]
            rows.append({**dict(zip(head, key, strict=True)), "events": len(members),
                         "count": sum(m["count"] for m in members),
                         "missing_pulses": sum(m["missing_pulses"] or 0 for m in members),
                         "alarms": sum(1 for m in members if m["severity"] == "alarm"),
                         "first_utc": members[0]["received_utc"],
                         "last_utc": members[-1]["received_utc"]})
    total = {columns[0]: "TOTAL", "events": len(events), "count": sum(e["count"] for e in events),
             "missing_pulses": sum(e["missing_pulses"] or 0 for e in events)}
    return Report(f"Faults by {by}", columns, rows, total)


def _numbered(conn: sqlite3.Connection, event: dict[str, Any]) -> str:
    """Return an out-of-limit message naming its pulse by number within the session (1..N).

    The recorder wrote the console's shot counter ("pulse 485: ..."), which runs on across
    sessions; the counter is kept in brackets for matching the console's own log.
    """
    head, sep, rest = event["message"].partition(": ")
    counter = head.removeprefix("pulse ")
    if not sep or counter == head:
        return str(event["message"])
    # Pulses read in one poll share a time: the counter tells them apart ("?": none read).
    (number,) = conn.execute(
        "SELECT count(*) FROM pulses WHERE session_id = :session AND id <= (SELECT min(id)"
        " FROM pulses WHERE session_id = :session AND received_unix_s = :at"
        " AND coalesce(CAST(seq AS TEXT), '?') = :counter)",
        {"session": event["session_id"], "at": event["received_unix_s"],
         "counter": counter}).fetchone()
    if not number:
        return str(event["message"])
    return f"pulse {number}: {rest} (console counter {counter})"


#: The event kinds the limits report lists: a profile's or the site's limit passed, and a
#: skin type's envelope passed.
LIMIT_KINDS = ("out_of_limit", "out_of_envelope")


def limit_named(kind: str, message: str) -> str:
    """Return the limit an out_of_limit or out_of_envelope event's message says was passed
    ("site", "skin type V maximum 0.9 J/cm2 at 755 nm")."""
    from laserlog.review.envelopes import breach_limit

    if kind == "out_of_envelope":
        return breach_limit(message)
    # "pulse 12: fluence 7.9 J/cm2 above the site limit 6 J/cm2"
    return message.rsplit(" the ", 1)[-1].split(" limit", 1)[0]


def limits_report(conn: sqlite3.Connection, f: Filters) -> Report:
    """Return the sessions that ran outside a profile's or the site's limits or their skin
    type's envelope, per limit, each with the envelope its record says was in force."""
    from laserlog.review.envelopes import cell_row, held_envelopes, held_text

    events = _events(conn, f, LIMIT_KINDS)
    groups: dict[tuple[int, str, str, str], list[dict[str, Any]]] = {}
    for e in events:
        column = e["raw"] or "?"  # raw names the column
        groups.setdefault((e["session_id"], e["kind"], column,
                           limit_named(e["kind"], e["message"])), []).append(e)
    selected = {r["id"]: r for r in sessions(conn, Filters(device=f.device, operator=f.operator,
                                                              client=f.client, area=f.area,
                                                              last=f.last))}
    held = held_envelopes(conn, sorted({sid for sid, *_ in groups}))
    columns = ["session", "started_utc", "device", "operator", "client", "skin_type", "kind",
               "quantity", "limit", "severity", "pulses", "first", "envelope"]
    rows = []
    for (sid, kind, column, limit), members in sorted(groups.items()):
        s = selected[sid]
        envelope = held.get(sid)
        rows.append({"session": sid, "started_utc": s["started_utc"], "device": _device(s),
                     "operator": s["operator_id"], "client": s["client_ref"],
                     "skin_type": s["skin_type"], "kind": kind, "quantity": column,
                     "limit": limit, "severity": members[0]["severity"],
                     "pulses": sum(m["count"] for m in members),
                     "first": _numbered(conn, members[0]),
                     "envelope": held_text(envelope) if envelope else "-",
                     # JSON only: the cells in force, each value with the rule that won it
                     "envelope_cells": [cell_row(c) for c in envelope.cells] if envelope
                     else []})
    total = {"session": "TOTAL", "pulses": sum(r["pulses"] for r in rows)}
    notes = [] if rows else ["no pulse outside a profile's or the site's limits or a skin "
                             "type's envelope"]
    return Report("Sessions outside their limits", columns, rows, total, notes)


# -- calibration and sign-off ---------------------------------------------------------------
def calibration_report(conn: sqlite3.Connection, f: Filters, *, history: bool,
                       site: Any) -> Report:
    """Return each console's calibration status now, or (history) every check in the range."""
    from laserlog.recording.calstatus import status

    if history:
        cur = conn.execute(
            "SELECT c.*, d.model FROM calibrations c LEFT JOIN devices d ON d.id = c.device_id"
            " WHERE (:start IS NULL OR c.started_utc >= :start) AND (:end IS NULL OR"
            " c.started_utc < :end) AND (:device IS NULL OR c.profile_id = :device OR"
            " c.console_serial = :device) ORDER BY c.started_utc, c.id",
            {"start": f.start_utc, "end": f.end_utc, "device": f.device})
        names = [d[0] for d in cur.description]
        columns = ["check", "started_utc", "device", "meter", "by", "shots", "set_energy_j",
                   "mean_measured_energy_j", "deviation", "result"]
        rows = []
        for r in cur.fetchall():
            c = dict(zip(names, tuple(r), strict=True))
            rows.append({"check": c["id"], "started_utc": c["started_utc"],
                         "device": f"{c['profile_id']}/{c['console_serial'] or '-'}",
                         "meter": f"{c['meter_model']}/{c['meter_serial']}", "by": c["user_id"],
                         "shots": c["shots"], "set_energy_j": c["set_energy_j"],
                         "mean_measured_energy_j": c["mean_measured_energy_j"],
                         "deviation": f"{c['deviation']:+.1%}", "result": c["result"].upper()})
        return Report("Calibration checks", columns, rows)
    cur = conn.execute(
        "SELECT id, profile_id, model, serial FROM devices WHERE (:device IS NULL OR"
        " profile_id = :device OR serial = :device) ORDER BY profile_id, serial",
        {"device": f.device})
    columns = ["device", "model", "state", "last_check_utc", "result", "deviation", "next_due_utc",
               "detail"]
    rows = []
    for device_id, profile_id, model, serial in cur.fetchall():
        if conn.execute("SELECT 1 FROM sessions WHERE device_id = ? UNION SELECT 1 FROM"
                        " calibrations WHERE device_id = ? LIMIT 1",
                        (device_id, device_id)).fetchone() is None:
            continue
        st = status(conn, device_id, site)
        rows.append({"device": f"{profile_id}/{serial or '-'}", "model": model,
                     "state": st.state.upper(), "last_check_utc": st.checked_utc or "-",
                     "result": (st.result or "-").upper(),
                     "deviation": f"{st.deviation:+.1%}" if st.deviation is not None else "-",
                     "next_due_utc": st.due_utc or "-", "detail": st.message})
    return Report("Calibration status", columns, rows)


def signoffs_report(conn: sqlite3.Connection, f: Filters, *, user: str | None,
                    unsigned: bool) -> Report:
    """Return who signed what (and whether it still holds), or the ended sessions not approved."""
    from laserlog.review.signoff import signatures

    rows_s = sessions(conn, f)
    sigs = signatures(conn, [r["id"] for r in rows_s])
    if unsigned:
        columns = ["session", "started_utc", "status", "device", "operator", "client",
                   "signatures"]
        rows = []
        for r in rows_s:
            valid = [s for s in sigs.get(r["id"], []) if s.valid and s.meaning == "approved"]
            if r["status"] != "recording" and not valid:
                rows.append({"session": r["id"], "started_utc": r["started_utc"],
                             "status": r["status"], "device": _device(r),
                             "operator": r["operator_id"], "client": r["client_ref"],
                             "signatures": " ".join(
                                 f"{s.meaning}:{s.user_id}{'' if s.valid else f'({s.status})'}"
                                 for s in sigs.get(r["id"], [])) or "-"})
        return Report("Ended sessions without a valid approval", columns, rows)
    columns = ["session", "started_utc", "operator", "client", "meaning", "signer", "role",
               "user", "signed_utc", "status", "reason"]
    rows = []
    for r in rows_s:
        for s in sigs.get(r["id"], []):
            if user is not None and s.user_id != user:
                continue
            rows.append({"session": r["id"], "started_utc": r["started_utc"],
                         "operator": r["operator_id"], "client": r["client_ref"],
                         "meaning": s.meaning, "signer": s.printed_name, "role": s.role,
                         "user": s.user_id, "signed_utc": s.signed_utc,
                         "status": s.status, "reason": s.reason})
    return Report("Sign-offs", columns, rows)


# -- rendering ----------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 0.001 or value == 0 else f"{value:.4g}"
    return str(value)


def render(report: Report, fmt: str) -> str:
    """Return the report as a text table, CSV or JSON."""
    if fmt == "json":
        return json.dumps({"report": report.title, "rows": report.rows, "total": report.total,
                           "notes": report.notes}, indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, report.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(row_text(r) for r in report.rows)
        if report.total:
            writer.writerow(row_text(report.total))
        return out.getvalue().rstrip("\n")
    if fmt != "table":
        raise ReportError(f"format {fmt!r} is unknown; expected one of {', '.join(FORMATS)}")
    table = [[_cell(r.get(c)) for c in report.columns] for r in report.rows]
    if report.total:
        table.append([_cell(report.total.get(c)) if c in report.total else "" for c in
                      report.columns])
    widths = [max([len(c)] + [len(row[i]) for row in table]) for i, c in enumerate(report.columns)]
    lines = [report.title, "  ".join(c.ljust(w) for c, w in zip(report.columns, widths,
                                                                 strict=True)).rstrip()]
    lines.append("-" * len(lines[1]))
    for index, row in enumerate(table):
        if report.total and index == len(table) - 1:
            lines.append("-" * len(lines[1]))
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not report.rows:
        lines.append("(nothing matches)")
    lines += report.notes
    return "\n".join(lines)
