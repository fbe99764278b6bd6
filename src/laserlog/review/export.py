"""Exports: sessions as CSV, JSON, NDJSON, or one printable HTML document per session.

Rows are streamed from the database page by page, so a long export holds one page in
memory and reports its progress. The file is written beside its destination and renamed
into place when complete (private, 0600): an interrupted export leaves no half file.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from laserlog.config.files import dangling_link
from laserlog.errors import LaserlogError
from laserlog.review import corrections
from laserlog.review.precision import row_text
from laserlog.storage.store import EVENT_LOG, PULSE_LOG, utc_now

FORMATS = ("csv", "json", "ndjson", "html")
CSV_TABLES = ("pulses", "events", "sessions")
PAGE = 5000
Progress = Callable[[int, int], None]

_PULSES = (f"SELECT * FROM ({PULSE_LOG}) AS pulse_log WHERE session_id = ? AND id > ?"
           " ORDER BY id LIMIT ?")
_EVENTS = f"SELECT * FROM ({EVENT_LOG}) AS event_log WHERE session_id = ? ORDER BY id"


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, tuple(r), strict=True)) for r in cur.fetchall()]


def select_sessions(conn: sqlite3.Connection, session_id: int | None, start_utc: str | None,
                    end_utc: str | None) -> list[dict[str, Any]]:
    """Return the sessions to export (corrected details applied), oldest first."""
    if session_id is not None:
        rows = _dicts(conn.execute(
            "SELECT s.*, d.model, d.serial, d.firmware FROM sessions s LEFT JOIN devices d ON"
            " d.id = s.device_id WHERE s.id = ?", (session_id,)))
        if not rows:
            raise LaserlogError(f"no session {session_id} in the database "
                                "(see `laserlog sessions list`)")
    else:
        rows = _dicts(conn.execute(
            "SELECT s.*, d.model, d.serial, d.firmware FROM sessions s LEFT JOIN devices d ON"
            " d.id = s.device_id WHERE (:start IS NULL OR s.started_utc >= :start) AND"
            " (:end IS NULL OR s.started_utc < :end) ORDER BY s.started_utc, s.id",
            {"start": start_utc, "end": end_utc}))
    return corrections.apply(conn, rows)


def _pulse_pages(conn: sqlite3.Connection, session_id: int) -> Iterator[list[dict[str, Any]]]:
    after = 0
    while True:
        page = _dicts(conn.execute(_PULSES, (session_id, after, PAGE)))
        if not page:
            return
        yield page
        after = page[-1]["id"]


def _count(conn: sqlite3.Connection, sessions: list[dict[str, Any]], table: str = "pulses") -> int:
    return sum(conn.execute(f"SELECT count(*) FROM {table} WHERE session_id = ?",
                            (s["id"],)).fetchone()[0] for s in sessions)


class _Counter:
    """Count written rows and call the progress callback every page."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)


def export(conn: sqlite3.Connection, fmt: str, sessions: list[dict[str, Any]], out: Path, *,
           table: str = "pulses", progress: Progress | None = None,
           database: str = "", force: bool = False) -> int:
    """Write the sessions to `out` in a format; return the number of rows written.

    An existing `out` is replaced only with `force`, and only when it is a regular file.
    """
    if fmt not in FORMATS:
        raise LaserlogError(f"format {fmt!r} is unknown; expected one of {', '.join(FORMATS)}")
    if not sessions:
        raise LaserlogError("no session matches: nothing to export")
    out = Path(out)
    problem = dangling_link(out, "--out", "a new file name")
    if problem:
        raise LaserlogError(problem)
    if not out.parent.is_dir():
        raise LaserlogError(f"folder {out.parent} does not exist; nothing was written")
    if out.is_symlink() or out.exists():
        if not out.is_file() or out.is_symlink():
            raise LaserlogError(f"--out {out} exists and is not a regular file; nothing was "
                                "written (expected a new file name)")
        if not force:
            raise LaserlogError(f"--out {out} exists; nothing was written (choose a new file, "
                                "or --force to replace it)")
    if database and out.exists() and Path(database).exists() and out.samefile(database):
        raise LaserlogError(f"--out {out} is the database being exported; nothing was written")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:  # a new file of our own: never through a link or a file planted in its place
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise LaserlogError(f"cannot write {out}: {exc.strerror}") from None
    counter = _Counter(_count(conn, sessions) if fmt != "csv" or table == "pulses"
                       else len(sessions), progress)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            if fmt == "csv":
                _csv(conn, sessions, stream, table, counter)
            elif fmt == "json":
                _json(conn, sessions, stream, counter, database)
            elif fmt == "ndjson":
                _ndjson(conn, sessions, stream, counter)
            else:
                _html(conn, sessions, stream, counter, database)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counter.done


