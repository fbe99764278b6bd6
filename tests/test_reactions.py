"""After the session: immediate endpoints and adverse events, through the real command line.

Sessions are recorded from the simulator on a real pty into a real SQLite file. The clock the
rules read (`laserlog.recording.courses.now`) is moved from the test side only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_courses import Clock, cli, rows

from laserlog.recording import courses
from laserlog.storage.verify import verify_database

from conftest import START, copy_with_anchor

PASSPHRASE = "tech seven passphrase"


AFTER_TABLES = ("assessments", "adverse_events", "adverse_event_changes", "outcomes")


def counts(db: Path) -> tuple[int, ...]:
    return tuple(rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in (*AFTER_TABLES, "chain"))


def one_message(status: int, err: str) -> None:
    assert status == 2, err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(courses, "now", moved)
    return moved


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with one recorded session (tech-07, C-1042) and tech-07 as a user."""
    from laserlog.config.profile import open_profile
    from laserlog.review.users import add_user
    from laserlog.sim.engine import Simulator
    from laserlog.storage.store import Store

    folder = tmp_path_factory.mktemp("reactions")
    db = folder / "laserlog.db"
    sim = Simulator(open_profile("ps755-ref"), folder / "console", seed=3, rate_hz=40.0).start()
    try:
        sim.console.firing = True
        status, _, err = cli("record", "--profile", "ps755-ref", "--port", str(sim.path),
                             "--operator", "tech-07", "--client", "C-1042", *START,
                             "--pulses", "10", "--db", str(db))
        assert status == 0, err
    finally:
        sim.stop()
    with Store(db) as store:
        add_user(store, "tech-07", "Tech Seven", "technician", PASSPHRASE)
    return db


@pytest.fixture
def db(recorded: Path, tmp_path: Path) -> Path:
    """A fresh copy of the recorded database (and its anchor) for one test."""
    copy = tmp_path / "laserlog.db"
    copy_with_anchor(recorded, copy)
    return copy


def test_an_assessment_within_24_hours_is_immediate_and_a_later_one_a_correction(db, clock):
    clock.advance(hours=1)
    status, out, err = cli("assess", "1", "--erythema", "2", "--oedema", "1", "--pain", "4",
                           "--purpura", "--note", "marked redness", "--db", str(db))
    assert status == 0, err
    assert "assessment 1 of session 1 recorded: erythema 2, oedema 1, pain 4/10, purpura" in out
    clock.advance(hours=30)
    status, out, err = cli("assess", "1", "--erythema", "1", "--oedema", "0", "--pain", "1",
                           "--db", str(db))
    assert status == 0, err
    assert "as a CORRECTION (31 h after the session's end)" in out
    assert rows(db, "SELECT erythema, oedema, pain_nrs, blister, purpura, correction, note"
                    " FROM assessments ORDER BY id") == [
        (2, 1, 4, 0, 1, 0, "marked redness"), (1, 0, 1, 0, 0, 1, None)]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), \
            contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE assessments SET erythema = 0")
    assert verify_database(db).ok


def test_an_assessment_of_a_pass_the_session_does_not_have_is_refused(db, clock):
    before = counts(db)
    status, _, err = cli("assess", "1", "--erythema", "1", "--oedema", "1", "--pain", "1",
                         "--pass", "2", "--db", str(db))
    one_message(status, err)
    assert "--pass 2: session 1 has no pass 2 (it has no passes marked)" in err
    assert counts(db) == before


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(erythema=st.integers(-2, 5), oedema=st.integers(-2, 5), pain=st.integers(-3, 13),
       session=st.integers(1, 3))
def test_assess_takes_exactly_the_scales_and_known_sessions(db, clock, erythema, oedema, pain,
                                                            session):
    before = counts(db)
    status, _, err = cli("assess", str(session), "--erythema", str(erythema), "--oedema",
                         str(oedema), "--pain", str(pain), "--db", str(db))
    good = 0 <= erythema <= 3 and 0 <= oedema <= 3 and 0 <= pain <= 10 and session == 1
    if good:
        assert status == 0, err
        assert counts(db)[0] == before[0] + 1
    else:
        one_message(status, err)
        assert counts(db) == before
        if session != 1 and 0 <= erythema <= 3 and 0 <= oedema <= 3 and 0 <= pain <= 10:
            assert f"session {session}: no such session in {db}" in err


