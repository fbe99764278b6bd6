"""Courses at scale: the interval check, the form's course panel and `course show` on a
database of 50 000 sessions in 5 000 courses.

Builds the database once (bulk inserts through laserlog's own schema, like scale.py; cached
under benchmarks/.cache/, or --db PATH), then prints JSON lines with the median time, in
process, of:
- `interval_check`: the course (courses.find) and where a session starting now stands in it
  (courses.interval: the last full session, the days since, its dose): target 50 ms;
- `course_panel`: the same plus the client's test spots on the console (courses.spots_for),
  all the form's course panel reads: target 50 ms;
- `course_show`: the text `laserlog course show ID` prints (review.coursepage): 100 ms;
each beside the same rows read with raw SQLite queries, and the ratio.
Usage: python benchmarks/courses.py [--sessions N] [--courses N] [--pulses N] [--runs N]
       [--db PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cached_db import cached

from laserlog.storage.store import INSERT_PULSE, Store, connect

HERE = Path(__file__).resolve().parent


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build(path: Path, sessions: int, course_count: int, pulses_per_session: int,
          seed: int = 1) -> None:
    """Fill a new database: each course a test spot then full sessions 28 days apart."""
    rng = random.Random(seed)
    store = Store(path)
    conn = store.conn
    device = store.device_id("ps755-ref", "PSR755", "SN-1", "1.0")
    start = datetime(2021, 1, 1, 9, tzinfo=UTC)
    per_course = max(1, sessions // course_count)
    course_rows, session_rows, kind_rows, readout_rows, pulse_rows = [], [], [], [], []
    totals = []
    sid = 0
    for c in range(1, course_count + 1):
        client = f"C-{c:05d}"
        first = start + timedelta(hours=c * 7)
        course_rows.append((c, client, "face", "pores", "ps755-ref", per_course, 21, 42, 28,
                            None, _utc(first)))
        for n in range(per_course):
            sid += 1
            began = first + timedelta(days=3 + 28 * n) if n else first
            session_rows.append((sid, f"u-{sid}", device, "ps755-ref", "/dev/ttyUSB0",
                                 "tech-01", client, "face", "III", 1, _utc(began),
                                 _utc(began + timedelta(minutes=20)), "ended"))
            kind_rows.append((sid, "test_spot" if n == 0 else "course", c, "start",
                              _utc(began)))
            if n == 0:
                readout_rows.append((sid, 1, _utc(began + timedelta(days=3))))
            energy_sum, f_max = 0.0, 0.0
            t0 = began.timestamp()
            for k in range(pulses_per_session):
                energy = 0.12 * (1 + rng.gauss(0, 0.03))
                fluence = energy / 0.1257
                energy_sum += energy
                f_max = max(f_max, fluence)
                pulse_rows.append((sid, k + 1, t0 + k * 0.2, 650.0, "ps", energy, fluence, 4.0,
                                   755.0, 5.0, 1, None, ""))
            totals.append((pulses_per_session, energy_sum, f_max * 0.9, f_max, sid))
    with conn:
        conn.executemany(
            "INSERT INTO courses (id, client_ref, area, indication, profile_id,"
            " planned_sessions, min_interval_days, max_interval_days, target_interval_days,"
            " note, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", course_rows)
        conn.executemany(
            "INSERT INTO sessions (id, uuid, device_id, profile_id, port, operator_id,"
            " client_ref, area, skin_type, eyewear_checked, started_utc, ended_utc, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", session_rows)
        conn.executemany("INSERT INTO session_kinds (session_id, kind, course_id, how,"
                         " recorded_utc) VALUES (?, ?, ?, ?, ?)", kind_rows)
        conn.executemany("INSERT INTO test_spot_readouts (session_id, erythema, oedema,"
                         " blister, hyperpigmentation, hypopigmentation, read_utc)"
                         " VALUES (?, ?, 0, 0, 0, 0, ?)", readout_rows)
        for i in range(0, len(pulse_rows), 100_000):
            conn.executemany(INSERT_PULSE, pulse_rows[i:i + 100_000])
        conn.executemany("UPDATE sessions SET pulse_count = ?, total_energy_j = ?,"
                         " min_fluence_j_cm2 = ?, max_fluence_j_cm2 = ?, regimes = 'ps'"
                         " WHERE id = ?", totals)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def median_ms(fn, samples: list[int]) -> float:
    times = []
    for course_id in samples:
        t = time.perf_counter()
        fn(course_id)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--courses", type=int, default=5_000)
    parser.add_argument("--pulses", type=int, default=20, help="pulses per session")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    db = cached(args.db or HERE / ".cache"
                / f"courses-{args.sessions}-{args.courses}-{args.pulses}.db", "courses_build",
                lambda path: build(path, args.sessions, args.courses, args.pulses),
                sessions=args.sessions, courses=args.courses, pulses_per_session=args.pulses)

    from laserlog.config.courses import CoursePolicy
    from laserlog.config.siteconfig import site_for
    from laserlog.recording import courses
    from laserlog.review.coursepage import format_course

    store = Store(db, readonly=True)
    raw = connect(db, readonly=True)
    zone = site_for(db).zone
    policy = CoursePolicy()
    count = store.conn.execute("SELECT count(*) FROM courses").fetchone()[0]
    rng = random.Random(2)
    samples = [rng.randrange(1, count + 1) for _ in range(args.runs)]
    now = datetime.now(UTC)

    def interval(course_id: int) -> object:
        course = courses.find(store.conn, course_id)
        assert course is not None
        return courses.interval(store.conn, course, now, zone)

    def panel(course_id: int) -> object:
        at = interval(course_id)
        course = at.course  # type: ignore[attr-defined]
        # As at the course's first full session, while its test spot is valid and read.
        first = datetime.fromisoformat(course.created_utc.replace("Z", "+00:00"))
        spots = courses.spots_for(store.conn, course.client_ref, "ps755-ref", "III", policy,
                                  first + timedelta(days=3))
        assert spots.cleared, spots.why
        return spots

    def show(course_id: int) -> str:
        course = courses.find(store.conn, course_id)
        assert course is not None
        return format_course(store, course)

    def raw_interval(course_id: int) -> object:
        raw.execute("SELECT * FROM courses WHERE id = ?", (course_id,)).fetchone()
        last = raw.execute(
            "SELECT s.id FROM session_kinds k JOIN sessions s ON s.id = k.session_id"
            " WHERE k.course_id = ? AND k.kind = 'course' AND s.pulse_count > 0"
            " ORDER BY s.started_utc DESC LIMIT 1", (course_id,)).fetchone()
        return raw.execute("SELECT avg(fluence_j_cm2), max(fluence_j_cm2) FROM pulses"
                           " WHERE session_id = ?", (last[0],)).fetchone()

    def raw_panel(course_id: int) -> object:
        raw_interval(course_id)
        client = raw.execute("SELECT client_ref FROM courses WHERE id = ?",
                             (course_id,)).fetchone()[0]
        for (spot,) in raw.execute(
                "SELECT s.id FROM sessions s JOIN session_kinds k ON k.session_id = s.id"
                " WHERE k.kind = 'test_spot' AND s.client_ref = ? AND s.profile_id = ?",
                (client, "ps755-ref")).fetchall():
            raw.execute("SELECT wavelength_nm, max(fluence_j_cm2) FROM pulses"
                        " WHERE session_id = ? GROUP BY wavelength_nm", (spot,)).fetchall()
            raw.execute("SELECT * FROM test_spot_readouts WHERE session_id = ?",
                        (spot,)).fetchall()

    def raw_show(course_id: int) -> object:
        rows = raw.execute("SELECT s.* FROM session_kinds k JOIN sessions s"
                           " ON s.id = k.session_id WHERE k.course_id = ?"
                           " ORDER BY s.started_utc", (course_id,)).fetchall()
        for r in rows:
            raw.execute("SELECT avg(fluence_j_cm2) FROM pulses WHERE session_id = ?",
                        (r[0],)).fetchone()
        return rows

    size_mb = round(db.stat().st_size / 1e6)
    for name, fn, baseline, target in (("interval_check", interval, raw_interval, 50),
                                       ("course_panel", panel, raw_panel, 50),
                                       ("course_show", show, raw_show, 100)):
        fn(samples[0])  # warm the page cache: the form and the command read a warm file
        ms = median_ms(fn, samples)
        raw_ms = median_ms(baseline, samples)
        print(json.dumps({"figure": name, "sessions": args.sessions, "courses": count,
                          "db_mb": size_mb, "median_ms": ms, "raw_sqlite_ms": raw_ms,
                          "ratio_to_raw": round(ms / raw_ms, 1) if raw_ms else None,
                          "target_ms": target}), flush=True)


if __name__ == "__main__":
    main()
