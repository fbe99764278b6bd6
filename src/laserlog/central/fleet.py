"""The central server read like the consoles' files: verify and reports, console by console.

Each console is checked and reported through `pgconn.ConsoleView` by the same code that
reads a local file (laserlog.storage.verify, laserlog.review.reports), then the per-console answers are
joined: summed per group, so a fleet report equals the sum of the consoles' own reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from laserlog.central.pgconn import ConsoleView, consoles
from laserlog.central.pgschema import CentralError, check_version
from laserlog.central.server import open_server, redact
from laserlog.review import reports
from laserlog.review.reports import Filters, Report
from laserlog.storage import verify, vouch

#: Fleet groupings on top of the local ones.
FLEET_GROUPS = ("console", "site")


def _open(url: str) -> Any:
    pg = open_server(url, after="")
    where = redact(url)
    version = check_version(pg, where)
    if version == 0:
        pg.close()
        raise CentralError(f"{where} holds no laserlog data yet (run `laserlog sync --to` first)")
    return pg


def _each_console(url: str, work: Callable[[ConsoleView, tuple], Any]) -> list[tuple[tuple, Any]]:
    pg = _open(url)
    try:
        out = []
        for console in consoles(pg):
            view = ConsoleView(pg, console[0], console[1])
            out.append((console, work(view, console)))
            pg.rollback()  # drops the temporary views and cursors of this console
        return out
    finally:
        pg.close()


# -- verify --------------------------------------------------------------------------------
def verify_server(url: str) -> list[verify.Report]:
    """Recompute every console's chain on the server; one report per console."""

    def check(view: ConsoleView, console: tuple) -> verify.Report:
        started = time.perf_counter()
        _, name, _, console_uuid, head_link, head_hash, last_ids = console
        conn: Any = view
        result = verify.walk(conn)
        findings = list(result.findings)
        _, legacy = verify._legacy(conn)
        findings += verify.check_seals(conn, result.seals, legacy.get("sessions", 0))
        # Checkpoints hold under the installation key the console registered here.
        coverage = vouch.check(conn, result.checkpoints, int(result.last_link),
                               view.installation_keys(), result.odd_batches)
        findings += [verify.Finding("checkpoint", why, link_id=link)
                     for link, why in coverage.problems]
        # The head recorded at the last sync plays the anchor file's part.
        anchor = ({"link": int(head_link), "hash": head_hash, "last_ids": json.loads(last_ids)}
                  if head_link else None)
        more, notes = verify.check_anchor(conn, anchor, int(head_link),
                                          f"{redact(url)} console {name}")  # type: ignore[arg-type]
        findings += more
        notes += coverage.notes
        return verify.Report(f"{redact(url)} console {name} ({console_uuid})", findings, notes,
                             result.links, result.rows, len(result.seals), result.elapsed_s,
                             time.perf_counter() - started, result.last_link, result.last_hash)

    return [report for _, report in _each_console(url, check)]


# -- reports -------------------------------------------------------------------------------
def _label(console: tuple, by: str) -> str:
    return (console[2] or "-") if by == "site" else console[1]


def energy(url: str, by: str, f: Filters) -> Report:
    """Return the energy report over every console, as the sum of each console's."""
    if by in FLEET_GROUPS:
        parts = _each_console(url, lambda v, c: reports.energy_report(v, "month",  # type: ignore[arg-type]
                                                                      f))
        rows = []
        for console, part in parts:
            rows += [{**r, by: _label(console, by)} for r in part.rows]
        merged = _merge(rows, [by], _ENERGY_SUMS)
        columns = [by, *[c for c in parts[0][1].columns[1:]]] if parts else [by]
        return Report(f"Energy by {by} (fleet)", columns, merged, _energy_total(merged, by))
    if by not in reports.ENERGY_GROUPS:
        raise reports.ReportError(f"--by {by!r} is unknown; expected one of "
                                  f"{', '.join(reports.ENERGY_GROUPS + FLEET_GROUPS)}")
    if by == "pass":  # each session's passes are its own: listed console by console
        return _stacked(url, lambda v: reports.energy_report(v, by, f), "Energy by pass")
    parts = _each_console(url, lambda v, c: reports.energy_report(v, by, f))  # type: ignore[arg-type]
    if by == "session":
        rows = []
        for console, part in parts:
            rows += [{"console": console[1], **r} for r in part.rows]
        rows.sort(key=lambda r: (r["started_utc"], r["console"], r["session"]))
        if f.last is not None:
            rows = rows[-f.last:]
        columns = ["console", *(parts[0][1].columns if parts else [])]
        return Report("Energy by session (fleet)", columns, rows,
                      _energy_total([{**r, "sessions": 1} for r in rows], "console"))
    head = ["client", "area"] if by == "client" else [by]
    rows = [r for _, part in parts for r in part.rows]
    merged = _merge(rows, head, _ENERGY_SUMS)
    columns = parts[0][1].columns if parts else head
    return Report(f"Energy by {by} (fleet)", columns, merged, _energy_total(merged, head[0]))


