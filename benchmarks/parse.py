"""Parsing: frames per second through each driver's framer and parser, no I/O.

Usage: python benchmarks/parse.py [--frames N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import open_profile
from laserlog.domain.model import PulseReading
from laserlog.proving.transcript import TranscriptLink
from laserlog.sim.console import Console

CHUNK_BYTES = 4096


def pushed_stream(profile_name: str, frames: int) -> bytes:
    """Return `frames` pulse frames as the simulated console would send them."""
    profile = open_profile(profile_name)
    module = driver_module(profile)
    console = Console(profile, seed=1)
    device = module.Device(profile, console)
    return b"".join(device.pulse(console.fire_pulse()) for _ in range(frames))


def parse_rate(profile_name: str, stream: bytes, frames: int) -> float:
    """Feed the stream in 4 KiB chunks to a fresh driver; return pulses per second."""
    profile = open_profile(profile_name)
    driver = driver_module(profile).Driver(profile, TranscriptLink([]))
    start = time.perf_counter()
    count = 0
    for i in range(0, len(stream), CHUNK_BYTES):
        driver.feed(stream[i:i + CHUNK_BYTES])
        count += sum(1 for o in driver.pending if type(o) is PulseReading)
        driver.pending.clear()
    elapsed = time.perf_counter() - start
    if count != frames:
        raise SystemExit(f"{profile_name}: parsed {count} of {frames} pulses")
    return frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for path in sorted(bundled_profiles_dir().glob("*.toml")):
        profile = open_profile(path.stem)
        if profile.pulses.mode != "pushed":
            continue
        stream = pushed_stream(path.stem, args.frames)
        rates = [parse_rate(path.stem, stream, args.frames) for _ in range(args.repeat)]
        print(json.dumps({"figure": "parse", "profile": path.stem, "driver": profile.protocol,
                          "frames": args.frames, "median_frames_per_s": round(statistics.median(rates)),
                          "runs": args.repeat}), flush=True)


if __name__ == "__main__":
    main()
