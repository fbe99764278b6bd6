"""The long hostile run: console lines over a real pty, CLI and file cases, adversarial lines.

Prints one JSON line per figure: how many inputs it tried and how many broke the contract
(a traceback, a hang past 2 s, an exit status other than 0, 1 or 2, an impossible value
stored as a pulse, a shot not counted). The bounded version of each runs in `make test`
(tests/test_hostile_console.py, test_cli_edges.py, test_recover_file.py,
test_template_safety.py). Usage:
    python benchmarks/hostile.py [--lines 1000000] [--cases 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

from laserlog.cli.main import main as cli_main
from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.profile import load_profile, open_profile
from laserlog.config.template import Template
from laserlog.link.plausibility import hard_bounds
from laserlog.recording.contract import SessionInfo
from laserlog.recording.recorder import Recorder
from laserlog.sim.engine import Simulator
from laserlog.storage.store import Store

#: A session started as a technician starts one: the whole start-of-session contract.
BENCH_START = SessionInfo("bench", "C-0001", "left cheek", "III", True,
                          {"eyewear": True, "consent": True, "sun_exposure": True})

HOSTILE = {
    "energy": ["-1.00", "0.00", "5001.00", "1e308", "-0"],
    "fluence": ["0.000", "-0.5", "101", "1e308"],
    "spot": ["0.0", "-1.0", "0.1", "61", "1e300"],
    "duration": ["0", "7501", "1" + "0" * 200],
    "handpiece": ["-1", str(2**63), str(10**30)],
    "seq": ["-5", str(2**63), str(10**25)],
}


def console_lines(count: int, rng: random.Random, tmp: Path) -> dict:
    """Push `count` lines (a third hostile) into a recorder over a pty; check what it stored."""
    profile = open_profile("ps755-ref")
    chunks, seq, valid, hostile, energy_j = [], 0, 0, 0, 0.0
    lines: list[str] = []
    for _ in range(count):
        fields = {"energy": f"{rng.uniform(1, 500):.2f}", "fluence": f"{rng.uniform(0.1, 10):.3f}",
                  "spot": f"{rng.uniform(2, 6):.1f}", "duration": str(rng.randint(550, 750)),
                  "handpiece": "1"}
        bad = rng.random() < 1 / 3
        if bad:
            name = rng.choice(list(HOSTILE))
            value = rng.choice(HOSTILE[name])
            hostile += 1
            if name == "seq":
                lines.append(f"P {value} E{fields['energy']} F{fields['fluence']} "
                             f"S{fields['spot']} D{fields['duration']} H1\r\n")
                continue
            fields[name] = value
        else:
            valid += 1
            energy_j += float(fields["energy"]) / 1000
        seq += 1
        lines.append(f"P {seq} E{fields['energy']} F{fields['fluence']} S{fields['spot']} "
                     f"D{fields['duration']} H{fields['handpiece']}\r\n")
        if len(lines) >= 5000:
            chunks.append("".join(lines).encode())
            lines = []
    chunks.append("".join(lines).encode())
    db = tmp / "hostile.db"
    with Simulator(profile, tmp / "console", seed=1) as sim:
        store = Store(db)
        recorder = Recorder(store, profile, str(sim.path))
        session_id = recorder.start(BENCH_START)
        # The console has answered the start; from here on the flood is the only writer on
        # the line (a reply interleaved mid-line would garble lines of the flood).
        sim._stop.set()
        if sim._thread is not None:
            sim._thread.join(5)
        pusher = threading.Thread(target=lambda: [sim.link.write(c) for c in chunks], daemon=True)
        started = time.perf_counter()
        pusher.start()
        seen, quiet_since = -1, time.monotonic()
        while recorder.totals.pulses + recorder.totals.unknown_dose < valid + hostile:
            recorder.step(0.05)
            now_seen = recorder.totals.pulses + recorder.totals.unknown_dose
            if now_seen != seen:
                seen, quiet_since = now_seen, time.monotonic()
            elif time.monotonic() - quiet_since > 10 and not pusher.is_alive():
                break  # nothing more is coming: what is missing was lost
        elapsed = time.perf_counter() - started
        recorder.end("benchmark done")
        store.close()
    conn = sqlite3.connect(db)
    stored, total = conn.execute("SELECT pulse_count, total_energy_j FROM sessions WHERE id = ?",
                                 (session_id,)).fetchone()
    unknown = conn.execute("SELECT count(*) FROM events WHERE session_id = ? AND kind = "
                           "'invalid_reading'", (session_id,)).fetchone()[0]
    bounds = {name: hard_bounds(profile, name) for name in ("energy", "fluence", "spot",
                                                            "pulse_duration")}
    impossible = conn.execute(
        "SELECT count(*) FROM pulses WHERE session_id = ? AND NOT ("
        "energy_j BETWEEN ? AND ? AND fluence_j_cm2 BETWEEN ? AND ? AND spot_mm BETWEEN ? AND ?"
        " AND pulse_duration_ps BETWEEN ? AND ? AND handpiece >= 0 AND seq >= 0)",
        (session_id, *bounds["energy"], *bounds["fluence"], *bounds["spot"],
         *bounds["pulse_duration"])).fetchone()[0]
    conn.close()
    return {"figure": "hostile_console_lines", "lines": count, "hostile": hostile,
            "stored_pulses": stored, "expected_pulses": valid, "unknown_dose_events": unknown,
            "impossible_pulses_stored": impossible,
            "energy_matches": abs(total - energy_j) <= 1e-6 * max(1.0, energy_j),
            "broke": (stored != valid) + (unknown != hostile) + impossible,
            "lines_per_s": round(count / elapsed)}


def _case_argv(rng: random.Random, tmp: Path, db: Path) -> list[str]:
    """Return one hostile command line (and write the file it names)."""
    kind = rng.randrange(6)
    number = rng.choice([2**63, 2**64 + 7, 10**30, -1, 0, -(2**63) - 1, rng.getrandbits(200)])
    if kind == 0:
        return rng.choice([["sessions", "show", str(number)], ["sessions", "list", "--limit",
                                                                str(number)],
                           ["report", "energy", "--last", str(number)],
                           ["export", "--format", "csv", "--session", str(number), "--out",
                            str(tmp / "x.csv")]]) + ["--db", str(db)]
    if kind == 1:
        day = rng.choice(["9999-12-31", "0001-01-01", "2026-02-30", "2026-13-01", "", " ",
                          "9999-12-31T23:59:59.999999+14:00", "1" * 40, "\udcff"])
        return ["report", rng.choice(["energy", "faults", "limits"]), "--from", "0001-01-01",
                "--to", day, "--db", str(db)]
    if kind == 2:
        path = tmp / f"spill-{rng.getrandbits(32)}.ndjson"
        row = [1, rng.choice([2**63, -1, 1.5, "x", None, [1], {"a": 1}]), 1.0, 650.0, "ps", 0.1,
               0.9, 4.0, 755.0, 5.0, 1, None, ""]
        content = rng.choice([os.urandom(rng.randrange(1, 300)),
                              json.dumps({"table": "pulses", "row": row}).encode(),
                              b"[" * rng.randrange(1, 50_000),
                              b"\xef\xbb\xbf{}", json.dumps({"table": "x"}).encode()])
        path.write_bytes(content)
        return ["recover", str(path), "--db", str(db)]
    if kind == 3:
        path = tmp / f"p-{rng.getrandbits(32)}.toml"
        content = rng.choice([
            os.urandom(rng.randrange(1, 300)),
            b"a = " + b"[" * rng.randrange(1, 5000) + b"]" * 5000,
            b'format = 1\n[device]\nid = "x"\nwavelengths_nm = [10e400]\n',
            b"\xff\xfe" + os.urandom(20),
            (bundled_profiles_dir() / "ps755-ref.toml").read_bytes().replace(
                b'"P {seq:d} E{energy:.2f}', rng.choice([b'"P {seq:d}{energy:f}',
                                                        b'"P {seq:.999999999f} E{energy:.2f}',
                                                        b'"P {seq:d} E{energy:{x}}'])),
        ])
        path.write_bytes(content)
        return ["profiles", "check", str(path)]
    if kind == 4:
        target = rng.choice(["", str(tmp), "/dev/null", str(tmp / "missing" / "x.db"),
                             str(tmp / "fifo")])
        return ["sessions", "list", "--db", target]
    return [rng.choice(["signoff", "correct"]), str(number), "--user", "x", "--db", str(db)]


def cli_cases(count: int, rng: random.Random, tmp: Path) -> dict:
    """Run `count` hostile command lines in process; count tracebacks, hangs, odd statuses."""
    db = tmp / "cli.db"
    with Store(db) as store:
        store.create_session(device_id=None, profile_id="ps755-ref", port="x",
                             operator_id="tech-07", client_ref="C-1042", area=None,
                             skin_type=None, eyewear_checked=True, checklist_json=None)
    os.mkfifo(tmp / "fifo")
    tracebacks = hangs = odd = 0
    durations: list[float] = []
    first: dict[str, str] = {}
    for _ in range(count):
        argv = _case_argv(rng, tmp, db)
        out = io.StringIO()
        started = time.monotonic()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                status = cli_main(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:  # a traceback a user would have seen
            tracebacks += 1
            first.setdefault("traceback", f"{argv[:2]}: {type(exc).__name__}: {exc}"[:300])
            status = 0
        took = time.monotonic() - started
        durations.append(took)
        if took > 2:
            hangs += 1
            first.setdefault("hang", f"{argv[:2]} {took:.1f} s")
        if status not in (0, 1, 2):
            odd += 1
            first.setdefault("status", f"{argv[:2]} -> {status}")
    return {"figure": "hostile_cli_cases", "cases": count, "tracebacks": tracebacks,
            "hangs": hangs, "odd_status": odd, "broke": tracebacks + hangs + odd,
            "median_ms": round(statistics.median(durations) * 1000, 2),
            "max_ms": round(max(durations) * 1000, 1), "first": first}


ADVERSARIAL = [b"1" * 256, b"1 " * 128, b"* " * 128, b"*" + b" " * 255, b"1e" * 128,
               b"-" * 256, b"P " + b"1" * 254, b"P 1 E" + b"1" * 251, b"0." * 128]


def template_figure() -> dict:
    """Time every bundled profile's templates against adversarial 256-byte lines."""
    templates: list[Template] = []
    for path in sorted(bundled_profiles_dir().glob("*.toml")):
        profile = load_profile(path)
        stack: list[object] = [profile]
        seen = 0
        while stack and seen < 10_000:
            seen += 1
            value = stack.pop()
            if isinstance(value, Template):
                templates.append(value)
            elif isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, tuple | list):
                stack.extend(value)
            elif hasattr(value, "__dataclass_fields__"):
                stack.extend(getattr(value, f) for f in value.__dataclass_fields__)
    worst = 0.0
    for template in templates:
        for line in ADVERSARIAL:
            started = time.perf_counter()
            template.match(line)
            worst = max(worst, time.perf_counter() - started)
    return {"figure": "adversarial_template_match", "templates": len(templates),
            "lines": len(ADVERSARIAL), "line_bytes": 256, "worst_ms": round(worst * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(json.dumps(template_figure()), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(console_lines(args.lines, rng, Path(tmp))), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(cli_cases(args.cases, rng, Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
