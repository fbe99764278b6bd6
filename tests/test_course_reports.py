"""Reports over a course: --last N counts full sessions and lists test spots apart; per-pass
figures in the energy report, the exports and plain SQL agree."""

from __future__ import annotations

import contextlib
import csv
import json
import re
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from test_courses import cli

from servekit import fill_course, served


@pytest.fixture(scope="module")
def course_db(tmp_path_factory) -> Path:
    return fill_course(tmp_path_factory.mktemp("course-reports"))


def sql(db: Path, query: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(query).fetchall()


def test_last_n_counts_full_sessions_and_lists_test_spots_apart(course_db):
    # Sessions: 1 a test spot, 2-4 the course's, 5 a one-off; the newest four full sessions
    # reach back past the test spot, which is listed apart, never one of the four.
    status, out, err = cli("report", "energy", "--client", "C-1042", "--last", "4",
                           "--format", "json", "--db", str(course_db))
    assert status == 0, err
    report = json.loads(out)
    assert [r["session"] for r in report["rows"]] == [2, 3, 4, 5]
    assert report["total"]["energy_j"] == pytest.approx(sql(
        course_db, "SELECT sum(total_energy_j) FROM sessions WHERE id IN (2, 3, 4, 5)")[0][0])
    assert report["notes"][0] == "test spots, not counted in the last 4 sessions:"
    assert report["notes"][1].startswith("  session 1  2026-03-02T08:30Z  left cheek")
    status, out, _ = cli("report", "energy", "--client", "C-1042", "--last", "2",
                         "--db", str(course_db))
    assert status == 0 and "test spots" not in out  # the test spot is older than the two
    status, out, _ = cli("report", "faults", "--client", "C-1042", "--last", "4",
                         "--kind", "pass", "--format", "json", "--db", str(course_db))
    assert status == 0 and {r["session"] for r in json.loads(out)["rows"]} == {2}


def test_per_pass_figures_agree_in_report_exports_and_sql(course_db, tmp_path):
    expected = [(session, number, sub_area, n, round(energy, 4), round(mean, 3),
                 round(high, 3)) for session, number, sub_area, n, energy, mean, high in sql(
        course_db, "SELECT pp.session_id, pp.pass_number, pp.sub_area, count(*),"
        " sum(p.energy_j), avg(p.fluence_j_cm2), max(p.fluence_j_cm2) FROM pulse_passes pp"
        " JOIN pulses p ON p.id = pp.pulse_id WHERE pp.pass_number IS NOT NULL"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2")]
    assert [e[1] for e in expected] == [1, 2] and all(e[3] for e in expected)
    status, out, err = cli("report", "energy", "--by", "pass", "--format", "json",
                           "--db", str(course_db))
    assert status == 0, err
    report = json.loads(out)
    assert [(r["session"], r["pass"], r["sub_area"], r["pulses"], round(r["energy_j"], 4),
             round(r["mean_fluence_j_cm2"], 3), round(r["max_fluence_j_cm2"], 3))
            for r in report["rows"]] == expected
    assert report["notes"] == ["4 of the 5 sessions have no pass marked"]

    out_csv = tmp_path / "passes.csv"
    assert cli("export", "--format", "csv", "--table", "passes", "--from", "2026-01-01",
               "--out", str(out_csv), "--no-progress", "--db", str(course_db))[0] == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [(int(r["session"]), int(r["pass"]), r["sub_area"], int(r["pulses"]),
             float(r["energy_j"]), float(r["mean_fluence_j_cm2"]),
             float(r["max_fluence_j_cm2"])) for r in rows] == expected
    assert all(len(r["mean_fluence_j_cm2"].split(".")[1]) == 3 for r in rows)  # 0.001 J/cm²

    out_json = tmp_path / "session.json"
    assert cli("export", "--format", "json", "--session", "2", "--out", str(out_json),
               "--no-progress", "--db", str(course_db))[0] == 0
    passes = json.loads(out_json.read_text())["sessions"][0]["passes"]
    assert [(p["pass"], p["pulses"]) for p in passes] == [(e[1], e[3]) for e in expected]


def test_web_last_n_counts_full_sessions_and_lists_test_spots_apart(course_db):
    with served(course_db) as base:
        with urllib.request.urlopen(f"{base}/-/laserlog/client?client=C-1042&last=4",
                                    timeout=30) as reply:
            html = reply.read().decode()
    rows = [int(n) for n in re.findall(r'<tr id="session-(\d+)"', html)]
    assert rows == [2, 3, 4, 5]
    assert re.search(r'id="answer-sessions">4<', html)
    assert re.findall(r'<tr id="test-spot-(\d+)"', html) == ["1"]
    assert 'href="/-/laserlog/courses/1"' in html


def test_the_printable_record_says_what_each_session_was(course_db, tmp_path):
    kinds = dict(sql(course_db, "SELECT session_id, kind FROM session_kind"))
    said = {}
    for session in kinds:
        out = tmp_path / f"s{session}.html"
        status, _, err = cli("export", "--format", "html", "--session", str(session),
                             "--out", str(out), "--db", str(course_db))
        assert status == 0, err
        said[session] = re.search(r"<td>Kind</td><td>(.*?)</td>", out.read_text()).group(1)
    early = dict(sql(course_db, "SELECT session_id, override_by FROM session_kind"))
    for session, kind in kinds.items():
        start = {"one_off": "one-off (no course)", "test_spot": "test spot of course 1",
                 "course": "full session of course 1"}[kind]
        assert said[session].startswith(start), said[session]
        assert ("EARLY</span> authorised by " in said[session]) == bool(early[session])
    assert any(early.values()) and set(kinds.values()) == {"one_off", "test_spot", "course"}