def faults(url: str, by: str, f: Filters, kinds: tuple[str, ...]) -> Report:
    """Return the faults report over every console, as the sum of each console's."""
    if by in FLEET_GROUPS:
        parts = _each_console(url, lambda v, c: reports.faults_report(v, "kind", f,  # type: ignore[arg-type]
                                                                      kinds))
        rows = [{**r, by: _label(console, by)} for console, part in parts for r in part.rows]
        merged = _merge(rows, [by, "kind"], _FAULT_SUMS)
        columns = [by, "kind", "events", "count", "missing_pulses", "alarms", "first_utc",
                   "last_utc"]
        return Report(f"Faults by {by} (fleet)", columns, merged, _faults_total(merged, by))
    parts = _each_console(url, lambda v, c: reports.faults_report(v, by, f, kinds))  # type: ignore[arg-type]
    if by == "event":
        rows = [{"console": console[1], **r} for console, part in parts for r in part.rows]
        rows.sort(key=lambda r: (r["received_utc"], r["console"]))
        columns = ["console", *(parts[0][1].columns if parts else [])]
        total = {"console": "TOTAL", "events": len(rows),
                 "count": sum(r["count"] for r in rows),
                 "missing_pulses": sum(r["missing_pulses"] or 0 for r in rows)}
        return Report("Faults by event (fleet)", columns, rows, total)
    head = [by] if by == "kind" else [by, "kind"]
    rows = [r for _, part in parts for r in part.rows]
    merged = _merge(rows, head, _FAULT_SUMS)
    columns = parts[0][1].columns if parts else head
    return Report(f"Faults by {by} (fleet)", columns, merged, _faults_total(merged, head[0]))


def _regimes(values: list[str]) -> str:
    found = sorted({r for v in values for r in (v or "").split(",") if r and r != "-"})
    return ",".join(found) or "-"


