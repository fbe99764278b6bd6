"""Every benchmark runs at a small size, so none rots. No timing is asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmarks_run_small_and_print_their_figures():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--smoke"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    names = {f["figure"] for f in figures}
    assert {"startup_help", "parse", "ingest_end_to_end", "fuzz_total", "hostile_console_lines",
            "hostile_cli_cases", "adversarial_template_match", "adverse_report"} <= names
    for figure in figures:
        if figure["figure"] == "ingest_end_to_end":
            assert figure["lost"] == 0 and figure["raw_executemany_rows_per_s"] > 0
        if figure["figure"] == "fuzz_total":
            assert figure["crashes"] == 0 and figure["inputs"] > 0
        if figure["figure"] in ("hostile_console_lines", "hostile_cli_cases"):
            assert figure["broke"] == 0, figure
