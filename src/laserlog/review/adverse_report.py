"""The officer's dose-safety report: adverse events against the dose each session delivered.

A session's dose is its highest per-pass mean fluence, or its mean fluence when it has no
passes; its energy is its total energy. Only sessions that delivered pulses count. Fluence
bands come from the site file (`[adverse] fluence_bands_j_cm2`), else from the quartiles of
the session doses at each wavelength (a session's wavelength is the one most of its pulses
had); the report's notes print the edges either way. Retracted events never count.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from laserlog.domain.reactions import ADVERSE_KINDS
from laserlog.review import reactions
from laserlog.review.reports import Filters, Report, ReportError, _device, sessions

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


def session_doses(conn: sqlite3.Connection, f: Filters | None = None) -> list[SessionDose]:
    """Return every session that delivered pulses with its dose, energy and groupings.

    Doses are rounded to 1e-9 J/cm2: SQLite and PostgreSQL add a session's fluences in
    different orders, and the rounding makes a console's file and the central server give
    the same dose, hence the same quartiles and bands.
    """
    chosen = [r for r in sessions(conn, f or Filters()) if r["pulse_count"] > 0]
    mean: dict[int, float | None] = {}
    wavelength: dict[int, float | None] = {}
    best: dict[int, int] = {}
    # The lowest wavelength wins a tie; NULL last on both databases.
    for sid, wl, n in conn.execute(
            "SELECT session_id, wavelength_nm, count(*) FROM pulses"
            " GROUP BY session_id, wavelength_nm"
            " ORDER BY session_id, wavelength_nm IS NULL, wavelength_nm"):
        if n > best.get(sid, 0):
            best[sid], wavelength[sid] = n, wl
    for sid, fluence in conn.execute("SELECT session_id, avg(fluence_j_cm2) FROM pulses"
                                     " GROUP BY session_id"):
        mean[sid] = fluence
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
    return [SessionDose(int(r["id"]), r["skin_type"] or "-", _device(r),
                        indications.get(r["id"]) or "-", wavelength.get(r["id"]),
                        _rounded(per_pass.get(r["id"], mean.get(r["id"]))),
                        float(r["total_energy_j"]))
            for r in chosen]


def _rounded(dose_j_cm2: float | None) -> float | None:
    return None if dose_j_cm2 is None else round(float(dose_j_cm2), 9)


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


def _bands(doses: list[SessionDose], edges: tuple[float, ...]) -> tuple[dict[int, str],
                                                                         list[str]]:
    """Return each session's band label and the notes that print the edges."""
    out: dict[int, str] = {}
    if edges:
        labels = ([f"<{edges[0]:g}"]
                  + [f"{low:g}-{high:g}" for low, high in zip(edges, edges[1:], strict=False)]
                  + [f">={edges[-1]:g}"])
        for d in doses:
            if d.dose_j_cm2 is None:
                out[d.session_id] = "-"
                continue
            index = sum(1 for e in edges if d.dose_j_cm2 >= e)
            out[d.session_id] = labels[index]
        return out, [f"fluence bands (J/cm2, from the site file): {', '.join(labels)}"]
    notes = ["fluence bands: quartiles of the session doses at each wavelength (J/cm2)"]
    by_wavelength: dict[float | None, list[SessionDose]] = {}
    for d in doses:
        by_wavelength.setdefault(d.wavelength_nm, []).append(d)
    for wl in sorted(by_wavelength, key=lambda w: (w is None, w or 0.0)):
        members = by_wavelength[wl]
        where = f"{wl:g} nm" if wl is not None else "? nm"
        values = sorted(d.dose_j_cm2 for d in members if d.dose_j_cm2 is not None)
        if len(values) < 2:
            for d in members:
                out[d.session_id] = f"{where} all" if d.dose_j_cm2 is not None else "-"
            notes.append(f"  {where}: fewer than 2 doses, one band")
            continue
        q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
        cuts = (q1, q2, q3)
        spans = [(values[0], q1), (q1, q2), (q2, q3), (q3, values[-1])]
        for d in members:
            if d.dose_j_cm2 is None:
                out[d.session_id] = "-"
                continue
            quarter = 1 + sum(1 for c in cuts if d.dose_j_cm2 > c)
            low, high = spans[quarter - 1]
            out[d.session_id] = f"{where} Q{quarter} {low:.2f}-{high:.2f}"
        notes.append(f"  {where}: Q1 <= {q1:.3f} < Q2 <= {q2:.3f} < Q3 <= {q3:.3f} < Q4 "
                     f"(doses {values[0]:.3f} to {values[-1]:.3f})")
    return out, notes


def adverse_report(conn: sqlite3.Connection, by: tuple[str, ...], *, kind: str | None = None,
                   edges: tuple[float, ...] = (), f: Filters | None = None) -> Report:
    """Return sessions, sessions with adverse events and their share, events by kind and
    doses, per group."""
    check_kind(kind)
    return grouped(session_doses(conn, f), session_events(conn, kind), by, kind=kind,
                   edges=edges)


def grouped(doses: list[SessionDose], events: dict[int, Counter[str]], by: tuple[str, ...], *,
            kind: str | None, edges: tuple[float, ...]) -> Report:
    """Return the report of these sessions and their events (keyed by session id)."""
    bands, notes = _bands(doses, edges)
    groups: dict[tuple[str, ...], list[SessionDose]] = {}
    for d in doses:
        values = {"skin-type": d.skin_type, "fluence-band": bands[d.session_id],
                  "device": d.device, "indication": d.indication}
        groups.setdefault(tuple(values[g] for g in by), []).append(d)
    columns = [g.replace("-", "_") for g in by] + [
        "sessions", "with_adverse", "share", "events", "dose_mean_j_cm2", "dose_max_j_cm2",
        "adverse_dose_mean_j_cm2", "energy_j"]
    # Bands in dose order (each labelled by its lowest dose), other groupings by name.
    low: dict[str, float] = {}
    for d in doses:
        label = bands[d.session_id]
        low[label] = min(low.get(label, float("inf")), d.dose_j_cm2 or 0.0)

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