def _max(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


_ENERGY_SUMS: dict[str, Callable[[list[Any]], Any]] = {
    "sessions": sum, "pulses": sum, "energy_j": sum, "out_of_limit": sum,
    "max_fluence_j_cm2": _max, "regimes": _regimes,
    "first_utc": min, "last_utc": max}
_FAULT_SUMS: dict[str, Callable[[list[Any]], Any]] = {
    "events": sum, "count": sum, "missing_pulses": sum, "alarms": sum,
    "first_utc": min, "last_utc": max}


def _merge(rows: list[dict[str, Any]], head: list[str],
           how: dict[str, Callable[[list[Any]], Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[h] for h in head), []).append(r)
    out = []
    for key in sorted(groups):
        members = groups[key]
        row = dict(zip(head, key, strict=True))
        for column, combine in how.items():
            if column in members[0]:
                row[column] = combine([m[column] for m in members])
        out.append(row)
    return out


def _energy_total(rows: list[dict[str, Any]], first: str) -> dict[str, Any]:
    return {first: "TOTAL", "sessions": sum(r["sessions"] for r in rows),
            "pulses": sum(r["pulses"] for r in rows),
            "energy_j": sum(r["energy_j"] for r in rows),
            "max_fluence_j_cm2": _max([r["max_fluence_j_cm2"] for r in rows]),
            "regimes": _regimes([r["regimes"] for r in rows]),
            "out_of_limit": sum(r["out_of_limit"] for r in rows)}


def _faults_total(rows: list[dict[str, Any]], first: str) -> dict[str, Any]:
    return {first: "TOTAL", "events": sum(r["events"] for r in rows),
            "count": sum(r["count"] for r in rows),
            "missing_pulses": sum(r["missing_pulses"] for r in rows)}


def adverse(url: str, by: tuple[str, ...], kind: str | None,
            edges: tuple[float, ...]) -> Report:
    """Return the dose-safety report over every console's sessions taken together.

    Quartile bands need every dose at a wavelength at once, so the sessions of all consoles
    are grouped in one pass rather than per console and summed.
    """
    from laserlog.review import adverse_report as adverse_

    adverse_.check_kind(kind)
    parts = _each_console(url, lambda v, c: (adverse_.session_doses(v),  # type: ignore[arg-type]
                                             adverse_.session_events(v, kind)))  # type: ignore[arg-type]
    doses: list[adverse_.SessionDose] = []
    events = {}
    for _, (console_doses, console_events) in parts:
        # Session ids repeat across consoles: number the fleet's sessions afresh.
        for dose in console_doses:
            fleet_id = len(doses) + 1
            doses.append(dose._replace(session_id=fleet_id))
            if dose.session_id in console_events:
                events[fleet_id] = console_events[dose.session_id]
    report = adverse_.grouped(doses, events, by, kind=kind, edges=edges)
    report.title += " (fleet)"
    return report


# -- limits, calibration, sign-offs: one console after another ----------------------------------
def _stacked(url: str, make: Callable[[Any], Report], title: str,
             order: Callable[[dict[str, Any]], Any] | None = None) -> Report:
    """Return each console's report with a `console` column in front, the rows one after another.

    Rows keep the console's own order (console by console, by name), or `order` sorts them
    across the fleet; numeric cells of the totals are summed, the highest (`max_...`) the
    highest.
    """
    parts = _each_console(url, lambda v, c: make(v))
    rows = [{"console": console[1], **r} for console, part in parts for r in part.rows]
    if order is not None:
        rows.sort(key=order)
    first = parts[0][1] if parts else None
    columns = ["console", *(first.columns if first else [])]
    total: dict[str, Any] | None = None
    if first is not None and first.total is not None:
        total = {columns[1]: "TOTAL"}
        for key, value in first.total.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                values = [(part.total or {}).get(key) for _, part in parts]
                total[key] = (_max(values) if key.startswith("max_")
                              else sum(v or 0 for v in values))
    notes = sorted({n for _, part in parts for n in part.notes})
    if rows:
        notes = [n for n in notes if not n.startswith("no ")]
    return Report(f"{first.title if first else title} (fleet)", columns, rows, total, notes)


def limits(url: str, f: Filters) -> Report:
    """Return the sessions outside their limits on every console (each console's report)."""
    return _stacked(url, lambda v: reports.limits_report(v, f), "Sessions outside their limits")


def calibration(url: str, f: Filters, *, history: bool) -> Report:
    """Return each console's calibration status (or every check), console by console.

    The consoles' site files stay on the consoles: the central server applies the site
    configuration $LASERLOG_SITE names, else the defaults.
    """
    from laserlog.config.siteconfig import site_for

    site = site_for(None)
    return _stacked(url, lambda v: reports.calibration_report(v, f, history=history, site=site),
                    "Calibration checks" if history else "Calibration status",
                    (lambda r: (r["started_utc"], r["console"], r["check"])) if history else None)


def signoffs(url: str, f: Filters, *, user: str | None, unsigned: bool) -> Report:
    """Return who signed what on every console, or each console's ended unapproved sessions."""
    return _stacked(url, lambda v: reports.signoffs_report(v, f, user=user, unsigned=unsigned),
                    "Ended sessions without a valid approval" if unsigned else "Sign-offs")


# -- export ------------------------------------------------------------------------------------
def export(url: str, console: str | None, fmt: str, session_id: int | None,
           start_utc: str | None, end_utc: str | None, out: Any, *, table: str = "pulses",
           progress: Callable[[int, int], None] | None = None,
           force: bool = False, pulses: bool = False) -> tuple[int, int, str]:
    """Export one console's sessions from the server, as from its file.

    Sessions are named by the console's own ids (`--session ID --console NAME-or-UUID`).
    Return (sessions, rows written, the console's name).
    """
    from laserlog.central.pgconn import find_console
    from laserlog.review import export as exporter

    pg = _open(url)
    try:
        where = redact(url)
        found = find_console(pg, console, where)
        view: Any = ConsoleView(pg, found[0], found[1])
        chosen = exporter.select_sessions(view, session_id, start_utc, end_utc)
        rows = exporter.export(view, fmt, chosen, out, table=table, progress=progress,
                               database=f"{where} console {found[1]} ({found[3]})", force=force,
                               pulses=pulses)
        pg.rollback()
        return len(chosen), rows, found[1]
    finally:
        pg.close()
