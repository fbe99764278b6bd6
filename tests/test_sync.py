"""Consoles shipping to a central PostgreSQL, against a real server the tests start themselves."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pgserver
import pytest

from laserlog.central import pgschema
from laserlog.recording.recorder import SessionInfo
from laserlog.review.reports import FAULT_KINDS, energy_report, faults_report, make_filters
from laserlog.storage.store import Store

from conftest import START, wait_until
from ports import free_port
from reviewkit import LASERLOG, assert_clean_error, cli, record

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install "
                              "'laserlog[central]')")

_names = itertools.count()


def _install_server() -> None:
    """Install the server package when it is missing and we may (root with apt-get)."""
    if pgserver.find_bindir() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], capture_output=True,
                       timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


@pytest.fixture(scope="module")
def server():
    """One PostgreSQL server for the module, removed afterwards."""
    _install_server()
    if pgserver.find_bindir() is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl) and they cannot be installed"
        print(f"SKIP test_sync: {reason}", file=sys.stderr)
        pytest.skip(reason)
    srv = pgserver.start()
    yield srv
    srv.stop()


@pytest.fixture
def url(server) -> str:
    """A fresh, empty database on the server."""
    return server.create_database(f"laserlog_t{next(_names)}_{os.getpid()}")


def _console_db(folder: Path, profile: str, seed: int, sessions: list[tuple[str, int]]) -> Path:
    """Record sessions from a simulated console into a database of its own."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    db = folder / f"{profile}-{seed}.db"
    with Simulator(open_profile(profile), folder / f"{profile}-{seed}", seed=seed,
                   rate_hz=60) as sim, Store(db) as store:
        for client, pulses in sessions:
            record(store, sim, SessionInfo("tech-01", client, "left cheek",
                                           eyewear_checked=True), pulses=pulses)
    return db


