"""Treatment courses: the plan held against the dose, through the real recorder and simulator.

The clock the course rules read (`laserlog.recording.courses.now`) is moved from the test
side only; no command takes a time.
"""

from __future__ import annotations

import contextlib
import io
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tui_support import fast_keys  # noqa: F401 (a fixture)

from laserlog.cli.main import main
from laserlog.recording import courses
from laserlog.storage.verify import verify_database

from conftest import START

SITE = """timezone = "Europe/Paris"
[courses]
test_spot_required = true
[courses.intervals]
pores = "21-42"
"""


def cli(*argv: str) -> tuple[int, str, str]:
    """Run the command line in this process; return its status, standard output and error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = main(list(argv))
        except SystemExit as exc:
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


class Clock:
    """The course rules' clock, moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    monkeypatch.setattr(courses, "now", moved)
    return moved


@pytest.fixture
def site_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    (tmp_path / "site.toml").write_text(SITE)
    return tmp_path / "laserlog.db"


def test_a_four_session_course_is_held_to_its_window_its_test_spot_and_its_dose(
        simulate, site_db, clock, monkeypatch):
    from laserlog.review.users import add_user, unlock
    from laserlog.storage.store import Store

    db = str(site_db)
    sim = simulate("ps755-ref", seed=4, rate_hz=40.0)
    sim.console.firing = True
    full_energy = sim.console.params["energy"]

    def record(*more: str, pulses: str = "12") -> tuple[int, str, str]:
        return cli("record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
                   "tech-07", "--client", "C-1042", *START, "--pulses", pulses, "--db", db,
                   *more)

    status, out, err = cli("course", "new", "--client", "C-1042", "--area", "left cheek",
                           "--indication", "pores", "--sessions", "4", "--db", db)
    assert (status, out.strip()) == (0, "1"), err
    with Store(site_db) as store:
        add_user(store, "off-1", "Officer One", "officer", "officer one passphrase")
        add_user(store, "tech-09", "Tech Nine", "technician", "tech nine passphrase",
                 by=unlock(store, "off-1", "officer one passphrase"))

    # The site requires a test spot before the first full session.
    status, _, err = record("--course", "1")
    assert status == 2 and "--course: this site requires an uneventful, read-out test spot" \
        in err and "no test spot for C-1042 on ps755-ref" in err, err
    assert rows(site_db, "SELECT count(*) FROM sessions") == [(0,)]

    # The test spot, at half the energy the course will use.
    sim.console.params["energy"] = full_energy / 2
    status, out, err = record("--test-spot", "--course", "1", pulses="8")
    assert status == 0, err
    assert "kind      test spot of course 1" in out
    tested = rows(site_db, "SELECT max(fluence_j_cm2) FROM pulses WHERE session_id = 1")[0][0]
    sim.console.params["energy"] = full_energy

    # An early read-out that would be uneventful is refused: it cannot clear the gate.
    clock.advance(hours=2)
    status, _, err = cli("course", "readout", "1", "--erythema", "1", "--db", db)
    assert status == 2 and "session 1: a read-out before its due time 2026-03-04 10:00 " \
        "(Europe/Paris), 48 h after the test spot for skin type III" in err, err
    assert rows(site_db, "SELECT count(*) FROM test_spot_readouts") == [(0,)]
    status, _, err = record("--course", "1")
    assert status == 2 and "test spot 1 has no read-out" in err, err

    # Read out after the wait: uneventful; the first full session starts.
    clock.advance(days=3)
    assert cli("course", "readout", "1", "--note", "no reaction", "--db", db)[0] == 0
    status, out, err = record("--course", "1")
    assert status == 0, err
    assert "kind      course session of course 1" in out
    above = rows(site_db, "SELECT message FROM events WHERE session_id = 2 AND"
                          " kind = 'above_test_spot' AND severity = 'alarm'")
    assert above and (f"above the highest tested at 755 nm on handpiece 1 ({tested:.4g} J/cm2, "
                      "test spot 1)") in above[0][0], above
    assert "pulse(s) above the fluence the client's test spot tested" in out

    # Ten days later: too early, refused with the days and the window; nothing written.
    clock.advance(days=10)
    status, _, err = record("--course", "1")
    assert status == 2, err
    assert "--course: too early for course 1: 10 day(s) since session 2 on 2026-03-05, " \
        "window 21\u201342 days" in err
    assert rows(site_db, "SELECT count(*) FROM sessions") == [(2,)]
    # A technician cannot authorise it; an officer can, and the session records it.
    monkeypatch.setenv("LASERLOG_OFFICER_PASSPHRASE", "tech nine passphrase")
    status, _, err = record("--course", "1", "--override-by", "tech-09", "--reason", "travel")
    assert status == 2 and "only an officer or an administrator may authorise" in err, err
    monkeypatch.setenv("LASERLOG_OFFICER_PASSPHRASE", "officer one passphrase")
    status, out, err = record("--course", "1", "--override-by", "off-1", "--reason",
                              "client travels abroad for two months")
    assert status == 0, err
    assert rows(site_db, "SELECT kind, course_id, override_by, override_role, override_reason"
                         " FROM session_kinds WHERE session_id = 3") == [
        ("course", 1, "off-1", "officer", "client travels abroad for two months")]
    assert "override by off-1" in out and "interval override: started 10 day(s)" in out

    # Fifty days later: late, so it starts with a warning the summary shows.
    clock.advance(days=50)
    status, out, err = record("--course", "1")
    assert status == 0, err
    assert "interval late: late for course 1: 50 day(s) since session 3" in out
    assert "warning: late for course 1" in err

    status, out, _ = cli("course", "show", "1", "--db", db)
    assert status == 0
    lines = out.splitlines()
    assert any("test spot" in line for line in lines)
    assert any(" 10  EARLY" in line for line in lines), out
    assert any(" 50  LATE" in line for line in lines), out
    assert "override by off-1: client travels abroad for two months" in out
    assert "3 of 4 sessions delivered" in out
    assert verify_database(site_db).ok


