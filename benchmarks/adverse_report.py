"""The officer's dose-safety report on a database of 50 000 sessions.

Builds the database once (bulk inserts through laserlog's own schema, like courses.py;
cached under benchmarks/.cache/, or --db PATH): sessions at 755 nm and 1064 nm on skin types
I-VI, one in ten with two passes, about 4 % with an adverse event (PIH more often on types
IV-VI and at higher doses; one in twenty of them retracted), and each session's dose row
as the recorder's recount appends it at the session's end (laserlog.storage.doses). Then
prints JSON lines with the median time, in process, of `laserlog report adverse --by
skin-type,fluence-band --kind pih` (review.adverse_report, quartile bands per wavelength):
target 200 ms; beside it, raw SQLite computing the same per-group sessions, sessions with
PIH, dose mean and maximum, mean dose of those with PIH and energy in one hand-written query
over the stored dose rows (the same work), and the ratio; and the same query computing the
doses from the pulses (what the report did before the dose rows). The raw queries are given
the quartile edges (an interpolated quartile is not one SQL expression); every group's
figures are checked equal across all three before anything is timed. Wall and CPU medians
are printed: on a shared machine the wall time includes waiting for a core.
Usage: python benchmarks/adverse_report.py [--sessions N] [--pulses N] [--runs N] [--db PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cached_db import cached

from laserlog.storage import doses
from laserlog.storage.schema import SCHEMA_VERSION
from laserlog.storage.store import INSERT_PULSE, Store, connect

HERE = Path(__file__).resolve().parent
SKIN_TYPES = ("I", "II", "III", "IV", "V", "VI")
#: Wavelength, spot area (cm2) and typical pulse energy (J) of the two consoles.
CONSOLES = ((755.0, 0.1257, 0.12), (1064.0, 0.0707, 0.05))


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build(path: Path, sessions: int, pulses_per_session: int, seed: int = 1) -> None:
    """Fill a new database with sessions, pulses, pass marks and adverse events."""
    rng = random.Random(seed)
    store = Store(path)
    conn = store.conn
    devices = [store.device_id("ps755-ref", "PSR755", "SN-1", "1.0"),
               store.device_id("ps1064-ref", "PSR1064", "SN-2", "1.0")]
    start = datetime(2021, 1, 1, 9, tzinfo=UTC)
    session_rows, pulse_rows, pass_rows, adverse_rows, retractions = [], [], [], [], []
    totals = []
    for sid in range(1, sessions + 1):
        console = sid % 2
        wavelength, area_cm2, energy_j = CONSOLES[console]
        skin = rng.choice(SKIN_TYPES)
        began = start + timedelta(minutes=30 * sid)
        session_rows.append((sid, f"u-{sid}", devices[console], ("ps755-ref", "ps1064-ref")[console],
                             "/dev/ttyUSB0", "tech-01", f"C-{sid % 9000:05d}", "face", skin, 1,
                             _utc(began), _utc(began + timedelta(minutes=20)), "ended"))
        t0 = began.timestamp()
        level = rng.uniform(0.7, 1.4)  # the session's setting against the typical energy
        passes = sid % 10 == 0
        if passes:
            pass_rows += [(sid, t0 - 0.1, "pass", 1), (sid, t0 + pulses_per_session * 0.1, "pass", 2)]
        energy_sum, f_min, f_max = 0.0, float("inf"), 0.0
        for k in range(pulses_per_session):
            boost = 1.2 if passes and k >= pulses_per_session // 2 else 1.0
            energy = energy_j * level * boost * (1 + rng.gauss(0, 0.03))
            fluence = energy / area_cm2
            energy_sum += energy
            f_min, f_max = min(f_min, fluence), max(f_max, fluence)
            pulse_rows.append((sid, k + 1, t0 + k * 0.2, 650.0, "ps", energy, fluence, 4.0,
                               wavelength, 5.0, 1, None, ""))
        totals.append((pulses_per_session, energy_sum, f_min, f_max, sid))
        risk = 0.02 + 0.03 * (SKIN_TYPES.index(skin) >= 3) + 0.03 * (level > 1.2)
        if rng.random() < risk:
            kind = "pih" if rng.random() < 0.7 else rng.choice(("blister", "burn", "other"))
            adverse_rows.append((sid, kind, (began + timedelta(days=10)).date().isoformat(),
                                 "non-serious", "tech-01", _utc(began + timedelta(days=12)),
                                 "benchmark"))
            if rng.random() < 0.05:
                retractions.append(len(adverse_rows))
    with conn:
        conn.executemany(
            "INSERT INTO sessions (id, uuid, device_id, profile_id, port, operator_id,"
            " client_ref, area, skin_type, eyewear_checked, started_utc, ended_utc, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", session_rows)
        for i in range(0, len(pulse_rows), 100_000):
            conn.executemany(INSERT_PULSE, pulse_rows[i:i + 100_000])
        conn.executemany("INSERT INTO events (session_id, received_unix_s, kind, code)"
                         " VALUES (?, ?, ?, ?)", pass_rows)
        conn.executemany("UPDATE sessions SET pulse_count = ?, total_energy_j = ?,"
                         " min_fluence_j_cm2 = ?, max_fluence_j_cm2 = ?, regimes = 'ps'"
                         " WHERE id = ?", totals)
        # Each session's dose row, as the recorder's recount appends it at the session's end.
        doses.record(conn, list(range(1, sessions + 1)))
        conn.executemany("INSERT INTO adverse_events (session_id, kind, onset_date,"
                         " seriousness, by_user_id, recorded_utc, signature)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", adverse_rows)
        conn.executemany("INSERT INTO adverse_event_changes (adverse_event_id, change, reason,"
                         " by_user_id, recorded_utc, signature) VALUES (?, 'retraction',"
                         " 'entered in error', 'tech-01', '2026-01-01T00:00:00.000Z',"
                         " 'benchmark')", [(n,) for n in retractions])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


#: The same figures in one query: each session's dose (its highest per-pass mean fluence,
#: else its mean) and wavelength (the one most pulses had), its quarter from the given edges,
#: and whether a standing PIH follows it; grouped by skin type and quarter. {dose} is where
#: the doses come from: the pulses (FROM_PULSES) or the stored rows (FROM_STORED).
RAW_QUERY = """
WITH {dose},
edges AS (
  SELECT json_extract(value, '$[0]') AS wavelength_nm, json_extract(value, '$[1]') AS q1,
    json_extract(value, '$[2]') AS q2, json_extract(value, '$[3]') AS q3
  FROM json_each(:edges)),
