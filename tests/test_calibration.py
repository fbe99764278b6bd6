"""Calibration checks over real ptys: a simulated console fires into a biased simulated meter."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from dataclasses import replace

import pytest

from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import load_profile, open_profile
from laserlog.config.siteconfig import SiteConfig
from laserlog.errors import IdentityMismatch, ProtocolError
from laserlog.recording.calstatus import status
from laserlog.recording.recorder import SessionInfo
from laserlog.review.calibration import CalibrationError, Check, Shot, classify, record, run_check
from laserlog.sim.beam import couple
from laserlog.sim.console import Console
from laserlog.sim.pty_link import PtyLink
from laserlog.storage.store import Store
from laserlog.storage.verify import verify_database

from conftest import START, wait_until
from reviewkit import LASERLOG, PASSPHRASES, assert_clean_error, cli, counts, user
from reviewkit import record as record_session

SITE = SiteConfig()


@pytest.fixture
def bench(simulate):
    """Start a console simulator firing into a meter simulator with a given bias."""

    def start(console: str = "ps755-ref", meter: str = "ophir-nova2", bias: float = 0.0):
        console_sim = simulate(console, seed=3, rate_hz=20)
        meter_sim = simulate(meter, seed=4)
        meter_sim.device.bias = bias
        couple(console_sim, meter_sim)
        return console_sim, meter_sim

    return start


@pytest.fixture
def store(db_path):
    with Store(db_path) as s:
        user(s, "lso-01")
        yield s


def check(store, console_sim, meter_sim, **kw) -> Check:
    kw.setdefault("meter_serial", "G-4711" if "gentec" in meter_sim.profile.id else None)
    return run_check(store, console_sim.profile, str(console_sim.path), meter_sim.profile,
                     str(meter_sim.path), user=store_user(store), site=SITE,
                     shots=kw.pop("shots", 5), **kw)


def store_user(store):
    from laserlog.review.users import find_user

    return find_user(store, "lso-01")


@pytest.mark.parametrize("console,meter,bias,expected", [
    ("ps755-ref", "ophir-nova2", 0.0, "pass"),
    ("ps755-ref", "ophir-nova2", 0.15, "warn"),
    ("ps755-ref", "ophir-nova2", -0.30, "fail"),
    ("cfr-ndyag", "gentec-maestro", 0.0, "pass"),
    ("fx1550-ref", "gentec-maestro", 0.15, "warn"),
    ("ps1064-ref", "gentec-maestro", 0.35, "fail"),
])
def test_check_passes_warns_or_fails_with_the_meter_bias(bench, store, console, meter, bias,
                                                         expected):
    console_sim, meter_sim = bench(console, meter, bias)
    result = check(store, console_sim, meter_sim)
    assert result.result == expected
    assert result.deviation == pytest.approx(bias, abs=0.05)
    assert result.fired_by == "laserlog"
    assert len(result.shots) == 5
    for shot in result.shots:
        assert shot.deviation == pytest.approx((shot.measured_energy_j - shot.set_energy_j)
                                               / shot.set_energy_j)
    with sqlite3.connect(store.path) as conn:
        row = conn.execute("SELECT profile_id, console_serial, meter_model, meter_serial, user_id,"
                           " result, shots, set_energy_j FROM calibrations").fetchone()
        shots = conn.execute("SELECT count(*) FROM calibration_shots WHERE calibration_id = ?",
                             (result.calibration_id,)).fetchone()[0]
    assert row[0] == console and row[2] == meter_sim.profile.identity.model
    assert row[3] == ("G-4711" if "gentec" in meter else "123456")
    assert row[4:7] == ("lso-01", expected, 5) and shots == 5
    assert row[7] == pytest.approx(result.set_energy_j)
    assert not console_sim.console.firing, "the console is stopped after the check"
    assert verify_database(store.path).ok


def test_technician_fires_when_laserlog_does_not(bench, store):
    console_sim, meter_sim = bench()
    prompts = []

    def say(text: str) -> None:
        prompts.append(text)
        if "fire 3 shot(s) into the meter now" in text:
            console_sim.console.firing = True  # the technician presses the foot switch

    result = check(store, console_sim, meter_sim, fire=False, shots=3, say=say)
    assert result.fired_by == "technician" and result.result == "pass"


def test_classification_follows_the_site_deviations():
    assert [classify(d, 0.10, 0.20) for d in (0.0, -0.10, 0.1001, -0.2, 0.2001, -0.5)] == \
        ["pass", "pass", "warn", "warn", "fail", "fail"]


def nothing_written(store, before) -> None:
    assert counts(store.path) == before


def test_meter_that_does_not_answer_is_refused_and_nothing_written(simulate, store, tmp_path):
    console_sim = simulate("ps755-ref", rate_hz=20)
    silent = PtyLink(tmp_path / "silent-meter")
    before = counts(store.path)
    try:
        with pytest.raises(CalibrationError, match="does not answer"):
            run_check(store, console_sim.profile, str(console_sim.path),
                      open_profile("ophir-nova2"), str(silent.path), user=store_user(store),
                      site=SITE, shots=2)
    finally:
        silent.close()
    nothing_written(store, before)
    assert not console_sim.console.firing


def test_meter_of_another_model_is_refused(simulate, store, tmp_path):
    console_sim = simulate("ps755-ref", rate_hz=20)
    other = tmp_path / "other.toml"
    other.write_text((bundled_profiles_dir() / "ophir-nova2.toml").read_text()
                     .replace('model = "PE50BF-C"', 'model = "PE25-C"'))
    meter_sim = simulate(load_profile(other))
    before = counts(store.path)
    with pytest.raises(IdentityMismatch, match="PE25-C"):
        check(store, console_sim, replace_profile(meter_sim, open_profile("ophir-nova2")))
    nothing_written(store, before)


def replace_profile(sim, profile):
    """Return a view of `sim` whose profile is the one the host expects."""
    class View:
        path = sim.path

    view = View()
    view.profile = profile  # type: ignore[attr-defined]
    return view


def test_over_range_reading_stops_the_check(bench, store):
    console_sim, meter_sim = bench()
    meter_sim.device.head.max_j = 0.05  # the 0.12 J pulses saturate the head: *OVER
    before = counts(store.path)
    with pytest.raises(CalibrationError, match="over range"):
        check(store, console_sim, meter_sim)
    nothing_written(store, before)
    assert not console_sim.console.firing


def test_interlock_open_refuses_fire_and_nothing_written(bench, store):
    console_sim, meter_sim = bench()
    console_sim.inject_fault(10)
    before = counts(store.path)
    with pytest.raises(CalibrationError, match="refused"):
        check(store, console_sim, meter_sim)
    nothing_written(store, before)


def test_gentec_needs_the_head_serial_number(bench, store):
    console_sim, meter_sim = bench("ps755-ref", "gentec-maestro")
    with pytest.raises(CalibrationError, match="--meter-serial"):
        check(store, console_sim, meter_sim, meter_serial=None)


def test_ophir_wire_format_follows_the_documented_replies():
    profile = open_profile("ophir-nova2")
    device = driver_module(profile).Device(profile, Console(profile))

    def ask(command: str) -> str:
        return device.receive(command.encode() + b"\r\n").decode()

    assert ask("$HI") == "*PY 123456 PE50BF-C 80000003\r\n"
    assert ask("$EF") == "*0\r\n"
    device.head.noise = 0.0
    device.head.deliver(0.001234)
    assert ask("$EF") == "*1\r\n"
    assert ask("$SE") == "*1.234E-3\r\n"
    assert ask("$EF") == "*0\r\n"  # reading the energy clears the flag
    assert ask("$SF") == "*1.000E+1\r\n"
    assert ask("$WL1064") == "*\r\n"
    assert ask("$HP") == "*\r\n"
    assert ask("$XX") == "?UNKNOWN COMMAND\r\n"
    device.head.deliver(50.0)
    assert ask("$SE") == "*OVER\r\n"


def test_gentec_wire_format_follows_the_documented_replies():
    profile = open_profile("gentec-maestro")
    device = driver_module(profile).Device(profile, Console(profile))

    def ask(command: str) -> str:
        return device.receive(command.encode() + b"\r\n").decode()

    assert ask("*VER") == "Maestro firmware Version 1.95\r\n"
    assert ask("*NVU") == "New Data Not Available\r\n"
    device.head.noise = 0.0
    device.head.deliver(0.00500095)
    assert ask("*NVU") == "New Data Available\r\n"
    assert ask("*CVU") == "Current Value : 0.00500095\r\n"
    assert ask("*SSE1") == "ACK\r\n"
    assert ask("*GMD") == "Mode: 2\r\n"
    assert ask("*PWC01064") == "ACK\r\n"
    assert ask("*GWL") == "PWC: 1064\r\n"
    assert ask("*SCS24") == "ACK\r\n"
    assert ask("*GCR") == "Range: 24\r\n"


def test_meter_profiles_are_refused_as_consoles_and_vice_versa(simulate, store):
    console_sim = simulate("ps755-ref")
    with pytest.raises(CalibrationError, match="not an energy meter"):
        run_check(store, console_sim.profile, str(console_sim.path), console_sim.profile,
                  str(console_sim.path), user=store_user(store), site=SITE, shots=1)


def test_calibrate_command_records_and_reports_the_result(bench, store):
    console_sim, meter_sim = bench(bias=-0.3)
    db = str(store.path)
    result = cli("calibrate", "--profile", "ps755-ref", "--port", str(console_sim.path),
                 "--meter", "ophir-nova2", "--meter-port", str(meter_sim.path), "--shots", "3",
                 "--user", "lso-01", "--db", db, passphrase=PASSPHRASES["lso-01"])
    assert result.returncode == 1, result.stderr  # a failed check is a finding, not bad input
    assert "FAIL" in result.stdout and "PE50BF-C serial 123456" in result.stdout
    assert "shot 3/3" in result.stderr
    history = json.loads(cli("report", "calibration", "--history", "--format", "json",
                             "--db", db).stdout)["rows"]
    assert [(h["result"], h["shots"]) for h in history] == [("FAIL", 3)]
    state = json.loads(cli("report", "calibration", "--format", "json", "--db", db).stdout)
    assert state["rows"][0]["state"] == "FAILED"
    meter_sim.device.bias = 0.0
    again = cli("calibrate", "--profile", "ps755-ref", "--port", str(console_sim.path),
                "--meter", "ophir-nova2", "--meter-port", str(meter_sim.path), "--shots", "3",
                "--user", "lso-01", "--json", "--db", db, passphrase=PASSPHRASES["lso-01"])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["result"] == "pass"
    state = json.loads(cli("report", "calibration", "--format", "json", "--db", db).stdout)
    assert state["rows"][0]["state"] == "OK"


@pytest.mark.parametrize("args,needle", [
    (["--meter", "ps755-ref"], "not an energy meter"),
    (["--meter", "ophir-nova2", "--meter-port", "{silent}"], "does not answer"),
])
def test_calibrate_bad_input_exits_2_and_writes_nothing(simulate, store, tmp_path, args, needle):
    console_sim = simulate("ps755-ref", rate_hz=20)
    silent = PtyLink(tmp_path / "silent")
    args = [a.replace("{silent}", str(silent.path)) for a in args]
    if "--meter-port" not in args:
        args += ["--meter-port", str(silent.path)]
    before = counts(store.path)
    try:
        result = cli("calibrate", "--profile", "ps755-ref", "--port", str(console_sim.path),
                     *args, "--user", "lso-01", "--db", str(store.path),
                     passphrase=PASSPHRASES["lso-01"])
    finally:
        silent.close()
    assert_clean_error(result, needle)
    assert counts(store.path) == before


def test_calibrate_with_wrong_passphrase_touches_no_port(store):
    result = cli("calibrate", "--profile", "ps755-ref", "--port", "/dev/null/none", "--meter",
                 "ophir-nova2", "--meter-port", "/dev/null/none", "--user", "lso-01",
                 "--db", str(store.path), passphrase="not the passphrase")
    assert_clean_error(result, "wrong passphrase")


def record_fake_check(store, result: str, ended_utc: str) -> int:
    shot = Shot(1, 0.0, 0.12, 0.12, 0.0, result)
    return record(store, Check(0, "ps755-ref", "PSR755", "R755-0001", "2.1.0", "ophir-nova2",
                               "PE50BF-C", "123456", "", "lso-01", ended_utc, ended_utc, 755.0,
                               0.12, 0.12, 0.0, 0.0, result, "laserlog", 0.1, 0.2, [shot]))


def start_events(store, sim) -> list[str]:
    rec = record_session(store, sim, SessionInfo("tech-01", "C-9001", eyewear_checked=True), pulses=2)
    with sqlite3.connect(store.path) as conn:
        return [r[0] for r in conn.execute(
            "SELECT kind FROM events WHERE session_id = ? AND kind LIKE 'calibration%'",
            (rec.session_id,))]


def test_sessions_on_unchecked_overdue_or_failed_consoles_are_flagged(simulate, store, tmp_path,
                                                                      monkeypatch):
    sim = simulate("ps755-ref", rate_hz=50)
    assert start_events(store, sim) == ["calibration_missing"]
    record_fake_check(store, "pass", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    assert start_events(store, sim) == []
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 86400))
    record_fake_check(store, "pass", old)
    site = tmp_path / "site.toml"
    site.write_text("[calibration]\ninterval_days = 2\n")
    monkeypatch.setenv("LASERLOG_SITE", str(site))
    assert start_events(store, sim) == ["calibration_overdue"]
    record_fake_check(store, "fail", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    assert start_events(store, sim) == ["calibration_failed"]
    with sqlite3.connect(store.path) as conn:
        severity = conn.execute("SELECT severity FROM events WHERE kind = 'calibration_failed'"
                                ).fetchone()[0]
    assert severity == "alarm"


def test_status_is_due_after_the_interval(store):
    check_id = record_fake_check(store, "warn", "2026-01-01T00:00:00Z")
    device = store.conn.execute("SELECT device_id FROM calibrations WHERE id = ?",
                                (check_id,)).fetchone()[0]
    site = replace(SITE, calibration_interval_days=30)
    jan_10 = status(store.conn, device, site, 1767225600 + 9 * 86400)
    feb_10 = status(store.conn, device, site, 1767225600 + 40 * 86400)
    assert (jan_10.state, jan_10.due_utc) == ("warn", "2026-01-31T00:00:00Z")
    assert feb_10.state == "overdue"


def test_simulate_bench_serves_a_console_and_a_meter(tmp_path, store):
    console_link, meter_link = tmp_path / "console", tmp_path / "meter"
    proc = subprocess.Popen([*LASERLOG, "simulate-bench", "ps755-ref", "--link", str(console_link),
                             "--meter", "ophir-nova2", "--meter-link", str(meter_link),
                             "--bias", "0.15", "--rate", "20"], stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (console_link.exists() and meter_link.exists()) or proc.poll() is not None,
                   what="both ptys")
        result = cli("calibrate", "--profile", "ps755-ref", "--port", str(console_link),
                     "--meter", "ophir-nova2", "--meter-port", str(meter_link), "--shots", "3",
                     "--user", "lso-01", "--db", str(store.path), passphrase=PASSPHRASES["lso-01"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert "WARN" in result.stdout


def test_meter_profiles_load_and_are_not_consoles():
    for name in ("ophir-nova2", "gentec-maestro"):
        profile = open_profile(name)
        assert profile.kind == "meter" and profile.protocol == "meter"
    from conftest import CONSOLE_PROFILES

    assert not {"ophir-nova2", "gentec-maestro"} & set(CONSOLE_PROFILES)
    assert "ps755-ref" in CONSOLE_PROFILES


def test_a_meter_is_never_recorded_as_a_console(simulate, db_path):
    meter_sim = simulate("ophir-nova2")
    result = cli("record", "--profile", "ophir-nova2", "--port", str(meter_sim.path),
                 "--operator", "t1", "--client", "C-9001", *START, "--pulses", "1", "--db", str(db_path))
    assert_clean_error(result, "energy meter")
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0


# -- the meter driver's exchange, by transcript --------------------------------------------
@pytest.mark.realtime
def test_meter_answering_something_else_fails_at_once_naming_what_it_said():
    from laserlog.proving.transcript import expected_protocol

    ophir = open_profile("ophir-nova2")
    started = time.monotonic()
    with expected_protocol(ophir, [(b"$HI\r\n", b"*HELLO\r\n")]) as meter:
        with pytest.raises(ProtocolError, match=r"meter answered '\$HI' with '\*HELLO'"):
            meter.query_identity()
    assert time.monotonic() - started < ophir.transport.timeout_s


def test_meter_refusal_quotes_the_meter_and_a_set_out_of_range_is_never_sent():
    from laserlog.proving.transcript import expected_protocol

    ophir = open_profile("ophir-nova2")
    with expected_protocol(ophir, [(b"$EF\r\n", b"?UNKNOWN COMMAND\r\n")]) as meter:
        with pytest.raises(ProtocolError, match=r"meter refused '\$EF': \?UNKNOWN COMMAND$"):
            meter.new_data()
    with expected_protocol(ophir, []) as meter:
        with pytest.raises(ProtocolError, match="meter wavelength 5000 is outside"):
            meter.set("wavelength", 5000.0)


def test_meter_reads_identity_sets_and_commands_through_its_one_line_exchange():
    from laserlog.proving.transcript import expected_protocol

    gentec = open_profile("gentec-maestro")
    pairs = [(b"*VER\r\n", b"Maestro firmware Version 1.2\r\n"), (b"*SSE1\r\n", b"ACK\r\n"),
             (b"*NVU\r\n", b"New Data Available\r\n")]
    with expected_protocol(gentec, pairs) as meter:
        assert meter.query_identity().model == "Maestro"
        meter.command("energy_mode")
        assert meter.get("new_data") == 1.0
    with expected_protocol(gentec, [(b"*SSE1\r\n", b"NACK\r\n")]) as meter:
        with pytest.raises(ProtocolError, match="meter answered '\\*SSE1' with 'NACK'"):
            meter.command("energy_mode")