def test_a_test_spot_stops_the_console_at_the_sites_pulse_limit_and_keeps_every_pulse(
        simulate, site_db, clock):
    (site_db.parent / "site.toml").write_text(SITE.replace("test_spot_required = true",
                                                           "test_spot_max_pulses = 5"))
    sim = simulate("ps755-ref", seed=4, rate_hz=2000.0)  # a read brings many pulses at once
    sim.console.firing = True
    status, out, err = cli("record", "--profile", "ps755-ref", "--port", str(sim.path),
                           "--operator", "tech-07", "--client", "C-1042", *START,
                           "--test-spot", "--pulses", "500", "--db", str(site_db))
    assert status == 0, err
    assert not sim.console.firing  # the console was told to stop at the limit
    (count, stored), = rows(site_db, "SELECT pulse_count, (SELECT count(*) FROM pulses)"
                                     " FROM sessions")
    assert 5 <= count == stored < 500  # every pulse that arrived is kept
    events = dict(rows(site_db, "SELECT kind, message FROM events WHERE kind IN"
                                " ('emission_stop', 'test_spot_over_limit')"))
    assert events["emission_stop"] == ("sent the console's stop command: the test spot "
                                       "reached the site's limit of 5 pulses "
                                       "(test_spot_max_pulses)")
    if count > 5:
        assert events["test_spot_over_limit"] == (
            f"{count} pulses arrived, {count - 5} more than the site's limit of 5 for a test "
            "spot; all are recorded")
    else:
        assert "test_spot_over_limit" not in events


