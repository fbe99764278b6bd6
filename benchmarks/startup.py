"""Start-up: whole-process time of `laserlog --help` (median of runs), bare Python beside it.

Usage: python benchmarks/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def median_s(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    bare = median_s([sys.executable, "-c", "pass"], args.runs)
    help_s = median_s([sys.executable, "-m", "laserlog", "--help"], args.runs)
    print(json.dumps({"figure": "startup_help", "median_ms": round(help_s * 1000, 1),
                      "bare_python_ms": round(bare * 1000, 1), "target_ms": 150,
                      "runs": args.runs}), flush=True)


if __name__ == "__main__":
    main()
