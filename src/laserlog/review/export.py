"""Exports: sessions as CSV, JSON, NDJSON, the printable record (HTML, or PDF through
headless Chromium; see `printable`), or a client's record as a FHIR R5 Bundle (`fhir`).

Rows are streamed from the database page by page, so a long export holds one page in
memory and reports its progress. The file is written beside its destination and renamed
into place when complete (private, 0600): an interrupted export leaves no half file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from laserlog.config.files import dangling_link
from laserlog.config.siteconfig import SiteConfig, site_for
from laserlog.errors import LaserlogError
from laserlog.review import corrections, printable
from laserlog.review.pdf import chromium, print_pdf
from laserlog.review.precision import row_text
from laserlog.review.reports import pass_figures, pass_report
from laserlog.storage.store import EVENT_LOG, PULSE_LOG, utc_now

FORMATS = ("csv", "json", "ndjson", "html", "pdf")
CSV_TABLES = ("pulses", "events", "sessions", "passes")
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
           database: str = "", force: bool = False, pulses: bool = False,
           site: SiteConfig | None = None, aftercare: bool = False) -> int:
    """Write the sessions to `out` in a format; return the number of pulses written (for
    the printable record: printed in its pulse table, `pulses`, else summarised).

    An existing `out` is replaced only with `force`, and only when it is a regular file.
    `site` (default: the database's site file) names the clinic and the local time zone
    of a printable record. `aftercare`: print instead the aftercare page of one session
    (html or pdf).
    """
    if fmt not in FORMATS:
        raise LaserlogError(f"format {fmt!r} is unknown; expected one of {', '.join(FORMATS)}")
    if not sessions:
        raise LaserlogError("no session matches: nothing to export")
    if aftercare and (fmt not in ("html", "pdf") or len(sessions) != 1):
        raise LaserlogError("the aftercare page is one session's (--session ID) in html or "
                            "pdf; nothing was written")
    out = _checked_out(Path(out), force, database)
    tmp, fd = _partial(out)
    counter = _Counter(_count(conn, sessions) if fmt != "csv" or table == "pulses"
                       else len(sessions), progress)

    def printed(stream: IO[str]) -> None:
        if aftercare:
            from laserlog.review.aftercare_page import write_aftercare

            write_aftercare(conn, sessions[0], stream, site=_site(site, database))
            counter.add(sessions[0]["pulse_count"])
            return
        printable.write_records(conn, sessions, stream, site=_site(site, database),
                                database=database, pulses=pulses, counted=counter.add)

    def text(stream: IO[str]) -> None:
        if fmt == "csv":
            _csv(conn, sessions, stream, table, counter)
        elif fmt == "json":
            _json(conn, sessions, stream, counter, database)
        elif fmt == "ndjson":
            _ndjson(conn, sessions, stream, counter)
        else:
            printed(stream)

    if fmt == "pdf":
        try:
            _pdf(fd, printed)
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    else:
        _finish(tmp, fd, out, text)
    return counter.done


def _checked_out(out: Path, force: bool, database: str) -> Path:
    """Return `out` once it may be written: a new file in an existing folder, or (with
    `force`) a regular file that is not the database; else raise, nothing written."""
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
    return out


def _partial(out: Path) -> tuple[Path, int]:
    """Open the private file an export is written to before it is renamed to `out`."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:  # a new file of our own: never through a link or a file planted in its place
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise LaserlogError(f"cannot write {out}: {exc.strerror}") from None
    return tmp, fd


def _finish(tmp: Path, fd: int, out: Path, write: Callable[[IO[str]], object]) -> None:
    """Write the text into the private file, make it durable and rename it to `out`; on any
    failure remove it, so an interrupted export leaves no half file."""
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def export_fhir(conn: sqlite3.Connection, selection: Any, out: Path, *, database: str = "",
                force: bool = False, site: SiteConfig | None = None) -> dict[str, Any]:
    """Write a client's, session's or course's record (`fhir.select`) as a FHIR R5 Bundle
    to `out`; return the Bundle. The Bundle is built before any file is made."""
    from laserlog.review import fhir

    out = _checked_out(Path(out), force, database)
    chosen = site if site is not None else site_for(database) if database else SiteConfig()
    data = fhir.bundle(conn, selection, chosen)
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, indent=1) + "\n"
    tmp, fd = _partial(out)
    _finish(tmp, fd, out, lambda stream: stream.write(text))
    return data


def _csv(conn: sqlite3.Connection, sessions: list[dict[str, Any]], stream: IO[str], table: str,
         counter: _Counter) -> None:
    if table not in CSV_TABLES:
        raise LaserlogError(f"--table {table!r} is unknown; expected one of {', '.join(CSV_TABLES)}")
    writer: csv.DictWriter | None = None
    if table == "passes":
        report = pass_report(conn, sessions)
        writer = csv.DictWriter(stream, report.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row_text(p) for p in report.rows)
        counter.add(len(sessions))
        return
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
    record["passes"] = pass_figures(conn, [s["id"]]).get(s["id"], [])
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


def _site(site: SiteConfig | None, database: str) -> SiteConfig | None:
    """Return the given site configuration, else the database's (None: unreadable)."""
    if site is not None:
        return site
    try:
        return site_for(database) if database else None
    except LaserlogError:
        return None


def _pdf(fd: int, printed: Callable[[IO[str]], None]) -> None:
    """Write the HTML `printed` writes as PDF to the open file `fd` (closed when done)."""
    import tempfile

    with os.fdopen(fd, "wb") as stream, \
            tempfile.TemporaryDirectory(prefix="laserlog-record-") as folder:
        chromium()  # before the work: a missing browser is one message, not a late failure
        page = Path(folder) / "record.html"
        with page.open("w", encoding="utf-8") as html_stream:
            printed(html_stream)
        pdf = Path(folder) / "record.pdf"
        print_pdf(page, pdf)
        with pdf.open("rb") as source:
            stream.write(source.read())
        stream.flush()
        os.fsync(stream.fileno())