def test_a_test_spot_whose_limit_arrives_with_the_first_read_stops_the_console_once(
        simulate, site_db, clock):
    """At 20 kHz the read at the start already brings more than a limit of one pulse: the
    console is told to stop then, once, and every pulse that arrived is recorded."""
    (site_db.parent / "site.toml").write_text(SITE.replace("test_spot_required = true",
                                                           "test_spot_max_pulses = 1"))
    sim = simulate("ps755-ref", seed=4, rate_hz=20000.0)
    sent: list[str] = []
    run = sim.console.run
    sim.console.run = lambda command: sent.append(command) or run(command)  # type: ignore[method-assign]
    sim.console.firing = True
    status, _, err = cli("record", "--profile", "ps755-ref", "--port", str(sim.path),
                         "--operator", "tech-07", "--client", "C-1042", *START,
                         "--test-spot", "--pulses", "500", "--db", str(site_db))
    assert status == 0, err
    assert sent.count("stop") == 1 and not sim.console.firing, sent
    (count, stored), = rows(site_db, "SELECT pulse_count, (SELECT count(*) FROM pulses)"
                                     " FROM sessions")
    assert 1 <= count == stored
    events = rows(site_db, "SELECT kind, message, count FROM events WHERE kind IN"
                           " ('emission_stop', 'test_spot_over_limit') ORDER BY id")
    stop = ("emission_stop", "sent the console's stop command: the test spot reached the "
            "site's limit of 1 pulses (test_spot_max_pulses)", 1)
    over = [("test_spot_over_limit", f"{count} pulses arrived, {count - 1} more than the "
             "site's limit of 1 for a test spot; all are recorded", count - 1)]
    assert events == [stop, *(over if count > 1 else [])], events


NO_GATE = SITE.replace("test_spot_required = true\n", "")


def test_the_tested_fluence_is_held_per_wavelength_and_handpiece(simulate, site_db, clock):
    """A test spot through the zoom handpiece tests nothing for the fractional one: the
    course's pulses on handpiece 2 are held to what handpiece 2 was tested at."""
    (site_db.parent / "site.toml").write_text(NO_GATE)
    sim = simulate("ps755-ref", seed=4, rate_hz=40.0)
    sim.console.firing = True
    energy = sim.console.params["energy"]

    def record(*more: str, pulses: str = "6") -> None:
        status, _, err = cli("record", "--profile", "ps755-ref", "--port", str(sim.path),
                             "--operator", "tech-07", "--client", "C-1042", *START,
                             "--pulses", pulses, "--db", str(site_db), *more)
        assert status == 0, err

    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "pores", "--sessions", "3", "--db", str(site_db))[0] == 0
    params = sim.console.params  # set one by one: each setting bumps the console's version
    params["spot"] = 3.0  # handpiece 1 with a small spot: a high fluence
    record("--test-spot", "--course", "1")
    params["handpiece"], params["energy"] = 2.0, energy / 8
    record("--test-spot", "--course", "1")
    (hp1,), (hp2,) = rows(site_db, "SELECT max(fluence_j_cm2) FROM pulses GROUP BY session_id"
                                   " ORDER BY session_id")
    params["energy"] = energy / 4  # twice handpiece 2's test, below handpiece 1's
    record("--course", "1", pulses="8")
    course_max = rows(site_db, "SELECT max(fluence_j_cm2), min(handpiece) FROM pulses"
                               " WHERE session_id = 3")[0]
    assert hp2 < course_max[0] < hp1 and course_max[1] == 2
    above = rows(site_db, "SELECT message FROM events WHERE session_id = 3 AND"
                          " kind = 'above_test_spot' AND severity = 'alarm'")
    assert above and all(f"above the highest tested at 755 nm on handpiece 2 ({hp2:.4g} J/cm2, "
                         "test spot 2)" in m for (m,) in above), above
    # The site's default only alarms: the console is never told to stop.
    assert sim.console.firing and rows(site_db, "SELECT count(*) FROM events WHERE"
                                                " kind = 'emission_stop'") == [(0,)]


