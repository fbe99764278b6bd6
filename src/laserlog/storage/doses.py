"""Each session's dose figures, computed from its pulses and kept as chained rows.

A session's figures are its mean fluence, its wavelength (the one most of its pulses had; a
tie: the lowest; none last) and its highest per-pass mean fluence (None without passes).
`Store.recount` (a session's end, a recovery) appends a `session_doses` row with them and the
pulse and event counts they were computed over, in the hash chain; a row is current while
those counts are still the session's. The dose-safety report reads current rows instead of
every pulse, and `laserlog verify` recomputes each current row from the pulses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

from laserlog.storage import chain

COLUMNS = ("session_id", "pulse_count", "event_count", "mean_fluence_j_cm2", "wavelength_nm",
           "pass_fluence_j_cm2")

#: Sessions per `IN (...)` list; more sessions than ALL_AT_ONCE are read in one pass.
CHUNK = 500
ALL_AT_ONCE = 5000

#: Each pass's mean fluence. A pulse belongs to the newest pass started at or before it (the
#: pulse_passes view's rule; of passes started at once, the last recorded), so each pass
#: mark covers its session's pulses from its start up to the next mark's. Read from the
#: tables (a view is code in the file that anyone can redefine), and as time ranges: asking
#: for each pulse's newest mark searched back through every session's marks for a pulse
#: before its session's first one. (`kind || ''` keeps SQLite on the session index rather
#: than on every session's pass marks.)
_PASS_MEANS = (
    "WITH marks AS (SELECT session_id, code, received_unix_s AS start_unix_s,"
    " lead(received_unix_s) OVER (PARTITION BY session_id ORDER BY received_unix_s, id)"
    " AS next_unix_s FROM events WHERE session_id IN ({sessions}) AND kind || '' = 'pass')"
    " SELECT m.session_id, avg(p.fluence_j_cm2) FROM marks m JOIN pulses p"
    " ON p.session_id = m.session_id AND p.received_unix_s >= m.start_unix_s"
    " AND (m.next_unix_s IS NULL OR p.received_unix_s < m.next_unix_s)"
    " WHERE m.code IS NOT NULL GROUP BY m.session_id, m.code")


class Dose(NamedTuple):
    """One session's dose figures, as computed from its pulses (a named tuple: the report
    makes one for each session without a current row)."""

    mean_fluence_j_cm2: float | None
    wavelength_nm: float | None
    pass_fluence_j_cm2: float | None

    @property
    def dose_j_cm2(self) -> float | None:
        """Return the session's dose: its highest per-pass mean fluence, else its mean."""
        return self.mean_fluence_j_cm2 if self.pass_fluence_j_cm2 is None \
            else self.pass_fluence_j_cm2


def compute(conn: sqlite3.Connection, session_ids: Iterable[int] | None = None
            ) -> dict[int, Dose]:
    """Return the dose figures of these sessions (None: all) that have pulses."""
    wanted = None if session_ids is None else sorted(set(session_ids))
    if wanted is not None and len(wanted) > ALL_AT_ONCE:
        chosen = set(wanted)
        return {sid: d for sid, d in compute(conn).items() if sid in chosen}
    parts = [None] if wanted is None else [wanted[i:i + CHUNK]
                                           for i in range(0, len(wanted), CHUNK)]
    mean: dict[int, float | None] = {}
    wavelength: dict[int, float | None] = {}
    mixed: list[int] = []
    with_passes: list[int] = []
    for part in parts:
        params = part or []
        only = f" AND session_id IN ({', '.join('?' * len(params))})" if part else ""
        # One pass over the pulses in session order; only a session whose pulses had more
        # than one wavelength (or some none) is asked again for the one most of them had.
        for sid, n, n_wl, low_nm, high_nm, fluence in conn.execute(
                "SELECT session_id, count(*), count(wavelength_nm), min(wavelength_nm),"
                f" max(wavelength_nm), avg(fluence_j_cm2) FROM pulses WHERE session_id IS NOT NULL{only}"
                " GROUP BY session_id", params):
            mean[sid] = fluence
            if n_wl == n and low_nm == high_nm or n_wl == 0:
                wavelength[sid] = low_nm
            else:
                mixed.append(sid)
        with_passes += [r[0] for r in conn.execute(
            f"SELECT DISTINCT session_id FROM events WHERE kind = 'pass'{only}", params)]
    wavelength.update(_most_pulses_nm(conn, mixed))
    per_pass: dict[int, float] = {}
    for start in range(0, len(with_passes), CHUNK):
        part = with_passes[start:start + CHUNK]
        for sid, fluence in conn.execute(
                _PASS_MEANS.format(sessions=", ".join("?" * len(part))), part):
            if fluence is not None:
                per_pass[sid] = max(per_pass.get(sid, 0.0), float(fluence))
    return {sid: Dose(m, wavelength.get(sid), per_pass.get(sid)) for sid, m in mean.items()}


