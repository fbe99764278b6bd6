"""Recording sessions from simulated consoles over real ptys into a real SQLite file."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from laserlog.config.profile import open_profile
from laserlog.domain import dosimetry
from laserlog.errors import SessionError
from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.storage.store import Store

from conftest import CONSOLE_PROFILES, START, wait_until

INFO = SessionInfo("tech-01", "C-1001", "left cheek", "III", eyewear_checked=True)


def record(store: Store, sim, *, until, timeout_s: float = 20.0, info: SessionInfo = INFO) -> Recorder:
    """Record from `sim` until `until(recorder)` holds; return the ended recorder."""
    recorder = Recorder(store, sim.profile, str(sim.path))
    recorder.start(info)
    sim.console.firing = True
    wait_until(lambda: recorder.step(0.02) or until(recorder), timeout_s, "recording condition")
    recorder.end()
    return recorder


def pulses(db_path, session_id):
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    return conn.execute("SELECT * FROM pulses WHERE session_id = ? ORDER BY id", (session_id,)).fetchall()


def events(db_path, session_id, kind=None):
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    rows = conn.execute("SELECT * FROM events WHERE session_id = ? ORDER BY id", (session_id,)).fetchall()
    return [r for r in rows if kind is None or r["kind"] == kind]


@pytest.mark.parametrize("profile_name", CONSOLE_PROFILES)
def test_every_bundled_console_records_consistent_pulses(profile_name, simulate, db_path):
    profile = open_profile(profile_name)
    sim = simulate(profile, seed=7, rate_hz=40)
    with Store(db_path) as store:
        rec = record(store, sim, until=lambda r: r.totals.pulses >= 25)
        session = store.session(rec.session_id)
    rows = pulses(db_path, rec.session_id)
    assert len(rows) >= 25
    assert session["pulse_count"] == len(rows)
    assert session["total_energy_j"] == pytest.approx(sum(r["energy_j"] for r in rows))
    for row in rows:
        hp = profile.handpiece(row["handpiece"])
        area_cm2 = hp.area_cm2(row["spot_mm"])
        assert row["energy_j"] > 0
        assert row["energy_j"] == pytest.approx(row["fluence_j_cm2"] * area_cm2, rel=0.01)
        assert row["regime"] == dosimetry.regime(row["pulse_duration_ps"])
        if hp.fractional:
            expected = (row["energy_j"] * hp.beamlet_energy_fraction
                        / (hp.beamlet_count * dosimetry.round_area_cm2(hp.beamlet_diameter_mm)))
            assert row["beamlet_fluence_j_cm2"] == pytest.approx(expected, rel=1e-6)
        else:
            assert row["beamlet_fluence_j_cm2"] is None
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no pulse lost or duplicated"


def test_expected_regimes_of_bundled_consoles(simulate, db_path):
    expected = {"ps755-ref": "ps", "ps1064-ref": "ps", "cfr-ndyag": "ns", "fx1550-ref": "long"}
    with Store(db_path) as store:
        for name, regime in expected.items():
            if name not in CONSOLE_PROFILES:
                pytest.fail(f"bundled profile {name} is missing")
            rec = record(store, simulate(name, rate_hz=40), until=lambda r: r.totals.pulses >= 3)
            assert rec.totals.regimes == {regime}, name


def test_sequence_gap_is_recorded_with_missing_count(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=50)
    state = {"jumped": False}

    def until(r):
        if r.totals.pulses >= 10 and not state["jumped"]:
            sim.console.shot_counter += 7  # the console fired 7 pulses we never heard about
            state["jumped"] = True
        return state["jumped"] and r.totals.pulses >= 20

    with Store(db_path) as store:
        rec = record(store, sim, until=until)
        session = store.session(rec.session_id)
    gaps = events(db_path, rec.session_id, "gap")
    assert [g["missing_pulses"] for g in gaps] == [7]
    assert session["missing_pulses"] == 7


def test_console_restart_is_a_counter_reset_without_duplicates(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=50)
    state = {"rebooted": False}

    def until(r):
        if r.totals.pulses >= 10 and not state["rebooted"]:
            with sim._lock:
                sim.console.power_cycle()
                sim.console.firing = True
            state["rebooted"] = True
        return state["rebooted"] and r.totals.pulses >= 25

    with Store(db_path) as store:
        rec = record(store, sim, until=until)
    resets = events(db_path, rec.session_id, "counter_reset")
    assert len(resets) == 1
    seqs = [r["seq"] for r in pulses(db_path, rec.session_id)]
    assert len(seqs) == rec.totals.pulses
    restart = seqs.index(1, 1)
    assert seqs[:restart] == list(range(seqs[0], seqs[0] + restart))
    assert seqs[restart:] == list(range(1, len(seqs) - restart + 1))


def test_interlock_fault_is_an_alarm_event(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=20)
    state = {"faulted": False}

    def until(r):
        if r.totals.pulses >= 3 and not state["faulted"]:
            sim.inject_fault(10)
            state["faulted"] = True
        return r.totals.interlock_open

    with Store(db_path) as store:
        rec = record(store, sim, until=until)
    kinds = {e["kind"]: e for e in events(db_path, rec.session_id)}
    assert kinds["fault"]["severity"] == "alarm" and kinds["fault"]["code"] == 10
    assert "interlock_open" in kinds


def test_garbage_on_the_line_is_counted_never_stored_as_pulses(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=50)
    state = {"sent": False}

    def until(r):
        if r.totals.pulses >= 5 and not state["sent"]:
            sim.link.write(b"P 99x E1\r\n\x00\x01\x02\r\nP 5 E-bad\r\n")
            state["sent"] = True
        return state["sent"] and r.totals.garbled >= 3 and r.totals.pulses >= 15

    with Store(db_path) as store:
        rec = record(store, sim, until=until)
    rows = pulses(db_path, rec.session_id)
    assert 99 not in {r["seq"] for r in rows}
    garbled = events(db_path, rec.session_id, "garbled")
    assert sum(e["count"] for e in garbled) == 3
    assert len(rows) == rec.totals.pulses


def test_unplug_mid_session_records_gap_and_resumes(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=50)
    state = {"phase": 0, "pulses_before": 0}

    def until(r):
        if state["phase"] == 0 and r.totals.pulses >= 10:
            sim.link.unplug()
            state["phase"] = 1
        elif state["phase"] == 1 and r.totals.link_losses:
            with sim._lock:
                for _ in range(4):  # fired while the cable was out
                    sim.console.fire_pulse()
            sim.link.plug()
            state["phase"] = 2
            state["pulses_before"] = r.totals.pulses
        return state["phase"] == 2 and r.totals.pulses >= state["pulses_before"] + 10

    with Store(db_path) as store:
        rec = record(store, sim, until=until, timeout_s=30)
    kinds = [e["kind"] for e in events(db_path, rec.session_id)]
    assert "link_lost" in kinds and "link_restored" in kinds
    assert kinds.index("link_lost") < kinds.index("link_restored")
    assert sum(e["missing_pulses"] or 0 for e in events(db_path, rec.session_id, "gap")) >= 4


def test_session_details_are_validated():
    with pytest.raises(SessionError, match="pseudonym"):
        SessionInfo("tech-01", "Jane Doe").validated()
    with pytest.raises(SessionError, match="Fitzpatrick"):
        SessionInfo("tech-01", "C-1", skin_type="VII").validated()
    assert SessionInfo("tech-01", "C-1", skin_type="4").validated().skin_type == "IV"


def test_run_stops_on_event_and_everything_is_committed(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=200)
    stop = threading.Event()
    with Store(db_path) as store:
        rec = Recorder(store, sim.profile, str(sim.path))
        rec.start(INFO)
        sim.console.firing = True
        timer = threading.Timer(1.0, stop.set)
        timer.start()
        rec.run(stop)
        rec.end("stopped")
        session = store.session(rec.session_id)
    assert session["status"] == "ended"
    assert session["pulse_count"] == rec.totals.pulses == len(pulses(db_path, rec.session_id))
    assert rec.totals.pulses > 50


def test_a_start_the_console_cannot_answer_leaves_no_session_behind(simulate, db_path):
    """Another profile's console identifies alike but refuses a read of the start: no
    'recording' session with 0 pulses stays behind for reports and --resume."""
    from dataclasses import replace

    from laserlog.config.template import compile_template
    from laserlog.errors import LaserlogError

    sim = simulate("ps755-ref")
    energy = sim.profile.parameters["energy"]
    other = replace(sim.profile, parameters={
        **sim.profile.parameters, "energy": replace(energy, get=compile_template("ZZ?"))})
    store = Store(db_path)
    recorder = Recorder(store, other, str(sim.path))
    with pytest.raises(LaserlogError):
        recorder.start(INFO)
    recorder.end("start failed")
    assert store.conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    assert store.latest_interrupted(str(sim.path)) is None
    store.close()


def test_resume_refuses_a_session_of_another_profile(simulate, db_path, capsys):
    from laserlog.cli.main import main

    sim = simulate("ps755-ref")
    store = Store(db_path)
    recorder = Recorder(store, sim.profile, str(sim.path))
    session_id = recorder.start(INFO)
    recorder.flush()
    recorder.writer.drain()
    recorder._port_lock.release()  # as a killed recorder leaves it: 'recording', lock gone
    assert store.mark_interrupted(str(sim.path)) == [session_id]
    store.close()
    other = simulate("fx1550-ref")
    status = main(["record", "--profile", "fx1550-ref", "--port", str(other.path), "--resume",
                   str(session_id), "--db", str(db_path), "--duration", "0.2"])
    assert status == 2
    err = capsys.readouterr().err
    assert f"session {session_id} was recorded with profile ps755-ref, not fx1550-ref" in err


def test_record_says_serial_unknown_for_a_console_that_cannot_identify(simulate, db_path,
                                                                      capsys):
    from laserlog.cli.main import main

    sim = simulate("cfr-ndyag")  # the CFR command set has no identify command
    assert sim.profile.identity.get is None
    status = main(["record", "--profile", "cfr-ndyag", "--port", str(sim.path), "--operator",
                   "tech-07", "--client", "C-1042", *START, "--duration", "0.3",
                   "--db", str(db_path)])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "(serial unknown)" in err
    assert "(serial )" not in err
