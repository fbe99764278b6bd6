"""The officer's dose-safety report: adverse events against the dose each session delivered.

A session's dose is its highest per-pass mean fluence, or its mean fluence when it has no
passes; its energy is its total energy. Only sessions that delivered pulses count. Fluence
bands come from the site file (`[adverse] fluence_bands_j_cm2`), else from the quartiles of
the session doses at each wavelength (a session's wavelength is the one most of its pulses
had); the report's notes print the edges either way. Retracted events never count.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import sqlite3
import statistics
from collections import Counter
from collections.abc import Iterator
from operator import attrgetter
from typing import Any, NamedTuple

from laserlog.domain.reactions import ADVERSE_KINDS
from laserlog.review import corrections, reactions
from laserlog.review.reports import Report, ReportError, _device
from laserlog.storage.doses import CURRENT_ROW, Dose, compute

GROUPS = ("skin-type", "fluence-band", "device", "indication")


class SessionDose(NamedTuple):
    """One session's dose, for grouping (a named tuple: one is made for every session)."""

    session_id: int
    skin_type: str
    device: str
    indication: str
    wavelength_nm: float | None
    dose_j_cm2: float | None
    energy_j: float


NO_FIGURES = Dose(None, None, None)


def parse_groups(text: str) -> tuple[str, ...]:
    """Return the groupings `--by a,b` names, or raise naming the unknown one."""
    wanted = tuple(part.strip() for part in text.split(",") if part.strip())
    for part in wanted:
        if part not in GROUPS:
            raise ReportError(f"--by {part!r} is unknown; expected one or more of "
                              f"{', '.join(GROUPS)} separated by commas")
    if not wanted or len(set(wanted)) != len(wanted):
        raise ReportError(f"--by {text!r}: expected distinct groupings from {', '.join(GROUPS)}")
    return wanted


def session_doses(conn: sqlite3.Connection) -> list[SessionDose]:
    """Return every session that delivered pulses with its dose, energy and groupings.

    Doses are rounded to 1e-9 J/cm2: SQLite and PostgreSQL add a session's fluences in
    different orders, and the rounding makes a console's file and the central server give
    the same dose, hence the same quartiles and bands.
    """
    # Each session with its dose from its current dose row, if it has one (laserlog.storage.
    # doses): the highest per-pass mean fluence, else the mean. Plain tuples, not rows by
    # name: this reads every session.
    cur = conn.cursor()
    cur.row_factory = None
    chosen = cur.execute(
        "SELECT s.id, coalesce(s.skin_type, '-'), s.profile_id, d.serial, s.total_energy_j,"
        " f.id IS NOT NULL,"
        " coalesce(f.pass_fluence_j_cm2, f.mean_fluence_j_cm2), f.wavelength_nm"
        " FROM sessions s LEFT JOIN devices d ON d.id = s.device_id"
        f" LEFT JOIN session_doses f ON {CURRENT_ROW}"
        " WHERE s.pulse_count > 0 ORDER BY s.started_utc, s.id").fetchall()
    skin_fixes = corrections.current(conn, [r[0] for r in chosen])
    # Sessions without a current row (recorded before schema 9, or still recording): their
    # figures from the pulses.
    computed = compute(conn, [r[0] for r in chosen if not r[5]])
    indications = dict(conn.execute(
        "SELECT k.session_id, c.indication FROM session_kind k JOIN courses c"
        " ON c.id = k.course_id"))
    devices: dict[tuple[str, str | None], str] = {}
    out = []
    for sid, skin_type, profile_id, serial, energy_j, stored, dose, nm in chosen:
        if not stored:
            figure = computed.get(sid, NO_FIGURES)
            dose, nm = figure.dose_j_cm2, figure.wavelength_nm
        if sid in skin_fixes:
            skin_type = skin_fixes[sid].get("skin_type", skin_type) or "-"
        device = devices.get((profile_id, serial))
        if device is None:
            device = devices[profile_id, serial] = _device({"profile_id": profile_id,
                                                            "serial": serial})
        out.append(SessionDose(sid, skin_type, device, indications.get(sid) or "-", nm,
                               None if dose is None else round(dose, 9), energy_j))
    return out


def check_kind(kind: str | None) -> None:
    """Raise naming the kind when `--kind` is not an adverse-event kind."""
    if kind is not None and kind not in ADVERSE_KINDS:
        raise ReportError(f"--kind {kind!r} is unknown; expected one of "
                          f"{', '.join(ADVERSE_KINDS)}")


def session_events(conn: sqlite3.Connection, kind: str | None) -> dict[int, Counter[str]]:
    """Return each session's standing adverse events (of one kind, or all) counted by kind."""
    events: dict[int, Counter[str]] = {}
    for e in reactions.adverse_events(conn):
        if kind is None or e["kind"] == kind:
            events.setdefault(int(e["session_id"]), Counter())[e["kind"]] += 1
    return events