hit AS (
  SELECT DISTINCT a.session_id FROM adverse_events a WHERE a.kind = 'pih'
    AND NOT EXISTS (SELECT 1 FROM adverse_event_changes c WHERE c.adverse_event_id = a.id
                    AND c.change = 'retraction'))
SELECT d.skin_type, d.wavelength_nm,
  1 + (d.d > e.q1) + (d.d > e.q2) + (d.d > e.q3) AS quarter,
  count(*), count(h.session_id), avg(d.d), max(d.d),
  avg(CASE WHEN h.session_id IS NOT NULL THEN d.d END), sum(d.energy_j)
FROM dose d JOIN edges e ON e.wavelength_nm = d.wavelength_nm
LEFT JOIN hit h ON h.session_id = d.id
GROUP BY 1, 2, 3
"""
FROM_PULSES = """
per_wl AS (
  SELECT session_id, wavelength_nm, count(*) AS n, sum(fluence_j_cm2) AS f
  FROM pulses GROUP BY session_id, wavelength_nm),
mean AS (
  SELECT session_id, wavelength_nm, max(n) AS n, sum(f) / sum(n) AS f
  FROM per_wl GROUP BY session_id),
per_pass AS (
  SELECT session_id, max(f) AS f FROM (
    SELECT pp.session_id, avg(p.fluence_j_cm2) AS f FROM pulse_passes pp
    JOIN pulses p ON p.id = pp.pulse_id
    WHERE pp.pass_number IS NOT NULL
      AND pp.session_id IN (SELECT session_id FROM events WHERE kind = 'pass')
    GROUP BY pp.session_id, pp.pass_number)
  GROUP BY session_id),