def test_an_adverse_event_is_signed_by_its_reporter_then_updated_and_retracted(
        db, clock, monkeypatch):
    import csv
    import io
    import json

    from laserlog.review.reactions import signature_holds
    from laserlog.review.users import find_user
    from laserlog.storage.store import Store

    monkeypatch.setenv("LASERLOG_PASSPHRASE", PASSPHRASE)
    clock.advance(days=20)
    onset = (clock.at - timedelta(days=5)).date().isoformat()
    status, out, err = cli("adverse", "add", "--session", "1", "--kind", "pih", "--onset",
                           onset, "--seriousness", "non-serious", "--note", "patchy",
                           "--db", str(db))
    assert status == 0, err
    assert f"adverse event 1: pih (non-serious) after session 1, onset {onset}" in out
    stored = rows(db, "SELECT session_id, kind, area, by_user_id FROM adverse_events")
    assert stored == [(1, "pih", "left cheek", "tech-07")]
    with Store(db, readonly=True) as store:
        key = find_user(store, "tech-07").public_key
        cur = store.conn.execute("SELECT * FROM adverse_events")
        row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    assert signature_holds(key, "adverse_events", row)
    assert not signature_holds(key, "adverse_events", {**row, "kind": "burn"})

    assert cli("adverse", "update", "1", "--outcome", "resolving", "--date",
               clock.at.date().isoformat(), "--db", str(db))[0] == 0
    status, out, _ = cli("adverse", "list", "--db", str(db))
    assert f"resolving {clock.at.date().isoformat()}" in out
    listed = {fmt: cli("adverse", "list", "--format", fmt, "--db", str(db))[1]
              for fmt in ("csv", "json")}
    (as_json,) = json.loads(listed["json"])["rows"]
    (as_csv,) = list(csv.DictReader(io.StringIO(listed["csv"])))
    assert list(as_json) == list(as_csv)  # the same columns, in the same order
    assert (as_json["kind"], as_json["outcome"], as_json["retracted"]) == (
        "pih", "resolving", False)
    assert as_json["onset_date"] == onset == as_csv["onset_date"]
    assert cli("adverse", "retract", "1", "--reason", "wrong client", "--db", str(db))[0] == 0
    assert cli("adverse", "list", "--db", str(db))[1].strip() == "no adverse events"
    retracted = json.loads(cli("adverse", "list", "--all", "--format", "json", "--db",
                               str(db))[1])["rows"]
    assert [(r["id"], r["retracted"]) for r in retracted] == [(1, True)]
    assert rows(db, "SELECT change, outcome, reason FROM adverse_event_changes ORDER BY id") == [
        ("update", "resolving", None), ("retraction", None, "wrong client")]
    status, _, err = cli("adverse", "update", "1", "--outcome", "resolved", "--date",
                         clock.at.date().isoformat(), "--db", str(db))
    one_message(status, err)
    assert "adverse event 1 was retracted" in err
    assert verify_database(db).ok


@pytest.mark.parametrize(("args", "expected"), [
    (["--session", "9"], "session 9: no such session in"),
    (["--onset", "future"], "in the future (today is"),
    (["--onset", "before"], "before session 1"),
    (["--onset", "2026-13-01"], "--onset '2026-13-01' is not a date; expected YYYY-MM-DD"),
    (["--kind", "sunburn"], "argument --kind: invalid choice: 'sunburn'"),
    (["--by", "nobody"], "unknown user 'nobody'"),
    (["--pass", "1"], "--pass 1: session 1 has no pass 1"),
])
def test_bad_adverse_input_is_one_message_and_nothing_written(db, clock, monkeypatch, args,
                                                              expected):
    monkeypatch.setenv("LASERLOG_PASSPHRASE", PASSPHRASE)
    given_ = {"--session": "1", "--kind": "blister", "--seriousness": "serious",
              "--onset": clock.at.date().isoformat()}
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    if pairs.get("--onset") == "future":
        pairs["--onset"] = (clock.at + timedelta(days=1)).date().isoformat()
    if pairs.get("--onset") == "before":
        pairs["--onset"] = (clock.at - timedelta(days=2)).date().isoformat()
    given_.update(pairs)
    before = counts(db)
    status, _, err = cli("adverse", "add", *[x for kv in given_.items() for x in kv],
                         "--db", str(db))
    one_message(status, err)
    assert expected in err
    assert counts(db) == before


