"""Issue 5's "done when": a console no other test uses, profiled from docs/profiles.md alone,
passes `profiles check` and `profiles test`, and `laserlog record` logs its pulses.

The profile, tests/done_when/ey2940.toml, combines what the reference documents: 7E1 framing,
command echo, a keep-alive for the console's watchdog, a three-line identity, a binary status
word, pushed tiles reported per microbeam on fractional handpieces.
"""

from __future__ import annotations

import math
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_until

PROFILE = Path(__file__).resolve().parent / "done_when" / "ey2940.toml"
LASERLOG = [sys.executable, "-m", "laserlog"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*LASERLOG, *args], capture_output=True, text=True, timeout=timeout)


def test_no_other_test_uses_this_console() -> None:
    here = Path(__file__).resolve().parent
    users = [p.name for p in here.rglob("*.py") if "ey2940" in p.read_text(errors="ignore")]
    assert users == [Path(__file__).name]


def test_unseen_console_passes_check() -> None:
    result = run("profiles", "check", str(PROFILE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok      {PROFILE}: ey2940")


def test_unseen_console_passes_the_conformance_suite() -> None:
    result = run("profiles", "test", str(PROFILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout and "FAIL" not in result.stdout
    for check in ("identity", "refuse beamlet_energy", "fault 90", "pulses pushed", "reconnect"):
        assert f"PASS  {check}" in result.stdout, check


def test_unseen_console_is_recorded_pulse_by_pulse(tmp_path) -> None:
    link, db = tmp_path / "ey2940", tmp_path / "log.db"
    sim = subprocess.Popen([*LASERLOG, "simulate", str(PROFILE), "--link", str(link), "--fire",
                            "--rate", "20", "--seed", "5"], stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: link.exists() or sim.poll() is not None, what="the simulated port")
        assert sim.poll() is None, sim.stderr.read() if sim.stderr else ""
        result = run("record", "--profile", str(PROFILE), "--port", str(link), "--operator",
                     "tech-05", "--client", "C-5001", "--area", "cheeks", "--skin-type", "II",
                     "--eyewear-checked", "--check", "consent", "--check", "sun_exposure", "--pulses", "30",
                     "--db", str(db))
        assert result.returncode == 0, result.stderr
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=10)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, energy_j, fluence_j_cm2, spot_mm, wavelength_nm, "
                            "pulse_duration_ps, regime, handpiece, beamlet_fluence_j_cm2 "
                            "FROM pulses ORDER BY seq").fetchall()
        kinds = {k for (k,) in conn.execute("SELECT kind FROM events")}
    assert len(rows) >= 30
    seqs = [r[0] for r in rows]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    seq, energy, fluence, spot, wavelength, duration, regime, tip, beamlet = rows[0]
    assert wavelength == 2940 and regime == "long" and tip == 1 and spot == 10
    assert duration == pytest.approx(500e6, rel=0.05)          # 500 us in ps
    assert energy == pytest.approx(0.012 * 100, rel=0.15)      # 12 mJ x 10 x 10 microbeams
    assert fluence == pytest.approx(energy / 1.0, rel=1e-6)    # over the 1 cm^2 tile
    assert beamlet == pytest.approx(energy / (100 * math.pi * 0.025**2 / 4), rel=1e-6)
    assert "garbled" not in kinds and "gap" not in kinds
