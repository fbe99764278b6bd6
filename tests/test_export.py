"""Exports: CSV, JSON, NDJSON and the printable HTML document, from recorded sessions."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import stat

import pytest

from laserlog.recording.recorder import SessionInfo
from laserlog.storage.store import Store

from reviewkit import PASSPHRASES, assert_clean_error, cli, record, user


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """Two sessions, the first signed off and corrected; an area with markup in it."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("export")
    db = folder / "laserlog.db"
    with Simulator(open_profile("ps755-ref"), folder / "console", seed=4, rate_hz=60) as sim, \
            Store(db) as store:
        record(store, sim, SessionInfo("tech-01", "C-11", "<b>left</b> cheek & chin", "IV",
                                       eyewear_checked=True), pulses=25)
        record(store, sim, SessionInfo("tech-02", "C-12", "forehead"), pulses=12)
        user(store, "lso-01", "Dr Jane Roe")
    assert cli("signoff", "1", "--meaning", "approved", "--user", "lso-01", "--db", str(db),
               passphrase=PASSPHRASES["lso-01"]).returncode == 0
    assert cli("correct", "1", "--field", "skin-type", "--value", "V", "--reason", "misread",
               "--user", "lso-01", "--db", str(db),
               passphrase=PASSPHRASES["lso-01"]).returncode == 0
    return db


def stored(db, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchone()[0]


def export(db, tmp_path, *args: str, name: str = "out"):
    out = tmp_path / name
    result = cli("export", *args, "--out", str(out), "--db", str(db))
    assert result.returncode == 0, result.stderr
    return out


def test_csv_holds_every_pulse_with_units_in_the_column_names(filled, tmp_path):
    out = export(filled, tmp_path, "--format", "csv", "--session", "1")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == stored(filled, "SELECT count(*) FROM pulses WHERE session_id = 1")
    assert {"pulse_duration_ps", "fluence_j_cm2", "spot_mm", "energy_j", "regime"} <= set(rows[0])
    assert sum(float(r["energy_j"]) for r in rows) == pytest.approx(  # each to 0.1 mJ
        stored(filled, "SELECT sum(energy_j) FROM pulses WHERE session_id = 1"),
        abs=len(rows) * 0.00005)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    events = list(csv.DictReader(export(filled, tmp_path, "--format", "csv", "--session", "1",
                                        "--table", "events", name="ev.csv").open()))
    assert [e["kind"] for e in events] == ["calibration_missing"]


def test_json_and_ndjson_carry_sessions_with_everything(filled, tmp_path):
    started = stored(filled, "SELECT started_utc FROM sessions WHERE id = 1")[:10]
    data = json.loads(export(filled, tmp_path, "--format", "json", "--from", started,
                             "--to", started).read_text())
    assert [s["id"] for s in data["sessions"]] == [1, 2]
    first = data["sessions"][0]
    assert len(first["pulses"]) == first["pulse_count"]
    assert len(first["pulses"]) == stored(filled, "SELECT count(*) FROM pulses WHERE session_id = 1")
    assert first["skin_type"] == "V" and first["corrections"][0]["old_value"] == "IV"
    assert first["signatures"][0]["status"] == "VALID"
    assert first["settings"] and first["events"]
    lines = [json.loads(line) for line in export(filled, tmp_path, "--format", "ndjson",
                                                  "--session", "2", name="o.ndjson").open()]
    kinds = [line["type"] for line in lines]
    assert kinds.count("session") == 1
    assert kinds.count("pulse") == stored(filled, "SELECT count(*) FROM pulses WHERE session_id = 2")
    assert "setting" in kinds and "event" in kinds


def test_html_is_one_printable_document_per_session(filled, tmp_path):
    text = export(filled, tmp_path, "--format", "html", "--from", "2000-01-01",
                  name="r.html").read_text()
    assert text.count('<section class="session"') == 2
    assert "@page" in text and "counter(pages)" in text
    first = text.split('<section class="session"')[1]
    for needle in ("Treatment record &middot; session 1", "Delivered", "Per setting",
                   "Calibration at start", "MISSING", "Signatures", "Dr Jane Roe",
                   '<span class="flag">VALID</span>', '<span class="flag">corrected</span>',
                   "misread", "the stored data matches the seal"):
        assert needle in first, needle
    assert "&lt;b&gt;left&lt;/b&gt; cheek &amp; chin" in first and "<b>left</b>" not in first
    assert '<span class="flag">UNSIGNED</span>' in text.split('<section class="session"')[2]


def test_progress_bar_on_request(filled, tmp_path):
    out = tmp_path / "p.csv"
    result = cli("export", "--format", "csv", "--session", "1", "--out", str(out), "--progress",
                 "--db", str(filled))
    assert result.returncode == 0 and "100%" in result.stderr and "exporting [" in result.stderr


@pytest.mark.parametrize("args,needle", [
    (["--session", "99"], "no session 99"),
    (["--from", "2026-06-30", "--to", "2026-06-01"], "backwards"),
    (["--from", "1999-01-01", "--to", "1999-01-02"], "no session matches"),
    (["--to", "2026-06-01", "--session", "1"], "--to needs --from"),
])
def test_bad_exports_exit_2_and_leave_no_file(filled, tmp_path, args, needle):
    out = tmp_path / "none.json"
    result = cli("export", "--format", "json", *args, "--out", str(out), "--db", str(filled))
    assert_clean_error(result, needle)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_csv_numbers_carry_their_columns_precision_and_pulses_name_client_and_area(
        filled, tmp_path):
    rows = list(csv.DictReader(export(filled, tmp_path, "--format", "csv", "--session", "1",
                                      name="p.csv").open()))
    client, area = stored(filled, "SELECT client_ref || '|' || area FROM sessions"
                          " WHERE id = 1").split("|")
    assert {(r["client_ref"], r["area"]) for r in rows} == {(client, area)}
    assert list(rows[0])[:4] == ["id", "session_id", "client_ref", "area"]
    places = {"energy_j": 4, "fluence_j_cm2": 3, "spot_mm": 2, "pulse_duration_ps": 0,
              "rep_rate_hz": 2}
    for row in rows:
        for column, decimals in places.items():
            text = row[column]
            assert text == "" or len(text.partition(".")[2]) == decimals, (column, text)
    first = stored(filled, "SELECT energy_j FROM pulses WHERE session_id = 1 ORDER BY id")
    assert rows[0]["energy_j"] == f"{first:.4f}"
    # Rounding each pulse to 0.1 mJ moves the sum by at most 0.05 mJ a pulse.
    assert sum(float(r["energy_j"]) for r in rows) == pytest.approx(
        stored(filled, "SELECT sum(energy_j) FROM pulses WHERE session_id = 1"),
        abs=len(rows) * 0.00005)
    sessions = list(csv.DictReader(export(filled, tmp_path, "--format", "csv", "--session", "1",
                                          "--table", "sessions", name="s.csv").open()))
    assert len(sessions[0]["total_energy_j"].partition(".")[2]) == 4
    report = cli("report", "energy", "--format", "csv", "--db", str(filled)).stdout
    for row in csv.DictReader(io.StringIO(report)):
        assert len(row["energy_j"].partition(".")[2]) == 4, row