def test_a_site_that_refuses_above_the_tested_fluence_refuses_the_start_and_stops_emission(
        simulate, site_db, clock):
    import threading

    from conftest import wait_until

    (site_db.parent / "site.toml").write_text(NO_GATE.replace(
        "[courses]\n", "[courses]\nabove_test_spot = \"refuse\"\n"))
    sim = simulate("ps755-ref", seed=4, rate_hz=40.0)
    sim.console.firing = True
    params = sim.console.params
    energy = params["energy"]
    db = str(site_db)

    def record(*more: str) -> tuple[int, str, str]:
        return cli("record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
                   "tech-07", "--client", "C-1042", *START, "--db", db, *more)

    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "pores", "--sessions", "3", "--db", db)[0] == 0
    params["energy"] = energy / 2
    assert record("--test-spot", "--course", "1", "--pulses", "8")[0] == 0
    (tested,), = rows(site_db, "SELECT max(fluence_j_cm2) FROM pulses")

    # (a) Set above what was tested: refused in the words the form shows too; nothing written.
    params["energy"] = energy
    set_fluence = round(sim.console.value("fluence"), 3)  # as the console reports it
    status, _, err = record("--course", "1", "--pulses", "5")
    assert status == 2, err
    assert (f"the session was not started: the console is set to {set_fluence:.4g} J/cm2 at "
            f"755 nm on handpiece 1, above the highest test spot 1 tested there "
            f"({tested:.4g} J/cm2); this site refuses it") in err, err
    assert rows(site_db, "SELECT count(*) FROM sessions") == [(1,)]

    # (b) Set below it, then turned up mid-session: alarms, one stop command, every pulse kept.
    params["energy"] = energy / 2 * 0.8

    def turn_up() -> None:
        wait_until(lambda: rows(site_db, "SELECT count(*) FROM pulses WHERE session_id = 2")
                   [0][0] >= 3, what="the session's first pulses")
        params["energy"] = energy

    turning = threading.Thread(target=turn_up)
    turning.start()
    status, _, err = record("--course", "1", "--duration", "1.5")
    turning.join()
    assert status == 0, err
    assert not sim.console.firing
    assert [m for (m,) in rows(site_db, "SELECT message FROM events WHERE session_id = 2"
                                        " AND kind = 'emission_stop'")] == [
        "sent the console's stop command: a pulse above the fluence the client's test spot "
        "tested (the site refuses it: [courses] above_test_spot = \"refuse\")"]
    above = rows(site_db, "SELECT count(*) FROM pulses WHERE session_id = 2"
                          " AND fluence_j_cm2 > ?", tested)[0][0]
    assert above >= 1 and rows(site_db, "SELECT count(*) FROM events WHERE session_id = 2 AND"
                                        " kind = 'above_test_spot' AND severity = 'alarm'"
                               ) == [(above,)]
    assert rows(site_db, "SELECT pulse_count FROM sessions WHERE id = 2") == rows(
        site_db, "SELECT count(*) FROM pulses WHERE session_id = 2")


def test_a_pulse_or_a_test_spot_without_a_handpiece_is_held_to_its_wavelength():
    tested = courses.Tested({(755.0, None): 2.0, (755.0, 1): 2.0, (1064.0, None): 3.0},
                            {(755.0, None): 1, (755.0, 1): 1, (1064.0, None): 4},
                            frozenset({755.0}))
    assert tested.key(755, 1) == (755.0, 1)
    assert tested.key(755, None) == (755.0, None)  # the pulse carries none
    assert tested.key(1064, 2) == (1064.0, None)  # the test spot carried none
    assert courses.Tested.where((755.0, None)) == "755 nm, any handpiece"
    assert courses.Tested.where((755.0, 2)) == "755 nm on handpiece 2"


def test_existing_sessions_become_one_offs_and_a_site_may_require_courses(
        simulate, site_db, clock):
    sim = simulate("ps755-ref", seed=4, rate_hz=40.0)
    sim.console.firing = True
    argv = ["record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
            "tech-07", "--client", "C-1042", *START, "--pulses", "3", "--db", str(site_db)]
    assert cli(*argv)[0] == 0
    assert rows(site_db, "SELECT kind FROM session_kind") == [("one_off",)]
    (site_db.parent / "site.toml").write_text(SITE.replace("[courses]\n",
                                                           "[courses]\nrequired = true\n"))
    status, _, err = cli(*argv)
    assert status == 2 and "--course: this site requires a course for every session" in err
    assert rows(site_db, "SELECT count(*) FROM sessions") == [(1,)]


# -- bad input: one message naming what and where, exit 2, nothing written ------------------------
def _counts(db: Path) -> tuple:
    if not db.exists():
        return (0, 0, 0, 0)
    return rows(db, "SELECT (SELECT count(*) FROM courses), (SELECT count(*) FROM sessions),"
                    " (SELECT count(*) FROM session_kinds),"
                    " (SELECT count(*) FROM test_spot_readouts)")[0]


