"""Sync speed: build a chained console database, ship it to a throwaway PostgreSQL, time it.

Starts its own server (tests/pgserver.py: initdb + pg_ctl in a temporary folder) unless
--to names one. Prints one JSON line per figure:

- `sync`: pulses/s of the first sync (everything new), the time of a second sync (nothing
  new), and the time of the energy report by month over that one console;
- `record_with_sync`: recording throughput of a flooding simulated console (ingest.py's
  record_flood) without and with the background shipping (`record --sync`), alternated,
  medians; and how long the shipping then took to get it all onto the server;
- `shipping_lag`: the same at a clinical-to-high rate (`--lag-rate`, 1 kHz): throughput is
  the rate, so what counts is each pulse's trip from its commit to the server (median, p99);
- `fleet_energy_by_month`: the fleet energy report by month over `--consoles` consoles of
  `--console-pulses` pulses each, whose rows are generated on the server (generate_series
  into the same tables a sync fills; sessions of `--session-pulses` pulses).

Usage: python benchmarks/sync.py [--rows N] [--per-link K] [--to URL] [--record-pulses N]
       [--record-repeat R] [--ship-interval S] [--lag-rate HZ] [--lag-seconds S]
       [--lag-interval S] [--consoles C] [--console-pulses P] [--session-pulses S]
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
                        help="background sync interval during the flood (laserlog's is 3 s)")
    parser.add_argument("--lag-rate", type=float, default=1000.0,
                        help="pulse rate of the shipping lag figure (default 1000 Hz)")
    parser.add_argument("--lag-seconds", type=float,
                        help="seconds recorded per lag run (default 20; 2 when --rows < 100000)")
    parser.add_argument("--lag-interval", type=float,
                        help="background sync interval of the lag figure (default laserlog's)")
    parser.add_argument("--consoles", type=int, help="default 50 (3 when --rows < 100000)")
    parser.add_argument("--console-pulses", type=int,
                        help="default 200000 (--rows when smaller)")
    parser.add_argument("--session-pulses", type=int, default=2000)
    args = parser.parse_args()
    small = args.rows < 100_000  # a smoke run (run_all.py --smoke): every figure small
    args.record_pulses = args.record_pulses or min(100_000, max(1000, args.rows))
    args.record_repeat = args.record_repeat or (1 if small else 5)
    args.lag_seconds = args.lag_seconds or (2.0 if small else 20.0)
    args.consoles = args.consoles or (3 if small else 50)
    args.console_pulses = args.console_pulses or min(200_000, args.rows)

    from verify import build  # benchmarks/verify.py

    from laserlog.central import fleet
    from laserlog.central.sync import sync
    from laserlog.review.reports import make_filters

    server = None
    url = args.to
    if url is None:
        import pgserver

        if pgserver.find_bindir() is None:
            why = ("no PostgreSQL server binaries (initdb, pg_ctl, postgres): install the "
                   "postgresql package, or pass --to")
            print(f"sync.py: skipped: {why}", file=sys.stderr)
            print(json.dumps({"figure": "sync", "skipped": why}), flush=True)
            raise SystemExit(0 if small else 2)
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
        from laserlog.recording.shipping import INTERVAL_S

        print(json.dumps(shipping_lag(url, args.lag_rate, args.lag_seconds,
                                      1 if small else 3, args.lag_interval or INTERVAL_S)),
              flush=True)
        print(json.dumps(fleet_report(url, args.consoles, args.console_pulses,
                                      args.session_pulses)), flush=True)
    finally:
        if server is not None:
            server.stop()


def _server_head(url: str, db: Path) -> int:
    """Return the chain link the server holds for this database's console (-1: none yet)."""
    import sqlite3

    import psycopg

    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as lite:
            row = lite.execute("SELECT console_uuid FROM central_identity").fetchone()
    except sqlite3.Error:
        return -1
    if row is None:
        return -1
    with psycopg.connect(url, autocommit=True) as pg:
        if pg.execute("SELECT to_regclass('laserlog.consoles')").fetchone()[0] is None:
            return -1  # the first sync has not created the schema yet
        head = pg.execute("SELECT head_link FROM laserlog.consoles WHERE console_uuid = %s",
                          (row[0],)).fetchone()
    return int(head[0]) if head else -1


