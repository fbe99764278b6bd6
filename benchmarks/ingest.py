"""Ingest end to end: a simulated console floods a pty, the recorder commits every pulse.

Prints one JSON line per figure, with raw SQLite executemany of the same rows in the same
run beside it. Usage: python benchmarks/ingest.py [--pulses N] [--profile NAME] [--rate HZ]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from laserlog.config.profile import open_profile
from laserlog.recording.contract import SessionInfo
from laserlog.recording.recorder import Recorder
from laserlog.storage.store import INSERT_PULSE, Store, connect, migrate

#: A session started as a technician starts one: the whole start-of-session contract.
BENCH_START = SessionInfo("bench", "C-0001", "left cheek", "III", True,
                          {"eyewear": True, "consent": True, "sun_exposure": True})


def raw_executemany_rows_per_s(rows: list[tuple], path: Path, batch: int = 1000) -> float:
    """Insert the rows with plain executemany in 1000-row transactions; return rows/s."""
    conn = connect(path)
    migrate(conn, path)
    with conn:
        conn.execute("INSERT INTO sessions (id, uuid, profile_id, port, operator_id, client_ref,"
                     " started_utc) VALUES (1, 'u', 'p', 'x', 'o', 'C-1', 'now')")
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        with conn:
            conn.executemany(INSERT_PULSE, rows[i:i + batch])
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def record_flood(profile_name: str, pulses: int, rate_hz: float, tmp: Path) -> dict:
    """Flood a pty from a simulator process; return the recorder's figures."""
    link = tmp / "port"
    sim = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, signal, threading;"
         "from laserlog.config.profile import open_profile;"
         "from laserlog.sim.engine import Simulator;"
         f"s = Simulator(open_profile({profile_name!r}), {str(link)!r}, seed=1, rate_hz={rate_hz},"
         f" max_pulses={pulses});"
         "s.start(); sys.stdin.read(); s.stop()"],
        stdin=subprocess.PIPE)
    while not link.exists():
        time.sleep(0.01)
    db = tmp / "ingest.db"
    store = Store(db)
    recorder = Recorder(store, open_profile(profile_name), str(link))
    recorder.start(BENCH_START)
    recorder.driver.command("fire")
    first = None
    while recorder.totals.pulses < pulses:
        recorder.step(0.05)
        if first is None and recorder.totals.pulses:
            first = time.perf_counter()
        if first is not None and time.perf_counter() - first > 120:
            break
    recorder.flush()
    recorder.writer.drain()
    elapsed = time.perf_counter() - (first or time.perf_counter())
    recorder.end("benchmark done")
    committed = store.conn.execute("SELECT count(*) FROM pulses").fetchone()[0]
    rows = store.conn.execute(
        "SELECT session_id, seq, received_unix_s, pulse_duration_ps, regime, energy_j,"
        " fluence_j_cm2, spot_mm, wavelength_nm, rep_rate_hz, handpiece, beamlet_fluence_j_cm2,"
        " derived FROM pulses").fetchall()
    store.close()
    sim.stdin.close()
    sim.wait(timeout=10)
    return {"elapsed_s": elapsed, "committed": committed, "rows": [tuple(r) for r in rows],
            "missing": recorder.totals.missing_pulses, "garbled": recorder.totals.garbled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pulses", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=1_000_000.0)
    parser.add_argument("--profile", action="append")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for profile in args.profile or ["ps755-ref"]:
        rates, raws = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                result = record_flood(profile, args.pulses, args.rate, Path(tmp))
                rates.append(result["committed"] / result["elapsed_s"])
                raws.append(raw_executemany_rows_per_s(result["rows"], Path(tmp) / "raw.db"))
        rate, raw = statistics.median(rates), statistics.median(raws)
        print(json.dumps({
            "figure": "ingest_end_to_end", "profile": profile, "pulses": args.pulses,
            "committed": result["committed"], "lost": args.pulses - result["committed"],
            "median_pulses_per_s": round(rate), "raw_executemany_rows_per_s": round(raw),
            "ratio_to_raw": round(rate / raw, 3), "runs": args.repeat, "cpus": os.cpu_count(),
        }), flush=True)


if __name__ == "__main__":
    main()
