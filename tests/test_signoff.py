"""Users, sign-off and corrections: who signed what, bound to the data it covers."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from laserlog.recording.recorder import SessionInfo
from laserlog.review.signoff import signatures
from laserlog.review.users import AuthError, add_user, authenticate
from laserlog.storage import chain
from laserlog.storage.store import Store
from laserlog.storage.verify import verify_database

from reviewkit import PASSPHRASES, assert_clean_error, cli, counts, record, tamper, user


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Two ended sessions (operated by tech-01 and tech-02) and four users, nothing signed."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("signoff")
    db = folder / "laserlog.db"
    with Simulator(open_profile("ps755-ref"), folder / "console", seed=2, rate_hz=60) as sim, \
            Store(db) as store:
        record(store, sim, SessionInfo("tech-01", "C-2001", "left cheek", eyewear_checked=True),
               pulses=30)
        record(store, sim, SessionInfo("tech-02", "C-2002", "forehead", eyewear_checked=True),
               pulses=30)
        for user_id in ("lso-01", "tech-01", "tech-02", "eng-01"):
            user(store, user_id, {"lso-01": "Dr Jane Roe"}.get(user_id))
    return db


@pytest.fixture
def db(pristine, tmp_path):
    target = tmp_path / "laserlog.db"
    shutil.copy(pristine, target)
    shutil.copy(chain.anchor_path(pristine), chain.anchor_path(target))
    return target


def signoff(db, session: int, meaning: str, user_id: str, passphrase: str | None = None):
    return cli("signoff", str(session), "--meaning", meaning, "--user", user_id, "--db", str(db),
               passphrase=PASSPHRASES[user_id] if passphrase is None else passphrase)


def test_users_add_stores_an_scrypt_key_never_the_passphrase(tmp_path):
    db = tmp_path / "users.db"
    result = cli("users", "add", "lso-07", "--name", "Dr  Ann   Lee", "--role", "officer",
                 "--db", str(db), stdin="a long passphrase\n")
    assert result.returncode == 0, result.stderr
    assert cli("users", "add", "lso-08", "--name", "B", "--role", "officer", "--db", str(db),
               "--as", "lso-07", passphrase="a long passphrase",
               env={"LASERLOG_AS_PASSPHRASE": "a long passphrase"}).returncode == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT user_id, name, kdf, salt_hex, key_hex FROM users").fetchall()
    (_, name, kdf, salt_a, key_a), (_, _, _, salt_b, key_b) = rows
    assert name == "Dr Ann Lee"
    assert kdf.startswith("scrypt ")
    assert salt_a != salt_b and key_a != key_b  # same passphrase, different salts
    assert "a long passphrase" not in db.read_bytes().decode("latin-1")
    with Store(db) as store:
        assert authenticate(store, "lso-07", "a long passphrase").name == "Dr Ann Lee"
        with pytest.raises(AuthError, match="wrong passphrase"):
            authenticate(store, "lso-07", "a long passphrasE")
    listed = json.loads(cli("users", "list", "--json", "--db", str(db)).stdout)
    assert [u["user_id"] for u in listed] == ["lso-07", "lso-08"]


@pytest.mark.parametrize("args,passphrase,needle", [
    (["lso-01", "--name", "X", "--role", "officer"], "short", "too short"),
    (["lso-01", "--name", "   ", "--role", "officer"], "long enough pass", "printed name"),
    (["Jane Doe", "--name", "X", "--role", "officer"], "long enough pass", "not allowed"),
])
def test_bad_users_are_refused_and_nothing_written(tmp_path, args, passphrase, needle):
    db = tmp_path / "users.db"
    Store(db).close()
    before = counts(db)
    assert_clean_error(cli("users", "add", *args, "--db", str(db), passphrase=passphrase), needle)
    assert counts(db) == before


def test_existing_user_cannot_be_replaced(db):
    before = counts(db)
    assert_clean_error(cli("users", "add", "LSO-01 ", "--name", "Mallory", "--role", "officer",
                           "--db", str(db), "--as", "lso-01", passphrase="another passphrase",
                           env={"LASERLOG_AS_PASSPHRASE": PASSPHRASES["lso-01"]}),
                       "already exists")
    assert counts(db) == before


def test_signoff_binds_name_time_meaning_to_the_seal_and_shows_everywhere(db, tmp_path):
    result = signoff(db, 1, "approved", "lso-01")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT printed_name, role, meaning, signed_utc, chain_id, chain_hash"
                           " FROM signoffs").fetchone()
        seal = conn.execute("SELECT id, hash FROM chain WHERE session_id = 1 AND kind = 'seal'"
                            " ORDER BY id DESC LIMIT 1").fetchone()
    assert row[:3] == ("Dr Jane Roe", "officer", "approved")
    assert row[3].endswith("Z") and (row[4], row[5]) == seal
    shown = cli("sessions", "show", "1", "--db", str(db)).stdout
    assert "VALID   approved Dr Jane Roe (officer, lso-01)" in shown
    report = json.loads(cli("report", "energy", "--format", "json", "--db", str(db)).stdout)
    assert report["rows"][0]["signatures"] == "approved:lso-01"
    out = tmp_path / "s1.html"
    assert cli("export", "--format", "html", "--session", "1", "--out", str(out),
               "--db", str(db)).returncode == 0
    assert '<span class="flag">VALID</span> <b>approved</b> by Dr Jane Roe (officer, lso-01)' \
        in out.read_text()
    assert verify_database(db).ok


def test_signature_over_changed_data_shows_invalid_everywhere(db, tmp_path):
    assert signoff(db, 1, "approved", "lso-01").returncode == 0
    assert signoff(db, 2, "approved", "lso-01").returncode == 0
    tamper(db, "DROP TRIGGER pulses_no_update",
           "UPDATE pulses SET fluence_j_cm2 = 0.5 WHERE id = (SELECT min(id) + 3 FROM pulses"
           " WHERE session_id = 1)")
    shown = cli("sessions", "show", "1", "--db", str(db)).stdout
    assert "INVALID approved Dr Jane Roe" in shown and "pulses row" in shown
    assert "VALID   approved" in cli("sessions", "show", "2", "--db", str(db)).stdout
    listed = cli("sessions", "list", "--db", str(db)).stdout
    assert "signed approved:lso-01(INVALID)" in listed and "signed approved:lso-01\n" in listed
    rows = json.loads(cli("report", "signoffs", "--format", "json", "--db", str(db)).stdout)["rows"]
    assert [(r["session"], r["status"]) for r in rows] == [(1, "INVALID"), (2, "VALID")]
    energy = json.loads(cli("report", "energy", "--format", "json", "--db", str(db)).stdout)
    assert energy["rows"][0]["signatures"] == "approved:lso-01(INVALID)"
    out = tmp_path / "s1.html"
    cli("export", "--format", "html", "--session", "1", "--out", str(out), "--db", str(db))
    assert '<span class="flag">INVALID</span> <b>approved</b> by Dr Jane Roe' in out.read_text()
    assert "DOES NOT MATCH ITS SEAL" in out.read_text()
    unsigned = json.loads(cli("report", "signoffs", "--unsigned", "--format", "json",
                              "--db", str(db)).stdout)["rows"]
    assert [r["session"] for r in unsigned] == [1]


def test_session_changed_after_signing_invalidates_the_signature(db):
    assert signoff(db, 1, "reviewed", "eng-01").returncode == 0
    tamper(db, "DROP TRIGGER sessions_fixed_details",
           "UPDATE sessions SET client_ref = 'C-9' WHERE id = 1")
    with Store(db, readonly=True) as store:
        (sig,) = signatures(store.conn, [1])[1]
    assert not sig.valid and "client_ref" in sig.reason


def test_rows_added_and_resealed_after_signing_invalidate_the_signature(db):
    assert signoff(db, 1, "approved", "lso-01").returncode == 0
    with Store(db) as store:
        with store.conn:
            head = chain.insert(store.conn, "events", [(1, 0.0, "note", "info", None,
                                                        "added after", None, 1, None)],
                                ("session_id", "received_unix_s", "kind", "severity", "code",
                                 "message", "missing_pulses", "count", "raw"), session_id=1)
        chain.write_anchor(store.path, head)
        store.recount(1)  # sealed again
        (sig,) = signatures(store.conn, [1])[1]
    assert not sig.valid and "sealed again" in sig.reason
    assert verify_database(db).ok  # nothing was tampered with: the change is on record


def test_nobody_signs_a_session_they_operated(db):
    before = counts(db)
    assert_clean_error(signoff(db, 1, "reviewed", "tech-01"), "operated session 1",
                       "nothing was written")
    assert counts(db) == before
    assert signoff(db, 2, "reviewed", "tech-01").returncode == 0  # someone else's: fine


@pytest.mark.parametrize("args,passphrase,needle", [
    (["99", "--meaning", "approved", "--user", "lso-01"], None, "no session 99"),
    (["1", "--meaning", "approved", "--user", "lso-01"], "wrong passphrase!", "wrong passphrase"),
    (["1", "--meaning", "approved", "--user", "nobody"], "whatever it is", "unknown user"),
    (["2", "--meaning", "approved", "--user", "tech-01"], None, "needs the role officer"),
])
def test_bad_signoffs_are_refused_and_nothing_written(db, args, passphrase, needle):
    before = counts(db)
    user_id = args[args.index("--user") + 1]
    result = cli("signoff", *args, "--db", str(db),
                 passphrase=passphrase if passphrase else PASSPHRASES[user_id])
    assert_clean_error(result, needle)
    assert counts(db) == before


def test_signing_twice_or_a_recording_session_is_refused(db):
    assert signoff(db, 1, "approved", "lso-01").returncode == 0
    assert_clean_error(signoff(db, 1, "approved", "lso-01"), "already signed")
    with Store(db) as store:
        live = store.create_session(device_id=None, profile_id="ps755-ref", port="loop://",
                                    operator_id="tech-02", client_ref="C-3", area=None,
                                    skin_type=None, eyewear_checked=True, checklist_json=None)
    assert_clean_error(signoff(db, live, "approved", "lso-01"), "still recording")


def test_tampered_session_cannot_be_signed(db):
    tamper(db, "DROP TRIGGER pulses_no_delete",
           "DELETE FROM pulses WHERE id = (SELECT min(id) + 2 FROM pulses WHERE session_id = 2)")
    before = counts(db)
    assert_clean_error(signoff(db, 2, "approved", "lso-01"), "does not match its seal")
    assert counts(db) == before


def test_correction_is_a_new_row_shown_with_who_why_and_used_by_reports(db):
    result = cli("correct", "1", "--field", "area", "--value", "right cheek", "--reason",
                 "the technician picked the wrong side", "--user", "tech-01", "--db", str(db),
                 passphrase=PASSPHRASES["tech-01"])
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT area FROM sessions WHERE id = 1").fetchone()[0] == "left cheek"
        row = conn.execute("SELECT table_name, row_id, column_name, old_value, new_value, reason,"
                           " user_id FROM corrections").fetchone()
    assert row == ("sessions", 1, "area", "left cheek", "right cheek",
                   "the technician picked the wrong side", "tech-01")
    shown = cli("sessions", "show", "1", "--db", str(db)).stdout
    assert "area 'left cheek' -> 'right cheek' by tech-01" in shown
    by_client = json.loads(cli("report", "energy", "--by", "client", "--format", "json",
                               "--db", str(db)).stdout)["rows"]
    assert ("C-2001", "right cheek") in {(r["client"], r["area"]) for r in by_client}
    assert verify_database(db).ok


@pytest.mark.parametrize("args,needle", [
    (["1", "--field", "client", "--value", "Jane Doe", "--reason", "x"], "pseudonym"),
    (["1", "--field", "skin-type", "--value", "IX", "--reason", "x"], "Fitzpatrick"),
    (["1", "--field", "area", "--value", "left cheek", "--reason", "x"], "already"),
    (["1", "--field", "area", "--value", "nose", "--reason", "  "], "reason"),
    (["42", "--field", "area", "--value", "nose", "--reason", "x"], "no session 42"),
])
def test_bad_corrections_are_refused_and_nothing_written(db, args, needle):
    before = counts(db)
    assert_clean_error(cli("correct", *args, "--user", "lso-01", "--db", str(db),
                           passphrase=PASSPHRASES["lso-01"]), needle)
    assert counts(db) == before


def test_add_user_api_refuses_unknown_role(tmp_path):
    with Store(tmp_path / "x.db") as store, pytest.raises(Exception, match="role"):
        add_user(store, "x-01", "X", "janitor", "long enough pass")
