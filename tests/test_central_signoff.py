"""Officers signing sessions off on the central server, against a real PostgreSQL.

A simulated console records two sessions (tech-01's and tech-02's), its own officer approves
the first on the console, and the file ships to a fresh database; the server's own users
(lso-02, an officer, and tech-01) sign there through an officer login.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pgserver
import pytest

from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.storage import chain
from laserlog.storage.store import Store

from conftest import wait_until
from reviewkit import PASSPHRASES, ROLES, assert_clean_error, cli, record, signer, user

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install "
                              "'laserlog[central]')")

_names = itertools.count()


@pytest.fixture(scope="module")
def server():
    """One PostgreSQL server for the module, removed afterwards (as in test_sync.py)."""
    from test_sync import _install_server

    _install_server()
    if pgserver.find_bindir() is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl) and they cannot be installed"
        print(f"SKIP test_central_signoff: {reason}", file=sys.stderr)
        pytest.skip(reason)
    srv = pgserver.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A console file: session 1 by tech-01 (approved there by lso-01), session 2 by tech-02."""
    from laserlog.config.profile import open_profile
    from laserlog.review.signoff import sign
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("central-signoff")
    db = folder / "console.db"
    with Simulator(open_profile("ps755-ref"), folder / "sim", seed=21, rate_hz=60) as sim, \
            Store(db) as store:
        record(store, sim, SessionInfo("tech-01", "C-1", "left cheek", eyewear_checked=True),
               pulses=25)
        record(store, sim, SessionInfo("tech-02", "C-2", "forehead", eyewear_checked=True),
               pulses=20)
        user(store, "lso-01")
        sign(store, 1, signer(store, "lso-01"), "approved")
    return db


@dataclass
class Central:
    """A fresh server database holding one synced console, and the logins that use it."""

    admin: str
    officer: str
    console: str
    officer_login: str
    db: Path


def _copy(db: Path, folder: Path) -> Path:
    target = folder / f"console-{next(_names)}.db"
    shutil.copy(db, target)
    shutil.copy(chain.anchor_path(db), chain.anchor_path(target))
    return target


def _add_users(url: str, *user_ids: str) -> None:
    from laserlog.central.signing import add_user

    for user_id in user_ids:
        add_user(url, user_id, f"Name of {user_id}", ROLES[user_id.split("-")[0]],
                 PASSPHRASES[user_id])


@pytest.fixture
def central(server, pristine, tmp_path) -> Central:
    from laserlog.central.sync import sync

    suffix = f"{next(_names)}_{os.getpid()}"
    admin = server.create_database(f"laserlog_sign_{suffix}")
    db = _copy(pristine, tmp_path)
    sync(db, admin, name="north-1", site="north")  # the owner creates the schema and roles
    _add_users(admin, "lso-02", "tech-01")
    with psycopg.connect(admin, autocommit=True) as pg:
        pg.execute(f"CREATE ROLE officer_{suffix} LOGIN PASSWORD 'officer-pass'"
                   " IN ROLE laserlog_officer")
        pg.execute(f"CREATE ROLE console_{suffix} LOGIN PASSWORD 'console-pass'"
                   " IN ROLE laserlog_console")
    database = admin.rsplit("/", 1)[1]
    return Central(admin, server.url(database, f"officer_{suffix}", "officer-pass"),
                   server.url(database, f"console_{suffix}", "console-pass"),
                   f"officer_{suffix}", db)


def _signoff(url: str, session: int, meaning: str, user_id: str, *extra: str,
             passphrase: str | None = None):
    return cli("signoff", str(session), "--meaning", meaning, "--user", user_id, "--db", url,
               *extra, passphrase=PASSPHRASES.get(user_id, "") if passphrase is None
               else passphrase)


def _sign(c: Central, session: int = 2, user_id: str = "lso-02", meaning: str = "approved"):
    from laserlog.central.signing import sign

    signature, _ = sign(c.officer, "north-1", session, user_id, meaning,
                        lambda: PASSPHRASES[user_id])
    return signature


def _central_rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as pg:
        return pg.execute("SELECT id, session_id, user_id, meaning, signature, db_login"
                          " FROM laserlog.central_signoffs ORDER BY id").fetchall()


def _rows(url: str, *args: str) -> list[dict]:
    result = cli("report", "signoffs", *args, "--format", "json", "--db", url)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)["rows"]


def _report(url: str) -> list[tuple]:
    return [(r.get("console"), r["session"], r["meaning"], r["user"], r["status"], r["reason"])
            for r in _rows(url)]


def _unsigned(url: str) -> list[tuple]:
    return [(r["console"], r["session"], r["signatures"]) for r in _rows(url, "--unsigned")]


