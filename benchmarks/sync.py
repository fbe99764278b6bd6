"""Sync speed: build a chained console database, ship it to a throwaway PostgreSQL, time it.

Starts its own server (tests/pgserver.py: initdb + pg_ctl in a temporary folder) unless
--to names one. Prints one JSON line: pulses/s of the first sync (everything new), the
time of a second sync (nothing new), and the time of the fleet energy report by month.
Usage: python benchmarks/sync.py [--rows N] [--per-link K] [--to URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--per-link", type=int, default=100)
    parser.add_argument("--to", metavar="URL", help="an existing server (default: start one)")
    args = parser.parse_args()

    from verify import build  # benchmarks/verify.py

    from laserlog.central import fleet
    from laserlog.central.sync import sync
    from laserlog.reports import make_filters

    server = None
    url = args.to
    if url is None:
        import pgserver

        server = pgserver.start()
        url = server.create_database("laserlog_bench")
    try:
        with tempfile.TemporaryDirectory() as folder:
            db = Path(folder) / "console.db"
            build(db, args.rows, args.per_link)
            first = sync(db, url)
            second = sync(db, url)
            started = time.perf_counter()
            fleet.energy(url, "month", make_filters())
            report_s = time.perf_counter() - started
        print(json.dumps({
            "figure": "sync", "pulses": first.rows["pulses"],
            "rows": sum(first.rows.values()), "per_link": args.per_link,
            "first_sync_s": round(first.elapsed_s, 3),
            "pulses_per_s": round(first.pulses_per_s),
            "rows_per_s": round(sum(first.rows.values()) / first.elapsed_s),
            "nothing_new_sync_s": round(second.elapsed_s, 3),
            "fleet_energy_by_month_s": round(report_s, 3)}))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
