"""The officer's dose-safety report: adverse events against the dose each session delivered.

A session's dose is its highest per-pass mean fluence, or its mean fluence when it has no
passes; its energy is its total energy. Only sessions that delivered pulses count. Fluence
bands come from the site file (`[adverse] fluence_bands_j_cm2`), else from the quartiles of
the session doses at each wavelength (a session's wavelength is the one most of its pulses
had); the report's notes print the edges either way. Retracted events never count.
"""

from __future__ import annotations

import bisect
import sqlite3
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from laserlog.domain.reactions import ADVERSE_KINDS
from laserlog.review import corrections, reactions
from laserlog.review.reports import Report, ReportError, _device

GROUPS = ("skin-type", "fluence-band", "device", "indication")


@dataclass(frozen=True, slots=True)
class SessionDose:
    """One session's dose, for grouping."""

    session_id: int
    skin_type: str
    device: str
    indication: str
    wavelength_nm: float | None
    dose_j_cm2: float | None
    energy_j: float


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
    cur = conn.execute(
        "SELECT s.id, s.skin_type, s.profile_id, d.serial, s.total_energy_j FROM sessions s"
        " LEFT JOIN devices d ON d.id = s.device_id WHERE s.pulse_count > 0"
        " ORDER BY s.started_utc, s.id")
    chosen = cur.fetchall()
    skin_fixes = corrections.current(conn, [int(r[0]) for r in chosen])
    mean: dict[int, float | None] = {}
    wavelength: dict[int, float | None] = {}
    mixed: list[int] = []
    # One pass over the pulses in session order; only a session whose pulses had more than
    # one wavelength (or some none) is asked again for the one most of them had.
    for sid, n, n_wl, low_nm, high_nm, fluence in conn.execute(
            "SELECT session_id, count(*), count(wavelength_nm), min(wavelength_nm),"
            " max(wavelength_nm), avg(fluence_j_cm2) FROM pulses GROUP BY session_id"):
        mean[sid] = fluence
        if n_wl == n and low_nm == high_nm or n_wl == 0:
            wavelength[sid] = low_nm
        else:
            mixed.append(sid)
    wavelength.update(_most_pulses_nm(conn, mixed))
    per_pass: dict[int, float] = {}
    for sid, fluence in conn.execute(
            "SELECT pp.session_id, avg(p.fluence_j_cm2) FROM pulse_passes pp JOIN pulses p"
            " ON p.id = pp.pulse_id WHERE pp.pass_number IS NOT NULL AND pp.session_id IN"
            " (SELECT DISTINCT session_id FROM events WHERE kind = 'pass')"
            " GROUP BY pp.session_id, pp.pass_number"):
        if fluence is not None:
            per_pass[sid] = max(per_pass.get(sid, 0.0), float(fluence))
    indications = dict(conn.execute(
        "SELECT k.session_id, c.indication FROM session_kind k JOIN courses c"
        " ON c.id = k.course_id"))
    devices = {(profile, serial): _device({"profile_id": profile, "serial": serial})
               for _, _, profile, serial, _ in chosen}
    out = []
    for sid, skin_type, profile_id, serial, energy_j in chosen:
        if sid in skin_fixes:
            skin_type = skin_fixes[sid].get("skin_type", skin_type)
        dose = per_pass.get(sid, mean.get(sid))
        out.append(SessionDose(sid, skin_type or "-", devices[profile_id, serial],
                               indications.get(sid) or "-", wavelength.get(sid),
                               None if dose is None else round(dose, 9), energy_j))
    return out


def _most_pulses_nm(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, float | None]:
    """Return the wavelength most of each session's pulses had (a tie: the lowest; none
    last), for sessions of mixed wavelengths."""
    best: dict[int, int] = {}
    out: dict[int, float | None] = {}
    for start in range(0, len(session_ids), 500):
        part = session_ids[start:start + 500]
        for sid, nm, n in conn.execute(
                "SELECT session_id, wavelength_nm, count(*) FROM pulses WHERE session_id IN"
                f" ({', '.join('?' * len(part))}) GROUP BY session_id, wavelength_nm"
                " ORDER BY session_id, wavelength_nm IS NULL, wavelength_nm", part):
            if n > best.get(sid, 0):
                best[sid], out[sid] = n, nm
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
    return grouped(session_doses(conn), session_events(conn, kind), by, kind=kind,
                   edges=edges)


def grouped(doses: list[SessionDose], events: dict[int, Counter[str]], by: tuple[str, ...], *,
            kind: str | None, edges: tuple[float, ...]) -> Report:
    """Return the report of these sessions and their events (keyed by session id)."""
    bands, notes = _bands(doses, edges)
    groups: dict[tuple[str, ...], list[SessionDose]] = {}
    # Bands in dose order (each labelled by its lowest dose), other groupings by name.
    low: dict[str, float] = {}
    pick = [GROUPS.index(g) for g in by]
    for d, band in zip(doses, bands, strict=True):
        values = (d.skin_type, band, d.device, d.indication)
        groups.setdefault(tuple(values[i] for i in pick), []).append(d)
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