# -- signing ---------------------------------------------------------------------------------
def test_officer_signs_on_the_server_and_the_report_shows_it_beside_the_consoles_own(
        central, tmp_path):
    done = _signoff(central.officer, 2, "approved", "lso-02", "--console", "north-1")
    assert done.returncode == 0, done.stderr
    assert "session 2 of console north-1 approved by Name of lso-02 (officer)" in done.stdout
    assert "on the central server, bound to seal link" in done.stdout
    ((_, session, user_id, meaning, _, login),) = _central_rows(central.admin)
    assert (session, user_id, meaning, login) == (2, "lso-02", "approved", central.officer_login)
    assert _report(central.officer) == [
        ("north-1", 1, "approved", "lso-01", "VALID", ""),
        ("north-1", 2, "approved", "lso-02", "VALID", "")]
    assert _unsigned(central.officer) == []
    out = tmp_path / "s2.json"
    exported = cli("export", "--format", "json", "--session", "2", "--out", str(out), "--db",
                   central.officer)
    assert exported.returncode == 0, exported.stderr
    (session,) = json.loads(out.read_text())["sessions"]
    assert [(g["user_id"], g["status"], g.get("signed_on")) for g in session["signatures"]] == [
        ("lso-02", "VALID", "server")]
    # The console's file knows nothing of it.
    assert [r[1:] for r in _report(str(central.db))] == [(1, "approved", "lso-01", "VALID", "")]


def test_the_same_meaning_twice_is_refused_and_another_meaning_is_not(central):
    _sign(central)
    again = _signoff(central.officer, 2, "approved", "lso-02")  # one console: --console optional
    assert_clean_error(again, "lso-02 already signed session 2 as approved")
    assert len(_central_rows(central.admin)) == 1
    assert _signoff(central.officer, 2, "reviewed", "lso-02").returncode == 0
    assert [r[3] for r in _central_rows(central.admin)] == ["approved", "reviewed"]


def test_nobody_signs_their_own_session_on_the_server(central):
    own = _signoff(central.officer, 1, "reviewed", "tech-01")
    assert_clean_error(own, "user tech-01 operated session 1", "nothing was written")
    role = _signoff(central.officer, 2, "approved", "tech-01")
    assert_clean_error(role, "'approved' needs the role officer")
    assert _central_rows(central.admin) == []


def test_wrong_passphrase_and_console_only_users_are_refused(central):
    wrong = _signoff(central.officer, 2, "approved", "lso-02", passphrase="not the passphrase")
    assert_clean_error(wrong, "wrong passphrase for user lso-02", "nothing was written")
    assert "not the passphrase" not in wrong.stderr
    # lso-01 is an officer on the console's file, not on the server.
    shipped = _signoff(central.officer, 2, "approved", "lso-01")
    assert_clean_error(shipped, "unknown user 'lso-01'", "users add")
    assert _central_rows(central.admin) == []


def test_a_session_still_recording_on_the_server_cannot_be_signed(server, tmp_path):
    from laserlog.central.signing import sign
    from laserlog.central.sync import sync
    from laserlog.config.profile import open_profile
    from laserlog.errors import LaserlogError
    from laserlog.sim.engine import Simulator

    url = server.create_database(f"laserlog_sign_live_{os.getpid()}")
    db = tmp_path / "live.db"
    with Simulator(open_profile("ps755-ref"), tmp_path / "sim", seed=22, rate_hz=60) as sim, \
            Store(db) as store:
        recorder = Recorder(store, sim.profile, str(sim.path))
        recorder.start(SessionInfo("tech-01", "C-5", "chin", eyewear_checked=True))
        sim.console.firing = True

        def pulses() -> bool:
            recorder.step(0.02)
            return recorder.totals.pulses >= 10

        wait_until(pulses, 30, "10 pulses")
        sync(db, url, name="live")
        _add_users(url, "lso-02")
        with pytest.raises(LaserlogError, match="session 1 is still recording"):
            sign(url, None, 1, "lso-02", "approved", lambda: PASSPHRASES["lso-02"])
        with sim._lock:
            sim.console.firing = False
        recorder.end("test done")
    sync(db, url)
    signed = sign(url, None, 1, "lso-02", "approved", lambda: PASSPHRASES["lso-02"])[0]
    assert signed.valid and signed.signed_on == "server"
    assert [r[1:4] for r in _central_rows(url)] == [(1, "lso-02", "approved")]


# -- roles: officers append, consoles cannot forge, nobody changes ----------------------------
def test_console_login_cannot_sign_or_forge_a_central_signoff(central):
    refused = _signoff(central.console, 2, "approved", "lso-02")
    assert_clean_error(refused, "refused to record the sign-off", "laserlog_officer")
    with psycopg.connect(central.console) as pg, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute("INSERT INTO laserlog.central_signoffs (console_id, session_id, user_id,"
                   " printed_name, role, meaning, signed_utc, chain_id, chain_hash, signature)"
                   " VALUES (1, 2, 'lso-02', 'Forged', 'officer', 'approved', 'now', 1, 'h',"
                   " 's')")
    with psycopg.connect(central.console) as pg, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute("SELECT key_hex FROM laserlog.central_users")
    assert _central_rows(central.admin) == []


