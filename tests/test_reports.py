"""The officer's reports on a database filled by the real recorder from simulated consoles."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime

import pytest

from laserlog.review.reports import energy_report, make_filters
from laserlog.storage.store import Store

from reviewkit import assert_clean_error, cli, counts, record_three_sessions


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """Three sessions on two consoles, with a gap of 7 pulses and an interlock fault in one."""
    folder = tmp_path_factory.mktemp("reports")
    db = folder / "laserlog.db"
    with Store(db) as store:
        record_three_sessions(folder, store)
    return db


def truth(db, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def report(db, *args: str):
    result = cli("report", *args, "--format", "json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_energy_by_session_matches_the_stored_pulses(filled):
    data = report(filled, "energy")
    expected = truth(filled, "SELECT session_id, count(*), sum(energy_j), max(fluence_j_cm2)"
                     " FROM pulses GROUP BY session_id ORDER BY session_id")
    assert [(r["session"], r["pulses"]) for r in data["rows"]] == [(s, n) for s, n, _, _ in expected]
    for row, (_, _, energy, fluence) in zip(data["rows"], expected, strict=True):
        assert row["energy_j"] == pytest.approx(energy)
        assert row["max_fluence_j_cm2"] == pytest.approx(fluence)
        assert row["regimes"] == "ps"
    assert [r["device"] for r in data["rows"]] == ["ps755-ref/R755-0001"] * 2 + ["ps1064-ref/R1064-0001"]
    total = truth(filled, "SELECT count(*), sum(energy_j) FROM pulses")[0]
    assert data["total"]["pulses"] == total[0]
    assert data["total"]["energy_j"] == pytest.approx(total[1])


def test_energy_per_client_and_area_sums_across_sessions(filled):
    rows = report(filled, "energy", "--by", "client")["rows"]
    c1 = truth(filled, "SELECT count(*), sum(energy_j) FROM pulses p JOIN sessions s ON"
               " s.id = p.session_id WHERE s.client_ref = 'C-1'")[0]
    by_key = {(r["client"], r["area"]): r for r in rows}
    assert set(by_key) == {("C-1", "left cheek"), ("C-2", "forehead")}
    assert by_key["C-1", "left cheek"]["sessions"] == 2
    assert by_key["C-1", "left cheek"]["pulses"] == c1[0]
    assert by_key["C-1", "left cheek"]["energy_j"] == pytest.approx(c1[1])


def test_last_n_sessions_of_a_client(filled):
    rows = report(filled, "energy", "--client", "C-1", "--last", "1")["rows"]
    assert [r["session"] for r in rows] == [2]
    rows = report(filled, "energy", "--client", "C-1", "--last", "6")["rows"]
    assert [r["session"] for r in rows] == [1, 2]


@pytest.mark.parametrize("by,keys", [
    ("device", {"ps755-ref/R755-0001": 2, "ps1064-ref/R1064-0001": 1}),
    ("operator", {"tech-01": 2, "tech-02": 1}),
    ("area", {"left cheek": 2, "forehead": 1}),
])
def test_energy_grouped(filled, by, keys):
    rows = report(filled, "energy", "--by", by)["rows"]
    assert {r[by]: r["sessions"] for r in rows} == keys
    assert sum(r["pulses"] for r in rows) == truth(filled, "SELECT count(*) FROM pulses")[0][0]


def test_energy_by_day_week_month_counts_in_the_machine_zone_without_a_site_zone(filled):
    started = truth(filled, "SELECT started_utc FROM sessions ORDER BY id")[0][0]
    day = datetime.fromisoformat(started.replace("Z", "+00:00")).astimezone()
    year, week, _ = day.isocalendar()
    for by, key in (("day", day.date().isoformat()), ("week", f"{year}-W{week:02d}"),
                    ("month", day.strftime("%Y-%m"))):
        rows = report(filled, "energy", "--by", by)["rows"]
        assert [(r[by], r["sessions"]) for r in rows] == [(key, 3)]
    assert report(filled, "energy", "--from", started[:10], "--to", started[:10])["total"][
        "sessions"] == 3
    assert report(filled, "energy", "--to", "2000-01-01")["rows"] == []


def test_area_narrows_every_report_a_client_narrows(filled):
    assert [r["session"] for r in report(filled, "energy", "--area", " Left Cheek")["rows"]] \
        == [1, 2]
    assert [r["session"] for r in report(filled, "energy", "--area", "forehead")["rows"]] == [3]
    assert report(filled, "energy", "--by", "day", "--area", "left cheek")["total"][
        "sessions"] == 2
    cheek = report(filled, "faults", "--area", "left cheek")["rows"]
    assert {r["session"] for r in cheek} <= {1, 2} and "gap" in {r["kind"] for r in cheek}
    assert "gap" not in {r["kind"] for r in report(filled, "faults", "--area", "forehead")["rows"]}
    assert [r["session"] for r in report(filled, "signoffs", "--unsigned", "--area",
                                         "forehead")["rows"]] == [3]
    assert report(filled, "limits", "--area", "nose")["rows"] == []


def test_faults_report_lists_and_counts_what_happened(filled):
    kinds = {r["kind"]: r for r in report(filled, "faults", "--by", "kind")["rows"]}
    assert kinds["gap"]["missing_pulses"] == 7
    assert kinds["fault"]["alarms"] == 1 and "interlock_open" in kinds
    assert kinds["calibration_missing"]["events"] == 3
    listed = report(filled, "faults", "--kind", "gap", "--kind", "fault")["rows"]
    assert {(r["session"], r["kind"]) for r in listed} == {(2, "gap"), (2, "fault")}
    assert all(r["device"] == "ps755-ref/R755-0001" for r in listed)
    per_device = report(filled, "faults", "--by", "device", "--kind", "fault")["rows"]
    assert [(r["device"], r["events"]) for r in per_device] == [("ps755-ref/R755-0001", 1)]
    only_1064 = report(filled, "faults", "--device", "R1064-0001")["rows"]
    assert {r["kind"] for r in only_1064} == {"calibration_missing"}


def test_report_tables_and_csv_carry_the_totals(filled):
    table = cli("report", "energy", "--db", str(filled))
    assert table.returncode == 0 and "TOTAL" in table.stdout and "C-2" in table.stdout
    rows = list(csv.DictReader(io.StringIO(cli("report", "energy", "--by", "client", "--format",
                                               "csv", "--db", str(filled)).stdout)))
    assert rows[-1]["client"] == "TOTAL"
    assert int(rows[-1]["pulses"]) == truth(filled, "SELECT count(*) FROM pulses")[0][0]


@pytest.mark.parametrize("option,text", [
    ("--client", "C-1' OR '1'='1"),
    ("--operator", "x'; DROP TABLE pulses; --"),
    ("--device", "ps755-ref' --"),
])
def test_sql_looking_filters_are_taken_literally(filled, option, text):
    before = counts(filled)
    for kind in ("energy", "faults", "limits", "signoffs"):
        assert report(filled, kind, option, text)["rows"] == [], kind
    assert counts(filled) == before


@pytest.mark.parametrize("args,needle", [
    (["energy", "--from", "2026-06-30", "--to", "2026-06-01"], "backwards"),
    (["faults", "--from", "yesterday"], "not a date"),
    (["energy", "--by", "planet"], "invalid choice"),
])
def test_bad_report_options_exit_2(filled, args, needle):
    assert_clean_error(cli("report", *args, "--db", str(filled)), needle)


def test_report_on_a_missing_database_is_a_clear_error(tmp_path):
    assert_clean_error(cli("report", "energy", "--db", str(tmp_path / "none.db")), "does not exist")


def test_reports_read_through_a_read_only_connection(filled):
    with Store(filled, readonly=True) as store:
        assert energy_report(store.conn, "session", make_filters()).total["sessions"] == 3
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.conn.execute("INSERT INTO users (user_id, name, role, kdf, salt_hex, key_hex,"
                               " created_utc) VALUES ('x', 'x', 'officer', 'k', 's', 'k', 'n')")


@pytest.mark.parametrize("by", ["day", "month", "device", "operator"])
@pytest.mark.parametrize("window", [{}, {"operator": "tech-01"}, {"device": "ps755-ref"}])
def test_energy_grouped_in_sqlite_equals_grouping_in_python(filled, by, window):
    from laserlog.review.reports import energy_report, make_filters

    with Store(filled, readonly=True) as store:
        f = make_filters(**window)
        fast = energy_report(store.conn, by, f)
        slow = energy_report(store.conn, by, f, in_sql=False)
    assert fast.columns == slow.columns
    assert len(fast.rows) == len(slow.rows) > 0
    for a, b in [*zip(fast.rows, slow.rows, strict=True), (fast.total, slow.total)]:
        assert a.keys() == b.keys()
        for key in a:
            if key == "energy_j":
                assert a[key] == pytest.approx(b[key], rel=1e-12)
            else:
                assert a[key] == b[key], key


def test_last_n_narrows_faults_and_signoffs_to_the_clients_latest_sessions(filled):
    every = report(filled, "faults", "--client", "C-1", "--area", "left cheek")["rows"]
    latest = report(filled, "faults", "--client", "C-1", "--area", "left cheek", "--last", "1")
    assert {r["session"] for r in every} == {1, 2}
    assert latest["rows"] and {r["session"] for r in latest["rows"]} == {2}
    expected = truth(filled, "SELECT count(*) FROM events WHERE session_id = 2")[0][0]
    assert len(latest["rows"]) == len([r for r in every if r["session"] == 2]) <= expected
    first_only = report(filled, "signoffs", "--unsigned", "--client", "C-1", "--last", "1")
    assert [r["session"] for r in first_only["rows"]] == [2]


def test_a_client_never_recorded_gets_the_nearest_names(filled):
    result = cli("report", "energy", "--client", "C-l", "--db", str(filled))
    assert result.returncode == 0
    assert "no session of client 'C-l' is recorded; did you mean" in result.stderr
    assert "'C-1'" in result.stderr
    quiet = cli("report", "energy", "--client", "C-1", "--db", str(filled))
    assert quiet.returncode == 0 and "did you mean" not in quiet.stderr


@pytest.mark.parametrize("which", [["faults"], ["limits"], ["signoffs"], ["energy", "--by", "day"]])
def test_last_on_a_central_server_is_refused_where_it_cannot_be_answered(which):
    result = cli("report", *which, "--last", "3", "--db", "postgresql://127.0.0.1:1/none")
    assert_clean_error(result, "--last with a central server works with `report energy --by "
                               "session` only")
