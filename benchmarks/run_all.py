"""Run every benchmark in turn; each prints JSON lines. `--smoke` runs them small."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FULL: list[tuple[str, list[str]]] = [
    ("startup.py", []),
    ("parse.py", []),
    ("ingest.py", ["--profile", "ps755-ref", "--profile", "ps1064-ref"]),
    ("latency.py", []),
    ("latency.py", ["--memory"]),
    ("scale.py", []),
    ("fuzz.py", []),
    ("hostile.py", []),
    ("tui_latency.py", []),
    ("verify.py", []),
    ("serve.py", []),
    ("sync.py", []),
    ("fleet.py", []),
    ("courses.py", []),
    ("fhir_export.py", []),
    ("adverse_report.py", []),
]
SMOKE: list[tuple[str, list[str]]] = [
    ("startup.py", ["--runs", "3"]),
    ("parse.py", ["--frames", "2000", "--repeat", "1"]),
    ("ingest.py", ["--pulses", "2000", "--repeat", "1", "--rate", "20000"]),
    ("latency.py", ["--seconds", "1"]),
    ("latency.py", ["--memory", "--pulses", "5000"]),
    ("scale.py", ["--pulses", "20000", "--sessions", "200", "--runs", "1", "--db", "{tmp}/scale.db"]),
    ("fuzz.py", ["--inputs", "4000"]),
    ("hostile.py", ["--lines", "3000", "--cases", "200"]),
    ("tui_latency.py", ["--pulses", "1500", "--warmup", "500"]),
    ("verify.py", ["--rows", "2000", "--repeat", "1"]),
    ("serve.py", ["--pulses", "20000", "--sessions", "200", "--runs", "1", "--no-browser",
                  "--db", "{tmp}/serve.db"]),
    ("sync.py", ["--rows", "2000"]),
    ("fleet.py", ["--pulses", "200000", "--consoles", "5", "--runs", "3"]),
    ("courses.py", ["--sessions", "2000", "--courses", "200", "--pulses", "5", "--runs", "5",
                    "--db", "{tmp}/courses.db"]),
    ("fhir_export.py", ["--sessions", "3", "--pulses", "200", "--runs", "1"]),
    ("adverse_report.py", ["--sessions", "400", "--pulses", "5", "--runs", "1",
                           "--db", "{tmp}/adverse.db"]),
]


def main() -> int:
    plan = SMOKE if "--smoke" in sys.argv else FULL
    status = 0
    with tempfile.TemporaryDirectory() as tmp:
        for script, args in plan:
            if not (HERE / script).exists():
                continue
            args = [a.replace("{tmp}", tmp) for a in args]
            status |= subprocess.run([sys.executable, str(HERE / script), *args]).returncode
    return status


if __name__ == "__main__":
    raise SystemExit(main())
