"""`verify` covers the schema and every session's totals; readers never trust a view."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess

import pytest

from laserlog.recording.recorder import SessionInfo
from laserlog.storage import chain, definitions
from laserlog.storage.schema import SCHEMA_VERSION
from laserlog.storage.store import Store
from laserlog.storage.verify import check_totals, verify_database

from conftest import START, wait_until
from reviewkit import LASERLOG, cli, copy_database, pre_chain_database, record, tamper

INFO = SessionInfo("tech-01", "C-1001", "left cheek", "III", eyewear_checked=True)
PULSES = 40

# A view that shows half the pulses with a tenth of their energy, under its own name.
FORGED_PULSE_LOG = (
    "CREATE VIEW pulse_log AS SELECT p.id, p.session_id, p.seq, "
    "strftime('%Y-%m-%dT%H:%M:%fZ', p.received_unix_s, 'unixepoch') AS received_utc, "
    "p.pulse_duration_ps, p.regime, p.energy_j / 10 AS energy_j, p.fluence_j_cm2, p.spot_mm, "
    "p.wavelength_nm, p.rep_rate_hz, p.handpiece, p.beamlet_fluence_j_cm2, p.derived "
    "FROM pulses p WHERE p.id % 2 = 0")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A database with one ended session of exactly PULSES pulses, untouched."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("pristine")
    db = folder / "laserlog.db"
    with Simulator(open_profile("ps755-ref"), folder / "console", seed=3, rate_hz=60) as sim, \
            Store(db) as store:
        record(store, sim, INFO, pulses=PULSES)
    with sqlite3.connect(db) as conn:  # a flush may bring one more: keep the count exact
        assert conn.execute("SELECT count(*) FROM pulses").fetchone()[0] >= PULSES
    return db


@pytest.fixture
def db(pristine, tmp_path):
    return copy_database(pristine, tmp_path / "laserlog.db")


def messages(report) -> list[str]:
    return [f.message for f in report.findings]


# -- the schema --------------------------------------------------------------------------
def test_new_and_upgraded_databases_hold_laserlogs_definitions_to_the_letter(tmp_path):
    new = tmp_path / "new.db"
    Store(new).close()
    old = tmp_path / "old.db"
    pre_chain_database(old, 3)  # schema 2, as an older laserlog left it
    Store(old).close()  # migration 3 adds the chain; then the schema is recorded
    for path in (new, old):
        with sqlite3.connect(path) as conn:
            assert definitions.read(conn) == definitions.expected(SCHEMA_VERSION)
            links = conn.execute("SELECT id, kind, snapshot FROM chain ORDER BY id").fetchall()
        assert [(i, k) for i, k, _ in links] == [(0, "genesis"), (1, "schema"),
                                                 (2, "checkpoint")]
        assert definitions.from_snapshot(links[1][2]) == definitions.expected(SCHEMA_VERSION)
        assert chain.read_anchor(chain.anchor_path(path))["link"] == 2
        report = verify_database(path)
        assert report.ok, messages(report)


def test_the_schema_snapshot_is_canonical_json_sorted_by_type_and_name(db):
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute("SELECT snapshot FROM chain WHERE kind = 'schema'").fetchone()
    data = json.loads(text)
    keys = [(t, n) for t, n, _ in data["definitions"]]
    assert keys == sorted(keys) and data["schema_version"] == SCHEMA_VERSION
    assert ("view", "pulse_log") in keys and ("trigger", "pulses_no_update") in keys
    assert text == definitions.snapshot(definitions.expected(SCHEMA_VERSION), SCHEMA_VERSION)


@pytest.mark.parametrize("statements,needle", [
    (("DROP VIEW pulse_log", FORGED_PULSE_LOG), "view pulse_log was redefined"),
    (("DROP VIEW event_log", "CREATE VIEW event_log AS SELECT * FROM events WHERE severity"
      " = 'info'"), "view event_log was redefined"),
    (("DROP TRIGGER pulses_no_update", "CREATE TRIGGER pulses_no_update BEFORE UPDATE ON pulses"
      " BEGIN SELECT 1; END"), "trigger pulses_no_update differs from laserlog's definition"),
    (("CREATE TABLE notes (x)",), "table notes is not laserlog's"),
    (("CREATE TRIGGER pulses_quiet AFTER INSERT ON pulses BEGIN SELECT 1; END",),
     "trigger pulses_quiet is not laserlog's"),
    (("CREATE VIEW pulse_log_v2 AS SELECT 1",), "view pulse_log_v2 is not laserlog's"),
    (("DROP INDEX sessions_client",), "index sessions_client is missing"),
    (("CREATE INDEX pulses_energy ON pulses (energy_j)",), "index pulses_energy is not laserlog's"),
    (("CREATE TABLE central_identity (console_uuid TEXT)",),
     "table central_identity is not laserlog's"),
], ids=["pulse_log", "event_log", "noop-trigger", "extra-table", "extra-trigger", "extra-view",
        "dropped-index", "extra-index", "forged-identity"])
def test_every_change_to_the_schema_is_named(db, statements, needle):
    assert verify_database(db).ok
    tamper(db, *statements)
    report = verify_database(db)
    assert not report.ok
    assert any(f.kind == "schema_changed" and needle in f.message for f in report.findings), \
        messages(report)
    result = cli("verify", "--db", str(db))
    assert result.returncode == 1 and needle in result.stdout


def test_a_redefined_view_is_shown_where_it_differs(db):
    tamper(db, "DROP VIEW pulse_log", FORGED_PULSE_LOG)
    (finding,) = [f for f in verify_database(db).findings if "pulse_log" in f.message]
    assert "p.energy_j / 10" in finding.message and "p.energy_j, p.fluence" in finding.message


def test_a_dropped_guard_trigger_is_named_once(db):
    tamper(db, "DROP TRIGGER pulses_no_delete")
    report = verify_database(db)
    assert [f.kind for f in report.findings] == ["trigger_missing"], messages(report)


def test_the_tables_a_first_sync_adds_are_laserlogs_own(db):
    from laserlog.central.identity import identity

    identity(db)  # adds central_identity and central_servers, as a first sync does
    with sqlite3.connect(db) as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    assert {"central_identity", "central_servers"} <= names
    report = verify_database(db)
    assert report.ok, messages(report)


def test_a_schema_newer_than_this_laserlog_is_not_passed_unchecked(db):
    tamper(db, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    from laserlog.errors import StoreError

    with pytest.raises(StoreError, match="newer than this laserlog reads"):
        verify_database(db)


def test_the_schema_link_catches_definitions_changed_in_laserlog_itself(db, monkeypatch):
    # Someone redefines the view and edits laserlog's own migrations to match: the database
    # then agrees with this laserlog, but not with what the chain recorded when it was made.
    tamper(db, "DROP VIEW pulse_log", FORGED_PULSE_LOG)
    with sqlite3.connect(db) as conn:
        forged = definitions.read(conn)
    monkeypatch.setattr(definitions, "expected", lambda version: forged)
    report = verify_database(db)
    (finding,) = report.findings
    assert finding.kind == "schema_changed" and finding.link_id == 1
    assert "differs from what chain link 1 recorded" in finding.message
    assert "view pulse_log" in finding.message


def test_an_upgrade_records_the_schema_after_the_genesis_link(tmp_path, monkeypatch):
    from laserlog.storage import schema, store

    db = tmp_path / "old.db"
    pre_chain_database(db, 2)
    Store(db).close()
    # A later laserlog adds a migration: its own schema link follows, with its definitions.
    later = (*schema.MIGRATIONS, "CREATE INDEX pulses_regime ON pulses (regime);")
    monkeypatch.setattr(store, "MIGRATIONS", later)
    monkeypatch.setattr(store, "SCHEMA_VERSION", len(later))
    monkeypatch.setattr(definitions, "MIGRATIONS", later)
    definitions.expected.cache_clear()
    try:
        Store(db).close()
        with sqlite3.connect(db) as conn:
            links = conn.execute("SELECT id, kind, snapshot FROM chain ORDER BY id").fetchall()
        assert [(i, k) for i, k, _ in links] == [(0, "genesis"), (1, "schema"),
                                                 (2, "checkpoint"), (3, "schema"),
                                                 (4, "checkpoint")]
        recorded = definitions.from_snapshot(links[3][2])
        assert recorded is not None and ("index", "pulses_regime") in recorded
        assert chain.read_anchor(chain.anchor_path(db))["link"] == 4
        report = verify_database(db)
        assert report.ok, messages(report)
    finally:
        definitions.expected.cache_clear()


# -- readers do not trust the views ------------------------------------------------------
def test_csv_export_of_a_session_with_a_redefined_view_shows_every_true_pulse(db, tmp_path):
    with sqlite3.connect(db) as conn:
        true = conn.execute("SELECT id, energy_j FROM pulses WHERE session_id = 1"
                            " ORDER BY id").fetchall()
    tamper(db, "DROP VIEW pulse_log", FORGED_PULSE_LOG)
    out = tmp_path / "session.csv"
    result = cli("export", "--format", "csv", "--session", "1", "--out", str(out),
                 "--db", str(db))
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(true) >= PULSES
    # The CSV writes energy to 0.1 mJ (review.precision): the true values, so rounded.
    assert [(int(r["id"]), float(r["energy_j"])) for r in rows] == [
        (row_id, round(energy, 4)) for row_id, energy in true]


def test_sessions_show_lists_every_pulse_and_event_past_redefined_views(db):
    with Store(db, readonly=True) as store:
        before = (store.pulses(1, limit=10_000), store.events(1))
    tamper(db, "DROP VIEW pulse_log", FORGED_PULSE_LOG, "DROP VIEW event_log",
           "CREATE VIEW event_log AS SELECT * FROM events WHERE 0")
    with Store(db, readonly=True) as store:
        assert (store.pulses(1, limit=10_000), store.events(1)) == before
    result = cli("sessions", "show", "1", "--json", "--pulses", "--db", str(db))
    data = json.loads(result.stdout)
    assert [p["energy_j"] for p in data["pulses"]] == [p["energy_j"] for p in before[0]]
    assert len(data["events"]) == len(before[1]) > 0


# -- every session's totals --------------------------------------------------------------
@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A database whose recorder was killed mid-session: the session is left `recording`."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("killed")
    db = folder / "laserlog.db"
    with Simulator(open_profile("ps755-ref"), folder / "console", seed=4, rate_hz=200,
                   fire=True) as sim:
        proc = subprocess.Popen([*LASERLOG, "record", "--profile", "ps755-ref", "--port",
                                 str(sim.path), "--operator", "tech-01", "--client", "C-9001", *START,
                                 "--eyewear-checked", "--db", str(db)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def pulses() -> int:
            try:
                with sqlite3.connect(db) as conn:
                    return conn.execute("SELECT count(*) FROM pulses").fetchone()[0]
            except sqlite3.OperationalError:
                return 0

        try:
            wait_until(lambda: pulses() >= 50, 30, "50 committed pulses")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    return db


@pytest.fixture
def open_db(killed, tmp_path):
    return copy_database(killed, tmp_path / "laserlog.db")


def test_a_session_left_recording_verifies_until_its_totals_are_edited(open_db):
    with sqlite3.connect(open_db) as conn:
        status, count = conn.execute("SELECT status, pulse_count FROM sessions").fetchone()
    assert status == "recording" and count >= 50
    report = verify_database(open_db)
    assert report.ok, messages(report)
    tamper(open_db, "UPDATE sessions SET pulse_count = 1, total_energy_j = 0.001 WHERE id = 1")
    report = verify_database(open_db)
    found = [(f.kind, f.row_id, f.message.split(":")[0]) for f in report.findings]
    assert found == [("session_totals", 1, "session 1 pulse_count"),
                     ("session_totals", 1, "session 1 total_energy_j")]
    assert f"stored 1, recomputed from its rows {count}" in report.findings[0].message
    result = cli("verify", "--db", str(open_db))
    assert result.returncode == 1 and "session 1 pulse_count" in result.stdout


@pytest.mark.parametrize("column,value", [
    ("min_fluence_j_cm2", 0.001), ("max_fluence_j_cm2", 99.0), ("missing_pulses", 7),
    ("event_count", "event_count + 1"), ("regimes", "'ns'"),
    ("total_energy_j", "total_energy_j * (1 + 1e-6)"),
])
def test_each_total_of_an_open_session_is_recomputed(open_db, column, value):
    tamper(open_db, f"UPDATE sessions SET {column} = {value} WHERE id = 1")
    (finding,) = verify_database(open_db).findings
    assert finding.kind == "session_totals" and f"session 1 {column}: stored" in finding.message


def test_energy_summed_in_another_order_is_within_the_tolerance(open_db):
    tamper(open_db, "UPDATE sessions SET total_energy_j = total_energy_j * (1 + 1e-12)"
           " WHERE id = 1")
    report = verify_database(open_db)
    assert report.ok, messages(report)


def test_an_ended_session_with_edited_totals_is_named_beside_its_seal(db):
    tamper(db, "UPDATE sessions SET event_count = event_count + 1 WHERE id = 1")
    kinds = [f.kind for f in verify_database(db).findings]
    assert kinds == ["session_changed", "session_totals"]


def test_totals_are_recomputed_in_one_query_a_table_whatever_the_sessions(open_db):
    with sqlite3.connect(open_db) as conn:
        conn.executemany("INSERT INTO sessions (uuid, profile_id, port, operator_id, client_ref,"
                         " started_utc) VALUES (?, 'ps755-ref', 'x', 't', 'C-2', 'now')",
                         [(f"u{n}",) for n in range(200)])
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        assert check_totals(conn, 0) == []
        conn.set_trace_callback(None)
    assert len(statements) == 3, statements  # pulses, events, sessions
