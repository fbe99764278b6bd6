"""Forgeries by someone who can edit the database file but holds no officer's passphrase and
no installation key: each must show as INVALID, UNTRUSTED or as a `verify` finding, and a
value no laserlog writes is one message, never a traceback."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from laserlog.recording.recorder import SessionInfo
from laserlog.review.signoff import KEYED, signatures, signed_message
from laserlog.storage import chain, signing
from laserlog.storage.store import Store
from laserlog.storage.verify import verify_database

from reviewkit import PASSPHRASES, assert_clean_error, cli, record, signer, tamper, user

DROP_GUARDS = [f"DROP TRIGGER IF EXISTS {t}_no_{w}" for t in ("pulses", "chain", "signoffs",
               "users", "user_changes", "sessions") for w in ("update", "delete", "replace")]
DROP_GUARDS += ["DROP TRIGGER IF EXISTS sessions_fixed_details"]


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """Two ended sessions by tech-01 and tech-02; session 1 approved by lso-01."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("forgery")
    db = folder / "laserlog.db"
    with Simulator(open_profile("ps755-ref"), folder / "console", seed=5, rate_hz=60) as sim, \
            Store(db) as store:
        record(store, sim, SessionInfo("tech-01", "C-1042", "left cheek", eyewear_checked=True),
               pulses=40)
        record(store, sim, SessionInfo("tech-02", "C-1042", "left cheek", eyewear_checked=True),
               pulses=20)
        for user_id in ("lso-01", "lso-02", "tech-01", "tech-02"):
            user(store, user_id)
        from laserlog.review.signoff import sign

        sign(store, 1, signer(store, "lso-01"), "approved")
    return db


@pytest.fixture
def db(signed, tmp_path):
    target = tmp_path / "laserlog.db"
    shutil.copy(signed, target)
    shutil.copy(chain.anchor_path(signed), chain.anchor_path(target))
    return target


def _status(db: Path, session_id: int) -> list[tuple[str, str, str]]:
    with Store(db, readonly=True) as store:
        return [(s.user_id, s.status, s.reason)
                for s in signatures(store.conn, [session_id]).get(session_id, [])]


def _rebuild(db: Path, *, resign_with: object = None) -> None:
    """Recompute every link, seal snapshot and the anchor after an edit, as a 56-line script
    with the file alone could; checkpoints are kept as they are, or re-signed with a key of
    the forger's own (`resign_with`)."""
    conn = sqlite3.connect(db)
    genesis = conn.execute("SELECT ranges FROM chain WHERE id = 0").fetchone()[0]
    prev = chain.genesis_hash(genesis)
    links = conn.execute("SELECT id, session_id, kind, committed_unix_s, ranges, snapshot"
                         " FROM chain WHERE id > 0 ORDER BY id").fetchall()
    for link_id, session_id, kind, ts, ranges, snapshot in links:
        if kind == "seal":
            snapshot = chain.snapshot_text(conn, session_id)
        elif kind == "checkpoint" and resign_with is not None:
            key = resign_with
            snapshot = json.dumps({"link": link_id - 1, "hash": prev,
                                   "key": signing.public_hex(key),  # type: ignore[arg-type]
                                   "signature": signing.sign(  # type: ignore[arg-type]
                                       key, chain.checkpoint_message(link_id - 1, prev))},
                                  sort_keys=True)
        rows = tuple(conn.execute(chain._SELECT[t], (a, b)).fetchall()
                     for t, a, b in chain.parse_ranges(ranges))
        digest = chain.link_hash(prev, link_id, session_id, kind, ts, ranges, snapshot, rows)
        crcs = chain.row_crcs([r for rs in rows for r in rs]).tobytes() if rows else None
        conn.execute("UPDATE chain SET hash = ?, snapshot = ?, row_crcs = ? WHERE id = ?",
                     (digest, snapshot, crcs, link_id))
        prev = digest
    conn.commit()
    head = conn.execute("SELECT max(id) FROM chain").fetchone()[0]
    conn.close()
    anchor = chain.anchor_path(db)
    data = json.loads(anchor.read_text())
    data.update(link=head, hash=prev)
    anchor.write_text(json.dumps(data))