def _one_message(status: int, err: str) -> None:
    assert status == 2, err
    assert "Traceback" not in err
    assert err.count("laserlog: error:") == 1 and err.strip().splitlines()[-1].startswith(
        "laserlog: error:"), err


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(low=st.integers(-50, 400), high=st.integers(-50, 400))
def test_a_bad_window_is_refused_naming_it(site_db, low, high):
    before = _counts(site_db)
    status, _, err = cli("course", "new", "--client", "C-1042", "--area", "chin",
                         "--indication", "pores", "--sessions", "3",
                         f"--interval={low}-{high}", "--db", str(site_db))
    bad = low < 0 or high < 0 or low > high or high == 0 or high > 366
    if bad:
        _one_message(status, err)
        assert f"--interval {low}-{high}: " in err, err
        assert _counts(site_db) == before
    else:
        assert status == 0, err


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12))
def test_a_window_that_is_not_one_is_refused(site_db, text):
    from laserlog.config.courses import _WINDOW

    if _WINDOW.fullmatch(text):
        return
    status, _, err = cli("course", "new", "--client", "C-1042", "--area", "chin",
                         "--indication", "pores", "--sessions", "3", f"--interval={text}",
                         "--db", str(site_db))
    _one_message(status, err)
    assert _counts(site_db)[0] == 0


@pytest.fixture
def with_course(site_db, clock):
    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "texture", "--sessions", "3", "--interval", "14-28", "--db",
               str(site_db))[0] == 0
    return site_db


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(course=st.one_of(st.integers(2, 10**6).map(str), st.text(max_size=8)),
       client=st.sampled_from(["C-1042", "C-2000"]),
       area=st.sampled_from(["left cheek", "forehead"]))
def test_record_refuses_an_unknown_or_another_clients_course_before_the_console(
        with_course, course, client, area):
    """No console answers on the port: a start the course rules let through fails later."""
    if course.strip().removeprefix("#") == "":
        course = "1"
    if course == "1" and client == "C-1042" and area == "left cheek":
        return
    before = _counts(with_course)
    status, _, err = cli("record", "--profile", "ps755-ref", "--port", "/nonexistent/port",
                         "--operator", "tech-07", "--client", client, "--area", area,
                         "--skin-type", "III", "--check", "eyewear", "--check", "consent",
                         "--check", "sun_exposure", "--course", course, "--db", str(with_course))
    _one_message(status, err)
    assert "--course: " in err, err
    if course == "1":
        assert (f"course 1 is for client C-1042, not {client}" in err
                or f"course 1 is for area 'left cheek', not '{area}'" in err), err
    assert "/nonexistent/port" not in err  # refused before the console was touched
    assert _counts(with_course) == before


def test_a_readout_for_a_session_that_is_not_a_test_spot_is_refused(simulate, with_course):
    sim = simulate("ps755-ref", seed=4, rate_hz=40.0)
    sim.console.firing = True
    assert cli("record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
               "tech-07", "--client", "C-1042", *START, "--pulses", "3", "--db",
               str(with_course))[0] == 0
    before = _counts(with_course)
    status, _, err = cli("course", "readout", "1", "--blister", "2", "--db", str(with_course))
    _one_message(status, err)
    assert "session 1 is a one-off session" in err and "not a test spot" in err
    status, _, err = cli("course", "readout", "7", "--db", str(with_course))
    _one_message(status, err)
    assert "session 7: no such session" in err
    status, _, err = cli("course", "readout", "1", "--oedema", "4", "--db", str(with_course))
    _one_message(status, err)
    assert "'4' is not a grade" in err
    assert _counts(with_course) == before


