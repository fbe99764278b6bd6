"""The command line as users run it: real processes, a real pty, a real database file."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from laserlog.config.catalog import bundled_profiles_dir

from conftest import CONSOLE_PROFILES, START, wait_until

LASERLOG = [sys.executable, "-m", "laserlog"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*LASERLOG, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture
def simulator(tmp_path):
    """Start `laserlog simulate` processes; stop them at the end."""
    procs = []

    def start(profile: str = "ps755-ref", *extra: str) -> Path:
        link = tmp_path / f"port-{len(procs)}"
        proc = subprocess.Popen([*LASERLOG, "simulate", profile, "--link", str(link), *extra],
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        wait_until(lambda: link.exists() or proc.poll() is not None, what=f"{link}")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        return link

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def count(db: Path, sql: str) -> int:
    """Return a count from the database, 0 while the recorder has not created it yet."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return 0
            raise


@pytest.mark.parametrize("profile", CONSOLE_PROFILES)
def test_simulate_then_record_each_bundled_profile(profile, simulator, tmp_path):
    port = simulator(profile, "--fire", "--rate", "50", "--seed", "2")
    db = tmp_path / "log.db"
    result = run("record", "--profile", profile, "--port", str(port), "--operator", "tech-01",
                 "--client", "C-2001", *START, "--skin-type", "II", "--pulses", "20", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "pulses    2" in result.stdout  # 20 or a few more in the last read
    stored = count(db, "SELECT count(*) FROM pulses")
    assert stored >= 20
    shown = run("sessions", "show", "1", "--pulses", "--db", str(db))
    assert shown.returncode == 0
    pulse_lines = [ln for ln in shown.stdout.splitlines()
                   if re.match(r"\s*\d+ \d{4}-\d\d-\d\dT", ln)]
    assert len(pulse_lines) == stored
    listed = json.loads(run("sessions", "list", "--json", "--db", str(db)).stdout)
    assert listed[0]["pulse_count"] == stored and listed[0]["status"] == "ended"


def test_sigterm_ends_the_session_with_everything_committed(simulator, tmp_path):
    port = simulator("ps755-ref", "--fire", "--rate", "200")
    db = tmp_path / "log.db"
    proc = subprocess.Popen([*LASERLOG, "record", "--profile", "ps755-ref", "--port", str(port),
                             "--operator", "tech-01", "--client", "C-3001", *START, "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: count(db, "SELECT count(*) FROM pulses") > 100,
               what="100 committed pulses")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    with sqlite3.connect(db) as conn:
        status, pulse_count = conn.execute("SELECT status, pulse_count FROM sessions").fetchone()
        stored = conn.execute("SELECT count(*) FROM pulses").fetchone()[0]
    assert status == "ended"
    assert pulse_count == stored
    assert f"pulses    {stored}" in out


def test_json_session_show_carries_pulses_with_units_in_names(simulator, tmp_path):
    port = simulator("ps755-ref", "--fire", "--rate", "50")
    db = tmp_path / "log.db"
    assert run("record", "--profile", "ps755-ref", "--port", str(port), "--operator", "t1",
               "--client", "C-9001", *START, "--pulses", "5", "--db", str(db)).returncode == 0
    data = json.loads(run("sessions", "show", "1", "--json", "--pulses", "--db", str(db)).stdout)
    first = data["pulses"][0]
    for key in ("pulse_duration_ps", "fluence_j_cm2", "spot_mm", "energy_j", "wavelength_nm", "regime"):
        assert key in first
    assert first["regime"] == "ps"
    assert data["settings"], "the settings at session start are recorded"


def test_laserlog_db_environment_variable_sets_the_default(simulator, tmp_path):
    port = simulator("ps755-ref", "--fire", "--rate", "50")
    db = tmp_path / "from-env.db"
    env = {"LASERLOG_DB": str(db)}
    assert run("record", "--profile", "ps755-ref", "--port", str(port), "--operator", "t1",
               "--client", "C-9001", *START, "--pulses", "3", env=env).returncode == 0
    assert count(db, "SELECT count(*) FROM sessions") == 1
    assert json.loads(run("sessions", "list", "--json", env=env).stdout)[0]["client_ref"] == "C-9001"


def test_bad_profile_is_named_with_key_and_value(tmp_path):
    text = (bundled_profiles_dir() / "ps755-ref.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('unit = "mJ"', 'unit = "ns"', 1))
    result = run("record", "--profile", str(bad), "--port", "/dev/null", "--operator", "t",
                 "--client", "C-9001", *START)
    assert_clean_error(result, str(bad), "parameters.energy.unit", "'ns'")
    checked = run("profiles", "check", str(bad))
    assert_clean_error(checked, "parameters.energy.unit")


def test_missing_port_is_a_clear_error(tmp_path):
    result = run("record", "--profile", "ps755-ref", "--port", str(tmp_path / "ttyUSB9"),
                 "--operator", "t", "--client", "C-9001", *START, "--db", str(tmp_path / "x.db"))
    assert_clean_error(result, "ttyUSB9", "does not exist")


def test_port_in_use_by_another_recorder_is_refused_and_first_keeps_recording(simulator, tmp_path):
    port = simulator("ps755-ref", "--fire", "--rate", "100")
    db = tmp_path / "log.db"
    first = subprocess.Popen([*LASERLOG, "record", "--profile", "ps755-ref", "--port", str(port),
                              "--operator", "t", "--client", "C-9001", *START, "--db", str(db)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: count(db, "SELECT count(*) FROM pulses") > 10, what="first")
    second = run("record", "--profile", "ps755-ref", "--port", str(port), "--operator", "t",
                 "--client", "C-9002", *START, "--db", str(db))
    assert_clean_error(second, "in use")
    before = count(db, "SELECT count(*) FROM pulses")
    wait_until(lambda: count(db, "SELECT count(*) FROM pulses") > before + 20, what="more pulses")
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=20)
    assert first.returncode == 0
    assert count(db, "SELECT count(*) FROM sessions") == 1


def test_console_with_another_serial_or_model_is_refused(simulator, tmp_path):
    port = simulator("ps755-ref")
    result = run("record", "--profile", "ps755-ref", "--port", str(port), "--operator", "t",
                 "--client", "C-9001", *START, "--serial", "R755-9999", "--db", str(tmp_path / "x.db"))
    assert_clean_error(result, "R755-0001", "R755-9999")
    other = tmp_path / "other.toml"
    other.write_text((bundled_profiles_dir() / "ps755-ref.toml").read_text()
                     .replace('model = "PSR755"', 'model = "PSR999"'))
    result = run("record", "--profile", str(other), "--port", str(port), "--operator", "t",
                 "--client", "C-9001", *START, "--db", str(tmp_path / "x.db"))
    assert_clean_error(result, "PSR755", "PSR999")


@pytest.mark.parametrize("args,needle", [
    (["--client", "Jane Doe"], "pseudonym"),
    (["--client", "C-9001", "--skin-type", "VIII"], "Fitzpatrick"),
    (["--client", "C-9001", "--duration", "-3"], "positive"),
    (["--client", "C-9001", "--pulses", "many"], "whole number"),
])
def test_bad_session_details_exit_2_without_traceback(args, needle, tmp_path):
    result = run("record", "--profile", "ps755-ref", "--port", "loop://", "--operator", "t",
                 *args, "--db", str(tmp_path / "x.db"))
    assert_clean_error(result, needle)


def test_bad_input_loses_nothing_already_recorded(simulator, tmp_path):
    port = simulator("ps755-ref", "--fire", "--rate", "50")
    db = tmp_path / "log.db"
    assert run("record", "--profile", "ps755-ref", "--port", str(port), "--operator", "t",
               "--client", "C-9001", *START, *START, "--pulses", "5", "--db", str(db)).returncode == 0
    before = count(db, "SELECT count(*) FROM pulses")
    assert_clean_error(run("record", "--profile", "nope", "--port", str(port), "--operator", "t",
                           "--client", "C-9001", *START, "--db", str(db)), "no profile named 'nope'")
    assert_clean_error(run("sessions", "show", "42", "--db", str(db)), "no session 42")
    assert count(db, "SELECT count(*) FROM pulses") == before


def test_help_imports_neither_pint_nor_textual_nor_sqlite_utils():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "laserlog", "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "record" in result.stdout and "simulate" in result.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if "|" in line}
    assert not imported & {"pint", "textual", "sqlite_utils", "serial"}


def test_profiles_list_shows_every_bundled_profile():
    result = run("profiles", "list", "--json")
    assert result.returncode == 0
    names = {row["name"] for row in json.loads(result.stdout) if row["error"] is None}
    assert set(CONSOLE_PROFILES) <= names


def test_profiles_show_lists_ranges_and_handpieces():
    result = run("profiles", "show", "ps755-ref")
    assert result.returncode == 0
    assert "0.001..0.5 J" in result.stdout
    assert "10x10 beamlets" in result.stdout


@pytest.mark.parametrize("args,usage,unknown", [
    (["report", "energy", "--bogus"], "usage: laserlog report energy", "--bogus"),
    (["report", "limits", "--by", "day"], "usage: laserlog report limits", "--by day"),
    (["sessions", "list", "--colour"], "usage: laserlog sessions list", "--colour"),
])
def test_an_unknown_option_prints_its_subcommands_usage(args, usage, unknown, tmp_path):
    result = run(*args, "--db", str(tmp_path / "x.db"))
    assert_clean_error(result, usage, f"unrecognized arguments: {unknown}")
    assert "usage: laserlog [-h] [--version] COMMAND" not in result.stderr


@pytest.mark.parametrize("args,meant", [
    (["reprot", "energy"], "did you mean 'report'?"),
    (["report", "enrgy"], "did you mean 'energy'?"),
    (["report", "energy", "--by", "wek"], "did you mean 'week'?"),
    (["record", "--profile", "ps755", "--port", "loop://", "--operator", "t", "--client", "C-9001", *START],
     "did you mean ps755-ref?"),
])
def test_a_near_miss_name_gets_a_did_you_mean(args, meant, tmp_path):
    assert_clean_error(run(*args, "--db", str(tmp_path / "x.db")), meant)