def _bands(doses: list[SessionDose], edges: tuple[float, ...]) -> tuple[list[str], list[str]]:
    """Return each session's band label (in the order of `doses`) and the notes that print
    the edges."""
    if edges:
        labels = ([f"<{edges[0]:g}"]
                  + [f"{low:g}-{high:g}" for low, high in zip(edges, edges[1:], strict=False)]
                  + [f">={edges[-1]:g}"])
        # The edges ascend: a dose's band is the number of edges at or below it.
        return ([labels[bisect.bisect_right(edges, d.dose_j_cm2)] if d.dose_j_cm2 is not None
                 else "-" for d in doses],
                [f"fluence bands (J/cm2, from the site file): {', '.join(labels)}"])
    notes = ["fluence bands: quartiles of the session doses at each wavelength (J/cm2)"]
    by_wavelength: dict[float | None, list[float]] = {}
    for d in doses:
        if d.dose_j_cm2 is not None:
            by_wavelength.setdefault(d.wavelength_nm, []).append(d.dose_j_cm2)
    # Per wavelength: the cuts and the label of each quarter.
    quarters: dict[float | None, tuple[tuple[float, ...], list[str]]] = {}
    for wl in sorted(by_wavelength, key=lambda w: (w is None, w or 0.0)):
        where = f"{wl:g} nm" if wl is not None else "? nm"
        values = sorted(by_wavelength[wl])
        if len(values) < 2:
            quarters[wl] = ((), [f"{where} all"])
            notes.append(f"  {where}: fewer than 2 doses, one band")
            continue
        q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
        spans = ((values[0], q1), (q1, q2), (q2, q3), (q3, values[-1]))
        quarters[wl] = ((q1, q2, q3), [f"{where} Q{n} {low:.3f}-{high:.3f}"
                                       for n, (low, high) in enumerate(spans, start=1)])
        notes.append(f"  {where}: Q1 <= {q1:.3f} < Q2 <= {q2:.3f} < Q3 <= {q3:.3f} < Q4 "
                     f"(doses {values[0]:.3f} to {values[-1]:.3f})")
    out = []
    for d in doses:
        if d.dose_j_cm2 is None:
            out.append("-")
            continue
        # A quarter holds the doses above the cut below it, up to and including its own.
        cuts, labels = quarters[d.wavelength_nm]
        out.append(labels[bisect.bisect_left(cuts, d.dose_j_cm2)])
    return out, notes


def adverse_report(conn: sqlite3.Connection, by: tuple[str, ...], *, kind: str | None = None,
                   edges: tuple[float, ...] = ()) -> Report:
    """Return sessions, sessions with adverse events and their share, events by kind and
    doses, per group."""
    check_kind(kind)
    with _collector_paused():
        return grouped(session_doses(conn), session_events(conn, kind), by, kind=kind,
                       edges=edges)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector: the report makes a few records per session, none in a
    cycle, and the collections their number sets off cost ~15 % of its time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def grouped(doses: list[SessionDose], events: dict[int, Counter[str]], by: tuple[str, ...], *,
            kind: str | None, edges: tuple[float, ...]) -> Report:
    """Return the report of these sessions and their events (keyed by session id)."""
    bands, notes = _bands(doses, edges)
    groups: dict[tuple[str, ...], list[SessionDose]] = {}
    # Each grouping's value per session (the field of that name, or the band), zipped.
    keys = zip(*(bands if g == "fluence-band" else list(map(attrgetter(g.replace("-", "_")),
                                                             doses)) for g in by), strict=True)
    for key, d in zip(keys, doses, strict=True):
        groups.setdefault(key, []).append(d)
    # Bands in dose order (each labelled by its lowest dose), other groupings by name.
    low: dict[str, float] = {}
    if "fluence-band" in by:
        for d, band in zip(doses, bands, strict=True):
            dose = d.dose_j_cm2 or 0.0
            if dose < low.get(band, float("inf")):
                low[band] = dose
    columns = [g.replace("-", "_") for g in by] + [
        "sessions", "with_adverse", "share", "events", "dose_mean_j_cm2", "dose_max_j_cm2",
        "adverse_dose_mean_j_cm2", "energy_j"]

    def order(key: tuple[str, ...]) -> tuple:
        return tuple((low.get(k, 0.0), k) if g == "fluence-band" else (0.0, k)
                     for g, k in zip(by, key, strict=True))

    rows = [_row(dict(zip(columns, key, strict=False)), members, events)
            for key, members in sorted(groups.items(), key=lambda kv: order(kv[0]))]
    total = _row({columns[0]: "TOTAL"}, doses, events)
    title = "Adverse events by " + ", ".join(by) + (f" (kind {kind})" if kind else "")
    return Report(title, columns, rows, total, notes)


def _row(label: dict[str, Any], members: list[SessionDose],
         events: dict[int, Counter[str]]) -> dict[str, Any]:
    hit = [m for m in members if m.session_id in events]
    kinds: Counter[str] = Counter()
    for m in hit:
        kinds.update(events[m.session_id])
    dosed = [m.dose_j_cm2 for m in members if m.dose_j_cm2 is not None]
    hit_dosed = [m.dose_j_cm2 for m in hit if m.dose_j_cm2 is not None]
    return {**label, "sessions": len(members), "with_adverse": len(hit),
            "share": round(len(hit) / len(members), 4) if members else None,
            "events": ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "-",
            "dose_mean_j_cm2": statistics.fmean(dosed) if dosed else None,
            "dose_max_j_cm2": max(dosed) if dosed else None,
            "adverse_dose_mean_j_cm2": statistics.fmean(hit_dosed) if hit_dosed else None,
            "energy_j": sum(m.energy_j for m in members)}
