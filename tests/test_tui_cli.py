"""`laserlog live` and `laserlog demo` as commands: clean errors, and the headless demo."""

from __future__ import annotations

import os
import subprocess
import sys

LASERLOG = [sys.executable, "-m", "laserlog"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LASERLOG, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "XDG_CONFIG_HOME": "/nonexistent"})


def test_live_with_an_unknown_profile_says_so_and_exits_2():
    result = run("live", "--profile", "no-such-console", "--port", "/dev/null")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no profile named 'no-such-console'" in result.stderr


def test_live_with_a_broken_checklist_names_the_file_and_what_was_expected(tmp_path):
    bad = tmp_path / "checklist.toml"
    bad.write_text('[[item]]\nkey = "eyewear"\n')
    result = run("live", "--profile", "ps755-ref", "--port", str(tmp_path / "port"),
                 "--checklist", str(bad), "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(bad) in result.stderr and "label" in result.stderr


def test_headless_demo_records_and_prints_the_summary(tmp_path):
    result = run("demo", "--headless", "--duration", "0.5", "--rate", "40",
                 "--db", str(tmp_path / "demo.db"))
    assert result.returncode == 0, result.stderr
    assert "[ended]" in result.stdout and "regimes picosecond" in result.stdout
