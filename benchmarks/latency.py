"""Commit latency at 1 kHz (pulse received -> committed) and recorder memory over a flood.

Prints JSON lines. Usage:
  python benchmarks/latency.py [--seconds S]            # p50/p99 receipt-to-commit at 1 kHz
  python benchmarks/latency.py --memory --pulses N      # resident memory over N flooded pulses
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
from laserlog.storage import writer as writer_module
from laserlog.storage.store import Store

#: A session started as a technician starts one: the whole start-of-session contract.
BENCH_START = SessionInfo("bench", "C-0001", "left cheek", "III", True,
                          {"eyewear": True, "consent": True, "sun_exposure": True})


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def start_simulator(link: Path, rate_hz: float, pulses: int | None) -> subprocess.Popen:
    code = ("import sys; from laserlog.config.profile import open_profile; "
            "from laserlog.sim.engine import Simulator; "
            f"s = Simulator(open_profile('ps755-ref'), {str(link)!r}, seed=1, rate_hz={rate_hz}, "
            f"max_pulses={pulses!r}); s.start(); sys.stdin.read(); s.stop()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    while not link.exists():
        time.sleep(0.01)
    return proc


def commit_latency(seconds: float) -> dict:
    latencies: list[float] = []
    original = writer_module.BatchWriter._commit

    def timed(self, conn, batch):  # instruments a private method: benchmark only
        original(self, conn, batch)
        done = time.time()
        latencies.extend(done - row[2] for row in batch.pulses)

    writer_module.BatchWriter._commit = timed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "port"
        sim = start_simulator(link, 1000.0, None)
        store = Store(Path(tmp) / "latency.db")
        rec = Recorder(store, open_profile("ps755-ref"), str(link))
        rec.start(BENCH_START)
        rec.driver.command("fire")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rec.step(0.05)
        rec.end("benchmark done")
        store.close()
        sim.stdin.close()
        sim.wait()
    writer_module.BatchWriter._commit = original  # type: ignore[method-assign]
    latencies.sort()
    return {"figure": "commit_latency_1khz", "pulses": len(latencies),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
            "max_ms": round(latencies[-1] * 1000, 1), "target_p99_ms": 150}


def memory(pulses: int) -> dict:
    """Resident memory while flooding `pulses` pulses.

    The recorder's working set is bounded (batches queued for the writer, SQLite's page
    cache) and fills during the first tenth of the flood, how far depends on how far the
    writer lags on the day. "Flat" is then measured as the highest resident size over the
    remaining nine tenths against the highest over that first tenth.
    """
    warmup = max(1, pulses // 10)
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "port"
        sim = start_simulator(link, 1_000_000.0, pulses)
        store = Store(Path(tmp) / "memory.db")
        rec = Recorder(store, open_profile("ps755-ref"), str(link))
        rec.start(BENCH_START)
        rec.driver.command("fire")
        first_100k = None
        warmup_peak = after_peak = 0.0
        last_progress = time.monotonic()
        seen = 0
        while rec.totals.pulses < pulses and time.monotonic() - last_progress < 10:
            rec.step(0.05)
            if rec.totals.pulses != seen:
                seen, last_progress = rec.totals.pulses, time.monotonic()
            rss = rss_mb()
            if first_100k is None and seen >= min(100_000, warmup):
                first_100k = rss
            if seen < warmup:
                warmup_peak = max(warmup_peak, rss)
            else:
                after_peak = max(after_peak, rss)
        end_rss = rss_mb()
        rec.end("benchmark done")
        store.close()
        sim.stdin.close()
        sim.wait()
    return {"figure": "recorder_memory", "pulses": rec.totals.pulses,
            "rss_at_100k_pulses_mb": round(first_100k or 0, 1),
            "rss_peak_first_tenth_mb": round(warmup_peak, 1),
            "rss_peak_after_mb": round(after_peak, 1), "rss_end_mb": round(end_rss, 1),
            "growth_mb": round(after_peak - warmup_peak, 1), "target_growth_mb": 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--pulses", type=int, default=10_000_000)
    args = parser.parse_args()
    result = memory(args.pulses) if args.memory else commit_latency(args.seconds)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