def _csv(conn: sqlite3.Connection, sessions: list[dict[str, Any]], stream: IO[str], table: str,
         counter: _Counter) -> None:
    if table not in CSV_TABLES:
        raise LaserlogError(f"--table {table!r} is unknown; expected one of {', '.join(CSV_TABLES)}")
    writer: csv.DictWriter | None = None
    if table == "sessions":
        for s in sessions:
            if writer is None:
                writer = csv.DictWriter(stream, list(s), lineterminator="\n")
                writer.writeheader()
            writer.writerow(row_text(s))
            counter.add(1)
        return
    for s in sessions:
        pages = _pulse_pages(conn, s["id"]) if table == "pulses" else \
            iter([_dicts(conn.execute(_EVENTS, (s["id"],)))])
        for page in pages:
            if not page:
                continue
            if table == "pulses":  # whose pulses, without joining the sessions CSV
                page = [_with_client(p, s) for p in page]
            if writer is None:
                writer = csv.DictWriter(stream, list(page[0]), lineterminator="\n")
                writer.writeheader()
            writer.writerows(row_text(p) for p in page)
            counter.add(len(page) if table == "pulses" else 0)


def _with_client(pulse: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    """Return a pulse row with its session's client and area (corrected) after session_id."""
    out: dict[str, Any] = {}
    for column, value in pulse.items():
        out[column] = value
        if column == "session_id":
            out["client_ref"] = session["client_ref"]
            out["area"] = session["area"]
    return out


def _session_record(conn: sqlite3.Connection, s: dict[str, Any]) -> dict[str, Any]:
    from laserlog.review.signoff import signatures

    record = dict(s)
    record["corrections"] = corrections.corrections_for(conn, s["id"])
    record["signatures"] = [g.as_dict() for g in signatures(conn, [s["id"]]).get(s["id"], [])]
    record["settings"] = _dicts(conn.execute(
        "SELECT name, value, unit, strftime('%Y-%m-%dT%H:%M:%fZ', received_unix_s, 'unixepoch')"
        " AS received_utc FROM settings WHERE session_id = ? ORDER BY id", (s["id"],)))
    return record


def _dumps(value: Any) -> str:
    """Return JSON text; a non-finite number (an older database may hold one) is null, not
    the `Infinity` that JSON readers refuse."""
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json(conn: sqlite3.Connection, sessions: list[dict[str, Any]], stream: IO[str],
          counter: _Counter, database: str) -> None:
    stream.write('{"exported_utc": ' + json.dumps(utc_now()) + ', "database": '
                 + json.dumps(database) + ', "sessions": [')
    for n, s in enumerate(sessions):
        record = _session_record(conn, s)
        record["events"] = _dicts(conn.execute(_EVENTS, (s["id"],)))
        head = _dumps(record)
        stream.write(("," if n else "") + "\n" + head[:-1] + ', "pulses": [')
        first = True
        for page in _pulse_pages(conn, s["id"]):
            for p in page:
                stream.write(("" if first else ",") + "\n  " + _dumps(p))
                first = False
            counter.add(len(page))
        stream.write("]}")
    stream.write("\n]}\n")


def _ndjson(conn: sqlite3.Connection, sessions: list[dict[str, Any]], stream: IO[str],
            counter: _Counter) -> None:
    def line(kind: str, data: dict[str, Any]) -> None:
        stream.write(_dumps({"type": kind, **data}) + "\n")

    for s in sessions:
        record = _session_record(conn, s)
        for key in ("signatures", "corrections", "settings"):
            for item in record.pop(key):
                line(key[:-1], {"session_id": s["id"], **item})
        line("session", record)
        for e in _dicts(conn.execute(_EVENTS, (s["id"],))):
            line("event", e)
        for page in _pulse_pages(conn, s["id"]):
            for p in page:
                line("pulse", p)
            counter.add(len(page))


# -- the printable report -------------------------------------------------------------------
_CSS = """
body { font-family: "Helvetica Neue", Arial, sans-serif; font-size: 10.5pt; color: #000;
       margin: 1.5cm; }
h1 { font-size: 16pt; margin: 0 0 .2em; } h2 { font-size: 12pt; margin: 1.2em 0 .3em;
     border-bottom: 1px solid #000; }
table { border-collapse: collapse; width: 100%; margin: .3em 0; }
th, td { border: 1px solid #999; padding: 2px 5px; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta td:first-child { width: 28%; font-weight: bold; background: #f6f6f6; }
.mark { font-weight: bold; } .invalid { font-weight: bold; text-decoration: underline; }
.small { font-size: 8.5pt; color: #333; }
section.session { page-break-after: always; break-after: page; }
section.session:last-child { page-break-after: auto; break-after: auto; }
thead { display: table-header-group; } tr { page-break-inside: avoid; break-inside: avoid; }
@page { size: A4; margin: 1.5cm; }
@media print { body { margin: 0; } }
"""


def _e(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return html.escape(f"{value:.5g}")
    return html.escape(str(value))


def _table(head: list[str], rows: list[list[Any]],
           numeric: frozenset[int] | set[int] = frozenset()) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>"
        for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _html(conn: sqlite3.Connection, sessions: list[dict[str, Any]], stream: IO[str],
          counter: _Counter, database: str) -> None:
    from laserlog.review.signoff import signatures

    sigs = signatures(conn, [s["id"] for s in sessions])
    title = (f"laserlog session {sessions[0]['id']}" if len(sessions) == 1
             else f"laserlog sessions {sessions[0]['id']}-{sessions[-1]['id']}")
    stream.write(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n")
    for s in sessions:
        stream.write(_session_html(conn, s, sigs.get(s["id"], []), database))
        counter.add(conn.execute("SELECT count(*) FROM pulses WHERE session_id = ?",
                                 (s["id"],)).fetchone()[0])
    stream.write("</body></html>\n")


def _session_html(conn: sqlite3.Connection, s: dict[str, Any], sigs: list[Any],
                  database: str) -> str:
    from laserlog.config.siteconfig import site_for
    from laserlog.recording.calstatus import status
    from laserlog.review.reports import _unix
    from laserlog.storage.verify import check_sessions

    sid = s["id"]
    fixes = corrections.corrections_for(conn, sid)
    corrected = {c["column_name"] for c in fixes}

    def detail(column: str) -> str:
        mark = " <span class=\"mark\">(corrected)</span>" if column in corrected else ""
        return _e(s[column]) + mark

    parts = [f'<section class="session"><h1>Treatment session {sid}</h1>',
             f'<p class="small">laserlog session record &middot; {_e(s["uuid"])} &middot; '
             f'printed {_e(utc_now())} &middot; database {_e(database)}</p>']
    meta = [
        ("Status", _e(s["status"]) + (f" ({_e(s['end_reason'])})" if s["end_reason"] else "")),
        ("Started (UTC)", _e(s["started_utc"])), ("Ended (UTC)", _e(s["ended_utc"])),
        ("Console", f"{_e(s['profile_id'])} &middot; model {_e(s['model'])} &middot; serial "
                    f"{_e(s['serial'])} &middot; firmware {_e(s['firmware'])}"),
        ("Port", _e(s["port"])), ("Operator", _e(s["operator_id"])),
        ("Client (pseudonym)", detail("client_ref")), ("Treatment area", detail("area")),
        ("Skin type (Fitzpatrick)", detail("skin_type")),
        ("Eyewear checked", "yes" if s["eyewear_checked"] else "<b>NO</b>"),
    ]
    parts.append('<table class="meta">' + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>"
                                                  for k, v in meta) + "</table>")
    parts.append("<h2>Totals</h2>")
    parts.append(_table(["pulses", "total energy (J)", "fluence min (J/cm²)",
                         "fluence max (J/cm²)", "regimes", "missing pulses", "events"],
                        [[s["pulse_count"], s["total_energy_j"], s["min_fluence_j_cm2"],
                          s["max_fluence_j_cm2"], s["regimes"] or "-", s["missing_pulses"],
                          s["event_count"]]], {0, 1, 2, 3, 5, 6}))
    breakdown = conn.execute(
        "SELECT regime, handpiece, count(*), sum(energy_j), min(spot_mm), max(spot_mm),"
        " max(fluence_j_cm2), max(beamlet_fluence_j_cm2), avg(pulse_duration_ps) FROM pulses"
        " WHERE session_id = ? GROUP BY regime, handpiece ORDER BY regime, handpiece",
        (sid,)).fetchall()
    if breakdown:
        parts.append(_table(["regime", "handpiece", "pulses", "energy (J)", "spot min (mm)",
                             "spot max (mm)", "max fluence (J/cm²)", "max beamlet fluence (J/cm²)",
                             "mean duration (ps)"], [list(r) for r in breakdown],
                            {2, 3, 4, 5, 6, 7, 8}))
    settings = conn.execute(
        "SELECT strftime('%Y-%m-%dT%H:%M:%SZ', received_unix_s, 'unixepoch'), name, value, unit"
        " FROM settings WHERE session_id = ? ORDER BY id", (sid,)).fetchall()
    parts.append("<h2>Settings</h2>")
    parts.append(_table(["time (UTC)", "setting", "value", "unit"], [list(r) for r in settings],
                        {2}) if settings else "<p>none recorded</p>")
    events = conn.execute(
        "SELECT received_utc, severity, kind, count, missing_pulses, message"
        f" FROM ({EVENT_LOG}) AS event_log WHERE session_id = ? ORDER BY id", (sid,)).fetchall()
    parts.append(f"<h2>Events ({len(events)})</h2>")
    parts.append(_table(["time (UTC)", "severity", "kind", "count", "missing", "message"],
                        [[r[0], str(r[1]).upper(), r[2], r[3], r[4], r[5]] for r in events],
                        {3, 4}) if events else "<p>none</p>")
    parts.append("<h2>Calibration status at session start</h2>")
    try:
        site = site_for(database) if database else None
    except LaserlogError:
        site = None
    if site is not None:
        st = status(conn, s["device_id"], site, _unix(s["started_utc"]))
        parts.append(f"<p><b>{_e(st.state.upper())}</b>: {_e(st.message)}</p>")
    flags = [r for r in events if str(r[2]).startswith("calibration_")]
    if flags:
        parts.append("<p>Flagged at session start: " + "; ".join(_e(r[5]) for r in flags)
                     + "</p>")
    if fixes:
        parts.append("<h2>Corrections</h2>")
        parts.append(_table(["time (UTC)", "field", "old value", "new value", "by", "reason"],
                            [[c["corrected_utc"], c["column_name"], c["old_value"],
                              c["new_value"], c["user_id"], c["reason"]] for c in fixes]))
    parts.append("<h2>Signatures</h2>")
    if sigs:
        rows = []
        for g in sigs:
            rows.append([g.status, g.meaning, g.printed_name, f"{g.role}, {g.user_id}",
                         g.signed_utc, f"seal link {g.chain_id}, {g.chain_hash[:16]}…",
                         g.reason or "-"])
        table = _table(["status", "meaning", "printed name", "role, ID", "signed (UTC)",
                        "bound to", "note"], rows)
        for flagged in ("INVALID", "LEGACY"):
            table = table.replace(f"<td>{flagged}</td>", f'<td class="invalid">{flagged}</td>')
        parts.append(table)
    else:
        parts.append("<p>Not signed.</p>")
    seal = check_sessions(conn, [sid])[sid]
    if seal.seal_link is None:
        integrity = f"Not sealed: {seal.reason}."
    elif seal.intact:
        integrity = (f"Sealed at chain link {seal.seal_link} ({(seal.seal_hash or '')[:16]}…): "
                     "the stored data matches the seal.")
    else:
        integrity = f"<b>DOES NOT MATCH ITS SEAL</b>: {_e(seal.reason)}"
    parts.append(f"<h2>Record integrity</h2><p>{integrity}</p>")
    parts.append("</section>\n")
    return "".join(parts)
