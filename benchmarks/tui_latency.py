"""The TUI under a 1 kHz console: key-press latency, pulse-to-screen latency, memory, CPU.

A simulated console fires at --rate in its own process. The app runs in another process on a
real pseudo-terminal (120x36) that this script reads like a terminal would, while it presses
space (pause/resume the tail) every 200 ms. Prints one JSON line; asserts nothing.

    python benchmarks/tui_latency.py [--pulses 60000] [--rate 1000]

Figures (the issue's targets in brackets):
  key_latency_p99_ms       key written to the terminal -> the screen it changed was drawn [50]
  pulse_to_screen_p99_ms   pulse read from the port -> the tail line drawn on screen [100]
  rss_growth_mb            resident memory after the warm-up -> at the end [20 per 1 M pulses];
                           run --pulses 1000000 for the issue's figure itself
  cpu_percent_one_core     the app process (UI, recorder and writer threads) [60]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

#: Pulses before measuring: enough to fill the tail, the sparklines and every bounded buffer.
WARMUP_PULSES = 5000
KEY_PERIOD_S = 0.2
BUCKET_MS = 1.0  # latency histogram resolution
BUCKETS = 20_000


def rss_mb() -> float:
    """Return this process's resident memory in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(histogram: list[int], q: float) -> float | None:
    """Return the q-quantile (0..1) of a 1 ms histogram, in ms."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return (index + 1) * BUCKET_MS
    return len(histogram) * BUCKET_MS


# -- the app's side (runs in the pty) -----------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    from laserlog.config.profile import open_profile
    from laserlog.recording.contract import SessionInfo
    from laserlog.tui.app import LaserlogApp
    from laserlog.tui.controller import LiveController
    from laserlog.tui.live_screen import LiveScreen

    controller = LiveController(args.db, open_profile(args.profile), args.port)
    pulse_ms = [0] * BUCKETS
    keys: list[tuple[float, float]] = []
    state: dict[str, float] = {}

    def probe(rows: list[tuple]) -> None:
        def drawn() -> None:
            now = time.time()
            if "warm" not in state:
                return
            for row in rows:
                pulse_ms[min(BUCKETS - 1, int((now - row[2]) * 1000 / BUCKET_MS))] += 1
        app.call_after_refresh(drawn)

    app = LaserlogApp(controller, probe=probe)
    drain_ms = [0] * BUCKETS
    untimed_drain = app.drain

    def timed_drain() -> None:  # one 20 Hz tick: take the pulses, update every widget
        began = time.perf_counter()
        untimed_drain()
        if "warm" in state:
            drain_ms[min(BUCKETS - 1, int((time.perf_counter() - began) * 1000))] += 1

    app.drain = timed_drain  # type: ignore[method-assign]
    original = LiveScreen.action_pause

    def timed_pause(self: LiveScreen) -> None:
        original(self)
        acted = time.monotonic()
        app.call_after_refresh(lambda: keys.append((acted, time.monotonic())))

    LiveScreen.action_pause = timed_pause  # type: ignore[method-assign]

    def drive() -> None:
        while controller.link_state != "up":
            time.sleep(0.01)
        checked = {item.key: True for item in controller.contract.items}  # the whole contract
        controller.start_session(SessionInfo("bench", "C-0001", "benchmark", "III", True,
                                             checked)).result(30)
        while controller.totals.pulses < args.warmup:
            time.sleep(0.01)
        state.update(warm=1.0, rss0=rss_mb(), cpu0=time.process_time(), wall0=time.monotonic(),
                     pulses0=controller.totals.pulses)
        halfway = (state["pulses0"] + args.pulses) / 2
        while controller.totals.pulses < args.pulses:
            if "rss_mid" not in state and controller.totals.pulses >= halfway:
                state.update(rss_mid=rss_mb(), pulses_mid=controller.totals.pulses)
            time.sleep(0.02)
        state.update(rss1=rss_mb(), cpu1=time.process_time(), wall1=time.monotonic(),
                     pulses1=controller.totals.pulses)
        controller.end_session("benchmark done").result(timeout=60)
        app.call_from_thread(app.exit)

    threading.Thread(target=drive, daemon=True).start()
    app.run()
    controller.shutdown()
    Path(args.out).write_text(json.dumps({"pulse_ms": pulse_ms, "keys": keys,
                                          "drain_ms": drain_ms, **state}))


# -- the terminal's side --------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pulses", type=int, default=60_000, help="pulses to record (60000)")
    parser.add_argument("--rate", type=float, default=1000.0, help="console rate in Hz (1000)")
    parser.add_argument("--warmup", type=int, default=WARMUP_PULSES,
                        help=f"pulses before measuring ({WARMUP_PULSES})")
    parser.add_argument("--profile", default="ps755-ref")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="laserlog-tui-bench-") as tmp_name:
        return run(args, Path(tmp_name))


def run(args: argparse.Namespace, tmp: Path) -> int:
    link, db, out = tmp / "port", tmp / "bench.db", tmp / "result.json"
    sim = subprocess.Popen(
        [sys.executable, "-c",
         "import sys;"
         "from laserlog.config.profile import open_profile;"
         "from laserlog.sim.engine import Simulator;"
         f"s = Simulator(open_profile({args.profile!r}), {str(link)!r}, seed=1,"
         f" rate_hz={args.rate}, fire=True);"
         "s.start(); sys.stdin.read(); s.stop()"],
        stdin=subprocess.PIPE)
    while not link.exists():
        time.sleep(0.01)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    app = subprocess.Popen(
        [sys.executable, __file__, "--child", "--port", str(link), "--db", str(db),
         "--out", str(out), "--pulses", str(args.pulses), "--warmup", str(args.warmup),
         "--profile", args.profile],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    drawn = [0]

    def read_screen() -> None:  # a terminal that keeps up
        while True:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            drawn[0] += len(chunk)

    threading.Thread(target=read_screen, daemon=True).start()
    sent: list[float] = []
    started = time.monotonic()
    while app.poll() is None:
        time.sleep(KEY_PERIOD_S)
        if db.exists() and _pulses(db) >= args.warmup and app.poll() is None:
            sent.append(time.monotonic())
            os.write(master, b" ")
    wall_s = time.monotonic() - started
    sim.communicate(b"")
    os.close(master)
    if app.returncode != 0 or not out.exists():
        print(json.dumps({"figure": "tui_latency", "error": f"app exited {app.returncode}"}))
        return 1
    result = json.loads(out.read_text())
    key_ms = [0] * BUCKETS
    actions = sorted(result["keys"])
    for t_sent in sent:
        after = [drawn_at for acted, drawn_at in actions if acted >= t_sent]
        if after:
            key_ms[min(BUCKETS - 1, int((after[0] - t_sent) * 1000 / BUCKET_MS))] += 1
    pulses = result["pulses1"] - result["pulses0"]
    measured_s = result["wall1"] - result["wall0"]
    growth = result["rss1"] - result["rss0"]
    with sqlite3.connect(db) as conn:
        stored, counted = conn.execute(
            "SELECT (SELECT count(*) FROM pulses), (SELECT pulse_count FROM sessions)").fetchone()
    print(json.dumps({
        "figure": "tui_latency",
        "rate_hz": args.rate,
        "pulses": stored,
        "pulses_counted_equal_stored": stored == counted,
        "wall_s": round(wall_s, 1),
        "keys_pressed": len(sent),
        "key_latency_p50_ms": percentile(key_ms, 0.50),
        "key_latency_p99_ms": percentile(key_ms, 0.99),
        "pulse_to_screen_p50_ms": percentile(result["pulse_ms"], 0.50),
        "pulse_to_screen_p99_ms": percentile(result["pulse_ms"], 0.99),
        "drain_tick_p99_ms": percentile(result["drain_ms"], 0.99),
        "rss_start_mb": round(result["rss0"], 1),
        "rss_growth_mb": round(growth, 2),
        "rss_growth_per_1M_pulses_mb": round(growth * 1_000_000 / max(1, pulses), 2),
        # The second half leaves out buffers still filling up: the steady rate, if any.
        "rss_growth_second_half_per_1M_pulses_mb": round(
            (result["rss1"] - result.get("rss_mid", result["rss1"])) * 1_000_000
            / max(1, result["pulses1"] - result.get("pulses_mid", result["pulses1"])), 2),
        "cpu_percent_one_core": round(100 * (result["cpu1"] - result["cpu0"]) / measured_s, 1),
        "terminal_bytes_per_s": round(drawn[0] / wall_s),
    }))
    return 0


def _pulses(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute("SELECT max(pulse_count) FROM sessions").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


if __name__ == "__main__":
    raise SystemExit(main())