def _local_head(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as lite:
        return int(lite.execute("SELECT max(id) FROM chain").fetchone()[0])


def _wait_shipped(url: str, db: Path, timeout_s: float = 300.0) -> float:
    """Wait until the server holds the file's whole chain; return how long that took."""
    started = time.perf_counter()
    target = _local_head(db)
    while _server_head(url, db) < target:
        if time.perf_counter() - started > timeout_s:
            raise SystemExit(f"the background shipping did not catch up in {timeout_s:g} s")
        time.sleep(0.05)
    return time.perf_counter() - started


def record_with_sync(url: str, pulses: int, repeat: int, interval_s: float) -> dict:
    """Flood-record `pulses` pulses without and with background shipping, alternated.

    With shipping, the time the shipping then took to get everything onto the server
    (it defers while the recorder is saturated) is measured after the flood, apart.
    """
    import statistics

    from ingest import record_flood  # benchmarks/ingest.py

    from laserlog.recording.shipping import Shipper

    rates: dict[bool, list[float]] = {False: [], True: []}
    catch_up_s: list[float] = []
    syncs = shipped = deferrals = 0
    for _ in range(repeat):
        for shipping in (False, True):
            with tempfile.TemporaryDirectory() as folder:
                tmp = Path(folder)
                shipper = Shipper(tmp / "ingest.db", url, interval_s=interval_s).start() \
                    if shipping else None
                result = record_flood("ps755-ref", pulses, 1_000_000.0, tmp)
                rates[shipping].append(result["committed"] / result["elapsed_s"])
                if shipper is not None:
                    catch_up_s.append(_wait_shipped(url, tmp / "ingest.db"))
                    if not shipper.stop():
                        raise SystemExit(f"background sync failed: {shipper.last_error}")
                    status = shipper.status()
                    syncs += status.syncs
                    shipped += status.shipped_pulses
                    deferrals += status.deferrals
    without, with_sync = statistics.median(rates[False]), statistics.median(rates[True])
    return {"figure": "record_with_sync", "profile": "ps755-ref", "pulses": pulses,
            "runs": repeat, "ship_interval_s": interval_s,
            "pulses_per_s_without_sync": round(without),
            "pulses_per_s_with_sync": round(with_sync),
            "ratio": round(with_sync / without, 3), "target_ratio_at_least": 0.9,
            "catch_up_after_flood_s_median": round(statistics.median(catch_up_s), 2),
            "note": "the shipping defers while the recorder is saturated and catches up after"
                    " the flood (catch_up_after_flood_s: flood end to everything on the server)",
            "background_syncs": syncs, "pulses_shipped": shipped, "deferrals": deferrals,
            "runs_without": [round(r) for r in rates[False]],
            "runs_with": [round(r) for r in rates[True]]}


def shipping_lag(url: str, rate_hz: float, seconds: float, repeat: int,
                 interval_s: float, poll_s: float = 0.02) -> dict:
    """Record at `rate_hz` with and without shipping; with it, time each pulse's trip.

    The lag of a pulse is from its commit (its chain link's time) to the first look at the
    server that finds that link there (looked at every `poll_s`).
    """
    import sqlite3
    import statistics
    import threading

    from ingest import record_flood  # benchmarks/ingest.py

    from laserlog.recording.shipping import Shipper
    from laserlog.storage.chain import parse_ranges

    pulses = max(1, round(rate_hz * seconds))
    rates: dict[bool, list[float]] = {False: [], True: []}
    lags: list[float] = []
    medians: list[float] = []
    p99s: list[float] = []
    for _ in range(repeat):
        for shipping in (False, True):
            with tempfile.TemporaryDirectory() as folder:
                tmp = Path(folder)
                db = tmp / "ingest.db"
                seen: dict[int, float] = {}  # link -> when first found on the server
                done = threading.Event()

                def watch(db: Path = db, seen: dict[int, float] = seen,
                          done: threading.Event = done) -> None:
                    last = -1
                    while not done.is_set():
                        head = _server_head(url, db) if db.exists() else -1
                        now = time.time()
                        for link in range(last + 1, head + 1):
                            seen[link] = now
                        last = max(last, head)
                        done.wait(poll_s)

                shipper = watcher = None
                if shipping:
                    shipper = Shipper(db, url, interval_s=interval_s).start()
                    watcher = threading.Thread(target=watch, daemon=True)
                    watcher.start()
                result = record_flood("ps755-ref", pulses, rate_hz, tmp)
                rates[shipping].append(result["committed"] / result["elapsed_s"])
                if shipper is None or watcher is None:
                    continue
                _wait_shipped(url, db)
                time.sleep(2 * poll_s)  # one more look by the watcher
                done.set()
                watcher.join()
                shipper.stop()
                with sqlite3.connect(db) as lite:
                    links = lite.execute("SELECT id, committed_unix_s, ranges FROM chain"
                                         " WHERE kind = 'batch'").fetchall()
                run = sorted(lag for link, at, ranges in links if link in seen
                             for lag in [seen[link] - at] * sum(
                                 last - first + 1 for table, first, last in parse_ranges(ranges)
                                 if table == "pulses"))
                lags += run
                medians.append(statistics.median(run))
                p99s.append(run[min(len(run) - 1, int(0.99 * len(run)))])
    without, with_sync = statistics.median(rates[False]), statistics.median(rates[True])
    return {"figure": "shipping_lag", "profile": "ps755-ref", "rate_hz": rate_hz,
            "seconds": seconds, "runs": repeat, "ship_interval_s": interval_s,
            "pulses_per_s_without_sync": round(without),
            "pulses_per_s_with_sync": round(with_sync),
            "ratio": round(with_sync / without, 3),
            "lag_s_median": round(statistics.median(medians), 3),
            "lag_s_p99": round(statistics.median(p99s), 3),
            "lag_s_max": round(max(lags), 3), "pulses_timed": len(lags),
            "poll_s": poll_s,
            "note": "lag: commit of a pulse to the first look at the server that finds it"}


def fleet_report(url: str, consoles: int, console_pulses: int, session_pulses: int) -> dict:
    """Fill the server with `consoles` consoles' rows (generated there), time the fleet report."""
    import psycopg

    from laserlog.central import fleet
    from laserlog.review.reports import make_filters

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
