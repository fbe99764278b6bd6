"""Limits: compiled from profile ranges and the officer's site file, checked on every pulse."""

from __future__ import annotations

import json
import sqlite3

import pytest

from laserlog.config.profile import open_profile
from laserlog.config.siteconfig import SiteConfig, load_site
from laserlog.domain.model import PulseReading
from laserlog.errors import ProfileError
from laserlog.recording.completion import PulseCompleter
from laserlog.recording.limits import compile_limits
from laserlog.recording.recorder import SessionInfo
from laserlog.storage.store import Store

from conftest import START
from reviewkit import assert_clean_error, cli, counts, record

PS755 = open_profile("ps755-ref")



def completer(site: SiteConfig) -> PulseCompleter:
    return PulseCompleter(PS755, 1, limits=compile_limits(PS755, site))


def pulse(seq: int, energy_mj: float, spot_mm: float = 4.0) -> PulseReading:
    return PulseReading(float(seq), seq=seq, energy_j=energy_mj / 1000, spot_mm=spot_mm,
                        pulse_duration_ps=650.0, handpiece=1)


def test_profile_range_widened_by_the_tolerance_is_a_warning():
    c = completer(SiteConfig(profile_tolerance=0.10))
    events: list = []
    c.pulse(pulse(1, 540.0), events)  # 500 mJ max, +10 %: 550 mJ still inside
    assert events == []
    row = c.pulse(pulse(2, 560.0), events)
    assert row is not None and row[5] == pytest.approx(0.56), "the pulse is stored as delivered"
    (event,) = events
    assert (event.kind, event.severity, event.raw) == ("out_of_limit", "warning", "energy_j")
    assert "above the profile ps755-ref limit 0.55 J" in event.message


def test_site_limits_are_alarms_and_a_profile_section_overrides_the_general_one(tmp_path):
    site_file = tmp_path / "site.toml"
    site_file.write_text("[limits]\nmax_fluence_j_cm2 = 5.0\nmin_spot_mm = 2.5\n"
                         '["limits".ps755-ref]\nmax_fluence_j_cm2 = 1.0\n')
    site = load_site(site_file)
    assert site.bounds_for("ps755-ref")["fluence_j_cm2"] == (None, 1.0)
    assert site.bounds_for("fx1550-ref")["fluence_j_cm2"] == (None, 5.0)
    c = completer(site)
    events: list = []
    c.pulse(pulse(1, 100.0, spot_mm=4.0), events)  # 0.8 J/cm2: fine
    assert events == []
    c.pulse(pulse(2, 200.0, spot_mm=4.0), events)  # 1.59 J/cm2: above the site's 1.0
    c.pulse(pulse(3, 20.0, spot_mm=2.0), events)  # 2 mm spot: below the site's 2.5 mm
    assert [(e.raw, e.severity) for e in events] == [("fluence_j_cm2", "alarm"),
                                                      ("spot_mm", "alarm")]
    assert "below the site limit 2.5 mm" in events[1].message


def test_limits_cost_nothing_when_there_are_none():
    assert PulseCompleter(PS755, 1).limits is None
    assert not compile_limits(open_profile("cfr-ndyag"), SiteConfig())  # no dose parameters


@pytest.mark.parametrize("text,key", [
    ("[limits]\nmax_fluence = 3\n", "limits.max_fluence"),
    ("[limits]\nmin_energy_j = 2\nmax_energy_j = 1\n", "limits.max_energy_j"),
    ("[calibration]\nwarn_deviation = 0.3\n", "calibration.warn_deviation"),
    ("[calibration]\ninterval_days = -1\n", "calibration.interval_days"),
    ("[limit]\n", "limit"),
])
def test_broken_site_file_is_named_by_file_and_key(tmp_path, text, key):
    site_file = tmp_path / "site.toml"
    site_file.write_text(text)
    with pytest.raises(ProfileError, match=key.replace(".", r"\.")) as raised:
        load_site(site_file)
    assert str(site_file) in str(raised.value)