def test_a_wrong_passphrase_writes_nothing(db, clock, monkeypatch):
    monkeypatch.setenv("LASERLOG_PASSPHRASE", "not it")
    before = counts(db)
    status, _, err = cli("adverse", "add", "--session", "1", "--kind", "burn", "--onset",
                         clock.at.date().isoformat(), "--seriousness", "serious", "--db",
                         str(db))
    one_message(status, err)
    assert "wrong passphrase for user tech-07" in err
    assert counts(db) == before


# -- the officer's dose-safety report ------------------------------------------------------------
def test_the_adverse_report_groups_by_skin_type_and_fluence_band_and_agrees_with_sql(
        simulate, tmp_path, clock, monkeypatch):
    import json

    from laserlog.review.users import add_user
    from laserlog.storage.store import Store

    db = tmp_path / "laserlog.db"
    sim = simulate("ps755-ref", seed=5, rate_hz=40.0)
    sim.console.firing = True
    energy = sim.console.params["energy"]
    for skin, share in (("III", 0.5), ("III", 1.0), ("V", 0.5), ("V", 1.0)):
        sim.console.params["energy"] = energy * share
        start = [*START]
        start[start.index("--skin-type") + 1] = skin
        status, _, err = cli("record", "--profile", "ps755-ref", "--port", str(sim.path),
                             "--operator", "tech-07", "--client", "C-1042", *start,
                             "--pulses", "6", "--db", str(db))
        assert status == 0, err
    with Store(db) as store:
        add_user(store, "tech-07", "Tech Seven", "technician", PASSPHRASE)
    monkeypatch.setenv("LASERLOG_PASSPHRASE", PASSPHRASE)
    today = clock.at.date().isoformat()
    for session, kind in ((4, "pih"), (4, "blister"), (2, "other")):
        assert cli("adverse", "add", "--session", str(session), "--kind", kind, "--onset",
                   today, "--seriousness", "non-serious", "--db", str(db))[0] == 0
    assert cli("adverse", "retract", "3", "--reason", "typed in error", "--db", str(db))[0] == 0

    # Site bands split the low-energy sessions from the high-energy ones.
    means = dict(rows(db, "SELECT session_id, avg(fluence_j_cm2) FROM pulses GROUP BY 1"))
    edge = (means[1] + means[2]) / 2
    (tmp_path / "site.toml").write_text(f"[adverse]\nfluence_bands_j_cm2 = [{edge:.4f}]\n")
    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    status, out, err = cli("report", "adverse", "--by", "skin-type,fluence-band", "--format",
                           "json", "--db", str(db))
    assert status == 0, err
    data = json.loads(out)
    got = {(r["skin_type"], r["fluence_band"]): r for r in data["rows"]}
    assert set(got) == {("III", f"<{edge:.4f}".rstrip("0")), ("III", f">={edge:.4f}".rstrip("0")),
                        ("V", f"<{edge:.4f}".rstrip("0")), ("V", f">={edge:.4f}".rstrip("0"))}
    high_v = got["V", f">={edge:.4f}".rstrip("0")]
    assert (high_v["sessions"], high_v["with_adverse"], high_v["share"]) == (1, 1, 1.0)
    assert high_v["events"] == "blister 1, pih 1"
    assert high_v["dose_mean_j_cm2"] == pytest.approx(means[4])
    assert high_v["energy_j"] == pytest.approx(
        rows(db, "SELECT total_energy_j FROM sessions WHERE id = 4")[0][0])
    assert got["III", f">={edge:.4f}".rstrip("0")]["with_adverse"] == 0  # retracted
    assert data["total"]["sessions"] == 4 and data["total"]["with_adverse"] == 1
    assert any("from the site file" in n for n in data["notes"])

    status, out, _ = cli("report", "adverse", "--by", "fluence-band", "--kind", "pih",
                         "--db", str(db), "--format", "csv")
    assert status == 0 and out.splitlines()[0].startswith("fluence_band,sessions,with_adverse")

    # Without site bands: quartiles per wavelength, their edges printed.
    (tmp_path / "site.toml").unlink()
    status, out, _ = cli("report", "adverse", "--by", "fluence-band", "--db", str(db))
    assert status == 0 and "755 nm: Q1 <=" in out and "755 nm Q4" in out, out

    status, _, err = cli("report", "adverse", "--by", "skin-type,colour", "--db", str(db))
    one_message(status, err)
    assert "--by 'colour' is unknown" in err


