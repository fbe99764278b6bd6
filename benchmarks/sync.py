"""Sync speed: build a chained console database, ship it to a throwaway PostgreSQL, time it.

Starts its own server (tests/pgserver.py: initdb + pg_ctl in a temporary folder) unless
--to names one. Prints one JSON line per figure:

- `sync`: pulses/s of the first sync (everything new), the time of a second sync (nothing
  new), and the time of the energy report by month over that one console;
- `record_with_sync`: recording throughput of a flooding simulated console (ingest.py's
  record_flood) without and with the background shipper (`record --sync`), alternated;
- `fleet_energy_by_month`: the fleet energy report by month over `--consoles` consoles of
  `--console-pulses` pulses each, whose rows are generated on the server (generate_series
  into the same tables a sync fills; sessions of `--session-pulses` pulses).

Usage: python benchmarks/sync.py [--rows N] [--per-link K] [--to URL] [--record-pulses N]
       [--consoles C] [--console-pulses P] [--session-pulses S]
With --rows below 100 000 (the smoke run) the other figures default small too.
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
    parser.add_argument("--record-pulses", type=int, help="default 100000 (--rows when smaller)")
    parser.add_argument("--record-repeat", type=int, help="default 3 (1 when --rows < 100000)")
    parser.add_argument("--ship-interval", type=float, default=1.0,
                        help="background sync interval while recording (laserlog's is 3 s)")
    parser.add_argument("--consoles", type=int, help="default 50 (3 when --rows < 100000)")
    parser.add_argument("--console-pulses", type=int,
                        help="default 200000 (--rows when smaller)")
    parser.add_argument("--session-pulses", type=int, default=2000)
    args = parser.parse_args()
    small = args.rows < 100_000  # a smoke run (run_all.py --smoke): every figure small
    args.record_pulses = args.record_pulses or min(100_000, max(1000, args.rows))
    args.record_repeat = args.record_repeat or (1 if small else 3)
    args.consoles = args.consoles or (3 if small else 50)
    args.console_pulses = args.console_pulses or min(200_000, args.rows)

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
            "fleet_energy_by_month_s": round(report_s, 3)}), flush=True)
        print(json.dumps(record_with_sync(url, args.record_pulses, args.record_repeat,
                                          args.ship_interval)), flush=True)
        print(json.dumps(fleet_report(url, args.consoles, args.console_pulses,
                                      args.session_pulses)), flush=True)
    finally:
        if server is not None:
            server.stop()


def record_with_sync(url: str, pulses: int, repeat: int, interval_s: float) -> dict:
    """Flood-record `pulses` pulses without and with background shipping, alternated."""
    import statistics

    from ingest import record_flood  # benchmarks/ingest.py

    from laserlog.central.shipper import Shipper

    rates: dict[bool, list[float]] = {False: [], True: []}
    syncs = shipped = 0
    for _ in range(repeat):
        for shipping in (False, True):
            with tempfile.TemporaryDirectory() as folder:
                tmp = Path(folder)
                shipper = Shipper(tmp / "ingest.db", url, interval_s=interval_s).start() \
                    if shipping else None
                result = record_flood("ps755-ref", pulses, 1_000_000.0, tmp)
                rates[shipping].append(result["committed"] / result["elapsed_s"])
                if shipper is not None:
                    if not shipper.stop():  # ships the rest, outside the timing
                        raise SystemExit(f"background sync failed: {shipper.last_error}")
                    syncs += shipper.syncs
                    shipped += shipper.shipped_pulses
    without, with_sync = statistics.median(rates[False]), statistics.median(rates[True])
    return {"figure": "record_with_sync", "profile": "ps755-ref", "pulses": pulses,
            "runs": repeat, "ship_interval_s": interval_s,
            "pulses_per_s_without_sync": round(without),
            "pulses_per_s_with_sync": round(with_sync),
            "ratio": round(with_sync / without, 3), "target_ratio_at_least": 0.9,
            "background_syncs": syncs, "pulses_shipped": shipped,
            "runs_without": [round(r) for r in rates[False]],
            "runs_with": [round(r) for r in rates[True]]}


def fleet_report(url: str, consoles: int, console_pulses: int, session_pulses: int) -> dict:
    """Fill the server with `consoles` consoles' rows (generated there), time the fleet report."""
    import psycopg

    from laserlog.central import fleet
    from laserlog.reports import make_filters

    sessions = max(1, console_pulses // session_pulses)
    per = console_pulses // sessions
    started = time.perf_counter()
    with psycopg.connect(url) as pg:
        tag = pg.execute("SELECT count(*) FROM laserlog.consoles").fetchone()[0]
        for c in range(consoles):
            cid = pg.execute("INSERT INTO laserlog.consoles (console_uuid, name, site) VALUES"
                             " (gen_random_uuid(), %s, %s) RETURNING console_id",
                             (f"bench-{tag}-{c:03d}", f"site-{c % 5}")).fetchone()[0]
            pg.execute("INSERT INTO laserlog.devices VALUES (%s, 1, 'ps755-ref', 'PS-755',"
                       " %s, '1.0', '2024-01-01T00:00:00Z')", (cid, f"SN-{c}"))
            # Each console's sessions spread evenly over two years (24 months).
            pg.execute(
                "INSERT INTO laserlog.sessions SELECT %(c)s, s, gen_random_uuid()::text, 1,"
                " 'ps755-ref', 'x', 'tech-01', 'C-' || (s %% 97), 'cheek', NULL, 1, NULL,"
                " to_char(timestamp '2024-01-01' + (s * %(h)s + %(k)s) * interval '1 hour',"
                " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), NULL, 'ended', 'done', %(n)s,"
                " %(n)s * 0.12, 0.9, 1.0, 'ps', 0, 2, NULL FROM generate_series(1, %(s)s) s",
                {"c": cid, "k": c % 3, "n": per, "s": sessions, "h": 17_000 // sessions})
            pg.execute(
                "INSERT INTO laserlog.pulses SELECT %(c)s, g, 1 + (g - 1) / %(n)s,"
                " 1 + (g - 1) %% %(n)s, 1.7e9 + g * 0.1, 650, 'ps', 0.12, 0.95, 4.0, 755,"
                " 5, 1, NULL, 'fluence' FROM generate_series(1, %(t)s) g",
                {"c": cid, "n": per, "t": per * sessions})
            pg.execute(
                "INSERT INTO laserlog.events SELECT %(c)s, s * 2 + k, s, 1.7e9 + s * 10800,"
                " CASE k WHEN 0 THEN 'out_of_limit' ELSE 'gap' END, 'warning', NULL,"
                " 'pulse 1: fluence 1.0 J/cm2 above the site limit 0.95 J/cm2', 0, 1,"
                " 'fluence_j_cm2' FROM generate_series(1, %(s)s) s, generate_series(0, 1) k",
                {"c": cid, "s": sessions})
            pg.commit()
        pg.execute("ANALYZE")
        pg.commit()
    fill_s = time.perf_counter() - started
    times = []
    for _ in range(3):
        started = time.perf_counter()
        report = fleet.energy(url, "month", make_filters())
        times.append(time.perf_counter() - started)
    with psycopg.connect(url) as pg:
        on_server = pg.execute("SELECT count(*) FROM laserlog.pulses").fetchone()[0]
        all_consoles = pg.execute("SELECT count(*) FROM laserlog.consoles").fetchone()[0]
    total = report.total or {}
    return {"figure": "fleet_energy_by_month", "consoles": all_consoles,
            "generated_consoles": consoles, "pulses_per_generated_console": per * sessions,
            "pulses_on_server": on_server, "pulses_in_report": total.get("pulses"),
            "sessions": total.get("sessions"), "months": len(report.rows),
            "report_s_best": round(min(times), 3), "report_s_runs": [round(t, 3) for t in times],
            "target": "100 M pulses from 50 consoles in <= 2 s", "fill_s": round(fill_s, 1),
            "note": "the report reads session totals and out-of-limit events, never pulse rows:"
                    " its time follows sessions x consoles, not pulses"}


if __name__ == "__main__":
    main()
