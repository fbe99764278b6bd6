"""Serve: canned query and dashboard times of `laserlog serve` on a clinic-sized database.

Uses the database benchmarks/scale.py builds (10 M pulses in 50 k sessions, cached under
benchmarks/.cache/; built here when missing), starts `laserlog serve` on a free loopback
port and prints JSON lines: each canned energy query's median time over HTTP (target
<= 200 ms), the dashboard page with all its chart queries fetched at once as a browser does
(target <= 2 s), and, when Debian's chromium is installed, a headless load to the last chart.
Usage: python benchmarks/serve.py [--pulses N] [--sessions N] [--db PATH] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from scale import build, median_ms  # noqa: E402 - a sibling benchmark script

from ports import free_port  # noqa: E402 - a port no parallel test run takes meanwhile

ENERGY_QUERIES = ("energy_by_client_area", "energy_by_device", "energy_by_operator",
                  "energy_by_month", "energy_by_device_operator_month", "energy_by_session")


def wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"laserlog serve exited {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise SystemExit("laserlog serve did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pulses", type=int, default=10_000_000)
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    db = args.db or HERE / ".cache" / f"scale-{args.pulses}-{args.sessions}.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        build(db, args.pulses, args.sessions)
    from laserlog.web.dashboard import SLUG, dashboards

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "laserlog", "serve", "--db", str(db),
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, proc)
            run(base, db, args, SLUG, dashboards("laserlog")[SLUG]["charts"])
        finally:
            proc.terminate()
            proc.wait(10)


def run(base: str, db: Path, args: argparse.Namespace, slug: str, charts: dict) -> None:
    size_mb = round(db.stat().st_size / 1e6)
    with httpx.Client(timeout=60) as client:
        client.get(f"{base}/laserlog.json", params={"sql": "SELECT 1"})  # warm up
        for name in ENERGY_QUERIES:
            def query(name: str = name) -> None:
                r = client.get(f"{base}/laserlog/{name}.json", params={"_shape": "array"})
                r.raise_for_status()

            print(json.dumps({"figure": f"serve_{name}", "db_mb": size_mb,
                              "median_ms": median_ms(query, args.runs), "target_ms": 200}),
                  flush=True)

    def dashboard() -> None:
        with httpx.Client(timeout=60) as c:
            c.get(f"{base}/-/dashboards/{slug}").raise_for_status()
            sqls = [re.sub(r"\[\[.*?\]\]", "", ch["query"]) for ch in charts.values()]
            with ThreadPoolExecutor(len(sqls)) as pool:
                for r in pool.map(lambda sql: c.get(f"{base}/laserlog.json", params={
                        "sql": sql, "_shape": "objects"}), sqls):
                    r.raise_for_status()

    print(json.dumps({"figure": "serve_dashboard_page_and_chart_queries", "db_mb": size_mb,
                      "charts": len(charts), "median_ms": median_ms(dashboard, args.runs),
                      "target_ms": 2000}), flush=True)
    browser = shutil.which("chromium")
    if browser and not args.no_browser:
        with tempfile.TemporaryDirectory() as profile:
            flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom"]
            t = time.perf_counter()
            dom = subprocess.run([browser, *flags, f"{base}/-/dashboards/{slug}"],
                                 capture_output=True, text=True, timeout=120,
                                 env={**os.environ})
            wall = round((time.perf_counter() - t) * 1000)
            drawn = dom.stdout.count("vega-embed")
        print(json.dumps({"figure": "serve_dashboard_headless_chromium", "wall_ms": wall,
                          "charts_drawn": drawn, "note": "includes starting the browser"}),
              flush=True)


if __name__ == "__main__":
    main()