def test_a_rebuilt_chain_fails_at_the_first_checkpoint_after_the_change(db):
    assert verify_database(db).ok
    tamper(db, *DROP_GUARDS, "UPDATE pulses SET energy_j = energy_j / 2",
           "UPDATE sessions SET total_energy_j = total_energy_j / 2")
    _rebuild(db)
    report = verify_database(db)
    assert not report.ok
    first = next(f for f in report.findings if f.kind == "checkpoint")
    assert "rebuilt without the installation key" in first.message
    status = _status(db, 1)
    assert status[0][1] == "INVALID"
    result = cli("verify", "--db", str(db))
    assert result.returncode == 1 and "checkpoint" in result.stdout


def test_a_chain_re_signed_with_another_key_is_not_this_installations(db):
    tamper(db, *DROP_GUARDS, "UPDATE pulses SET energy_j = energy_j / 2",
           "UPDATE sessions SET total_energy_j = total_energy_j / 2")
    _rebuild(db, resign_with=signing.new_key())
    report = verify_database(db)
    assert any("neither this machine's key nor one the site file trusts" in f.message
               for f in report.findings), report.findings
    assert _status(db, 1)[0][1] == "INVALID"


def test_a_signoff_row_without_the_officers_key_is_invalid(db):
    # The forger copies lso-01's approval of session 1 onto session 2 and writes a
    # fresh-looking signature for lso-02, each with a chain link of its own.
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT user_id, printed_name, role, meaning, signed_utc, signature"
                           " FROM signoffs WHERE session_id = 1").fetchone()
        seal = conn.execute("SELECT id, hash FROM chain WHERE session_id = 2 AND kind = 'seal'"
                            " ORDER BY id DESC LIMIT 1").fetchone()
    forger = signing.new_key()
    totals = (20, 0.0)
    fake = KEYED + signing.sign(forger, signed_message(
        "x", seal[0], seal[1], *totals, "lso-02", "Name of lso-02", "officer", "approved", "now"))
    writer = chain.LogConnection(db)
    with writer:
        chain.insert(writer, "signoffs", [(2, *row[:5], seal[0], seal[1], row[5])],
                     ("session_id", "user_id", "printed_name", "role", "meaning", "signed_utc",
                      "chain_id", "chain_hash", "signature"), session_id=2, kind="signoff")
        chain.insert(writer, "signoffs", [(2, "lso-02", "Name of lso-02", "officer", "approved",
                                           "now", seal[0], seal[1], fake)],
                     ("session_id", "user_id", "printed_name", "role", "meaning", "signed_utc",
                      "chain_id", "chain_hash", "signature"), session_id=2, kind="signoff")
    writer.close()
    status = _status(db, 2)
    assert [s[1] for s in status] == ["INVALID", "INVALID"]
    assert "does not hold under lso-01's key" in status[0][2]
    assert "does not hold under lso-02's key" in status[1][2]
    report = verify_database(db)
    assert any("not covered by a signed checkpoint" in f.message for f in report.findings)
    result = cli("verify", "--db", str(db))
    assert result.returncode == 1
    assert "signature: session 2 approved by lso-02" in result.stdout, result.stdout
    shown = cli("sessions", "show", "2", "--db", str(db))
    assert "INVALID" in shown.stdout and "VALID  " not in shown.stdout


def test_nobody_adds_a_user_without_an_administrators_or_officers_passphrase(db):
    result = cli("users", "add", "lso-99", "--name", "Self Made", "--role", "officer",
                 "--db", str(db), passphrase="my own passphrase")
    assert_clean_error(result, "needs an administrator or officer")
    result = cli("users", "add", "lso-99", "--name", "Self Made", "--role", "officer",
                 "--as", "tech-01", "--db", str(db), passphrase="my own passphrase",
                 env={"LASERLOG_AS_PASSPHRASE": PASSPHRASES["tech-01"]})
    assert_clean_error(result, "needs an administrator or an officer")
    result = cli("users", "add", "LSO-01", "--name", "Twin", "--role", "officer",
                 "--as", "lso-01", "--db", str(db), passphrase="my own passphrase",
                 env={"LASERLOG_AS_PASSPHRASE": PASSPHRASES["lso-01"]})
    assert_clean_error(result, "already exists")


