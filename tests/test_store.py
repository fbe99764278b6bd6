"""The database: plain SQLite anyone can read, private, append-only, migrated by user_version."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess

import pytest

from laserlog.errors import StoreError
from laserlog.storage.schema import SCHEMA_VERSION
from laserlog.storage.store import Store


@pytest.fixture
def store(db_path):
    with Store(db_path) as s:
        yield s


def _session_with_pulse(store: Store) -> int:
    sid = store.create_session(device_id=None, profile_id="ps755-ref", port="loop://",
                               operator_id="tech-01", client_ref="C-1", area=None, skin_type="II",
                               eyewear_checked=True, checklist_json=None)
    with store.conn:
        store.conn.execute(
            "INSERT INTO pulses (session_id, seq, received_unix_s, pulse_duration_ps, regime,"
            " energy_j, fluence_j_cm2, spot_mm) VALUES (?, 1, 0, 650, 'ps', 0.1, 0.8, 4)", (sid,))
    return sid


def test_new_database_is_private_wal_and_current(store, db_path):
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    wal = db_path.with_name(db_path.name + "-wal")
    assert stat.S_IMODE(wal.stat().st_mode) == 0o600


@pytest.mark.parametrize("statement", [
    "UPDATE pulses SET energy_j = 99",
    "DELETE FROM pulses",
    "INSERT OR REPLACE INTO pulses (id, session_id, received_unix_s, pulse_duration_ps, regime)"
    " VALUES (1, 1, 0, 650, 'ps')",
])
def test_pulses_are_append_only(store, statement):
    _session_with_pulse(store)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        with store.conn:
            store.conn.execute(statement)
    assert store.conn.execute("SELECT energy_j FROM pulses").fetchall()[0][0] == 0.1


def test_regime_and_duration_are_checked_by_the_schema(store):
    sid = _session_with_pulse(store)
    with pytest.raises(sqlite3.IntegrityError):
        with store.conn:
            store.conn.execute("INSERT INTO pulses (session_id, received_unix_s, pulse_duration_ps,"
                               " regime) VALUES (?, 0, 0, 'ps')", (sid,))


def test_recount_matches_pulses(store):
    sid = _session_with_pulse(store)
    store.recount(sid)
    session = store.session(sid)
    assert session["pulse_count"] == 1
    assert session["total_energy_j"] == pytest.approx(0.1)
    assert session["regimes"] == "ps"


def test_reopening_does_not_migrate_again(db_path):
    Store(db_path).close()
    with Store(db_path) as again:
        assert again.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(db_path):
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(db_path)


def test_not_a_database_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are not the pulses you are looking for" * 100)
    with pytest.raises(StoreError, match="notes.db"):
        Store(bogus)


def test_readonly_store_of_missing_file_says_so(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "none.db", readonly=True)


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="sqlite3 shell not installed")
def test_sqlite3_shell_reads_the_log_without_laserlog(store, db_path):
    _session_with_pulse(store)
    out = subprocess.run(
        ["sqlite3", "-readonly", str(db_path),
         "SELECT regime, energy_j, fluence_j_cm2, spot_mm, received_utc FROM pulse_log;"],
        capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ps|0.1|0.8|4.0|1970-01-01T00:00:00.000Z"
