"""Run every benchmark in turn; each prints JSON lines. `--smoke` runs them small."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FULL = {
    "startup.py": [],
    "parse.py": [],
    "ingest.py": ["--profile", "ps755-ref", "--profile", "ps1064-ref"],
    "fuzz.py": [],
}
SMOKE = {
    "startup.py": ["--runs", "3"],
    "parse.py": ["--frames", "2000", "--repeat", "1"],
    "ingest.py": ["--pulses", "2000", "--repeat", "1", "--rate", "20000"],
    "fuzz.py": ["--inputs", "4000"],
}


def main() -> int:
    plan = SMOKE if "--smoke" in sys.argv else FULL
    status = 0
    for script, args in plan.items():
        status |= subprocess.run([sys.executable, str(HERE / script), *args]).returncode
    return status


if __name__ == "__main__":
    raise SystemExit(main())