def test_the_adverse_report_reads_stored_doses_equal_to_those_from_the_pulses(db, monkeypatch):
    from laserlog.review.adverse_report import session_doses
    from laserlog.storage import doses
    from laserlog.storage.store import Store

    mean = rows(db, "SELECT avg(fluence_j_cm2) FROM pulses WHERE session_id = 1")[0][0]
    assert rows(db, "SELECT session_id, pulse_count, mean_fluence_j_cm2, wavelength_nm,"
                    " pass_fluence_j_cm2 FROM session_doses") == [(1, 10, mean, 755.0, None)]
    with Store(db, readonly=True) as store:
        stored = session_doses(store.conn)
        monkeypatch.setattr(doses, "CURRENT_ROW", "0 = 1")  # as for sessions without rows
        assert session_doses(store.conn) == stored
    assert stored[0].dose_j_cm2 == round(mean, 9)


def test_pass_means_follow_the_pulse_passes_view(tmp_path):
    """Pulses before the first mark belong to no pass, a repeated pass number is one pass,
    and of two marks at the same moment the later recorded wins."""
    from laserlog.storage import doses
    from laserlog.storage.store import INSERT_PULSE, Store

    with Store(tmp_path / "passes.db") as store:
        sid = store.create_session(device_id=None, profile_id="ps755-ref", port="p",
                                   operator_id="t", client_ref="C-1", area=None,
                                   skin_type="III", eyewear_checked=True, checklist_json=None)
        conn = store.conn
        with conn:
            conn.executemany(INSERT_PULSE, [(sid, k, 100.0 + k, 650.0, "ps", 0.1, 1.0 + k % 7,
                                             4.0, 755.0, 5.0, 1, None, "") for k in range(60)])
            conn.executemany("INSERT INTO events (session_id, received_unix_s, kind, code)"
                             " VALUES (?, ?, 'pass', ?)",
                             [(sid, 110.0, 1), (sid, 120.0, 9), (sid, 120.0, 2), (sid, 130.0, 1),
                              (sid, 140.0, None), (sid, 150.0, 3)])
        by_view = conn.execute(
            "SELECT max(f) FROM (SELECT avg(p.fluence_j_cm2) AS f FROM pulse_passes pp"
            " JOIN pulses p ON p.id = pp.pulse_id WHERE pp.pass_number IS NOT NULL"
            " GROUP BY pp.pass_number)").fetchone()[0]
        figures = doses.compute(conn, [sid])[sid]
    assert figures.pass_fluence_j_cm2 == pytest.approx(by_view, rel=1e-12)
    assert figures.dose_j_cm2 == figures.pass_fluence_j_cm2


@pytest.mark.parametrize("attack", ["edit", "append"])
def test_a_dose_changed_behind_our_back_fails_verify_naming_the_session(db, attack):
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        if attack == "edit":
            trigger = rows(db, "SELECT sql FROM sqlite_master WHERE name ="
                               " 'session_doses_no_update'")[0][0]
            conn.execute("DROP TRIGGER session_doses_no_update")
            conn.execute("UPDATE session_doses SET mean_fluence_j_cm2 = mean_fluence_j_cm2 * 1.5")
            conn.execute(trigger)
        else:  # a newer row with the session's counts: the one the report would read
            conn.execute("INSERT INTO session_doses (session_id, pulse_count, event_count,"
                         " mean_fluence_j_cm2, wavelength_nm) SELECT session_id, pulse_count,"
                         " event_count, mean_fluence_j_cm2 * 1.5, wavelength_nm"
                         " FROM session_doses")
    report = verify_database(db)
    assert not report.ok
    found = [f for f in report.findings if f.kind == "session_doses"]
    assert len(found) == 1 and "session 1 mean_fluence_j_cm2" in found[0].message, found


