"""Fuzz every bundled driver's framing and parsing with mutated frames; count crashes.

A crash is any exception out of the driver's feed(): garbage must become garbled-line
events, never an exception and never a pulse that was not sent whole.
Usage: python benchmarks/fuzz.py [--inputs N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import traceback

from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import open_profile
from laserlog.proving.transcript import TranscriptLink
from laserlog.sim.console import Console


def seeds_for(profile_name: str, rng: random.Random) -> list[bytes]:
    """Return valid frames the console could send: pulses, faults, replies."""
    profile = open_profile(profile_name)
    device = driver_module(profile).Device(profile, Console(profile, seed=rng.randrange(1000)))
    frames = [device.pulse(device.console.fire_pulse()) for _ in range(20)]
    frames += [device.fault(code) for code in profile.status.faults]
    for param in profile.parameters.values():
        if param.get is not None:  # text protocols: the console's replies too
            frames.append(device.receive(param.get.render().encode("latin-1")
                                         + profile.transport.write_terminator))
    return [f for f in frames if f] or [b"\r\n"]


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """Return a frame with one to four random mutations."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        if choice == 0 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif choice == 1:
            data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
        elif choice == 2 and data:
            del data[rng.randrange(len(data))]
        elif choice == 3 and data:
            data = data[: rng.randrange(len(data))]
        elif choice == 4:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        else:
            data = bytearray(frame) + data
    return bytes(data)


def fuzz(profile_name: str, inputs: int, rng: random.Random) -> dict:
    profile = open_profile(profile_name)
    driver = driver_module(profile).Driver(profile, TranscriptLink([]))
    seeds = seeds_for(profile_name, rng)
    crashes = 0
    first_crash = ""
    start = time.perf_counter()
    for _ in range(inputs):
        data = mutate(rng.choice(seeds), rng)
        try:
            cut = rng.randrange(len(data) + 1)
            driver.feed(data[:cut])
            driver.feed(data[cut:])
        except Exception:  # counting every crash is the point
            crashes += 1
            first_crash = first_crash or traceback.format_exc(limit=3)
            driver = driver_module(profile).Driver(profile, TranscriptLink([]))
        driver.pending.clear()
    return {"figure": "fuzz", "profile": profile_name, "driver": profile.protocol, "inputs": inputs,
            "crashes": crashes, "inputs_per_s": round(inputs / (time.perf_counter() - start)),
            "first_crash": first_crash}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=1_000_000, help="total, split over drivers")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    names = []
    for path in sorted(bundled_profiles_dir().glob("*.toml")):
        profile = open_profile(path.stem)
        if profile.kind != "meter":
            names.append(path.stem)
    total_crashes = 0
    per = args.inputs // len(names)
    for name in names:
        result = fuzz(name, per, rng)
        total_crashes += result["crashes"]
        print(json.dumps(result), flush=True)
    print(json.dumps({"figure": "fuzz_total", "inputs": per * len(names), "crashes": total_crashes,
                      "seed": args.seed}), flush=True)
    return 1 if total_crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
