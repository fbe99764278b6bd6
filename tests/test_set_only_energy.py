"""A pulse energy that comes from a setting the console cannot report (readable = false)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from laserlog.config.profile import load_profile
from laserlog.errors import ProfileError
from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.storage.store import Store

from conftest import wait_until

SET_ONLY = Path(__file__).resolve().parent / "profiles" / "setonly-console.toml"
INFO = SessionInfo("tech-01", "C-1001", "left cheek", "III", eyewear_checked=True)


def _record(db_path: Path, sim, energy_j: float | None) -> list[sqlite3.Row]:
    with Store(db_path) as store:
        recorder = Recorder(store, sim.profile, str(sim.path))
        recorder.connect()
        if energy_j is not None:
            recorder.driver.set("energy", energy_j)  # as the start form applies last settings
            recorder.driver.settings = {}  # as it does before starting: read everything anew
        recorder.start(INFO)
        sim.console.firing = True
        wait_until(lambda: recorder.step(0.02) or recorder.totals.pulses >= 5, 20, "5 pulses")
        recorder.end()
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    return conn.execute("SELECT * FROM pulses ORDER BY id").fetchall()


def _events(db_path: Path, kind: str) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return [m for (m,) in conn.execute("SELECT message FROM events WHERE kind = ?", (kind,))]


def test_energy_is_what_laserlog_set_and_marked_as_set(simulate, db_path):
    sim = simulate(load_profile(SET_ONLY), rate_hz=20)
    rows = _record(db_path, sim, 0.25)
    assert len(rows) >= 5
    for row in rows:
        assert row["energy_j"] == pytest.approx(0.25)
        assert row["fluence_j_cm2"] == pytest.approx(0.25 / (3.141592653589793 * 0.4 ** 2 / 4))
        assert row["derived"].split(",")[0] == "as_set"
        assert "energy" in row["derived"].split(",")
    assert not _events(db_path, "energy_unknown")


def test_energy_never_set_is_one_event_naming_the_setting(simulate, db_path):
    sim = simulate(load_profile(SET_ONLY), rate_hz=20)
    rows = _record(db_path, sim, None)
    assert len(rows) >= 5 and all(row["energy_j"] is None for row in rows)
    unknown = _events(db_path, "energy_unknown")
    assert len(unknown) == 1
    assert "setting energy, which the console cannot report" in unknown[0]


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = SET_ONLY.read_text()
    assert text.count(old) == 1
    path = tmp_path / "variant.toml"
    path.write_text(text.replace(old, new))
    return path


def test_check_refuses_an_energy_transfer_from_a_setting_it_can_neither_read_nor_set(tmp_path):
    path = _variant(tmp_path, 'set = "EN {value:.1f}"     # no query: the console cannot report '
                    'its energy\n', "")
    path.write_text(path.read_text() + '\n[pulses.energy_transfer]\nparameter = "energy"\n'
                    'energy_unit = "mJ"\npoints = [[10, 10], [800, 800]]\n')
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    text = str(caught.value)
    assert str(path) in text and "pulses.energy_transfer.parameter" in text
    assert "neither read nor set" in text


def test_check_refuses_readable_true_without_a_get(tmp_path):
    path = _variant(tmp_path, "readable = false", "readable = true")
    with pytest.raises(ProfileError, match=r"parameters\.energy\.readable"):
        load_profile(path)