# -- a course end to end: reactions, a later PIH, two follow-ups; outcomes imported ------------
def test_a_course_with_reactions_a_later_pih_and_two_follow_ups(simulate, tmp_path, clock,
                                                                 monkeypatch):
    import json

    from laserlog.review.users import add_user
    from laserlog.storage.store import Store

    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    db = str(tmp_path / "laserlog.db")
    sim = simulate("ps755-ref", seed=6, rate_hz=40.0)
    sim.console.firing = True
    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "pores", "--sessions", "3", "--interval", "0-42", "--db", db)[:2] == (0, "1\n")
    status, _, err = cli("record", "--profile", "ps755-ref", "--port", str(sim.path),
                         "--operator", "tech-07", "--client", "C-1042", *START, "--course", "1",
                         "--pulses", "8", "--db", db)
    assert status == 0, err
    with Store(db) as store:
        add_user(store, "tech-07", "Tech Seven", "technician", PASSPHRASE)
    monkeypatch.setenv("LASERLOG_PASSPHRASE", PASSPHRASE)
    baseline = clock.at.date().isoformat()
    assert cli("outcome", "add", "--course", "1", "--scale", "pore", "--score", "3", "--date",
               baseline, "--db", db)[0] == 0
    clock.advance(minutes=20)
    assert cli("assess", "1", "--erythema", "2", "--oedema", "1", "--pain", "5", "--db",
               db)[0] == 0
    clock.advance(days=21)
    status, _, err = cli("adverse", "add", "--session", "1", "--kind", "pih", "--onset",
                         (clock.at - timedelta(days=3)).date().isoformat(), "--seriousness",
                         "non-serious", "--db", db)
    assert status == 0, err
    follow_1 = clock.at.date().isoformat()
    assert cli("outcome", "add", "--course", "1", "--scale", "gais", "--score", "4", "--date",
               follow_1, "--by", "tech-07", "--db", db)[0] == 0
    clock.advance(days=30)
    follow_2 = clock.at.date().isoformat()
    csv_file = tmp_path / "skin.csv"
    csv_file.write_text(f"client,date,area,metric,value\nC-1042,{follow_2},left cheek,"
                        f"pore_count,812\nC-1042,{follow_2},Left Cheek,spots,14.5\n")
    status, out, err = cli("outcome", "import", str(csv_file), "--db", db)
    assert (status, out.strip()) == (0, f"imported 2 outcome row(s) from {csv_file}"), err
    assert cli("adverse", "update", "1", "--outcome", "resolving", "--date", follow_2,
               "--db", db)[0] == 0

    status, out, err = cli("course", "show", "1", "--db", db)
    assert status == 0, err
    energy = rows(Path(db), "SELECT total_energy_j FROM sessions WHERE id = 1")[0][0]
    assert "outcomes" in out and "pore_count" in out and "gais" in out
    line = next(x for x in out.splitlines() if "pore_count" in x)
    assert f"{energy:.3f}" in line and "812" in line

    status, out, _ = cli("report", "adverse", "--by", "indication", "--format", "json",
                         "--db", db)
    data = json.loads(out)
    mean = rows(Path(db), "SELECT avg(fluence_j_cm2) FROM pulses WHERE session_id = 1")[0][0]
    assert data["rows"] == [{"indication": "pores", "sessions": 1, "with_adverse": 1,
                             "share": 1.0, "events": "pih 1",
                             "dose_mean_j_cm2": pytest.approx(mean),
                             "dose_max_j_cm2": pytest.approx(mean),
                             "adverse_dose_mean_j_cm2": pytest.approx(mean),
                             "energy_j": pytest.approx(energy)}]
    assert rows(Path(db), "SELECT count(*) FROM outcomes WHERE course_id = 1")[0][0] == 4
    # The printed record of the session carries its reactions and the course's outcomes.
    out_html = tmp_path / "s1.html"
    assert cli("export", "--format", "html", "--session", "1", "--out", str(out_html),
               "--db", db)[0] == 0
    page = out_html.read_text()
    reactions = page[page.index("<h2>Reactions</h2>"):page.index("<h2>Signatures</h2>")]
    assert "erythema 2, oedema 1, pain 5/10" in reactions and "as recorded" in reactions
    assert "#1 pih" in reactions and "outcome resolving (" + follow_2 + ")" in reactions
    assert f"{follow_2}: resolving" in reactions
    assert "Outcomes of course 1" in reactions
    printed = [line for line in reactions.split("<tr>") if "<td>" in line
               and ("gais" in line or "pore" in line)]
    assert len(printed) == 3 and any(">812<" in line and "import skin.csv" in line
                                     for line in printed)
    assert any(">4<" in line and "tech-07" in line for line in printed if "gais" in line)
    assert rows(Path(db), "SELECT outcome FROM adverse_event_state") == [("resolving",)]
    assert verify_database(Path(db)).ok


