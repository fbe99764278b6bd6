"""Safety configuration errors stop a session's start; a second anchor witnesses the chain."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.siteconfig import load_site
from laserlog.errors import ProfileError, StoreError
from laserlog.recording.recorder import SessionInfo
from laserlog.storage import chain
from laserlog.storage.store import Store
from laserlog.storage.verify import verify_database
from laserlog.tui.controller import LiveController

from conftest import START, wait_until
from reviewkit import assert_clean_error, cli, counts, tamper

INFO = SessionInfo("tech-07", "C-1042", "left cheek", "III", True,
                   {"eyewear": True, "consent": True, "sun_exposure": True})


def record_args(sim, db, *more: str) -> list[str]:
    return ["record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator", "tech-07",
            "--client", "C-1042", *START, "--eyewear-checked", "--pulses", "5", "--db", str(db), *more]


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


# -- the anchor beside the database ------------------------------------------------------
@pytest.mark.parametrize("blocked", ["anchor", "lock"])
def test_an_anchor_that_cannot_be_written_stops_record_before_a_session(simulate, tmp_path,
                                                                       blocked):
    db = tmp_path / "log.db"
    Store(db).close()
    anchor = chain.anchor_path(db)
    anchor.unlink()
    place = anchor if blocked == "anchor" else anchor.with_name(anchor.name + ".lock")
    place.unlink(missing_ok=True)
    place.mkdir()  # something in its place that no write can replace, not even root's
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    before = counts(db)
    result = cli(*record_args(sim, db))
    assert_clean_error(result, f"anchor file {anchor} cannot be written", "No session was started")
    assert counts(db) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders anyway")
def test_an_anchor_in_a_read_only_place_stops_record(simulate, tmp_path):
    db = tmp_path / "log.db"
    Store(db).close()
    lock = chain.anchor_path(db).with_name(chain.anchor_path(db).name + ".lock")
    lock.chmod(0o400)
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    assert_clean_error(cli(*record_args(sim, db)), "cannot be written", "Permission denied")
    assert sessions(db) == []


def test_the_screen_refuses_to_start_without_a_writable_anchor(simulate, db_path):
    Store(db_path).close()
    chain.anchor_path(db_path).unlink()
    chain.anchor_path(db_path).mkdir()
    sim = simulate("ps755-ref")
    controller = LiveController(db_path, sim.profile, str(sim.path)).start()
    try:
        wait_until(lambda: controller.link_state == "up", what="the link")
        with pytest.raises(StoreError, match="cannot be written"):
            controller.start_session(INFO).result(timeout=10)
    finally:
        controller.shutdown()
    assert sessions(db_path) == []


# -- the second anchor -------------------------------------------------------------------
def test_the_second_anchor_follows_every_commit_and_catches_a_truncated_tail(simulate,
                                                                            tmp_path):
    db = tmp_path / "log.db"
    usb = tmp_path / "usb"
    usb.mkdir()
    (tmp_path / "site.toml").write_text("[anchor]\nsecond = 'usb/laserlog.anchor'\n")
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    result = cli(*record_args(sim, db))
    assert result.returncode == 0, result.stderr
    second = usb / "laserlog.anchor"
    with sqlite3.connect(db) as conn:
        last, last_hash = conn.execute("SELECT id, hash FROM chain ORDER BY id DESC"
                                       " LIMIT 1").fetchone()
        previous = conn.execute("SELECT hash FROM chain WHERE id = ?", (last - 1,)).fetchone()[0]
    assert (chain.read_anchor(second)["link"], chain.read_anchor(second)["hash"]) == \
        (last, last_hash) == (chain.read_anchor(chain.anchor_path(db))["link"], last_hash)
    # The tail goes, and the anchor beside the database is rewritten to match.
    tamper(db, "DROP TRIGGER chain_no_delete", f"DELETE FROM chain WHERE id = {last}",
           "CREATE TRIGGER chain_no_delete BEFORE DELETE ON chain\n"
           "BEGIN SELECT RAISE(ABORT, 'chain is append-only: rows cannot be deleted'); END")
    beside = chain.anchor_path(db)
    data = json.loads(beside.read_text())
    data.update(link=last - 1, hash=previous)
    beside.write_text(json.dumps(data))
    assert not any(f.kind == "truncated" for f in verify_database(db).findings)
    result = cli("verify", "--anchor", str(second), "--db", str(db))
    assert result.returncode == 1
    assert f"the anchor records link {last} but the chain ends at link {last - 1}" in result.stdout


def test_a_second_anchor_away_at_the_start_is_a_warning_not_a_refusal(simulate, tmp_path):
    db = tmp_path / "log.db"
    usb = tmp_path / "usb"  # not mounted yet
    (tmp_path / "site.toml").write_text(f"[anchor]\nsecond = '{usb}/laserlog.anchor'\n")
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    result = cli(*record_args(sim, db))
    assert result.returncode == 0, result.stderr
    assert f"laserlog: warning: second anchor {usb}/laserlog.anchor" in result.stderr
    with sqlite3.connect(db) as conn:
        events = conn.execute("SELECT session_id, kind, severity FROM events"
                              " WHERE kind = 'anchor_unavailable'").fetchall()
    assert events == [(1, "anchor_unavailable", "warning")]
    assert chain.read_anchor(chain.anchor_path(db)) is not None
    usb.mkdir()  # plugged in: the next session's commits write it
    result = cli(*record_args(sim, db))
    assert result.returncode == 0 and "warning: second anchor" not in result.stderr
    assert chain.read_anchor(usb / "laserlog.anchor") == chain.read_anchor(chain.anchor_path(db))


def test_a_second_anchor_that_fails_never_fails_the_first(tmp_path):
    db = tmp_path / "log.db"
    with Store(db) as store:
        head = chain.append_batch(store.conn, None, {"events": 0})
        store.conn.commit()
    broken = tmp_path / "second.anchor"
    broken.mkdir()
    chain.set_second_anchor(db, broken)
    try:
        assert chain.write_anchor(db, head) is True
    finally:
        chain.set_second_anchor(db, None)
    assert chain.read_anchor(chain.anchor_path(db))["link"] == head.link_id


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


# -- operators who must be registered users ------------------------------------------------
def test_a_site_that_requires_registered_operators_asks_their_passphrase(simulate, tmp_path):
    from laserlog.review.users import add_user

    db = tmp_path / "log.db"
    with Store(db) as store:
        add_user(store, "tech-07", "Sam Lee", "technician", "technician pass 7")
    (tmp_path / "site.toml").write_text("[operators]\nregistered = true\n")
    sim = simulate("ps755-ref", rate_hz=50, fire=True)
    args = record_args(sim, db)
    args[args.index("--operator") + 1] = "tech-99"
    unknown = cli(*args, passphrase="technician pass 7")
    assert_clean_error(unknown, "this site requires operators to be registered users",
                       "unknown user 'tech-99'")
    wrong = cli(*record_args(sim, db), passphrase="not the passphrase")
    assert_clean_error(wrong, "wrong passphrase for user tech-07")
    assert sessions(db) == []
    ok = cli(*record_args(sim, db), passphrase="technician pass 7")
    assert ok.returncode == 0, ok.stderr
    assert sessions(db) == [(1, "ended")]


def test_the_screen_starts_only_with_a_registered_operators_passphrase(simulate, db_path):
    from laserlog.review.users import AuthError, add_user

    with Store(db_path) as store:
        add_user(store, "tech-07", "Sam Lee", "technician", "technician pass 7")
    (db_path.parent / "site.toml").write_text("[operators]\nregistered = true\n")
    sim = simulate("ps755-ref")
    controller = LiveController(db_path, sim.profile, str(sim.path)).start()
    try:
        wait_until(lambda: controller.link_state == "up", what="the link")
        assert controller.operators_registered()
        with pytest.raises(AuthError, match="wrong passphrase for user tech-07"):
            controller.start_session(INFO, passphrase="guess guess").result(timeout=10)
        assert sessions(db_path) == []
        assert controller.start_session(INFO, passphrase="technician pass 7").result(
            timeout=10) == 1
        controller.end_session().result(timeout=10)
    finally:
        controller.shutdown()
    assert sessions(db_path) == [(1, "ended")]