def test_central_signoffs_are_append_only_for_every_login(central):
    _sign(central)
    before = _central_rows(central.admin)
    for statement in ("UPDATE laserlog.central_signoffs SET meaning = 'reviewed'",
                      "DELETE FROM laserlog.central_signoffs",
                      "UPDATE laserlog.central_users SET role = 'officer'"):
        with psycopg.connect(central.officer) as pg, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            pg.execute(statement)
    for statement in ("UPDATE laserlog.central_signoffs SET printed_name = 'Someone else'",
                      "DELETE FROM laserlog.central_signoffs",
                      "TRUNCATE laserlog.central_signoffs",
                      "DELETE FROM laserlog.central_users"):
        with psycopg.connect(central.admin) as pg, \
                pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            pg.execute(statement)
    # The login is the server's word, not the client's.
    with psycopg.connect(central.officer) as pg:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            pg.execute("INSERT INTO laserlog.central_signoffs (console_id, session_id, user_id,"
                       " printed_name, role, meaning, signed_utc, chain_id, chain_hash,"
                       " signature, db_login) VALUES (1, 2, 'x', 'x', 'officer', 'approved',"
                       " 'now', 1, 'h', 's', 'someone_else')")
    assert _central_rows(central.admin) == before


# -- validity against the server's rows ----------------------------------------------------
@pytest.mark.parametrize("tamper,reason", [
    ("UPDATE laserlog.pulses SET energy_j = energy_j * 2 WHERE session_id = 2 AND id ="
     " (SELECT min(id) FROM laserlog.pulses WHERE session_id = 2)",
     "the session's data changed: pulses row"),
    ("UPDATE laserlog.sessions SET client_ref = 'C-9' WHERE id = 2",
     "the session's data changed: changed after its seal"),
    ("ALTER TABLE laserlog.central_signoffs DISABLE TRIGGER USER;"
     " UPDATE laserlog.central_signoffs SET printed_name = 'Someone else'",
     "the signature does not hold"),
])
def test_a_central_signoff_is_invalid_once_the_servers_rows_change(central, tamper, reason):
    _sign(central)
    assert [r[4] for r in _report(central.officer)] == ["VALID", "VALID"]
    with psycopg.connect(central.admin) as pg:  # the superuser, behind laserlog's back
        for statement in tamper.split("; "):
            pg.execute(statement)
    rows = _report(central.officer)
    assert rows[0] == ("north-1", 1, "approved", "lso-01", "VALID", "")
    assert rows[1][:5] == ("north-1", 2, "approved", "lso-02", "INVALID")
    assert rows[1][5].startswith(reason), rows[1][5]
    assert _unsigned(central.officer) == [("north-1", 2, "approved:lso-02(INVALID)")]


def test_central_signoffs_survive_a_further_sync(central, tmp_path):
    from laserlog.central.sync import sync
    from laserlog.config.profile import open_profile
    from laserlog.review.signoff import sign
    from laserlog.review.users import unlock
    from laserlog.sim.engine import Simulator

    _sign(central)
    before = _central_rows(central.admin)
    with Simulator(open_profile("ps755-ref"), tmp_path / "sim", seed=23, rate_hz=60) as sim, \
            Store(central.db) as store:
        record(store, sim, SessionInfo("tech-02", "C-3", "chin", eyewear_checked=True),
               pulses=15)
        sign(store, 2, unlock(store, "lso-01", PASSPHRASES["lso-01"]), "reviewed")
    shipped = sync(central.db, central.console)  # as the console's own login
    assert shipped.rows["sessions"] >= 1 and shipped.rows["signoffs"] == 1
    assert _central_rows(central.admin) == before
    assert _report(central.officer) == [
        ("north-1", 1, "approved", "lso-01", "VALID", ""),
        ("north-1", 2, "reviewed", "lso-01", "VALID", ""),
        ("north-1", 2, "approved", "lso-02", "VALID", "")]
    verified = cli("verify", "--db", central.officer)
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- users on the server, schema versions, bad input ------------------------------------------
def test_users_on_the_server_are_added_by_the_owner_and_listed_for_officers(central):
    added = cli("users", "add", "lso-03", "--name", "Dr  Ann Lee", "--role", "officer", "--db",
                central.admin, passphrase="a long passphrase")
    assert added.returncode == 0, added.stderr
    listed = cli("users", "list", "--json", "--db", central.officer)
    assert listed.returncode == 0, listed.stderr
    assert [(u["user_id"], u["name"]) for u in json.loads(listed.stdout)] == [
        ("lso-02", "Name of lso-02"), ("tech-01", "Name of tech-01"), ("lso-03", "Dr Ann Lee")]
    with psycopg.connect(central.admin) as pg:
        stored = pg.execute("SELECT kdf, key_hex FROM laserlog.central_users WHERE user_id ="
                            " 'lso-03'").fetchone()
    assert stored[0].startswith("scrypt ") and "long passphrase" not in stored[1]
    assert_clean_error(cli("users", "add", "lso-03", "--name", "X", "--role", "officer", "--db",
                           central.admin, passphrase="a long passphrase"), "already exists")
    assert_clean_error(cli("users", "add", "lso-04", "--name", "X", "--role", "officer", "--db",
                           central.officer, passphrase="a long passphrase"),
                       "refused to add a user", "database's owner")
    assert_clean_error(cli("users", "add", "lso-05", "--name", "X", "--role", "officer", "--db",
                           central.admin, passphrase="short"), "too short")
    assert _signoff(central.officer, 2, "approved", "lso-03",
                    passphrase="a long passphrase").returncode == 0