@pytest.mark.parametrize(("content", "expected"), [
    (b"client,date,area,value\nC-1042,2026-01-02,cheek,3\n",
     "line 1: missing column(s) metric; expected exactly client,date,area,metric,value"),
    (b"client,date,area,metric,value,device\nC-1042,2026-01-02,cheek,pores,3,x\n",
     "line 1: extra column(s) device"),
    (b"client,date,area,metric,value\nC-1042,2026-01-02,cheek,pores,3\nC-1042,2026-01-0\xe9,"
     b"cheek,pores,3\n", "line 3: not UTF-8 text"),
    (b"client,date,area,metric,value\nC-1042,2026-01-02,cheek,pores,lots\n",
     "line 2: value 'lots' is not a finite number"),
    (b"client,date,area,metric,value\nC-1042,2099-01-02,cheek,pores,1\n",
     "line 2: date 2099-01-02 is in the future"),
    (b"client,date,area,metric,value\n" + b"C-1042,2026-01-02,cheek,pores,1\n" * 100_001,
     "line 100002: more than 100000 rows"),
])
def test_a_bad_import_names_the_file_and_line_and_writes_nothing(db, clock, tmp_path, content,
                                                                 expected):
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    before = counts(db)
    status, _, err = cli("outcome", "import", str(path), "--db", str(db))
    one_message(status, err)
    assert f"{path}, {expected}" in err or f"{path}: {expected}" in err, err
    assert "nothing was written" in err
    assert counts(db) == before


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scale=st.sampled_from(["gais", "pore", "satisfaction"]), score=st.integers(-2, 7))
def test_a_score_outside_its_scale_is_refused(db, clock, scale, score):
    from laserlog.domain.reactions import SCALES

    if not rows(db, "SELECT 1 FROM courses"):
        assert cli("course", "new", "--client", "C-1042", "--area", "left cheek",
                   "--indication", "pores", "--sessions", "3", "--interval", "21-42",
                   "--db", str(db))[0] == 0
    before = counts(db)
    status, _, err = cli("outcome", "add", "--course", "1", "--scale", scale, "--score",
                         str(score), "--date", clock.at.date().isoformat(), "--db", str(db))
    low, high = SCALES[scale]
    if low <= score <= high:
        assert status == 0, err
    else:
        one_message(status, err)
        assert f"--score {score}: outside the {scale} scale ({low}-{high})" in err
        assert counts(db) == before


def _all_counts(db: Path) -> dict[str, int]:
    tables = [r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: rows(db, f'SELECT count(*) FROM "{t}"')[0][0] for t in tables}


NOT_UTF8 = os.fsdecode(b"left \xff cheek")  # what an argument of undecodable bytes becomes