def test_an_early_readout_is_recorded_only_when_it_finds_a_reaction(simulate, site_db, clock):
    """Before the skin type's wait ends, a reaction is recorded at once (it blocks the gate);
    an uneventful read-out is refused, naming the due time in the site's zone."""
    from laserlog.config.courses import FINDINGS

    sim = simulate("ps755-ref", seed=4, rate_hz=40.0)
    sim.console.firing = True
    assert cli("record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
               "tech-07", "--client", "C-1042", *START, "--test-spot", "--pulses", "3",
               "--db", str(site_db))[0] == 0
    started = clock.at  # skin type III: due 48 h later, 10:00 in Paris on 4 March

    @settings(max_examples=25, deadline=None)
    @given(minutes=st.integers(0, 96 * 60),
           grades=st.fixed_dictionaries({name: st.integers(0, 3) for name in FINDINGS}))
    def readout(minutes: int, grades: dict[str, int]) -> None:
        clock.at = started + timedelta(minutes=minutes)
        before = _counts(site_db)
        status, out, err = cli("course", "readout", "1", "--db", str(site_db),
                               *(f"--{k}={v}" for k, v in grades.items()))
        if minutes >= 48 * 60 or max(grades.values()) > 1:
            assert status == 0, err
            assert "read-out of test spot 1 recorded" in out
            assert _counts(site_db)[3] == before[3] + 1
            return
        _one_message(status, err)
        assert "session 1: a read-out before its due time 2026-03-04 10:00 (Europe/Paris), " \
            "48 h after the test spot for skin type III" in err, err
        assert _counts(site_db) == before

    readout()
    assert verify_database(site_db).ok


def test_attach_close_and_list(simulate, with_course):
    sim = simulate("ps755-ref", seed=4, rate_hz=40.0)
    sim.console.firing = True
    base = ["record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
            "tech-07", *START, "--pulses", "3", "--db", str(with_course)]
    assert cli(*base, "--client", "C-1042")[0] == 0
    assert cli(*base, "--client", "C-2000")[0] == 0
    status, _, err = cli("course", "attach", "1", "1", "2", "--db", str(with_course))
    assert status == 2 and "session 2: course 1 is for client C-1042, not C-2000" in err
    assert rows(with_course, "SELECT kind FROM session_kind ORDER BY session_id") == [
        ("one_off",), ("one_off",)]
    assert cli("course", "attach", "1", "1", "--db", str(with_course))[0] == 0
    assert rows(with_course, "SELECT kind, course_id FROM session_kind WHERE session_id = 1"
                ) == [("course", 1)]
    status, out, _ = cli("course", "list", "--db", str(with_course))
    assert "1 of 3" in out and "open" in out
    assert cli("course", "close", "1", "--reason", "client moved", "--db",
               str(with_course))[0] == 0
    status, _, err = cli(*base, "--client", "C-1042", "--course", "1")
    assert status == 2 and "course 1 was closed on 2026-03-02 (client moved)" in err
    assert verify_database(with_course).ok


