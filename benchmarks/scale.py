"""Scale: a clinic's five years (13.5 M pulses in 50 k sessions, 1 GB) and how fast it reads.

Builds the database once (cached under benchmarks/.cache/, or --db PATH) through laserlog's
own schema, then prints JSON lines: `laserlog sessions list` start to finish, one page of a
100 k-pulse session, and the energy report grouped by month (in process and as a command).
Usage: python benchmarks/scale.py [--pulses N] [--sessions N] [--db PATH] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cached_db import cached

from laserlog.storage.store import INSERT_PULSE, Store, connect

HERE = Path(__file__).resolve().parent
BIG_SESSION_PULSES = 100_000


def build(path: Path, pulses: int, sessions: int, seed: int = 1) -> None:
    """Fill a new database with `sessions` sessions holding `pulses` pulses in all."""
    rng = random.Random(seed)
    store = Store(path)
    conn = store.conn
    start = datetime(2021, 1, 1, tzinfo=UTC)
    per = max(1, (pulses - BIG_SESSION_PULSES) // max(1, sessions - 1))
    devices = [store.device_id(p, m, f"SN-{i}", "1.0") for i, (p, m) in
               enumerate([("ps755-ref", "PSR755"), ("ps1064-ref", "PSR1064"),
                          ("cfr-ndyag", "CFR"), ("fx1550-ref", "FX1550")])]
    session_rows = []
    for s in range(1, sessions + 1):
        started = start + timedelta(minutes=int(s * (5 * 365 * 24 * 60) / sessions))
        session_rows.append((s, f"u-{s}", rng.choice(devices), "ps755-ref", "/dev/ttyUSB0",
                             f"tech-{rng.randrange(12):02d}", f"C-{rng.randrange(4000):04d}",
                             rng.choice(["face", "neck", "hands", "back"]), "III", 1,
                             started.isoformat().replace("+00:00", "Z"),
                             (started + timedelta(minutes=20)).isoformat().replace("+00:00", "Z"),
                             "ended"))
    with conn:
        conn.executemany(
            "INSERT INTO sessions (id, uuid, device_id, profile_id, port, operator_id, client_ref,"
            " area, skin_type, eyewear_checked, started_utc, ended_utc, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", session_rows)
    totals: dict[int, list[float]] = {}
    batch: list[tuple] = []
    written = 0
    for s in range(1, sessions + 1):
        count = BIG_SESSION_PULSES if s == sessions // 2 else per
        if written + count > pulses:
            count = max(0, pulses - written)
        t0 = datetime.fromisoformat(session_rows[s - 1][10].replace("Z", "+00:00")).timestamp()
        energy_sum, f_max = 0.0, 0.0
        for n in range(count):
            energy = 0.12 * (1 + rng.gauss(0, 0.03))
            fluence = energy / 0.1257
            energy_sum += energy
            f_max = max(f_max, fluence)
            batch.append((s, n + 1, t0 + n * 0.2, 650.0, "ps", energy, fluence, 4.0, 755.0,
                          5.0, 1, None, ""))
        written += count
        totals[s] = [count, energy_sum, f_max]
        if len(batch) >= 100_000:
            with conn:
                conn.executemany(INSERT_PULSE, batch)
            batch.clear()
    if batch:
        with conn:
            conn.executemany(INSERT_PULSE, batch)
    with conn:
        conn.executemany("UPDATE sessions SET pulse_count = ?, total_energy_j = ?,"
                         " min_fluence_j_cm2 = ?, max_fluence_j_cm2 = ?, regimes = 'ps' WHERE id = ?",
                         [(c, e, f * 0.9, f, s) for s, (c, e, f) in totals.items()])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # 13.5 M pulses make the 1 GB file `sessions list` is held to (and more than the 10 M
    # the report figures are held to).
    parser.add_argument("--pulses", type=int, default=13_500_000)
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    db = cached(args.db or HERE / ".cache" / f"scale-{args.pulses}-{args.sessions}.db",
                "scale_build", lambda path: build(path, args.pulses, args.sessions),
                pulses=args.pulses, sessions=args.sessions)
    size_mb = round(db.stat().st_size / 1e6)
    cli = [sys.executable, "-m", "laserlog"]
    list_ms = median_ms(lambda: subprocess.run([*cli, "sessions", "list", "--db", str(db)],
                                               check=True, stdout=subprocess.DEVNULL), args.runs)
    # The raw baseline: a Python that only opens the file and runs the same query.
    raw_list = ("import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True);"
                " rows = c.execute('SELECT s.*, d.model, d.serial FROM sessions s LEFT JOIN devices"
                " d ON d.id = s.device_id ORDER BY s.id DESC LIMIT 100').fetchall();"
                " print(len(rows))")
    raw_list_ms = median_ms(lambda: subprocess.run([sys.executable, "-c", raw_list, str(db)],
                                                   check=True, stdout=subprocess.DEVNULL), args.runs)
    print(json.dumps({"figure": "sessions_list_command", "db_mb": size_mb, "median_ms": list_ms,
                      "raw_sqlite_python_ms": raw_list_ms,
                      "ratio_to_raw": round(list_ms / raw_list_ms, 2), "target_ms": 300}), flush=True)

    store = Store(db, readonly=True)
    big = store.conn.execute("SELECT id FROM sessions ORDER BY pulse_count DESC LIMIT 1").fetchone()[0]
    ids = [r[0] for r in store.conn.execute("SELECT id FROM pulses WHERE session_id = ? ORDER BY id",
                                            (big,))]
    middle = ids[len(ids) // 2]
    page_ms = median_ms(lambda: store.pulses(big, after_id=middle, limit=1000), args.runs)
    print(json.dumps({"figure": "session_page", "session_pulses": len(ids), "page_rows": 1000,
                      "median_ms": page_ms, "target_ms": 50}), flush=True)
    # A raw SQLite read of the same page, for the baseline.
    raw_conn = connect(db, readonly=True)
    raw_ms = median_ms(lambda: raw_conn.execute(
        "SELECT * FROM pulses WHERE session_id = ? AND id > ? ORDER BY id LIMIT 1000",
        (big, middle)).fetchall(), args.runs)
    print(json.dumps({"figure": "session_page_raw_sqlite", "median_ms": raw_ms}), flush=True)
    try:
        from laserlog.review import reports
    except ImportError:
        return
    filters = reports.make_filters()
    report_ms = median_ms(lambda: reports.energy_report(store.conn, "month", filters), args.runs)
    raw_report_ms = median_ms(lambda: raw_conn.execute(
        "SELECT substr(started_utc, 1, 7), count(*), sum(pulse_count), sum(total_energy_j),"
        " max(max_fluence_j_cm2) FROM sessions GROUP BY 1").fetchall(), args.runs)
    command_ms = median_ms(lambda: subprocess.run(
        [*cli, "report", "energy", "--by", "month", "--db", str(db)], check=True,
        stdout=subprocess.DEVNULL), max(3, args.runs // 2))
    print(json.dumps({"figure": "energy_report_by_month", "pulses": args.pulses,
                      "sessions": args.sessions, "median_ms": report_ms,
                      "raw_sqlite_group_by_ms": raw_report_ms, "command_median_ms": command_ms,
                      "target_ms": 100}), flush=True)


if __name__ == "__main__":
    main()
