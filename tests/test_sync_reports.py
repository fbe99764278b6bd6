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


# -- the officer's dose-safety report on the server ----------------------------------------------
@pytest.fixture(scope="module")
def reacted(server, tmp_path_factory):
    """Two consoles at two wavelengths, with passes, skin types and adverse events (one
    retracted), synced to one database: (url, {console name: db path})."""
    from laserlog.central.sync import sync
    from laserlog.config.profile import open_profile
    from laserlog.review.reactions import add_adverse, change_adverse, today
    from laserlog.sim.engine import Simulator

    root = tmp_path_factory.mktemp("reacted")
    plans = {"east-1": ("ps755-ref", 21, ("III", "IV", "V", "V", "IV")),
             "east-2": ("ps1064-ref", 22, ("IV", "V", "V"))}
    events = {"east-1": ((2, "pih"), (4, "pih"), (4, "blister"), (1, "other")),
              "east-2": ((3, "pih"),)}
    dbs = {}
    for name, (profile, seed, skins) in plans.items():
        db = root / name / "console.db"
        db.parent.mkdir()
        with Simulator(open_profile(profile), root / name / "sim", seed=seed, rate_hz=60) as sim, \
                Store(db) as store:
            user(store, "tech-01")
            energy = sim.console.params["energy"]
            for number, skin in enumerate(skins, start=1):
                sim.console.params["energy"] = energy * (0.4 + 0.15 * number)
                marked: list[int] = []

                def passes(recorder, number=number, marked=marked, energy=energy) -> None:
                    # Session 2 has two passes, the second at a higher energy.
                    if number == 2 and recorder.totals.pulses >= 4 * (len(marked) + 1) - 4 \
                            and len(marked) < 2:
                        marked.append(recorder.totals.pulses)
                        recorder.mark_pass(time.time(), len(marked))
                        with sim._lock:
                            sim.console.params["energy"] = energy * (0.5 + 0.4 * len(marked))

                record(store, sim, SessionInfo("tech-01", f"C-{number}", "left cheek", skin,
                                               eyewear_checked=True), pulses=10, during=passes)
            for session, kind in events[name]:
                add_adverse(store, session, kind=kind, onset=today(None),
                            seriousness="non-serious", by=None,
                            unlock=lambda who, store=store: signer(store, who), where=None)
            if name == "east-1":
                change_adverse(store, 4, by=None, unlock=lambda who: signer(store, who),
                               where=None, reason="entered for the wrong client")
        dbs[name] = db
    url = server.create_database(f"laserlog_adverse_{os.getpid()}")
    for name, db in dbs.items():
        sync(db, url, name=name, site="east")
    return url, dbs


def test_the_central_dose_safety_report_has_each_consoles_bands_and_numbers(reacted):
    url, dbs = reacted
    args = ("report", "adverse", "--by", "skin-type,fluence-band", "--kind", "pih",
            "--format", "json")
    central = _json(*args, "--db", url)
    local = {name: _json(*args, "--db", str(db)) for name, db in dbs.items()}
    # Quartile bands are per wavelength, and each console has its own: the fleet's rows are
    # the consoles' rows, number for number.
    key = lambda r: (r["skin_type"], r["fluence_band"])  # noqa: E731
    expected = {key(r): r for part in local.values() for r in part["rows"]}
    assert {key(r): r for r in central["rows"]} == expected
    assert len(central["rows"]) == len(expected)
    assert set(central["notes"]) == {n for part in local.values() for n in part["notes"]}
    assert any("755 nm: Q1 <=" in n for n in central["notes"])
    assert any("1064 nm: Q1 <=" in n for n in central["notes"])
    for column in ("sessions", "with_adverse"):
        assert central["total"][column] == sum(p["total"][column] for p in local.values())
    assert central["total"]["sessions"] == 8 and central["total"]["with_adverse"] == 3
    assert central["report"] == local["east-1"]["report"] + " (fleet)"


def test_the_central_dose_safety_report_takes_the_site_files_bands(reacted, tmp_path):
    url, dbs = reacted
    site = tmp_path / "site.toml"
    site.write_text("[adverse]\nfluence_bands_j_cm2 = [0.5, 1.0]\n")
    args = ("report", "adverse", "--by", "fluence-band", "--format", "json")
    central = cli(*args, "--db", url, env={"LASERLOG_SITE": str(site)})
    assert central.returncode == 0, central.stderr
    local = [cli(*args, "--db", str(db), env={"LASERLOG_SITE": str(site)}) for db in dbs.values()]
    rows = json.loads(central.stdout)["rows"]
    for band in ("<0.5", "0.5-1", ">=1"):
        parts = [r for result in local for r in json.loads(result.stdout)["rows"]
                 if r["fluence_band"] == band]
        got = [r for r in rows if r["fluence_band"] == band]
        assert [r["sessions"] for r in got] == ([sum(p["sessions"] for p in parts)]
                                                if parts else [])
        assert [r["with_adverse"] for r in got] == ([sum(p["with_adverse"] for p in parts)]
                                                    if parts else [])
    assert json.loads(central.stdout)["notes"] == [
        "fluence bands (J/cm2, from the site file): <0.5, 0.5-1, >=1"]