# -- the form: the same course rules, the course line, an officer's override --------------------
@pytest.mark.usefixtures("fast_keys")
def test_the_form_shows_the_course_line_and_refuses_an_early_start_as_record_does(
        simulate, tmp_path, clock, monkeypatch):
    import asyncio

    from test_tui_live import fill_form
    from textual.widgets import Input, Static
    from tui_support import wait_for

    from laserlog.review.users import add_user
    from laserlog.storage.store import Store
    from laserlog.tui.app import LaserlogApp
    from laserlog.tui.controller import LiveController
    from laserlog.tui.live_screen import LiveScreen

    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    (tmp_path / "site.toml").write_text(SITE.replace("test_spot_required = true", ""))
    db = tmp_path / "laserlog.db"
    sim = simulate("ps755-ref", seed=4, rate_hz=40.0)
    sim.console.firing = True
    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "pores", "--sessions", "6", "--db", str(db))[0] == 0
    record = ["record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
              "tech-07", "--client", "C-1042", *START, "--pulses", "10", "--course", "1",
              "--db", str(db)]
    assert cli(*record)[0] == 0
    with Store(db) as store:
        add_user(store, "off-1", "Officer One", "officer", "officer one passphrase")
    clock.advance(days=9)
    status, _, record_err = cli(*record)
    assert status == 2
    controller = LiveController(db, sim.profile, str(sim.path))
    app = LaserlogApp(controller)
    seen: dict[str, str] = {}

    async def scenario() -> None:
        async with app.run_test(size=(100, 44)) as pilot:
            form = await fill_form(pilot)
            form.query_one("#course", Input).value = "1"
            await pilot.pause()
            await pilot.press("ctrl+s")
            await pilot.pause()
            seen["error"] = str(form.query_one("#course-error", Static).render())
            seen["line"] = str(form.query_one("#course-line", Static).render())
            seen["picture"] = app.export_screenshot()
            assert controller.session is None and form.query_one("#early-row").display
            form.query_one("#early-officer", Input).value = "off-1"
            form.query_one("#early-passphrase", Input).value = "officer one passphrase"
            form.query_one("#early-reason", Input).value = "client leaves the country"
            await pilot.pause()
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen)
                           and controller.session is not None, what="the session to start")

    try:
        asyncio.run(scenario())
    finally:
        controller.shutdown()
    assert seen["error"].startswith("too early for course 1: 9 day(s) since session 1")
    assert f"--course: {seen['error']}" in record_err  # the same words as record's
    assert seen["line"].startswith("session 2 of 6 \u00b7 9 days since the last (window "
                                   "21\u201342) \u00b7 last: mean ")
    assert "J/cm\u00b2 (max " in seen["line"] and " J" in seen["line"]
    assert rows(db, "SELECT override_by, override_role, override_reason FROM session_kinds"
                    " WHERE session_id = 2") == [("off-1", "officer", "client leaves the country")]
    import os

    if os.environ.get("LASERLOG_SHOW_FORM"):  # a look at the form as the technician saw it
        Path(os.environ["LASERLOG_SHOW_FORM"]).write_text(seen["picture"])


# -- passes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("line", "parsed"), [
    ("pass 1", ("pass", "1")), ("pass  2   left  jaw ", ("pass", "2 left jaw"))])
def test_pass_control_lines_parse(line, parsed):
    from laserlog.recording.contract import parse_control

    assert parse_control(line) == parsed


@pytest.mark.parametrize("line", ["pass", "pass 0", "pass two", "pass 100", "pass -1 chin"])
def test_a_pass_without_its_number_is_refused(line):
    from laserlog.errors import SessionError
    from laserlog.recording.contract import parse_control

    with pytest.raises(SessionError, match=r"expected 'pass N \[SUB-AREA\]' with N from 1"):
        parse_control(line)