def test_recording_checks_every_pulse_against_the_site_file(simulate, db_path):
    (db_path.parent / "site.toml").write_text("[limits]\nmax_fluence_j_cm2 = 0.95\n")
    sim = simulate("ps755-ref", seed=9, rate_hz=60)
    with Store(db_path) as store:
        rec = record(store, sim, SessionInfo("tech-01", "C-5", eyewear_checked=True), pulses=40)
    with sqlite3.connect(db_path) as conn:
        above = conn.execute("SELECT count(*) FROM pulses WHERE fluence_j_cm2 > 0.95").fetchone()[0]
        flagged = conn.execute("SELECT count(*) FROM events WHERE kind = 'out_of_limit' AND"
                               " severity = 'alarm' AND session_id = ?",
                               (rec.session_id,)).fetchone()[0]
        total = conn.execute("SELECT count(*) FROM pulses").fetchone()[0]
    assert 0 < above < total, "the 3 % shot noise puts some pulses on each side of the limit"
    assert flagged == above
    rows = json.loads(cli("report", "limits", "--format", "json", "--db", str(db_path)).stdout)["rows"]
    assert [(r["session"], r["quantity"], r["limit"], r["pulses"]) for r in rows] == \
        [(rec.session_id, "fluence_j_cm2", "site", above)]
    energy = json.loads(cli("report", "energy", "--format", "json", "--db", str(db_path)).stdout)
    assert energy["rows"][0]["out_of_limit"] == above


def test_broken_site_file_stops_recording_before_anything_is_written(simulate, tmp_path):
    db = tmp_path / "log.db"
    Store(db).close()
    (tmp_path / "site.toml").write_text("[limits]\nmax_fluence_j_cm2 = 'high'\n")
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    before = counts(db)
    result = cli("record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator", "t1",
                 "--client", "C-9001", *START, "--pulses", "3", "--db", str(db))
    assert_clean_error(result, "site.toml", "limits.max_fluence_j_cm2")
    assert counts(db)["sessions"] == before["sessions"]


def test_site_command_shows_the_configuration(tmp_path):
    db = tmp_path / "log.db"
    (tmp_path / "site.toml").write_text("[calibration]\ninterval_days = 14\n"
                                        "[limits]\nmax_energy_j = 0.4\n")
    data = json.loads(cli("site", "--json", "--db", str(db)).stdout)
    assert data["calibration_interval_days"] == 14 and data["limits"] == {"energy_j": [None, 0.4]}
    assert data["source"] == str(tmp_path / "site.toml")


def test_limits_report_names_pulses_by_their_number_in_the_session(simulate, db_path):
    (db_path.parent / "site.toml").write_text("[limits]\nmax_fluence_j_cm2 = 0.95\n")
    sim = simulate("ps755-ref", seed=9, rate_hz=60)
    sim.console.shot_counter = 480  # the console fired 480 shots before this session
    with Store(db_path) as store:
        rec = record(store, sim, SessionInfo("tech-01", "C-5", eyewear_checked=True), pulses=30)
    with sqlite3.connect(db_path) as conn:
        pulse_ids = [r[0] for r in conn.execute(
            "SELECT id FROM pulses WHERE session_id = ? ORDER BY id", (rec.session_id,))]
        first_id, seq = conn.execute(
            "SELECT p.id, p.seq FROM pulses p JOIN events e ON e.session_id = p.session_id AND"
            " e.received_unix_s = p.received_unix_s AND e.message LIKE 'pulse ' || p.seq || ':%'"
            " WHERE e.kind = 'out_of_limit' AND p.session_id = ? ORDER BY e.id LIMIT 1",
            (rec.session_id,)).fetchone()
    assert seq > 480
    rows = json.loads(cli("report", "limits", "--format", "json", "--db", str(db_path)).stdout)["rows"]
    number = pulse_ids.index(first_id) + 1
    assert number <= len(pulse_ids)
    assert rows[0]["first"].startswith(f"pulse {number}: fluence ")
    assert rows[0]["first"].endswith(f"(console counter {seq})")