def test_a_user_inserted_behind_laserlogs_back_authorises_nothing(db):
    # The technician writes an officer of their own into user_changes, signed by their own
    # key and claiming lso-01 authorised it, then signs their own session with it.
    from laserlog.review.users import CHANGE_COLUMNS, change_message

    key = signing.new_key()
    sealed = signing.seal_key(key, "my own passphrase")
    values = {"user_id": "lso-77", "change": "created", "name": "Fake Officer",
              "role": "officer", "administrator": 0, "public_key_hex": signing.public_hex(key),
              "sealed_key": sealed.blob, "by_user_id": "lso-01", "changed_utc": "now"}
    values["signature"] = signing.sign(key, change_message(values))
    writer = chain.LogConnection(db)
    with writer:
        chain.insert(writer, "users", [("lso-77", "Fake Officer", "officer", sealed.kdf,
                                        sealed.salt_hex, sealed.check_hex, "now")],
                     ("user_id", "name", "role", "kdf", "salt_hex", "key_hex", "created_utc"),
                     kind="user")
        chain.insert(writer, "user_changes", [tuple(values[c] for c in CHANGE_COLUMNS)],
                     CHANGE_COLUMNS, kind="user_change")
    writer.close()
    listed = cli("users", "list", "--db", str(db))
    assert "lso-77" in listed.stdout and "UNTRUSTED" in listed.stdout
    result = cli("signoff", "1", "--meaning", "approved", "--user", "lso-77", "--db", str(db),
                 passphrase="my own passphrase")
    assert_clean_error(result, "cannot sign")


def test_operator_ids_are_normalised_and_nobody_signs_their_own_session(db, tmp_path):
    from laserlog.errors import SessionError

    assert SessionInfo("  TECH-07 ", "C-1").validated().operator_id == "tech-07"
    with pytest.raises(SessionError, match="not allowed"):
        SessionInfo("tech-07.", "C-1").validated()
    # Sessions recorded before IDs were normalised keep their text; they still compare.
    tamper(db, "DROP TRIGGER sessions_fixed_details",
           "UPDATE sessions SET operator_id = 'LSO-01.' WHERE id = 2")
    with Store(db) as store:
        from laserlog.review.signoff import SignoffError, check_signable

        with pytest.raises(SignoffError, match="nobody signs a session they operated"):
            check_signable(store.conn, 2, signer(store, "lso-01").user, "approved", "db")


def test_revoked_users_sign_nothing_after_and_keep_what_they_signed_before(db):
    result = cli("users", "revoke", "lso-01", "--as", "lso-02", "--db", str(db),
                 env={"LASERLOG_AS_PASSPHRASE": PASSPHRASES["lso-02"]})
    assert result.returncode == 0, result.stderr
    assert _status(db, 1)[0][1] == "VALID"  # signed before the revocation
    refused = cli("signoff", "2", "--meaning", "approved", "--user", "lso-01", "--db", str(db),
                  passphrase=PASSPHRASES["lso-01"])
    assert_clean_error(refused, "revoked")
    assert "revoked" in cli("users", "list", "--db", str(db)).stdout


def test_roles_change_by_authorisation_and_passphrases_reseal_the_same_key(db):
    result = cli("users", "role", "tech-02", "officer", "--as", "lso-02", "--db", str(db),
                 env={"LASERLOG_AS_PASSPHRASE": PASSPHRASES["lso-02"]})
    assert result.returncode == 0, result.stderr
    assert cli("signoff", "1", "--meaning", "approved", "--user", "tech-02", "--db", str(db),
               passphrase=PASSPHRASES["tech-02"]).returncode == 0
    changed = cli("users", "passphrase", "tech-02", "--db", str(db), passphrase="a new one 123",
                  env={"LASERLOG_OLD_PASSPHRASE": PASSPHRASES["tech-02"]})
    assert changed.returncode == 0, changed.stderr
    with Store(db) as store:
        from laserlog.review.users import AuthError, unlock

        with pytest.raises(AuthError, match="wrong passphrase"):
            unlock(store, "tech-02", PASSPHRASES["tech-02"])
        assert unlock(store, "tech-02", "a new one 123").user.role == "officer"
    assert [s[1] for s in _status(db, 1)] == ["VALID", "VALID"]
    assert verify_database(db).ok