def test_passes_marked_on_standard_input_are_totalled_per_pass(simulate, tmp_path):
    import subprocess
    import sys

    from conftest import wait_until

    sim = simulate("ps755-ref", seed=2, rate_hz=40.0)
    sim.console.firing = True
    db = tmp_path / "log.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "laserlog", "record", "--profile", "ps755-ref", "--port",
         str(sim.path), "--operator", "tech-07", "--client", "C-1042", *START, "--db", str(db),
         "--duration", "60"], text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    assert proc.stdin is not None

    def pulses() -> int:
        try:
            return rows(db, "SELECT count(*) FROM pulses")[0][0]
        except sqlite3.OperationalError:
            return 0

    try:
        for line, after in (("pass 1 forehead", 5), ("pass 2 left cheek", 15), ("end", 25)):
            wait_until(lambda after=after: pulses() >= after, what=f"{after} pulses")
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "pass recorded: pass 2: left cheek" in err
    by_pass = dict(rows(db, "SELECT coalesce(pass_number, 0), count(*) FROM pulse_passes"
                            " GROUP BY 1"))
    assert set(by_pass) == {0, 1, 2} and all(by_pass.values())
    assert sum(by_pass.values()) == rows(db, "SELECT count(*) FROM pulses")[0][0]
    assert "  passes:" in out
    assert re.search(rf"pass 1 \(forehead\)\s+{by_pass[1]} pulses  [0-9.]+ J  fluence mean "
                     r"[0-9.]+ max [0-9.]+ J/cm2", out), out
    assert re.search(rf"pass 2 \(left cheek\)\s+{by_pass[2]} pulses", out), out
    # The printable record carries the same per-pass dose.
    page = tmp_path / "record.html"
    done = subprocess.run([sys.executable, "-m", "laserlog", "export", "--format", "html",
                           "--session", "1", "--out", str(page), "--db", str(db)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert "<h2>Per pass</h2>" in text
    table = text.split("<h2>Per pass</h2>", 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<tr><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td><td[^>]*>(\d+)</td>",
                       table)
    assert [(n, sub, int(c)) for n, sub, c in cells] == [
        ("before pass 1", "-", by_pass[0]), ("1", "forehead", by_pass[1]),
        ("2", "left cheek", by_pass[2])]


GRADES = dict.fromkeys(("erythema", "oedema", "blister", "hyperpigmentation",
                        "hypopigmentation"), 0)


@pytest.mark.parametrize(("started", "skin", "shown"), [
    ("2026-03-28T09:00:00.000Z", "III", "2026-03-30 11:00"),  # over spring forward: 48 h
    ("2026-10-24T08:00:00.000Z", "II", "2026-10-26 09:00"),   # over fall back: 48 h
])
def test_an_uneventful_read_out_is_recorded_from_its_due_instant_across_a_dst_change(
        started, skin, shown):
    from zoneinfo import ZoneInfo

    from laserlog.config.courses import CoursePolicy
    from laserlog.domain import localtime

    policy, paris = CoursePolicy(), ZoneInfo("Europe/Paris")
    spot = {"id": 5, "started_utc": started, "skin_type": skin}
    due = localtime.local(started, UTC) + timedelta(hours=48)
    early = courses.early_readout_refusal(spot, GRADES, policy, due - timedelta(seconds=1),
                                          paris)
    assert f"before its due time {shown} (Europe/Paris), 48 h after" in early, early
    assert courses.early_readout_refusal(spot, GRADES, policy, due, paris) == ""


def test_a_test_spot_without_a_skin_type_waits_the_longest_wait_the_site_gives():
    from laserlog.config.courses import DEFAULT_WAIT_HOURS, CoursePolicy

    policy = CoursePolicy(wait_hours={**DEFAULT_WAIT_HOURS, "I": 200.0, "VI": 24.0})
    spot = {"id": 5, "started_utc": "2026-03-02T09:00:00.000Z", "skin_type": None}
    after_a_day = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # past type VI's wait, not type I's
    early = courses.early_readout_refusal(spot, GRADES, policy, after_a_day, UTC)
    assert "200 h after the test spot for skin type ? (the longest wait)" in early, early
    assert courses.readout_due(spot["started_utc"], None, policy)[1] == 200.0


BAD_COURSE_KEYS = {
    "test_spot_max_pulses = 5\ntest_spot_max_pulses = 6":
        "courses.test_spot_max_pulses is given twice (lines 2 and 3); expected each key and "
        "table once",
    "baseline_photos = nan": "courses.baseline_photos: wrong type; got nan; expected a whole "
                             "number",
    "uneventful_max_grade = \"1\"": "courses.uneventful_max_grade: wrong type; got '1'; "
                                    "expected a whole number",
    "[courses.intervals]\npores = \"42-21\"": "courses.intervals.pores: window 42-21: inverted "
        "window (minimum 42 > maximum 21); expected \"MIN-MAX\" or \"MIN-MAX/TARGET\" in days",
    "[courses.test_spot_wait_hours]\nIV = 1\nIV = 2":
        "courses.test_spot_wait_hours.IV is given twice (lines 3 and 4)",
}


@pytest.mark.parametrize("body", list(BAD_COURSE_KEYS))
def test_a_bad_courses_key_is_one_message_naming_the_file_and_key(site_db, body):
    site = site_db.parent / "site.toml"
    site.write_text("[courses]\n" + body + "\n")
    for argv in (["site"], ["course", "new", "--client", "C-1042", "--area", "left cheek",
                            "--indication", "pores", "--sessions", "3"]):
        status, _, err = cli(*argv, "--db", str(site_db))
        assert status == 2 and err.count("error:") == 1 and "Traceback" not in err, err
        assert f"{site}: {BAD_COURSE_KEYS[body]}" in err, err
        assert err.count("expected") == 1, err
    assert not site_db.exists()  # nothing written, not even an empty database