@pytest.mark.parametrize("argv", [
    ("assess", "1", "--erythema", "1", "--oedema", "1", "--pain", "1", "--note", NOT_UTF8),
    ("assess", "1", "--erythema", "1", "--oedema", "1", "--pain", "1", "--note", "a\x00b"),
    ("assess", "1", "--erythema", "1", "--oedema", "1", "--pain", "1", "--user", ""),
    ("adverse", "add", "--session", "1", "--kind", "pih", "--seriousness", "serious",
     "--onset", "{today}", "--area", "a\x00b"),
    ("adverse", "add", "--session", "1", "--kind", "pih", "--seriousness", "serious",
     "--onset", "{today}", "--note", "x" * 100_000),
    ("adverse", "add", "--session", "1", "--kind", "pih", "--seriousness", "serious",
     "--onset", "{today}", "--by", ""),
    ("adverse", "add", "--session", "1", "--kind", "pih", "--seriousness", "serious",
     "--onset", "{week}"),
    ("course", "new", "--client", "C-1042", "--area", NOT_UTF8, "--indication", "pores",
     "--sessions", "3", "--interval", "21-42"),
    ("course", "new", "--client", "C-1042", "--area", "cheek", "--indication", "pores",
     "--sessions", "3", "--interval", "\uff12\uff11-\uff14\uff12"),
    ("course", "new", "--client", "C-1042", "--area", "cheek", "--indication", "pores",
     "--sessions", "3", "--interval", "21-42", "--console", ""),
    ("course", "list", "--client", NOT_UTF8),
    ("course", "show", "\u00b2"),
    ("outcome", "add", "--course", "1", "--scale", "gais", "--score", "\uff14",
     "--date", "{today}"),
    ("outcome", "add", "--course", "1", "--scale", "gais", "--score", "3",
     "--date", "{week}"),
])
def test_arguments_that_are_not_plain_text_or_ascii_numbers_are_one_message(db, clock, argv):
    if argv[0] == "outcome":
        assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
                   "pores", "--sessions", "3", "--interval", "21-42", "--db", str(db))[0] == 0
    before = _all_counts(db)
    year, week, day = clock.at.isocalendar()
    given = {"{today}": clock.at.date().isoformat(), "{week}": f"{year}-W{week:02d}-{day}"}
    status, _, err = cli(*[given.get(a, a) for a in argv], "--db", str(db))
    one_message(status, err)
    assert "never writes" not in err and len(err) < 2_000, err
    assert _all_counts(db) == before
    assert verify_database(db).ok


@pytest.mark.parametrize("argv", [
    ("course", "close", "1", "--reason", "moved"),
    ("course", "attach", "1", "2"),
    ("course", "readout", "1"),
])
def test_course_commands_that_write_never_create_a_missing_database(tmp_path, argv):
    missing = tmp_path / "typo.db"
    status, _, err = cli(*argv, "--db", str(missing))
    one_message(status, err)
    assert "does not exist" in err and not missing.exists()


def _import(db: Path, path: Path) -> tuple[int, str]:
    before = _all_counts(db)
    status, _, err = cli("outcome", "import", str(path), "--db", str(db))
    if status != 0:
        one_message(status, err)
        assert _all_counts(db) == before
    return status, err


def test_an_import_from_a_fifo_is_refused_without_waiting_for_a_writer(db, tmp_path):
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    status, err = _import(db, fifo)
    assert status == 2 and f"{fifo}: a FIFO, not a CSV file" in err


@pytest.mark.parametrize(("content", "expected"), [
    (f"client,date,area,metric,value\nC-1042,2026-01-02,{'x' * 200_000},pores,3\n",
     "line 2: longer than"),
    ('client,date,area,metric,value\nC-1042,2026-01-02,"left\n\n\ncheek",pores,3\n'
     "C-1042,2026-01-02,cheek,pores,lots\n", "line 6: value 'lots' is not a finite number"),
    ("client,date,area,metric,value\nJohn Smith,2026-01-02,cheek,pores,3\n",
     "line 2: client reference 'John Smith' is not a pseudonym"),
    ("client,date,area,metric,value\nC-1042,2026-01-02,a\x00b,pores,3\n",
     "line 2: area holds control character U+0000"),
    ("client,date,area,metric,value\nC-1042,2026-01-02,cheek,pores,1_0\n",
     "line 2: value '1_0' is not a finite number"),
    ("client,date,area,metric,value\nC-1042,2026-W01-1,cheek,pores,1\n",
     "line 2: '2026-W01-1' is not a date"),
    ("client,date,area,metric,value\nC-1042,2026-01-02,cheek," + "m" * 81 + ",1\n",
     "line 2: a metric of at most 80"),
])
def test_an_import_row_that_cannot_be_stored_as_given_is_refused_naming_its_line(
        db, clock, tmp_path, content, expected):
    path = tmp_path / "in.csv"
    path.write_text(content)
    status, err = _import(db, path)
    assert status == 2 and f"{path}, {expected}" in err, err