def test_an_older_server_migrates_and_a_newer_one_is_refused(server, pristine, tmp_path):
    from laserlog.central import pgschema

    url = server.create_database(f"laserlog_sign_old_{os.getpid()}")
    with psycopg.connect(url) as pg:  # what the first release of the central schema made
        for statement in pgschema.MIGRATIONS[0]:
            pg.execute(statement)
        pg.execute("INSERT INTO laserlog.laserlog_meta VALUES ('server_uuid', 'old'),"
                   " ('schema_version', '1')")
    assert cli("sync", "--db", str(_copy(pristine, tmp_path)), "--to", url).returncode == 0
    with psycopg.connect(url) as pg:
        assert pg.execute("SELECT value FROM laserlog.laserlog_meta WHERE key ="
                          " 'schema_version'").fetchone()[0] == str(pgschema.SCHEMA_VERSION)
        assert pg.execute("SELECT to_regclass('laserlog.central_signoffs')").fetchone()[0]
    _add_users(url, "lso-02")
    login = f"officer_old_{next(_names)}_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f"CREATE ROLE {login} LOGIN PASSWORD 'officer-pass' IN ROLE laserlog_officer")
    as_officer = server.url(url.rsplit("/", 1)[1], login, "officer-pass")
    signed = _signoff(as_officer, 2, "approved", "lso-02")
    assert signed.returncode == 0, signed.stderr
    with psycopg.connect(url) as pg:
        pg.execute("UPDATE laserlog.laserlog_meta SET value = '99' WHERE key = 'schema_version'")
    assert_clean_error(_signoff(url, 2, "reviewed", "lso-02"),
                       "central schema 99, newer than this laserlog")
    assert len(_central_rows(url)) == 1


def test_bad_input_says_what_where_and_what_was_expected(central, tmp_path):
    assert_clean_error(_signoff(central.officer, 99, "approved", "lso-02"),
                       "no session 99 of console north-1")
    assert_clean_error(_signoff(central.officer, 2, "approved", "lso-02", "--console",
                                "nowhere"), "no console named 'nowhere'", "north-1")
    assert_clean_error(_signoff(str(central.db), 2, "approved", "lso-01", "--console",
                                "north-1"), "--console picks a console on a central server")
    assert_clean_error(_signoff(central.officer.replace("officer-pass", "wrong"), 2, "approved",
                                "lso-02"), "refused the login")
    assert _central_rows(central.admin) == []


def test_the_server_witnesses_a_chain_rebuilt_with_the_installation_key(central):
    """Someone holding the file and the installation key rebuilds the chain so that every
    link recomputes and every checkpoint holds: only the server's copy shows it."""
    from test_forgery import DROP_GUARDS, _rebuild

    from laserlog.storage import signing
    from laserlog.storage.verify import verify_database

    from reviewkit import tamper

    assert cli("verify", "--witness", central.officer, "--db", str(central.db)).returncode == 0
    key, _, _ = signing.installation_key(create=False)
    tamper(central.db, *DROP_GUARDS, "UPDATE pulses SET energy_j = energy_j / 2",
           "UPDATE sessions SET total_energy_j = total_energy_j / 2")
    _rebuild(central.db, resign_with=key)
    assert not any(f.kind == "checkpoint" for f in verify_database(central.db).findings)
    witnessed = cli("verify", "--witness", central.officer, "--db", str(central.db))
    assert witnessed.returncode == 1
    assert "witness: link" in witnessed.stdout and "the chain was rebuilt" in witnessed.stdout
    # The server knows which installation key this console signs with.
    with psycopg.connect(central.admin) as pg:
        keys = pg.execute("SELECT installation_keys FROM laserlog.consoles").fetchone()[0]
    assert keys == signing.public_hex(key)