def test_signoffs_from_before_keys_show_as_legacy_never_valid(db):
    tamper(db, *DROP_GUARDS, "UPDATE signoffs SET signature = 'ab' || substr(signature, 11)")
    status = _status(db, 1)
    assert status[0][1] == "LEGACY" and "legacy (unkeyed)" in status[0][2]
    assert "LEGACY  approved" in cli("sessions", "show", "1", "--db", str(db)).stdout
    report = json.loads(cli("report", "signoffs", "--format", "json", "--db", str(db)).stdout)
    assert [r["status"] for r in report["rows"]] == ["LEGACY"]
    unsigned = cli("report", "signoffs", "--unsigned", "--db", str(db)).stdout
    assert "approved:lso-01(LEGACY)" in unsigned


def _schema3_database(tmp_path: Path) -> tuple[Path, sqlite3.Connection, bytes]:
    """Return a schema-3 database (as laserlog made it before keys) with officer lso-01, whose
    passphrase check is a bare scrypt key, an open connection to it, and the salt used."""
    from laserlog.storage.schema import MIGRATIONS

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for number, script in enumerate(MIGRATIONS[:3], 1):
        conn.executescript(script + f";PRAGMA user_version = {number};")
    salt = bytes(16)
    check = hashlib.scrypt(b"officer passphrase 1", salt=salt, n=2**14, r=8, p=1,
                           maxmem=2**28, dklen=32)
    conn.execute("INSERT INTO users (user_id, name, role, kdf, salt_hex, key_hex, created_utc)"
                 " VALUES ('lso-01', 'Dr Old', 'officer', 'scrypt n=16384 r=8 p=1', ?, ?, 'then')",
                 (salt.hex(), check.hex()))
    return db, conn, salt


def test_a_database_from_before_keys_upgrades_in_place(tmp_path):
    """Schema 3: users with a bare scrypt check, a digest sign-off. After the upgrade the
    sign-off is LEGACY, verify names the unsigned prefix, and the officer gets a key the
    first time they give their passphrase, then signs VALID."""
    db, conn, salt = _schema3_database(tmp_path)
    for n in (1, 2):
        conn.execute("INSERT INTO sessions (uuid, profile_id, port, operator_id, client_ref,"
                     " started_utc, ended_utc, status) VALUES (?, 'ps755-ref', 'p', 'tech-01',"
                     " 'C-1', 'then', 'then', 'ended')", (f"uuid-{n}",))
    # As schema 3 code wrote them: the user's link, seals without checkpoints, then a
    # digest sign-off.
    with conn:
        chain.append(conn, session_id=None, kind="user", ranges=[("users", 1, 1)])
        for n in (1, 2):
            chain.seal(conn, n)
        seal = conn.execute("SELECT id, hash FROM chain WHERE session_id = 1").fetchone()
        chain.insert(conn, "signoffs", [(1, "lso-01", "Dr Old", "officer", "approved", "then",
                                         seal[0], seal[1], "ab" * 32)],
                     ("session_id", "user_id", "printed_name", "role", "meaning",
                      "signed_utc", "chain_id", "chain_hash", "signature"), session_id=1,
                     kind="signoff")
    conn.close()
    upgraded = cli("correct", "1", "--field", "area", "--value", "chin", "--reason", "typo",
                   "--user", "lso-01", "--db", str(db), passphrase="officer passphrase 1")
    assert upgraded.returncode == 0, upgraded.stderr  # a command that writes upgrades it
    assert "its officers (lso-01) are its administrators by default" in upgraded.stderr
    assert _status(db, 1)[0][1] == "LEGACY"
    with Store(db) as store:
        from laserlog.review.signoff import sign
        from laserlog.review.users import unlock

        officer = unlock(store, "lso-01", "officer passphrase 1")  # gets the key now
        assert officer.user.public_key and officer.user.default_administrator
        sign(store, 2, officer, "approved")
    assert _status(db, 2)[0][1] == "VALID"
    report = verify_database(db)
    assert any("predate signed checkpoints" in n for n in report.notes), report.notes


