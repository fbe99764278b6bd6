"""Limits, calibration and sign-off reports, and exports, read from the central server.

Three simulated consoles (one with site limits, one with calibration checks, one with
signatures and a correction) ship to a real test server; every report on the server must
equal the consoles' own reports, console after console, and an export of a session from
the server must hold what the export from its file holds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pgserver
import pytest

from laserlog.recording.recorder import SessionInfo
from laserlog.storage.store import Store

from reviewkit import assert_clean_error, cli, record, signer, user

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'laserlog[central]')")


@pytest.fixture(scope="module")
def server():
    """One PostgreSQL server for the module, removed afterwards (as in test_sync.py)."""
    from test_sync import _install_server

    _install_server()
    if pgserver.find_bindir() is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl) and they cannot be installed"
        print(f"SKIP test_sync_reports: {reason}", file=sys.stderr)
        pytest.skip(reason)
    srv = pgserver.start()
    yield srv
    srv.stop()


def _calibrate(store: Store, result: str, deviation: float, days_ago: float) -> None:
    from laserlog.review.calibration import Check, Shot
    from laserlog.review.calibration import record as record_check

    when = time.time() - days_ago * 86400
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    shots = [Shot(n, when + n, 0.5, 0.5 * (1 + deviation), deviation, result) for n in (1, 2)]
    record_check(store, Check(0, "ps1064-ref", "PS-1064", "SN-CAL", "1.0", "ophir-nova2",
                              "Nova II", "M-1", "2.1", "eng-01", iso, iso, 1064.0, 0.5,
                              0.5 * (1 + deviation), deviation, abs(deviation), result,
                              "laserlog", 0.1, 0.2, shots))


@pytest.fixture(scope="module")
def fleet(server, tmp_path_factory):
    """Three console files synced to one database: (url, {console name: db path})."""
    from laserlog.central.sync import sync
    from laserlog.config.profile import open_profile
    from laserlog.review.corrections import correct
    from laserlog.review.signoff import sign
    from laserlog.sim.engine import Simulator

    root = tmp_path_factory.mktemp("fleet")
    dbs = {}
    for name, profile, seed, site in (("north-1", "ps755-ref", 11,
                                       "[limits]\nmax_fluence_j_cm2 = 0.95\n"),
                                      ("north-2", "ps1064-ref", 12, None),
                                      ("south-1", "ps755-ref", 13, None)):
        folder = root / name
        folder.mkdir()
        if site:
            (folder / "site.toml").write_text(site)
        db = folder / "console.db"
        with Simulator(open_profile(profile), folder / "sim", seed=seed, rate_hz=60) as sim, \
                Store(db) as store:
            for client, pulses in (("C-1", 25), ("C-2", 15)):
                record(store, sim, SessionInfo("tech-01", client, "left cheek",
                                               eyewear_checked=True), pulses=pulses)
            if name == "north-2":
                _calibrate(store, "pass", 0.03, 40)
                _calibrate(store, "warn", -0.12, 2)
            if name == "south-1":
                officer = user(store, "lso-01")
                sign(store, 1, signer(store, "lso-01"), "approved")
                correct(store, 2, "area", "forehead", "mistyped at the desk", officer)
                sign(store, 2, signer(store, "lso-01"), "reviewed")
        (folder / "site.toml").unlink(missing_ok=True)  # the central copy knows no site file
        dbs[name] = db
    url = server.create_database(f"laserlog_reports_{os.getpid()}")
    for name, db in dbs.items():
        sync(db, url, name=name, site=name.split("-")[0])
    return url, dbs


def _json(*args: str) -> dict:
    result = cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("args", [("limits",), ("calibration",), ("calibration", "--history"),
                                  ("signoffs",), ("signoffs", "--unsigned"),
                                  ("signoffs", "--user", "lso-01"),
                                  ("limits", "--device", "ps755-ref")])
def test_central_report_is_each_consoles_own_report(fleet, args):
    url, dbs = fleet
    central = _json("report", *args, "--format", "json", "--db", url)
    local = {name: _json("report", *args, "--format", "json", "--db", str(db))
             for name, db in dbs.items()}
    expected = [{"console": name, **row} for name in sorted(local) for row in local[name]["rows"]]
    if args == ("calibration", "--history"):
        expected.sort(key=lambda r: (r["started_utc"], r["console"], r["check"]))
    assert central["rows"] == expected
    assert central["report"] == f"{local['north-1']['report']} (fleet)"
    for key, value in (local["north-1"]["total"] or {}).items():
        if isinstance(value, int | float):
            assert central["total"][key] == sum(part["total"][key] for part in local.values())


def test_central_reports_carry_what_happened(fleet):
    url, _ = fleet
    limits = _json("report", "limits", "--format", "json", "--db", url)
    assert {r["console"] for r in limits["rows"]} == {"north-1"}
    assert limits["total"]["pulses"] > 0
    calibration = _json("report", "calibration", "--format", "json", "--db", url)
    states = {(r["console"], r["device"]): r["state"] for r in calibration["rows"]}
    assert states[("north-2", "ps1064-ref/SN-CAL")] == "WARN"
    assert "MISSING" in {s for (c, _), s in states.items() if c != "north-2"}
    signed = _json("report", "signoffs", "--format", "json", "--db", url)
    assert [(r["console"], r["session"], r["meaning"], r["status"]) for r in signed["rows"]] == [
        ("south-1", 1, "approved", "VALID"), ("south-1", 2, "reviewed", "VALID")]
    table = cli("report", "signoffs", "--unsigned", "--db", url)
    assert table.returncode == 0 and "north-1" in table.stdout and "south-1" in table.stdout


def _comparable(fmt: str, text: str, source: str) -> str:
    """Drop what differs by design: the export time and the source named in the file."""
    if fmt == "json":
        data = json.loads(text)
        assert data.pop("database")
        data.pop("exported_utc")
        return json.dumps(data, sort_keys=True)
    if fmt == "html":
        import re

        # The page footer says when and from which database it was printed.
        text = re.sub(r'content: "printed [^"]*"', "", text)
    return text


@pytest.mark.parametrize("fmt,extra", [("csv", ()), ("csv", ("--table", "events")),
                                       ("csv", ("--table", "sessions")), ("json", ()),
                                       ("ndjson", ()), ("html", ())])
def test_export_from_the_server_equals_the_export_from_the_file(fleet, tmp_path, fmt, extra):
    url, dbs = fleet
    for name, session in (("south-1", "2"), ("north-1", "1")):
        local, central = tmp_path / f"local-{name}.{fmt}", tmp_path / f"central-{name}.{fmt}"
        done = cli("export", "--format", fmt, *extra, "--session", session, "--out", str(local),
                   "--db", str(dbs[name]))
        assert done.returncode == 0, done.stderr
        done = cli("export", "--format", fmt, *extra, "--session", session, "--out",
                   str(central), "--db", url, "--console", name)
        assert done.returncode == 0, done.stderr
        assert f"of console {name}" in done.stdout
        want = _comparable(fmt, local.read_text(), str(dbs[name]))
        got = _comparable(fmt, central.read_text(), url)
        assert got == want
        if fmt == "html" and name == "south-1":
            assert "class=\"flag\">corrected<" in got and "VALID" in got


def test_export_by_date_and_console_uuid(fleet, tmp_path):
    import psycopg

    url, dbs = fleet
    with psycopg.connect(url) as pg:
        uuid = pg.execute("SELECT console_uuid::text FROM laserlog.consoles WHERE name ="
                          " 'north-2'").fetchone()[0]
    local, central = tmp_path / "local.ndjson", tmp_path / "central.ndjson"
    assert cli("export", "--format", "ndjson", "--from", "2000-01-01", "--out", str(local),
               "--db", str(dbs["north-2"])).returncode == 0
    done = cli("export", "--format", "ndjson", "--from", "2000-01-01", "--out", str(central),
               "--db", url, "--console", uuid)
    assert done.returncode == 0, done.stderr
    assert central.read_text() == local.read_text()


def test_export_from_the_server_needs_a_known_console(fleet, tmp_path):
    url, _ = fleet
    out = tmp_path / "x.csv"
    assert_clean_error(cli("export", "--format", "csv", "--session", "1", "--out", str(out),
                           "--db", url), "holds 3 consoles", "--console")
    assert_clean_error(cli("export", "--format", "csv", "--session", "1", "--out", str(out),
                           "--db", url, "--console", "nowhere"), "no console named 'nowhere'",
                       "north-1")
    assert_clean_error(cli("export", "--format", "csv", "--session", "99", "--out", str(out),
                           "--db", url, "--console", "north-1"), "no session 99")
    assert not out.exists()
    local = Path(tmp_path / "local.db")
    assert_clean_error(cli("export", "--format", "csv", "--session", "1", "--out", str(out),
                           "--db", str(local), "--console", "north-1"), "central server")


def test_times_print_on_the_server_exactly_as_sqlite_prints_them(server):
    """SQLite rounds 'unixepoch' to the millisecond in double arithmetic; the server must too."""
    import random
    import sqlite3

    import psycopg

    from laserlog.central.pgconn import translate

    rng = random.Random(8)
    times = [1.7e9 + rng.random() * 1e8 for _ in range(20_000)]
    times += [round(t, 4) + 0.0005 for t in times[:5000]]  # half-way cases
    times += [round(t, 3) for t in times[:5000]]
    lite = sqlite3.connect(":memory:")
    url = server.create_database(f"laserlog_times_{os.getpid()}")
    with psycopg.connect(url) as pg:
        for fmt in ("%Y-%m-%dT%H:%M:%fZ", "%Y-%m-%dT%H:%M:%SZ"):
            sql = f"SELECT strftime('{fmt}', t, 'unixepoch') FROM v"
            lite.execute("CREATE TEMP TABLE IF NOT EXISTS v (i INTEGER PRIMARY KEY, t REAL)")
            lite.execute("DELETE FROM v")
            lite.executemany("INSERT INTO v (t) VALUES (?)", [(t,) for t in times])
            want = [r[0] for r in lite.execute(sql + " ORDER BY i")]
            got = [r[0] for r in pg.execute(
                translate(sql).replace("%%", "%").replace("FROM v", "FROM unnest(%s::float8[])"
                                                          " WITH ORDINALITY AS v(t, i)")
                + " ORDER BY i", (times,))]
            assert got == want


def test_energy_by_pass_on_central_is_the_consoles_own(server, tmp_path):
    from laserlog.central.sync import sync

    from servekit import fill_course

    db = fill_course(tmp_path)
    url = server.create_database(f"laserlog_passes_{os.getpid()}")
    sync(db, url, name="north-1", site="north")
    local = _json("report", "energy", "--by", "pass", "--format", "json", "--db", str(db))
    central = _json("report", "energy", "--by", "pass", "--format", "json", "--db", url)
    assert [r["pass"] for r in local["rows"]] == [1, 2]
    assert central["rows"] == [{"console": "north-1", **row} for row in local["rows"]]
    assert central["total"] == local["total"] and central["notes"] == local["notes"]
    status = cli("report", "energy", "--by", "pass", "--db", url)
    assert status.returncode == 0 and "upper cheek" in status.stdout
