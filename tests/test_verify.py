"""Tamper evidence: the hash chain, seals and anchor catch every edit, and name where."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from laserlog.recording.recorder import SessionInfo
from laserlog.storage import chain
from laserlog.storage.store import Store
from laserlog.storage.verify import verify_database

from reviewkit import cli, pre_chain_database, record, tamper

INFO = SessionInfo("tech-01", "C-1001", "left cheek", "III", eyewear_checked=True)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A database with two recorded sessions (real recorder, simulated console), untouched."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("pristine")
    db = folder / "laserlog.db"
    with Simulator(open_profile("ps755-ref"), folder / "console", seed=5, rate_hz=60) as sim, \
            Store(db) as store:
        record(store, sim, INFO, pulses=60)
        sim.inject_fault(10)  # an interlock event in the second session, cleared again
        with sim._lock:
            sim.console.clear_fault()
        record(store, sim, SessionInfo("tech-02", "C-1002", "forehead"), pulses=40)
    return db


@pytest.fixture
def db(pristine, tmp_path):
    """A private copy of the pristine database (and its anchor) to tamper with."""
    target = tmp_path / "laserlog.db"
    shutil.copy(pristine, target)
    shutil.copy(chain.anchor_path(pristine), chain.anchor_path(target))
    return target


def pulse_ids(db) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM pulses ORDER BY id")]


def first(report):
    assert not report.ok, "verify must find the tampering"
    return report.findings[0]


def test_untouched_database_verifies_with_every_row_recomputed(db):
    report = verify_database(db)
    assert report.ok, [f.message for f in report.findings]
    with sqlite3.connect(db) as conn:
        stored = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("pulses", "events", "settings", "session_kinds",
                               "session_doses"))
    assert report.rows == stored
    assert report.sessions_sealed == 2
    result = cli("verify", "--db", str(db))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK:" in result.stdout


def test_edited_field_with_triggers_dropped_is_caught_and_named(db):
    target = pulse_ids(db)[25]
    tamper(db, "DROP TRIGGER pulses_no_update",
           f"UPDATE pulses SET energy_j = energy_j * 0.5 WHERE id = {target}",
           # put the guard back, as a careful tamperer would
           "CREATE TRIGGER pulses_no_update BEFORE UPDATE ON pulses BEGIN "
           "SELECT RAISE(ABORT, 'pulses is append-only: rows cannot be changed'); END")
    finding = first(verify_database(db))
    assert (finding.kind, finding.table, finding.row_id) == ("changed_row", "pulses", target)
    result = cli("verify", "--db", str(db))
    assert result.returncode == 1
    assert f"first bad: pulses row {target}" in result.stdout


def test_deleted_middle_row_is_caught_and_named(db):
    target = pulse_ids(db)[30]
    tamper(db, "DROP TRIGGER pulses_no_delete", f"DELETE FROM pulses WHERE id = {target}")
    report = verify_database(db)
    finding = first(report)
    assert (finding.kind, finding.table, finding.row_id) == ("missing_row", "pulses", target)
    assert any(f.kind == "trigger_missing" and "pulses_no_delete" in f.message
               for f in report.findings)


def test_truncated_tail_is_caught_and_first_missing_row_named(db):
    ids = pulse_ids(db)
    tamper(db, "DROP TRIGGER pulses_no_delete", f"DELETE FROM pulses WHERE id >= {ids[-5]}")
    finding = first(verify_database(db))
    assert (finding.kind, finding.table, finding.row_id) == ("missing_row", "pulses", ids[-5])


def test_tail_removed_with_its_links_is_caught_by_the_anchor(db):
    ids = pulse_ids(db)
    with sqlite3.connect(db) as conn:
        link = conn.execute("SELECT max(id) FROM chain WHERE ranges LIKE 'pulses%'").fetchone()[0]
        first_row = int(conn.execute("SELECT ranges FROM chain WHERE id = ?",
                                     (link,)).fetchone()[0].split(",")[0].split(" ")[1])
    tamper(db, "DROP TRIGGER pulses_no_delete", "DROP TRIGGER chain_no_delete",
           "DROP TRIGGER events_no_delete", "DROP TRIGGER sessions_no_delete",
           f"DELETE FROM pulses WHERE id >= {first_row}", f"DELETE FROM chain WHERE id >= {link}",
           "DELETE FROM events WHERE id > (SELECT coalesce(max(e), 0) FROM (SELECT CAST("
           "substr(ranges, instr(ranges, 'events ') + 7) AS INTEGER) AS e FROM chain "
           "WHERE ranges LIKE '%events %'))")
    report = verify_database(db)
    kinds = {f.kind for f in report.findings}
    assert "truncated" in kinds
    truncated = [f for f in report.findings if f.kind == "truncated" and f.table == "pulses"]
    assert truncated and truncated[0].row_id == first_row
    assert first_row <= ids[-1]


def test_swapped_rows_are_caught_and_named(db):
    a, b = pulse_ids(db)[10:12]
    tamper(db, "DROP TRIGGER pulses_no_update",
           f"UPDATE pulses SET id = -1 WHERE id = {a}", f"UPDATE pulses SET id = {a} WHERE id = {b}",
           f"UPDATE pulses SET id = {b} WHERE id = -1")
    report = verify_database(db)
    named = [(f.table, f.row_id) for f in report.findings if f.kind == "changed_row"]
    assert named[0] == ("pulses", a)


def test_mismatched_anchor_is_caught(db, tmp_path):
    anchor = chain.anchor_path(db)
    data = json.loads(anchor.read_text())
    data["hash"] = "0" * 64
    anchor.write_text(json.dumps(data))
    finding = first(verify_database(db))
    assert finding.kind == "anchor" and "does not match" in finding.message
    anchor.unlink()
    finding = first(verify_database(db))
    assert finding.kind == "anchor" and "missing" in finding.message
    anchor.write_text("not json")
    assert first(verify_database(db)).kind == "anchor"


def test_row_inserted_outside_laserlog_is_not_covered(db):
    # Triggers allow INSERT: the chain is what shows a row nobody committed through laserlog.
    tamper(db, "INSERT INTO pulses (session_id, seq, received_unix_s, pulse_duration_ps, regime,"
           " energy_j) VALUES (1, 999, 0, 650, 'ps', 0.3)")
    finding = first(verify_database(db))
    assert finding.kind == "unchained_row" and finding.table == "pulses"
    assert finding.row_id == pulse_ids(db)[-1]


def test_session_details_changed_after_the_seal_are_named(db):
    tamper(db, "DROP TRIGGER sessions_fixed_details",
           "UPDATE sessions SET client_ref = 'C-9999' WHERE id = 1")
    finding = first(verify_database(db))
    assert finding.kind == "session_changed" and finding.row_id == 1
    assert "client_ref 'C-1001' -> 'C-9999'" in finding.message


def test_rewritten_link_is_caught(db):
    tamper(db, "DROP TRIGGER chain_no_update", "UPDATE chain SET committed_unix_s = 0 WHERE id = 3")
    finding = first(verify_database(db))
    assert finding.link_id == 3 and finding.kind in ("changed_link", "changed_row")


@pytest.mark.parametrize("table,statement", [
    ("pulses", "UPDATE pulses SET energy_j = 1"),
    ("events", "DELETE FROM events"),
    ("settings", "UPDATE settings SET value = 0"),
    ("chain", "DELETE FROM chain WHERE id = 2"),
    ("chain", "INSERT OR REPLACE INTO chain (id, kind, committed_unix_s, hash) VALUES (1, 'x', 0, 'y')"),
    ("devices", "UPDATE devices SET serial = 'other'"),
    ("devices", "DELETE FROM devices"),
    ("sessions", "DELETE FROM sessions WHERE id = 1"),
    ("sessions", "UPDATE sessions SET client_ref = 'C-7' WHERE id = 1"),
    ("sessions", "UPDATE sessions SET operator_id = 'someone' WHERE id = 1"),
    ("sessions", "INSERT OR REPLACE INTO sessions (id, uuid, profile_id, port, operator_id,"
                 " client_ref, started_utc) VALUES (1, 'u', 'p', 'x', 'o', 'C-1', 'now')"),
])
def test_triggers_refuse_changes_from_any_connection(db, table, statement):
    with sqlite3.connect(db) as conn, pytest.raises(sqlite3.DatabaseError, match="cannot"):
        conn.execute(statement)
    assert verify_database(db).ok


def test_triggers_guard_the_review_tables(db):
    from laserlog.review.calibration import Check, Shot
    from laserlog.review.calibration import record as record_check
    from laserlog.review.corrections import correct
    from laserlog.review.signoff import sign

    from reviewkit import signer, user

    with Store(db) as store:
        officer = user(store, "lso-01")
        sign(store, 1, signer(store, "lso-01"), "approved")
        correct(store, 1, "area", "right cheek", "typed the wrong side", officer)
        shot = Shot(1, 0.0, 0.1, 0.1, 0.0, "pass")
        record_check(store, Check(0, "ps755-ref", "PSR755", "R755-0001", "", "ophir-nova2",
                                  "PE50BF-C", "123456", "", "lso-01", "now", "now", 755.0, 0.1,
                                  0.1, 0.0, 0.0, "pass", "laserlog", 0.1, 0.2, [shot]))
    assert verify_database(db).ok
    for statement in ("UPDATE users SET key_hex = 'x'", "DELETE FROM users",
                      "INSERT OR REPLACE INTO users (user_id, name, role, kdf, salt_hex, key_hex,"
                      " created_utc) VALUES ('lso-01', 'X', 'officer', 'k', 's', 'k', 'now')",
                      "UPDATE signoffs SET meaning = 'reviewed'", "DELETE FROM signoffs",
                      "UPDATE corrections SET new_value = 'x'", "DELETE FROM corrections",
                      "DELETE FROM calibrations", "UPDATE calibration_shots SET result = 'fail'"):
        with sqlite3.connect(db) as conn, pytest.raises(sqlite3.DatabaseError, match="cannot"):
            conn.execute(statement)
    assert verify_database(db).ok


def test_database_from_before_the_chain_verifies_with_a_note(tmp_path):
    db = tmp_path / "old.db"
    pre_chain_database(db, 1)
    Store(db).close()  # migrates to the chain
    report = verify_database(db)
    assert report.ok, [f.message for f in report.findings]
    assert any("before the chain existed" in n for n in report.notes)
    tamper(db, "INSERT INTO pulses (session_id, seq, received_unix_s, pulse_duration_ps, regime)"
           " VALUES (1, 2, 0, 650, 'ps')")
    assert first(verify_database(db)).kind == "unchained_row"


def test_canonical_encoding_is_frozen():
    # Changing the encoding would turn every stored chain into a false alarm.
    digest = chain.link_hash("0" * 64, 7, 3, "batch", 1.5, "pulses 1 2", None,
                             ([(1, 3, 12, 1.7e9, 650.25, "ps", 0.12, 0.955, 4.0, 755.0, 5.0, 1,
                                None, "fluence")],))
    assert digest == FROZEN_DIGEST


FROZEN_DIGEST = "b815fac341618d73feb3368becd9815decbae399b71da6d157945529d8950886"


def test_verify_json_lists_findings_and_exits_1(db):
    target = pulse_ids(db)[5]
    tamper(db, "DROP TRIGGER pulses_no_update",
           f"UPDATE pulses SET spot_mm = 9 WHERE id = {target}")
    result = cli("verify", "--json", "--db", str(db))
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["findings"][0]["row_id"] == target


def test_verify_of_missing_database_is_a_clear_error(tmp_path):
    result = cli("verify", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_anchor_copy_kept_elsewhere_catches_a_tail_removed_with_its_anchor(db, tmp_path):
    elsewhere = tmp_path / "offsite.anchor"
    shutil.copy(chain.anchor_path(db), elsewhere)
    with sqlite3.connect(db) as conn:
        last = conn.execute("SELECT max(id) FROM chain").fetchone()[0]
        new_head = conn.execute("SELECT hash FROM chain WHERE id = ?", (last - 2,)).fetchone()[0]
    # A thorough tamperer drops the last two links (the second session's seal and the
    # checkpoint that signed it) and rewrites the anchor beside the database to match.
    tamper(db, "DROP TRIGGER chain_no_delete", f"DELETE FROM chain WHERE id >= {last - 1}")
    anchor = chain.anchor_path(db)
    data = json.loads(anchor.read_text())
    data.update(link=last - 2, hash=new_head)
    anchor.write_text(json.dumps(data))
    beside = verify_database(db)
    assert [f.kind for f in beside.findings] == ["session_unsealed", "trigger_missing"]
    offsite = verify_database(db, anchor_file=elsewhere)
    assert any(f.kind == "truncated" and f.link_id == last - 1 for f in offsite.findings)
    result = cli("verify", "--anchor", str(elsewhere), "--db", str(db))
    assert result.returncode == 1 and "truncated" in result.stdout


def test_recovered_rows_join_the_chain_and_the_session_is_sealed_again(db, tmp_path):
    from laserlog.storage.recovery import recover

    spill = tmp_path / "spill.ndjson"
    spill.write_text("\n".join(json.dumps({"table": "pulses", "row": [
        2, 900 + n, 1.8e9 + n, 650.0, "ps", 0.12, 0.95, 4.0, 755.0, 5.0, 1, None, "fluence"]})
        for n in range(3)) + "\n")
    with sqlite3.connect(db) as conn:
        seals_before = conn.execute("SELECT count(*) FROM chain WHERE kind = 'seal' AND"
                                    " session_id = 2").fetchone()[0]
    with Store(db) as store:
        assert recover(spill, store)["pulses"] == 3
        assert store.session(2)["pulse_count"] == len(
            [i for i in store.conn.execute("SELECT id FROM pulses WHERE session_id = 2")])
    with sqlite3.connect(db) as conn:
        seals_after = conn.execute("SELECT count(*) FROM chain WHERE kind = 'seal' AND"
                                   " session_id = 2").fetchone()[0]
    assert seals_after == seals_before + 1
    report = verify_database(db)
    assert report.ok, [f.message for f in report.findings]


@pytest.mark.parametrize("statements", [
    (),
    ("DROP TRIGGER pulses_no_update", "UPDATE pulses SET energy_j = 1 WHERE id = 33"),
    ("DROP TRIGGER pulses_no_delete", "DELETE FROM pulses WHERE id IN (17, 64)"),
    ("INSERT INTO events (session_id, received_unix_s, kind) VALUES (1, 0, 'forged')",),
    ("DROP TRIGGER pulses_no_delete", "DELETE FROM pulses WHERE id > 90"),
], ids=["clean", "edited", "deleted", "forged", "truncated"])
def test_parallel_walk_finds_exactly_what_one_walk_finds(db, statements):
    tamper(db, *statements)
    one = verify_database(db, workers=1)
    three = verify_database(db, workers=3)
    assert three.links == one.links and three.rows == one.rows
    assert [(f.kind, f.table, f.row_id) for f in three.findings] == \
        [(f.kind, f.table, f.row_id) for f in one.findings]
    assert one.ok == (statements == ())