# -- the edges of the chain ----------------------------------------------------------------
def append_link(db: Path, kind: str, ranges: str, session_id: int | None = None,
                snapshot: str | None = None) -> int:
    """Append a link hashed as laserlog would and move the anchor to it (no key needed)."""
    conn = sqlite3.connect(db)
    prev_id, prev = conn.execute("SELECT id, hash FROM chain ORDER BY id DESC LIMIT 1").fetchone()
    rows = tuple(conn.execute(chain._SELECT[t], (a, b)).fetchall()
                 for t, a, b in chain.parse_ranges(ranges))
    link_id, now = prev_id + 1, time.time()
    digest = chain.link_hash(prev, link_id, session_id, kind, now, ranges, snapshot, rows)
    conn.execute("INSERT INTO chain (id, session_id, kind, committed_unix_s, ranges, snapshot,"
                 " hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (link_id, session_id, kind, now, ranges, snapshot, digest))
    conn.commit()
    conn.close()
    anchor = chain.anchor_path(db)
    data = json.loads(anchor.read_text())
    data.update(link=link_id, hash=digest)
    anchor.write_text(json.dumps(data))
    return link_id


def _messages(db: Path) -> str:
    return "\n".join(f.message for f in verify_database(db).findings)


def test_rows_added_to_a_sealed_session_under_a_batch_link_are_found(db):
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO pulses (session_id, seq, received_unix_s, pulse_duration_ps,"
                     " regime, energy_j, fluence_j_cm2, spot_mm, wavelength_nm) VALUES"
                     " (2, ?, 1.8e9, 650, 'ps', 3.0, 40.0, 3, 755)", [(900 + i,) for i in range(5)])
    last = conn.execute("SELECT max(id) FROM pulses").fetchone()[0]
    conn.commit()
    conn.close()
    append_link(db, "batch", f"pulses {last - 4} {last}", session_id=2)
    assert "adds rows to session 2 after it was sealed" in _messages(db)


def test_a_correction_under_a_batch_link_is_found(db):
    tamper(db, "INSERT INTO corrections (session_id, table_name, row_id, column_name, old_value,"
           " new_value, reason, user_id, corrected_utc) VALUES (1, 'sessions', 1, 'area',"
           " 'left cheek', 'right eyelid', 'typo', 'lso-01', 'now')")
    append_link(db, "batch", "corrections 1 1", session_id=1)
    assert "only pulses, events and settings come in batches" in _messages(db)


def test_rows_and_links_with_ids_below_one_are_found(db):
    tamper(db, "INSERT INTO events (id, session_id, received_unix_s, kind, severity, message)"
           " VALUES (-1, 2, 1.8e9, 'fault', 'alarm', 'forged')",
           "INSERT INTO chain (id, kind, committed_unix_s, ranges, hash)"
           " VALUES (-1, 'user', 0, 'users 1 1', 'x')")
    messages = _messages(db)
    assert "events row -1 has an id laserlog never gives" in messages
    assert "chain link -1 has an id laserlog never gives" in messages


def test_a_link_laserlog_signs_at_once_but_a_later_checkpoint_adopted_is_found(db):
    # A user row slipped in after the last checkpoint; laserlog's next write checkpoints
    # the chain, which must not make the slipped-in link look signed.
    tamper(db, "INSERT INTO users (user_id, name, role, kdf, salt_hex, key_hex, created_utc)"
           " VALUES ('mallory', 'M', 'officer', 'scrypt n=16384 r=8 p=1', '00', '00', 'now')")
    users_id = sqlite3.connect(db).execute("SELECT max(id) FROM users").fetchone()[0]
    link = append_link(db, "user", f"users {users_id} {users_id}")
    result = cli("signoff", "2", "--meaning", "approved", "--user", "lso-01", "--db", str(db),
                 passphrase=PASSPHRASES["lso-01"])
    assert result.returncode == 0, result.stderr
    assert f"link {link} (user) was not signed by a checkpoint when it was written" in (
        _messages(db))
    listed = cli("users", "list", "--db", str(db)).stdout
    assert "mallory" in listed and "UNTRUSTED" in listed.split("mallory")[1].splitlines()[0]


def test_a_second_row_for_a_user_from_before_keys_is_never_theirs(tmp_path):
    """An upgraded database: lso-01 has no key yet. A forger adds a users row 'LSO-01' with a
    passphrase check of their own; it must not give them lso-01's key."""
    db, conn, salt = _schema3_database(tmp_path)
    with conn:
        chain.append(conn, session_id=None, kind="user", ranges=[("users", 1, 1)])
    conn.close()
    from laserlog.storage.store import Store

    Store(db).close()  # the upgrade: checkpoints from here on
    mine = hashlib.scrypt(b"forger passphrase", salt=salt, n=2**14, r=8, p=1, maxmem=2**28,
                          dklen=32)
    tamper(db, "DROP TRIGGER IF EXISTS users_no_replace",
           "INSERT INTO users (id, user_id, name, role, kdf, salt_hex, key_hex, created_utc)"
           f" VALUES (-1, 'LSO-01', 'Dr Old', 'officer', 'scrypt n=16384 r=8 p=1',"
           f" '{salt.hex()}', '{mine.hex()}', 'x')",
           "INSERT INTO users (user_id, name, role, kdf, salt_hex, key_hex, created_utc)"
           f" VALUES ('Lso-01', 'Dr Old', 'officer', 'scrypt n=16384 r=8 p=1',"
           f" '{salt.hex()}', '{mine.hex()}', 'x')")
    refused = cli("users", "passphrase", "lso-01", "--db", str(db), passphrase="a new one 123",
                  env={"LASERLOG_OLD_PASSPHRASE": "forger passphrase"})
    assert refused.returncode == 2 and "wrong passphrase" in refused.stderr, refused.stderr
    ok = cli("users", "passphrase", "lso-01", "--db", str(db), passphrase="a new one 123",
             env={"LASERLOG_OLD_PASSPHRASE": "officer passphrase 1"})
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("statements", [
    ["UPDATE chain SET snapshot = '{\"link\": Infinity, \"hash\": \"x\", \"key\": \"00\","
     " \"signature\": \"00\"}' WHERE id = (SELECT max(id) FROM chain WHERE kind = 'checkpoint')"],
    ["UPDATE chain SET snapshot = '" + "[" * 100_000 + "' WHERE id ="
     " (SELECT max(id) FROM chain WHERE kind = 'checkpoint')"],
    ["UPDATE chain SET ranges = 'pulses 1' WHERE id = 2"],
    ["UPDATE chain SET hash = X'00' WHERE id = 3"],
    ["UPDATE chain SET row_crcs = 'abc' WHERE id = 3"],
    ["UPDATE sessions SET end_reason = X'00' WHERE id = 1"],
    ["UPDATE sessions SET total_energy_j = 'lots' WHERE id = 1"],
    ["UPDATE signoffs SET user_id = X'01'"],
    ["UPDATE users SET user_id = X'01' WHERE id = 1"],
    ["UPDATE user_changes SET user_id = X'01' WHERE id = 1"],
])
def test_values_laserlog_never_writes_are_one_message_never_a_traceback(db, statements):
    tamper(db, *DROP_GUARDS, *statements)
    for args in (["verify"], ["sessions", "show", "1"], ["report", "signoffs"],
                 ["users", "list"]):
        result = cli(*args, "--db", str(db))
        assert "Traceback" not in result.stderr, (args, result.stderr)
        assert result.returncode in (0, 1, 2), (args, result.returncode)
    assert cli("verify", "--db", str(db)).returncode == 1


def test_a_database_moved_to_another_pc_trusts_the_old_key_the_site_file_lists(db, tmp_path):
    """On a new PC (another installation key) the old checkpoints are not this machine's:
    verify says so and sign-offs read INVALID, until the officer lists the old key."""
    old = signing.public_hex(signing.installation_key(create=False)[0])
    elsewhere = {"LASERLOG_INSTALLATION_KEY": str(tmp_path / "new-pc" / "installation.key"),
                 "LASERLOG_SITE": str(tmp_path / "site.toml")}
    (tmp_path / "site.toml").write_text("")
    assert cli("site", "--db", str(db), env=elsewhere).returncode == 0
    # The new PC makes its own key at its first write.
    cli("users", "passphrase", "lso-02", "--db", str(db), passphrase="a new one 123",
        env={**elsewhere, "LASERLOG_OLD_PASSPHRASE": PASSPHRASES["lso-02"]})
    moved = cli("verify", "--db", str(db), env=elsewhere)
    assert moved.returncode == 1 and "neither this machine's key" in moved.stdout
    (tmp_path / "site.toml").write_text(f'[trust]\ninstallation_keys = ["{old}"]\n')
    trusted = cli("verify", "--db", str(db), env=elsewhere)
    assert trusted.returncode == 0, trusted.stdout
    shown = cli("sessions", "show", "1", "--db", str(db), env=elsewhere).stdout
    assert "VALID   approved" in shown
    (tmp_path / "site.toml").write_text('[trust]\ninstallation_keys = ["abc"]\n')
    bad = cli("verify", "--db", str(db), env=elsewhere)
    assert bad.returncode == 2 and "installation_keys" in bad.stderr


@pytest.mark.parametrize("forged_checkpoint", ["copied", "garbage"])
def test_a_checkpoint_forged_at_the_tail_is_disowned_by_laserlogs_next_one(db,
                                                                          forged_checkpoint):
    """A forged correction followed by a forged checkpoint, then an ordinary write by
    laserlog: its checkpoint must not cover the forgery in silence."""
    tamper(db, "INSERT INTO corrections (session_id, table_name, row_id, column_name, old_value,"
           " new_value, reason, user_id, corrected_utc) VALUES (1, 'sessions', 1, 'client_ref',"
           " 'C-1042', 'C-6666', 'typo', 'lso-01', 'now')")
    with sqlite3.connect(db) as conn:
        real = conn.execute("SELECT snapshot FROM chain WHERE kind = 'checkpoint'"
                            " ORDER BY id DESC LIMIT 1").fetchone()[0]
        correction = conn.execute("SELECT max(id) FROM corrections").fetchone()[0]
    link = append_link(db, "correction", f"corrections {correction} {correction}", 1)
    with sqlite3.connect(db) as conn:
        prev = conn.execute("SELECT hash FROM chain WHERE id = ?", (link,)).fetchone()[0]
    snapshot = real if forged_checkpoint == "copied" else json.dumps(
        {"link": link, "hash": prev, "key": json.loads(real)["key"], "signature": "00" * 64})
    forged = append_link(db, "checkpoint", "", snapshot=snapshot)
    changed = cli("users", "passphrase", "lso-02", "--db", str(db), passphrase="a new one 123",
                  env={"LASERLOG_OLD_PASSPHRASE": PASSPHRASES["lso-02"]})
    assert changed.returncode == 0, changed.stderr
    messages = _messages(db)
    assert f"checkpoint link {forged} is forged: laserlog found it so" in messages, messages


def _open_session(db: Path) -> int:
    """Open a third session as the recorder does, and leave it recording (a killed recorder)."""
    with Store(db) as store:
        return store.create_session(device_id=1, profile_id="ps755-ref", port="/dev/x",
                                    operator_id="tech-01", client_ref="C-2000", area="chin",
                                    skin_type="III", eyewear_checked=True, checklist_json=None)


def test_an_open_sessions_details_are_held_to_what_it_was_opened_with(db):
    session_id = _open_session(db)
    assert verify_database(db).ok
    tamper(db, "DROP TRIGGER sessions_fixed_details",
           f"UPDATE sessions SET client_ref = 'C-9999', operator_id = 'lso-02' WHERE id = "
           f"{session_id}")
    messages = _messages(db)
    assert (f"session {session_id}: its row holds other details than it was opened with"
            in messages), messages
    assert "client_ref" in messages and "operator_id" in messages


def test_a_session_laserlog_never_opened_is_found(db):
    _open_session(db)
    tamper(db, "INSERT INTO sessions (uuid, profile_id, port, operator_id, client_ref,"
           " started_utc) VALUES ('fabricated', 'ps755-ref', 'x', 'tech-01', 'C-7', 'now')")
    assert "session 4 was never opened in the chain" in _messages(db)


def test_rows_of_a_session_under_a_link_of_no_session_are_found(db):
    tamper(db, "INSERT INTO settings (session_id, received_unix_s, name, value, unit)"
           " VALUES (2, 1.8e9, 'fluence', 99.0, 'J/cm2')")
    row = sqlite3.connect(db).execute("SELECT max(id) FROM settings").fetchone()[0]
    link = append_link(db, "batch", f"settings {row} {row}", None)
    assert (f"link {link} holds settings row {row} of session 2, but belongs to session None"
            in _messages(db))


@pytest.mark.parametrize("statement", [
    "CREATE INDEX slow ON pulses ((energy_j * 2))",
    "CREATE VIEW extra AS SELECT 1",
])
def test_definitions_not_laserlogs_stop_verify_before_it_reads_them(db, statement):
    tamper(db, statement)
    report = verify_database(db)
    assert [f.kind for f in report.findings] == ["schema_changed"]
    assert any("other checks were not run" in n for n in report.notes)


def test_a_users_row_slipped_in_without_a_link_makes_nobody_else_untrusted(db):
    tamper(db, "INSERT INTO users (user_id, name, role, kdf, salt_hex, key_hex, created_utc)"
           " VALUES ('aaa-00', 'A', 'officer', 'scrypt n=16384 r=8 p=1', '00', '00', 'now')")
    listed = cli("users", "list", "--db", str(db)).stdout
    for line in listed.splitlines():
        assert ("UNTRUSTED" in line) == line.startswith("aaa-00"), listed
    assert _status(db, 1)[0][1] == "VALID"


def test_a_checkpoint_link_of_a_session_is_not_laserlogs(db):
    """A forged link followed by a copied checkpoint filed under a session: laserlog's next
    checkpoint must judge it like any other."""
    with sqlite3.connect(db) as conn:
        real = conn.execute("SELECT snapshot FROM chain WHERE kind = 'checkpoint'"
                            " ORDER BY id DESC LIMIT 1").fetchone()[0]
    forged = append_link(db, "checkpoint", "", 1, snapshot=real)
    changed = cli("users", "passphrase", "lso-02", "--db", str(db), passphrase="a new one 123",
                  env={"LASERLOG_OLD_PASSPHRASE": PASSPHRASES["lso-02"]})
    assert changed.returncode == 0, changed.stderr
    messages = _messages(db)
    assert f"link {forged} is a checkpoint of session 1" in messages
    assert f"checkpoint link {forged} is forged" in messages


def test_rows_planted_for_the_next_session_before_it_opens_are_found(db):
    tamper(db, "INSERT INTO pulses (session_id, seq, received_unix_s, pulse_duration_ps, regime,"
           " energy_j, fluence_j_cm2, spot_mm, wavelength_nm) VALUES (3, 1, 1.8e9, 650, 'ps',"
           " 3.0, 40.0, 3, 755)")
    row = sqlite3.connect(db).execute("SELECT max(id) FROM pulses").fetchone()[0]
    planted = append_link(db, "batch", f"pulses {row} {row}", 3)
    assert _open_session(db) == 3
    assert f"link {planted} writes rows of session 3 before it was opened" in _messages(db)


def test_a_view_in_a_tables_place_is_refused_before_anything_reads_it(db):
    tamper(db, "ALTER TABLE sessions RENAME TO sessions_old",
           "CREATE VIEW sessions AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1"
           " FROM r) SELECT * FROM sessions_old, r")
    for args in (["sessions", "show", "1"], ["sessions", "list"], ["report", "signoffs"]):
        result = cli(*args, "--db", str(db), timeout=20)
        assert result.returncode == 2 and "sessions is a view, not laserlog's table" in (
            result.stderr), (args, result.stderr)
    assert cli("verify", "--db", str(db), timeout=20).returncode == 1


def test_nobody_signs_a_session_sealed_with_details_it_was_not_opened_with(db):
    session_id = _open_session(db)
    tamper(db, "DROP TRIGGER sessions_fixed_details",
           f"UPDATE sessions SET client_ref = 'C-9999' WHERE id = {session_id}")
    with Store(db) as store:
        store.mark_interrupted("/dev/x")  # laserlog's next start seals what it finds
    refused = cli("signoff", str(session_id), "--meaning", "approved", "--user", "lso-01",
                  "--db", str(db), passphrase=PASSPHRASES["lso-01"])
    assert_clean_error(refused, "other details than it was opened with", "client_ref")
