"""Safety configuration errors stop a session's start: the officer's file says what it means."""

from __future__ import annotations

import json
import sqlite3

import pytest

from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.siteconfig import load_site
from laserlog.errors import ProfileError
from laserlog.recording.recorder import SessionInfo
from laserlog.storage.store import Store
from laserlog.tui.controller import LiveController

from conftest import wait_until
from reviewkit import assert_clean_error, cli

INFO = SessionInfo("tech-07", "C-1042", "left cheek", "III", eyewear_checked=True)


def record_args(sim, db, *more: str) -> list[str]:
    return ["record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator", "tech-07",
            "--client", "C-1042", "--eyewear-checked", "--pulses", "5", "--db", str(db), *more]


def sessions(db) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, status FROM sessions").fetchall()


# -- limits for a profile that does not exist ----------------------------------------------
def test_limits_for_a_profile_not_on_the_path_stop_record_before_a_session(simulate, tmp_path):
    db = tmp_path / "log.db"
    Store(db).close()
    site = tmp_path / "site.toml"
    site.write_text("[limits.ps755_ref]\nmax_fluence_j_cm2 = 6.0\n")
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    result = cli(*record_args(sim, db))
    assert_clean_error(result, f"{site}: [limits.ps755_ref]: no profile 'ps755_ref' (known: ",
                       "ps755-ref")
    assert sessions(db) == []


def test_limits_for_a_profile_in_a_profiles_folder_count_with_that_folder(simulate, tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    text = (bundled_profiles_dir() / "ps755-ref.toml").read_text()
    (own / "clinic-755.toml").write_text(text.replace('id = "ps755-ref"', 'id = "clinic-755"'))
    db = tmp_path / "log.db"
    (tmp_path / "site.toml").write_text("[limits.clinic-755]\nmax_fluence_j_cm2 = 6.0\n")
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    assert_clean_error(cli(*record_args(sim, db)), "[limits.clinic-755]: no profile 'clinic-755'")
    result = cli(*record_args(sim, db, "--profiles", str(own)))
    assert result.returncode == 0, result.stderr
    assert sessions(db) == [(1, "ended")]


def test_the_screen_refuses_to_start_with_limits_for_an_unknown_profile(simulate, db_path):
    (db_path.parent / "site.toml").write_text("[limits.ps755]\nmax_fluence_j_cm2 = 6.0\n")
    sim = simulate("ps755-ref")
    controller = LiveController(db_path, sim.profile, str(sim.path)).start()
    try:
        wait_until(lambda: controller.link_state == "up", what="the link")
        with pytest.raises(ProfileError, match=r"\[limits\.ps755\]: no profile 'ps755'"):
            controller.start_session(INFO).result(timeout=10)
    finally:
        controller.shutdown()
    assert sessions(db_path) == []


# -- unknown keys ------------------------------------------------------------------------
@pytest.mark.parametrize("text,key", [
    ("colour = 'red'\n", "colour"),
    ("[calibration]\nintervals_days = 3\n", "calibration.intervals_days"),
    ("[anchor]\nsecnd = '/media/usb/laserlog.anchor'\n", "anchor.secnd"),
    ("[operators]\nregistred = true\n", "operators.registred"),
    ("[limits.ps755-ref]\nmax_fluence = 3\n", "limits.ps755-ref.max_fluence"),
    ("[limits.ps755-ref.handpiece]\nmax_spot_mm = 3\n", "limits.ps755-ref.handpiece"),
    ("[anchor.second]\npath = 'x'\n", "anchor.second"),
])
def test_unknown_keys_anywhere_in_the_site_file_are_named(tmp_path, text, key):
    site = tmp_path / "site.toml"
    site.write_text(text)
    with pytest.raises(ProfileError) as raised:
        load_site(site)
    assert raised.value.source == str(site) and raised.value.key == key


def test_an_unknown_key_points_at_the_site_files_documentation(tmp_path):
    (tmp_path / "site.toml").write_text("[operators]\nregistred = true\n")
    result = cli("site", "--db", str(tmp_path / "log.db"))
    assert_clean_error(result, "site.toml: operators.registred: unknown key", "docs/review.md")
    assert "profiles.md" not in result.stderr


def test_an_unknown_key_stops_record(simulate, tmp_path):
    db = tmp_path / "log.db"
    (tmp_path / "site.toml").write_text("[anchor]\nsecnd = 'usb/laserlog.anchor'\n")
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    assert_clean_error(cli(*record_args(sim, db)), "site.toml: anchor.secnd: unknown key")
    assert not db.exists() or sessions(db) == []


# -- operators --------------------------------------------------------------------------
def test_operators_registered_is_read_and_shown(tmp_path):
    db = tmp_path / "log.db"
    site = tmp_path / "site.toml"
    assert load_site(site).operators_registered is False
    site.write_text("[operators]\nregistered = true\n[anchor]\nsecond = '/media/usb/l.anchor'\n")
    config = load_site(site)
    assert config.operators_registered is True
    assert str(config.second_anchor) == "/media/usb/l.anchor"
    data = json.loads(cli("site", "--json", "--db", str(db)).stdout)
    assert data["operators_registered"] is True and data["second_anchor"] == "/media/usb/l.anchor"
    site.write_text("[operators]\nregistered = 'yes'\n")
    assert_clean_error(cli("site", "--db", str(db)), "operators.registered: wrong type",
                       "true or false")