dose AS (
  SELECT s.id, coalesce(s.skin_type, '-') AS skin_type, s.total_energy_j AS energy_j,
    round(coalesce(pp.f, m.f), 9) AS d, m.wavelength_nm
  FROM sessions s JOIN mean m ON m.session_id = s.id
  LEFT JOIN per_pass pp ON pp.session_id = s.id WHERE s.pulse_count > 0)"""
FROM_STORED = """
dose AS (
  SELECT s.id, coalesce(s.skin_type, '-') AS skin_type, s.total_energy_j AS energy_j,
    round(coalesce(d.pass_fluence_j_cm2, d.mean_fluence_j_cm2), 9) AS d, d.wavelength_nm
  FROM sessions s JOIN session_doses d ON d.session_id = s.id
  WHERE s.pulse_count > 0
    AND d.id = (SELECT max(id) FROM session_doses WHERE session_id = s.id)
    AND d.pulse_count = s.pulse_count AND d.event_count = s.event_count)"""


def median_ms(fn, runs: int, clock=time.perf_counter) -> float:
    times = []
    for _ in range(runs):
        t = clock()
        fn()
        times.append(clock() - t)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--pulses", type=int, default=20, help="pulses per session")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    # The schema is in the name: a file built for an older laserlog lacks its dose rows.
    name = f"adverse-{args.sessions}-{args.pulses}-schema{SCHEMA_VERSION}.db"
    db = cached(args.db or HERE / ".cache" / name,
                "adverse_build", lambda path: build(path, args.sessions, args.pulses),
                sessions=args.sessions, pulses_per_session=args.pulses)

    from laserlog.review.adverse_report import adverse_report, session_doses

    store = Store(db, readonly=True)
    raw = connect(db, readonly=True)
    by = ("skin-type", "fluence-band")

    def report() -> object:
        return adverse_report(store.conn, by, kind="pih")

    figures = session_doses(store.conn)
    edges = []
    for wavelength in sorted({d.wavelength_nm for d in figures}):
        values = [d.dose_j_cm2 for d in figures if d.wavelength_nm == wavelength]
        edges.append([wavelength, *statistics.quantiles(values, n=4, method="inclusive")])
    params = {"edges": json.dumps(edges)}
    stored_sql = RAW_QUERY.format(dose=FROM_STORED)
    pulses_sql = RAW_QUERY.format(dose=FROM_PULSES)

    def raw_query() -> list:
        return raw.execute(stored_sql, params).fetchall()

    def raw_from_pulses() -> list:
        return raw.execute(pulses_sql, params).fetchall()

    # The same figures, group by group, before anything is timed: the report's, the stored
    # rows' and the pulses' (sessions, sessions with PIH, dose mean and maximum, mean dose of
    # those with PIH, energy).
    columns = ("sessions", "with_adverse", "dose_mean_j_cm2", "dose_max_j_cm2",
               "adverse_dose_mean_j_cm2", "energy_j")
    got = {(r["skin_type"], r["fluence_band"].split(" Q")[0], r["fluence_band"].split()[2]):
           tuple(r[c] for c in columns) for r in report().rows}
    for query in (raw_query, raw_from_pulses):
        expected = {(skin, f"{wl:g} nm", f"Q{quarter}"): tuple(row)
                    for skin, wl, quarter, *row in query()}
        assert got.keys() == expected.keys(), sorted(set(got) ^ set(expected))
        for key, want in expected.items():
            assert got[key][:2] == want[:2], (key, got[key], want)
            for have, value in zip(got[key][2:], want[2:], strict=True):
                assert (have is None and value is None) or abs(have - value) <= 1e-9 * abs(
                    value) + 1e-12, (key, got[key], want)

    ms = median_ms(report, args.runs)
    raw_ms = median_ms(raw_query, args.runs)
    pulses_ms = median_ms(raw_from_pulses, args.runs)
    # On a shared machine the wall time includes waiting for a core; the CPU time does not.
    cpu_ms = median_ms(report, args.runs, time.process_time)
    raw_cpu_ms = median_ms(raw_query, args.runs, time.process_time)
    pulses_cpu_ms = median_ms(raw_from_pulses, args.runs, time.process_time)
    adverse = raw.execute("SELECT count(*) FROM adverse_events").fetchone()[0]
    print(json.dumps({"figure": "adverse_report", "by": ",".join(by), "kind": "pih",
                      "sessions": len(figures), "adverse_events": adverse,
                      "db_mb": round(db.stat().st_size / 1e6), "median_ms": ms,
                      "raw_sqlite_ms": raw_ms,
                      "ratio_to_raw": round(ms / raw_ms, 1) if raw_ms else None,
                      "median_cpu_ms": cpu_ms, "raw_sqlite_cpu_ms": raw_cpu_ms,
                      "raw_from_pulses_ms": pulses_ms, "raw_from_pulses_cpu_ms": pulses_cpu_ms,
                      "load_1min": round(os.getloadavg()[0], 2),
                      "target_ms": 200}), flush=True)


if __name__ == "__main__":
    main()