def _most_pulses_nm(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, float | None]:
    """Return the wavelength most of each session's pulses had (a tie: the lowest; none
    last), for sessions of mixed wavelengths."""
    best: dict[int, int] = {}
    out: dict[int, float | None] = {}
    for start in range(0, len(session_ids), CHUNK):
        part = session_ids[start:start + CHUNK]
        for sid, nm, n in conn.execute(
                "SELECT session_id, wavelength_nm, count(*) FROM pulses WHERE session_id IN"
                f" ({', '.join('?' * len(part))}) GROUP BY session_id, wavelength_nm"
                " ORDER BY session_id, wavelength_nm IS NULL, wavelength_nm", part):
            if n > best.get(sid, 0):
                best[sid], out[sid] = n, nm
    return out


def record(conn: sqlite3.Connection, session_ids: list[int]) -> chain.Head | None:
    """Append the sessions' current dose rows and their chain link (inside a transaction,
    after their totals were recounted); None when there are no such sessions."""
    figures = compute(conn, session_ids)
    counts = {int(r[0]): (r[1], r[2]) for part in range(0, len(session_ids), CHUNK)
              for r in conn.execute(
                  "SELECT id, pulse_count, event_count FROM sessions WHERE id IN"
                  f" ({', '.join('?' * len(session_ids[part:part + CHUNK]))})",
                  session_ids[part:part + CHUNK])}
    rows = []
    for sid in sorted(counts):
        dose = figures.get(sid, Dose(None, None, None))
        rows.append((sid, *counts[sid], dose.mean_fluence_j_cm2, dose.wavelength_nm,
                     dose.pass_fluence_j_cm2))
    if not rows:
        return None
    return chain.insert(conn, "session_doses", rows, COLUMNS,
                        session_id=rows[0][0] if len(rows) == 1 else None)


#: Whether dose row `f` is session `s`'s current one: its newest, computed over the pulses
#: and events the session still has (a join condition over `sessions s`, `session_doses f`).
CURRENT_ROW = ("f.id = (SELECT max(id) FROM session_doses WHERE session_id = s.id)"
               " AND f.pulse_count = s.pulse_count AND f.event_count = s.event_count")
#: Every current dose row.
CURRENT = ("SELECT f.id, f.session_id, f.mean_fluence_j_cm2, f.wavelength_nm,"
           f" f.pass_fluence_j_cm2 FROM sessions s JOIN session_doses f ON {CURRENT_ROW}")


def agree(stored: float | None, value: float | None) -> bool:
    """Tell whether a stored mean fluence equals one recomputed from the pulses.

    SQLite adds a session's fluences in the order its plan reads them, so two sums of the
    same pulses may differ in the last bits: within a relative 1e-9 (plus 1e-12) they agree.
    """
    if stored is None or value is None:
        return stored is value
    return abs(stored - value) <= 1e-9 * max(abs(stored), abs(value)) + 1e-12