def test_an_import_stops_at_the_row_past_the_limit_without_reading_the_rest(
        db, clock, tmp_path, monkeypatch):
    from laserlog.review import outcomes

    monkeypatch.setattr(outcomes, "MAX_ROWS", 3)
    read = []
    real_lines = outcomes._lines

    def counted(*args):  # type: ignore[no-untyped-def]
        for line in real_lines(*args):
            read.append(line)
            yield line
    monkeypatch.setattr(outcomes, "_lines", counted)
    path = tmp_path / "in.csv"
    path.write_text("client,date,area,metric,value\n" + "C-1042,2026-01-02,cheek,pores,1\n" * 50)
    status, err = _import(db, path)
    assert status == 2 and f"{path}, line 5: more than 3 rows" in err
    assert len(read) == 5


def test_a_file_name_that_is_not_utf8_is_kept_readable_with_the_rows(db, clock, tmp_path):
    path = tmp_path / os.fsdecode(b"analyser-\xff.csv")
    path.write_text("client,date,area,metric,value\nC-1042,2026-01-02,cheek,pores,3\n")
    status, err = _import(db, path)
    assert status == 0, err
    assert rows(db, "SELECT source_file FROM outcomes") == [("analyser-\ufffd.csv",)]
    assert verify_database(db).ok


def test_an_outcome_dated_today_in_the_sites_zone_is_not_in_the_future(db, clock, monkeypatch):
    monkeypatch.setenv("LASERLOG_SITE", str(db.with_name("site.toml")))
    db.with_name("site.toml").write_text('timezone = "Pacific/Auckland"\n')
    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "pores", "--sessions", "3", "--interval", "21-42", "--db", str(db))[0] == 0
    clock.at = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # 3 March, 09:00 in Auckland
    status, _, err = cli("outcome", "add", "--course", "1", "--scale", "gais", "--score", "4",
                         "--date", "2026-03-03", "--db", str(db))
    assert status == 0, err


@pytest.mark.parametrize(("by", "passphrase", "expected"), [
    ("tech-07", PASSPHRASE, None),
    ("tech-07", "not it", "wrong passphrase for user tech-07; nothing was written"),
    ("nobody", PASSPHRASE, "unknown user 'nobody'"),
])
def test_an_outcome_entered_by_a_user_needs_their_passphrase(db, clock, monkeypatch, by,
                                                             passphrase, expected):
    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "pores", "--sessions", "3", "--interval", "21-42", "--db", str(db))[0] == 0
    monkeypatch.setenv("LASERLOG_PASSPHRASE", passphrase)
    before = counts(db)
    status, _, err = cli("outcome", "add", "--course", "1", "--scale", "gais", "--score", "4",
                         "--date", clock.at.date().isoformat(), "--by", by, "--db", str(db))
    if expected is None:
        assert status == 0, err
        assert rows(db, "SELECT metric, value, user_id FROM outcomes") == [
            ("gais", 4.0, "tech-07")]
        return
    one_message(status, err)
    assert expected in err
    assert counts(db) == before


def test_an_outcome_dated_long_before_its_course_or_an_analysis_before_2000_is_refused(
        db, clock, tmp_path):
    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "pores", "--sessions", "3", "--interval", "21-42", "--db", str(db))[0] == 0
    before = counts(db)
    status, _, err = cli("outcome", "add", "--course", "1", "--scale", "gais", "--score", "3",
                         "--date", "0001-01-01", "--db", str(db))
    one_message(status, err)
    assert "more than 366 days before course 1 was planned" in err
    path = tmp_path / "old.csv"
    path.write_text("client,date,area,metric,value\nC-1042,1999-12-31,cheek,pores,3\n")
    status, _, err = cli("outcome", "import", str(path), "--db", str(db))
    one_message(status, err)
    assert "date 1999-12-31 is before 2000-01-01" in err
    assert counts(db) == before
    baseline = (clock.at.date() - timedelta(days=30)).isoformat()  # at the consultation
    assert cli("outcome", "add", "--course", "1", "--scale", "pore", "--score", "3",
               "--date", baseline, "--db", str(db))[0] == 0