@pytest.fixture(scope="module")
def consoles(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("consoles")
    return [_console_db(folder, "ps755-ref", 1, [("C-1", 30), ("C-2", 20)]),
            _console_db(folder, "ps1064-ref", 2, [("C-3", 25)]),
            _console_db(folder, "ps755-ref", 3, [("C-4", 15), ("C-1", 10)])]


def _copy(db: Path, folder: Path) -> Path:
    """Copy a console database (with its WAL folded in) to a new file."""
    target = folder / f"copy-{next(_names)}-{db.name}"
    src = sqlite3.connect(db)
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


def _server_count(url: str, table: str) -> int:
    with psycopg.connect(url) as pg:
        exists = pg.execute("SELECT to_regclass('laserlog.consoles')").fetchone()[0]
        if exists is None:
            return 0
        return int(pg.execute(f"SELECT count(*) FROM laserlog.{table}").fetchone()[0])


def _sum_local(dbs: list[Path], make) -> dict:
    totals: dict = {}
    for db in dbs:
        with Store(db, readonly=True) as store:
            total = make(store.conn).total
        for key, value in total.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[key] = totals.get(key, 0) + value
    return totals


# -- the done-when test --------------------------------------------------------------------
def test_three_consoles_sync_one_cut_off_resumes_and_fleet_reports_equal_the_sum(
        url, consoles, tmp_path):
    from laserlog.central.sync import sync

    dbs = [_copy(db, tmp_path) for db in consoles]
    sync(dbs[0], url, site="north")
    sync(dbs[1], url, site="north")

    def cut_off(table: str, rows: int) -> None:
        if table == "pulses":
            raise ConnectionAbortedError("network cut during the sync")

    with pytest.raises(ConnectionAbortedError):
        sync(dbs[2], url, site="south", on_table=cut_off)
    with psycopg.connect(url) as pg:
        assert pg.execute("SELECT count(*) FROM laserlog.consoles").fetchone()[0] == 2
    resumed = sync(dbs[2], url, site="south")
    assert resumed.rows["pulses"] == sqlite3.connect(dbs[2]).execute(
        "SELECT count(*) FROM pulses").fetchone()[0]
    again = [sync(db, url) for db in dbs]
    assert all(not any(r.rows.values()) for r in again), "a re-run ships nothing twice"

    local_pulses = sum(sqlite3.connect(db).execute("SELECT count(*) FROM pulses").fetchone()[0]
                       for db in dbs)
    assert _server_count(url, "pulses") == local_pulses

    f = make_filters()
    for by in ("month", "device", "session"):
        central = cli("report", "energy", "--by", by, "--format", "json", "--db", url)
        assert central.returncode == 0, central.stderr
        import json

        total = json.loads(central.stdout)["total"]
        local = _sum_local(dbs, lambda conn, by=by: energy_report(conn, by, f))
        assert total["pulses"] == local["pulses"] == local_pulses
        assert total["energy_j"] == pytest.approx(local["energy_j"], rel=1e-12)
        assert total["sessions"] == local["sessions"] == 5
        assert total["out_of_limit"] == local["out_of_limit"]
    faults = json.loads(cli("report", "faults", "--by", "kind", "--format", "json",
                            "--db", url).stdout)
    local_faults = _sum_local(dbs, lambda conn: faults_report(conn, "kind", f, FAULT_KINDS))
    assert faults["total"]["events"] == local_faults.get("events", 0)
    by_site = json.loads(cli("report", "energy", "--by", "site", "--format", "json",
                             "--db", url).stdout)
    assert {r["site"]: r["sessions"] for r in by_site["rows"]} == {"north": 3, "south": 2}

    verified = cli("verify", "--db", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK: 3 console(s)" in verified.stdout


def test_server_verify_names_a_pulse_changed_on_the_server(url, consoles, tmp_path):
    from laserlog.central.sync import sync

    sync(_copy(consoles[1], tmp_path), url)
    with psycopg.connect(url) as pg:
        pg.execute("UPDATE laserlog.pulses SET energy_j = energy_j * 2 WHERE id = 3")
    result = cli("verify", "--db", url)
    assert result.returncode == 1
    assert "changed_row: pulses row 3 differs" in result.stdout


def test_schema_twins_have_the_console_columns():
    from laserlog.storage.schema import MIGRATIONS

    conn = sqlite3.connect(":memory:")
    for migration in MIGRATIONS:
        conn.executescript(migration)
    for table, cols in pgschema.TABLES.items():
        local = tuple((r[1], r[2]) for r in conn.execute(f"PRAGMA table_info({table})"))
        assert local == cols, f"{table}: the server schema needs a migration"


# -- interruptions and refusals -----------------------------------------------------------------
def test_sync_killed_during_copy_leaves_nothing_and_the_rerun_completes(url, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    from verify import build  # benchmarks/verify.py: a chained database, fast

    db = tmp_path / "big.db"
    build(db, 300_000, 1000)
    proc = subprocess.Popen([*LASERLOG, "sync", "--db", str(db), "--to", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with psycopg.connect(url, autocommit=True) as watch:
        def copying() -> bool:
            assert proc.poll() is None, "the sync finished before it could be killed"
            return watch.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE"
                                 " 'COPY laserlog.pulses%%' AND state = 'active'").fetchone()[0]
        wait_until(copying, 60, "the sync's COPY of pulses")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        wait_until(lambda: not watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'laserlog'"
        ).fetchone()[0], 30, "the server to drop the killed session")
    assert _server_count(url, "pulses") == 0
    assert _server_count(url, "chain") == 0
    result = cli("sync", "--db", str(db), "--to", url)
    assert result.returncode == 0, result.stderr
    assert "300000 pulses" in result.stdout
    assert _server_count(url, "pulses") == 300_000
    assert cli("verify", "--db", url).returncode == 0


def test_unreachable_server_is_a_clear_error(consoles, tmp_path):
    result = cli("sync", "--db", str(consoles[0]), "--to",
                 f"postgresql://u:secret@127.0.0.1:{free_port()}/x")
    assert_clean_error(result, "cannot reach the central server", "nothing was written")
    assert "secret" not in result.stderr


def test_wrong_password_is_refused_and_nothing_is_written(server, url, consoles):
    bad = url.replace(pgserver.PASSWORD, "wrong-password")
    result = cli("sync", "--db", str(consoles[0]), "--to", bad)
    assert_clean_error(result, "refused the login: wrong user name or password")
    assert "wrong-password" not in result.stderr
    assert _server_count(url, "consoles") == 0


def test_a_server_schema_newer_than_the_client_is_refused(url, consoles, tmp_path):
    from laserlog.central.sync import sync

    db = _copy(consoles[0], tmp_path)
    sync(db, url)
    with psycopg.connect(url) as pg:
        pg.execute("UPDATE laserlog.laserlog_meta SET value = '99' WHERE key = 'schema_version'")
    before = _server_count(url, "pulses")
    with Store(db) as store:  # something new to ship
        record_more(store)
    for args in (("sync", "--db", str(db), "--to", url), ("report", "energy", "--db", url),
                 ("verify", "--db", url)):
        assert_clean_error(cli(*args), "central schema 99, newer than this laserlog")
    assert _server_count(url, "pulses") == before


def record_more(store: Store) -> None:
    from laserlog.storage import chain

    with store.conn:
        head = chain.insert(store.conn, "events", [(None, time.time(), "note", "info", "more")],
                            ("session_id", "received_unix_s", "kind", "severity", "message"))
    chain.write_anchor(store.path, head)


def test_one_database_synced_to_a_second_server_is_refused_unless_asked(server, consoles,
                                                                         tmp_path):
    first = server.create_database(f"laserlog_first_{os.getpid()}")
    second = server.create_database(f"laserlog_second_{os.getpid()}")
    db = _copy(consoles[1], tmp_path)
    assert cli("sync", "--db", str(db), "--to", first).returncode == 0
    refused = cli("sync", "--db", str(db), "--to", second)
    assert_clean_error(refused, "already ships to", "--new-server")
    assert _server_count(second, "pulses") == 0
    assert cli("sync", "--db", str(db), "--to", second, "--new-server").returncode == 0
    assert _server_count(second, "pulses") == _server_count(first, "pulses") > 0


def test_a_copied_database_that_went_its_own_way_is_refused(url, consoles, tmp_path):
    from laserlog.central.sync import sync

    original = _copy(consoles[2], tmp_path)
    sync(original, url)  # gives it its identity, then copy it with that identity
    clone = _copy(original, tmp_path)
    for db in (original, clone):
        with Store(db) as store:
            record_more(store)
    sync(original, url)
    result = cli("sync", "--db", str(clone), "--to", url)
    assert_clean_error(result, "copy of another console's database")


# -- roles ---------------------------------------------------------------------------------------
def test_console_role_only_appends_and_officer_role_only_reads_and_signs(server, url, consoles,
                                                                       tmp_path):
    from laserlog.central.sync import sync

    sync(_copy(consoles[0], tmp_path), url)  # the owner creates the schema and the roles
    suffix = next(_names)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE console_{suffix} LOGIN PASSWORD 'console-pass'"
                      " IN ROLE laserlog_console")
        admin.execute(f"CREATE ROLE officer_{suffix} LOGIN PASSWORD 'officer-pass'"
                      " IN ROLE laserlog_officer")
    as_console = server.url(url.rsplit("/", 1)[1], f"console_{suffix}", "console-pass")
    as_officer = server.url(url.rsplit("/", 1)[1], f"officer_{suffix}", "officer-pass")
    shipped = sync(_copy(consoles[1], tmp_path), as_console)
    assert shipped.rows["pulses"] > 0
    with psycopg.connect(as_console) as pg, pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute("SELECT energy_j FROM laserlog.pulses")
    with psycopg.connect(as_console) as pg, pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute("DELETE FROM laserlog.pulses")
    with psycopg.connect(as_officer) as pg:
        assert pg.execute("SELECT count(*) FROM laserlog.pulses").fetchone()[0] > 0
    # Officers sign in central_signoffs (tests/test_central_signoff.py); the shipped
    # sign-offs are the consoles' own chained rows, which an officer may not add to.
    with psycopg.connect(as_officer) as pg, pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute("INSERT INTO laserlog.signoffs (console_id, id, session_id, user_id,"
                   " printed_name, role, meaning, signed_utc, chain_id, chain_hash, signature)"
                   " VALUES (1, 9999, 1, 'lso-01', 'Jane', 'officer', 'reviewed', 'now', 1,"
                   " 'h', 's')")
    with psycopg.connect(as_officer) as pg, pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute("UPDATE laserlog.pulses SET energy_j = 0")
    assert cli("report", "energy", "--by", "console", "--db", as_officer).returncode == 0


# -- background shipping while recording ------------------------------------------------------
def test_record_ships_in_the_background_and_survives_a_dead_server(url, tmp_path):
    from laserlog.config.profile import open_profile
    from laserlog.recording.shipping import Shipper
    from laserlog.sim.engine import Simulator

    db = tmp_path / "live.db"
    Store(db).close()
    shipper = Shipper(db, url, interval_s=0.2).start()
    dead = Shipper(db, "postgresql://u:p@127.0.0.1:9/x", interval_s=0.05).start()
    with Simulator(open_profile("ps755-ref"), tmp_path / "sim", seed=5, rate_hz=60) as sim, \
            Store(db) as store:
        record(store, sim, SessionInfo("tech-01", "C-9", eyewear_checked=True), pulses=40)
        wait_until(lambda: shipper.syncs >= 2, 20, "background syncs")
    assert shipper.stop() is True
    assert dead.stop(timeout_s=10) is False
    assert dead.failures >= 1 and "cannot reach" in (dead.last_error or "")
    local = sqlite3.connect(db).execute("SELECT count(*) FROM pulses").fetchone()[0]
    assert local >= 40
    assert _server_count(url, "pulses") == local
    with psycopg.connect(url) as pg:
        assert pg.execute("SELECT status FROM laserlog.sessions").fetchone()[0] == "ended"
    assert cli("verify", "--db", url).returncode == 0


def test_record_with_sync_option_ships_the_session(url, tmp_path):
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    db = tmp_path / "rec.db"
    with Simulator(open_profile("ps755-ref"), tmp_path / "sim", seed=6, rate_hz=50) as sim:
        sim.console.firing = True
        result = cli("record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
                     "tech-01", "--client", "C-9007", *START, "--pulses", "20", "--db", str(db),
                     "--sync", url)
    assert result.returncode == 0, result.stderr
    local = sqlite3.connect(db).execute("SELECT count(*) FROM pulses").fetchone()[0]
    assert _server_count(url, "pulses") == local >= 20


def test_photos_ship_by_reference_with_their_hashes(url, tmp_path):
    from laserlog.config.photos import read_photo
    from laserlog.recording import courses, photos

    (tmp_path / "front.jpg").write_bytes(b"\xff\xd8 a front view")
    db = tmp_path / "photos.db"
    with Store(db) as store:
        courses.create(store, client="C-1042", area="left cheek", indication="pores",
                       sessions=2, window=courses.Window(21, 42), profile_id=None, note=None)
        course = courses.find(store.conn, 1)
        assert course is not None
        photos.record(store, course, None, read_photo(str(tmp_path / "front.jpg"), tmp_path),
                      view="front", kind="baseline", area=None, added_by="tech-07")
    result = cli("sync", "--db", str(db), "--to", url)
    assert result.returncode == 0, result.stderr
    local = sqlite3.connect(db).execute(
        "SELECT id, course_id, relative_path, sha256, size_bytes FROM photos").fetchall()
    with psycopg.connect(url) as pg:
        shipped = pg.execute("SELECT id, course_id, relative_path, sha256, size_bytes"
                             " FROM laserlog.photos").fetchall()
    assert [tuple(r) for r in shipped] == local and len(local) == 1
