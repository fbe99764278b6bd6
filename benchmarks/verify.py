"""Chain verification speed: build a chained database, then time `laserlog verify` on it.

The database is built with the chain's own append (one link per commit, as the writer
does) at realistic commit sizes: a 10 Hz console flushed every 100 ms commits ~1 pulse per
link; a flooding console commits 1000. Prints one JSON line per commit size.
Usage: python benchmarks/verify.py [--rows N] [--per-link K ...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from laserlog.storage import chain
from laserlog.storage.store import INSERT_EVENT, INSERT_PULSE, Store, connect
from laserlog.storage.verify import verify_database, walk


def build(path: Path, rows: int, per_link: int, seed: int = 1) -> int:
    """Fill a database with `rows` pulses (and an event every 200) in links of `per_link`."""
    Store(path).close()
    conn = connect(path)
    conn.execute("PRAGMA synchronous=OFF")  # building only; verify reads it like any other
    rng = random.Random(seed)
    with conn:
        conn.execute("INSERT INTO sessions (uuid, profile_id, port, operator_id, client_ref,"
                     " started_utc) VALUES ('u', 'ps755-ref', 'x', 'tech-01', 'C-1', 'now')")
    t = 1.7e9
    seq = 0
    written = 0
    # The installation key signs a checkpoint at least every 10 s of recording: at 10 Hz,
    # one per 100 pulses, whatever the commit size (at least one link apart).
    links_per_checkpoint = max(1, 100 // per_link)
    links = 0
    while written < rows:
        n = min(per_link, rows - written)
        pulses = []
        for _ in range(n):
            seq += 1
            t += 0.1
            energy = 0.12 * (1 + rng.gauss(0, 0.03))
            pulses.append((1, seq, t, 650 * (1 + rng.gauss(0, 0.01)), "ps", energy,
                           energy / 0.1257, 4.0, 755.0, 5.0, 1, None, "fluence"))
        events = []
        if seq % 200 < n:
            events.append((1, t, "gap", "warning", None, "1 pulse(s) missing", 1, 1, None))
        links += 1
        # Checkpoints follow the recording's clock here, not the build's.
        conn.last_checkpoint_s = (float("-inf") if links % links_per_checkpoint == 0  # type: ignore[attr-defined]
                                  else time.monotonic())
        with conn:
            conn.executemany(INSERT_PULSE, pulses)
            if events:
                conn.executemany(INSERT_EVENT, events)
            chain.append_batch(conn, 1, {"pulses": len(pulses), "events": len(events)})
        written += n
    conn.close()
    with Store(path) as store:  # totals as the writer keeps them (verify recomputes them)
        store.recount(1)
        store.end_session(1, "ended", "benchmark")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--per-link", type=int, action="append")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for per_link in args.per_link or [1, 10, 1000]:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "verify.db"
            start = time.perf_counter()
            build(db, args.rows, per_link)
            built_s = time.perf_counter() - start
            figures: dict[str, object] = {"figure": "verify_chain", "rows_per_link": per_link}
            for label, workers in (("one_process", 1), ("parallel", os.cpu_count() or 1)):
                runs = [verify_database(db, workers=workers) for _ in range(args.repeat)]
                best = max(runs, key=lambda r: r.rows_per_s)
                assert all(r.ok for r in runs), [f.message for f in runs[0].findings]
                figures.update({
                    f"{label}_chain_rows_per_s": round(best.rows_per_s),
                    f"{label}_whole_verify_s": round(best.elapsed_s, 3),
                    f"{label}_whole_rows_per_s": round(best.rows / best.elapsed_s)})
            # CPU time of one process's walk: the figure that other load on the machine spares.
            conn = connect(db, readonly=True)
            cpu = []
            for _ in range(args.repeat):
                before = time.process_time()
                walked = walk(conn)
                cpu.append(walked.rows / max(time.process_time() - before, 1e-9))
            conn.close()
            figures["one_process_chain_rows_per_cpu_s"] = round(max(cpu))
            with connect(db, readonly=True) as counted:
                checkpoints = counted.execute(
                    "SELECT count(*) FROM chain WHERE kind = 'checkpoint'").fetchone()[0]
            figures.update({"rows": best.rows, "links": best.links, "checkpoints": checkpoints,
                            "db_mb": round(db.stat().st_size / 1e6, 1),
                            "build_s": round(built_s, 1), "runs": args.repeat,
                            "cpus": os.cpu_count()})
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
