"""The TUI's Textual-free parts: the recording controller, checklist, queries, alarm words."""

from __future__ import annotations

import sqlite3

import pytest
from tui_support import build_history

from laserlog.config.checklist import DEFAULT_ITEMS, ChecklistError, label_for, load_checklist
from laserlog.config.profile import open_profile
from laserlog.errors import PortError, SessionError
from laserlog.recording.recorder import SessionInfo
from laserlog.storage.rows import EventRow
from laserlog.storage.store import Store
from laserlog.tui.alarms import alarm_word
from laserlog.tui.controller import LiveController
from laserlog.tui.queries import client_history, energy_by_period, find_sessions
from laserlog.tui.text import duration_text, regime_name

from conftest import fail_commits, wait_until

INFO = SessionInfo("tech-07", "C-1042", "left cheek", "III", True, {"eyewear": True, "consent": True, "sun_exposure": True})


def test_controller_records_in_its_thread_and_the_screen_feed_never_grows_past_its_bound(
        simulate, db_path):
    sim = simulate("ps755-ref", seed=2, rate_hz=2000)
    controller = LiveController(db_path, sim.profile, str(sim.path),
                                on_session_start=lambda: setattr(sim.console, "firing", True))
    controller.feed = type(controller.feed)(maxlen=50)  # a screen that never drains
    controller.start()
    try:
        wait_until(lambda: controller.link_state == "up", what="the link")
        # Read back before any session (the first reading follows the link coming up).
        wait_until(lambda: controller.settings.get("spot") == 4.0, what="the settings")
        session_id = controller.start_session(INFO).result(timeout=10)
        wait_until(lambda: controller.totals.pulses >= 500, what="500 pulses")
        assert len(controller.feed) == 50  # display lines dropped, never counts
        assert controller.end_session().result(timeout=10) == session_id
    finally:
        controller.shutdown()
    with sqlite3.connect(db_path) as conn:
        stored = conn.execute("SELECT count(*) FROM pulses").fetchone()[0]
        counted = conn.execute("SELECT pulse_count FROM sessions").fetchone()[0]
    assert stored == counted == controller.totals.pulses >= 500


def test_refused_session_details_raise_before_anything_is_recorded(simulate, db_path):
    sim = simulate("ps755-ref")
    controller = LiveController(db_path, sim.profile, str(sim.path)).start()
    try:
        with pytest.raises(SessionError, match="not a pseudonym"):
            controller.start_session(SessionInfo("tech-07", "Jane Doe"))
    finally:
        controller.shutdown()
    assert Store(db_path).sessions() == []


def test_unreachable_console_shows_link_down_and_refuses_to_start(tmp_path, db_path):
    controller = LiveController(db_path, open_profile("ps755-ref"), str(tmp_path / "absent"))
    controller.start()
    try:
        wait_until(lambda: controller.link_state == "down", what="the link to be down")
        assert "absent" in controller.link_detail
        with pytest.raises(PortError):
            controller.start_session(INFO).result(timeout=10)
    finally:
        controller.shutdown()
    assert Store(db_path).sessions() == []


def test_shutdown_while_recording_ends_the_session_with_everything_committed(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=200)
    controller = LiveController(db_path, sim.profile, str(sim.path),
                                on_session_start=lambda: setattr(sim.console, "firing", True))
    controller.start()
    wait_until(lambda: controller.link_state == "up")
    controller.start_session(INFO).result(timeout=10)
    wait_until(lambda: controller.totals.pulses >= 20)
    controller.shutdown()
    (row,) = Store(db_path).sessions()
    assert row["status"] == "ended" and row["end_reason"] == "front end closed while recording"
    assert row["pulse_count"] == controller.totals.pulses
    with pytest.raises(Exception, match="stopped"):
        controller.add_note("too late").result(timeout=1)


def test_default_checklist_names_the_consoles_wavelength():
    assert [i.key for i in DEFAULT_ITEMS] == ["eyewear", "consent", "sun_exposure"]
    assert label_for(DEFAULT_ITEMS[0], (1064.0, 532.0)).startswith(
        "Eyewear rated for 1064/532 nm")


def test_site_checklist_file_replaces_the_defaults(tmp_path, monkeypatch):
    path = tmp_path / "checklist.toml"
    path.write_text('[[item]]\nkey = "eyewear"\nlabel = "OD 7+ eyewear at {wavelength}"\n'
                    '[[item]]\nkey = "photos"\nlabel = "Before photos taken"\nrequired = false\n')
    items = load_checklist(path)
    assert [(i.key, i.required) for i in items] == [("eyewear", True), ("photos", False)]
    monkeypatch.setenv("LASERLOG_CHECKLIST", str(path))
    assert load_checklist() == items
    monkeypatch.setenv("LASERLOG_CHECKLIST", str(tmp_path / "none.toml"))
    assert load_checklist() == DEFAULT_ITEMS


@pytest.mark.parametrize("text, needle", [
    ('[[item]]\nkey = "two words"\nlabel = "x"\n', "key: got 'two words'"),
    ('[[item]]\nkey = "a"\n', "label"),
    ('[[item]]\nkey = "a"\nlabel = "x"\nrequired = "yes"\n', "required: got 'yes'"),
    ('[[item]]\nkey = "a"\nlabel = "x"\n[[item]]\nkey = "a"\nlabel = "y"\n', "appears twice"),
    ("item = 3\n", "one or more [[item]]"),
    ("[[item\n", "cannot read"),
])
def test_bad_checklist_file_is_named_with_what_was_expected(tmp_path, text, needle):
    path = tmp_path / "checklist.toml"
    path.write_text(text)
    with pytest.raises(ChecklistError, match=str(path)) as caught:
        load_checklist(path)
    assert needle in str(caught.value)


def test_client_history_counts_the_course_per_area_with_the_last_settings(tmp_path):
    profile = open_profile("ps755-ref")
    build_history(tmp_path / "h.db", profile)
    with Store(tmp_path / "h.db", readonly=True) as store:
        history = client_history(store, "C-1042")
        assert history.sessions == 3 and set(history.areas) == {"left cheek", "right cheek"}
        cheek = history.areas["left cheek"]
        assert cheek.sessions == 2 and cheek.last_session_id == 3 and cheek.pulses == 100
        assert cheek.last_settings["spot"] == (4.5, "mm")  # read back beats the last pulse
        assert cheek.last_settings["energy"][1] == "J"
        assert history.course_number("Left Cheek ") == 3
        assert history.course_number("forehead") == 1
        assert history.course_number(None) == 4
        assert client_history(store, "C-9999").sessions == 0


def test_session_filter_treats_wildcards_as_text_and_energy_sums_match(tmp_path):
    build_history(tmp_path / "h.db", open_profile("ps755-ref"))
    with Store(tmp_path / "h.db", readonly=True) as store:
        assert len(find_sessions(store)) == 5
        assert find_sessions(store, "%") == [] and find_sessions(store, "_") == []
        assert {r["client_ref"] for r in find_sessions(store, "cheek")} == {"C-1042"}
        days = energy_by_period(store, "day", "device")
        assert sum(b.energy_j for b in days) == pytest.approx(
            sum(s["total_energy_j"] for s in store.sessions()))
        assert len(energy_by_period(store, "day", "operator", limit=2)) == 2


def test_alarm_words_cover_the_issue_and_skip_warning_level_faults():
    def word(kind: str, severity: str = "alarm") -> str | None:
        return alarm_word(EventRow(0.0, kind, severity))

    assert word("interlock_open") == "INTERLOCK"
    assert word("gap", "warning") == "PULSE GAP"
    assert word("link_lost") == "LINK LOST"
    assert word("out_of_range") == "OUT OF RANGE"
    assert word("fault", "warning") is None and word("fault") == "FAULT"
    assert word("garbled", "warning") is None and word("note", "info") is None
    assert word("something_new") == "SOMETHING NEW"


def test_durations_read_in_the_unit_and_regime_clinics_use():
    assert (duration_text(650), regime_name(650)) == ("650 ps", "picosecond")
    assert (duration_text(6000), regime_name(6000)) == ("6 ns", "nanosecond")
    assert (duration_text(3e8), regime_name(3e8)) == ("300 us", "long pulse")
    assert regime_name(None) == "-"


def test_a_recorder_failure_behind_the_screen_raises_an_alarm_and_keeps_every_row(
        simulate, db_path, monkeypatch):
    fail_commits(monkeypatch, ValueError("a value SQLite cannot take"), after=4)
    sim = simulate("ps755-ref", rate_hz=100)
    controller = LiveController(db_path, sim.profile, str(sim.path),
                                on_session_start=lambda: setattr(sim.console, "firing", True))
    controller.start()
    try:
        wait_until(lambda: controller.link_state == "up", what="the link")
        controller.start_session(INFO).result(timeout=10)
        wait_until(lambda: controller.session is None, 20, "the session to end on the failure")
        alarms = [a for a in controller.alarms if a.kind == "recorder_error"]
        assert alarms and "ValueError: a value SQLite cannot take" in alarms[0].message
        assert controller._thread.is_alive()  # the screen's recording thread goes on
    finally:
        controller.shutdown()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT status FROM sessions").fetchone() == ("interrupted",)


# Representative event kinds of each safety class, most severe class first.
SAFETY_CLASSES = (
    ("interlock_open", "fault", "recorder_error"),
    ("link_lost", "database_locked", "disk_full"),
    ("out_of_range", "invalid_reading", "counter_implausible"),
    ("gap", "counter_reset"),
)
CLASS_PAIRS = [(severe, lesser)
               for i, severe_class in enumerate(SAFETY_CLASSES)
               for lesser_class in SAFETY_CLASSES[i + 1:]
               for severe in severe_class for lesser in lesser_class]


def idle_controller(tmp_path, db_path) -> LiveController:
    """Return a controller whose thread never runs: alarms are raised by hand."""
    return LiveController(db_path, open_profile("ps755-ref"), str(tmp_path / "absent"))


def event(kind: str, at: float, message: str = "") -> EventRow:
    severity = "warning" if kind in ("counter_implausible",) else "alarm"
    return EventRow(at, kind, severity, None, message or kind)


@pytest.mark.parametrize(("severe", "lesser"), CLASS_PAIRS)
def test_the_more_severe_safety_class_leads_whichever_came_first(tmp_path, db_path, severe,
                                                                  lesser):
    for first, second in ((lesser, severe), (severe, lesser)):
        controller = idle_controller(tmp_path, db_path)
        controller._on_event(event(first, 1.0))
        controller._on_event(event(second, 2.0))
        assert [a.kind for a in controller.alarms] == [severe, lesser]
        controller.store.close()


def test_a_cleared_condition_never_leads_one_still_true(tmp_path, db_path):
    controller = idle_controller(tmp_path, db_path)
    controller._on_event(event("link_lost", 1.0))
    controller._on_event(event("fault", 2.0, "F10 interlock: door open"))
    controller._on_event(EventRow(3.0, "link_restored", "info", None, "link back"))
    assert [(a.kind, a.cleared) for a in controller.alarms] == [("fault", False),
                                                                ("link_lost", True)]
    controller._on_event(event("interlock_open", 4.0))
    controller._on_event(EventRow(5.0, "interlock_closed", "info", None, "closed"))
    controller._on_event(event("gap", 6.0))
    # A pulse gap (class 4) that is still to be read leads an interlock that closed again.
    assert [(a.kind, a.cleared) for a in controller.alarms] == [
        ("fault", False), ("gap", False), ("interlock_open", True), ("link_lost", True)]
    controller.store.close()


def test_acknowledging_records_who_when_and_every_alarm_and_keeps_conditions_still_true(
        tmp_path, db_path):
    controller = idle_controller(tmp_path, db_path)
    controller._on_event(event("gap", 1.0, "1 pulse(s) missing between 171 and 173"))
    controller._on_event(event("interlock_open", 2.0, "interlock open: emission stopped"))
    controller._on_event(event("fault", 3.0, "F10 door: open"))
    shown = [a.number for a in controller.unacknowledged]
    controller._on_event(event("out_of_range", 4.0, "energy 0.9 outside"))  # after the dialog
    assert controller._acknowledge(1772443900.0, "tech-07", shown) == 3
    with sqlite3.connect(db_path) as conn:
        (message,) = conn.execute("SELECT message FROM events WHERE kind = 'alarm_ack'"
                                  ).fetchone()
    assert message.startswith("3 alarm(s) acknowledged by tech-07 at 2026-03-02T09:31:40Z")
    for words in ("INTERLOCK (interlock_open): interlock open", "FAULT (fault): F10 door",
                  "PULSE GAP (gap): 1 pulse(s) missing"):
        assert words in message
    # Silenced, not hidden: the interlock and the fault are still true; the gap was read.
    assert [(a.kind, a.acknowledged) for a in controller.alarms] == [
        ("interlock_open", True), ("fault", True), ("out_of_range", False)]
    controller._on_event(EventRow(5.0, "interlock_closed", "info", None, "closed"))
    assert [a.kind for a in controller.alarms] == ["fault", "out_of_range"]
    controller.store.close()


def test_a_session_starts_on_a_faulted_console_only_with_a_reason_it_records(simulate, db_path):
    from laserlog.errors import ConsoleNotReady
    from laserlog.review.users import AuthError, add_user

    sim = simulate("ps755-ref")
    sim.inject_fault(10)
    controller = LiveController(db_path, sim.profile, str(sim.path)).start()
    reason = "door switch tested, fault latched from yesterday"
    try:
        wait_until(lambda: controller.status is not None, what="the first status reading")
        assert controller.status.fault_code == 10 and controller.status.interlock_open
        with pytest.raises(ConsoleNotReady, match="console reports fault 10 .*interlock open"):
            controller.start_session(INFO).result(timeout=10)
        # A reason alone is not enough: the operator must be a registered user who gives
        # their passphrase (tech-07 is not registered yet; then a wrong passphrase).
        with pytest.raises(AuthError, match="over a console fault .* registered user"):
            controller.start_session(INFO, override_reason=reason).result(timeout=10)
        with Store(db_path) as store:
            add_user(store, "tech-07", "Tech Seven", "technician", "seven's long passphrase")
        with pytest.raises(AuthError, match="over a console fault"):
            controller.start_session(INFO, "", "wrong passphrase",
                                     override_reason=reason).result(timeout=10)
        assert Store(db_path).sessions() == []
        session_id = controller.start_session(
            INFO, None, "seven's long passphrase", override_reason=reason).result(timeout=10)
        controller.end_session().result(timeout=10)
    finally:
        controller.shutdown()
    with sqlite3.connect(db_path) as conn:
        (row,) = conn.execute("SELECT code, message FROM events WHERE session_id = ? AND "
                              "kind = 'start_over_fault'", (session_id,)).fetchall()
    assert row[0] == 10
    assert row[1].startswith("started by tech-07 although the console reports fault 10 "
                             "(interlock_open: Door or remote interlock open")
    assert row[1].endswith("reason: door switch tested, fault latched from yesterday")


def test_console_state_reads_unknown_then_its_age_then_stale():
    from laserlog.tui.controller import ConsoleStatus
    from laserlog.tui.text import console_state_text

    assert console_state_text(None, 0, None, False) == "console state unknown: not read"
    status = ConsoleStatus(False, 0, 100.0)
    assert not status.stale(105.0) and status.stale(105.5)
    assert console_state_text(False, 0, status.age_s(101.2), False) == (
        "interlock closed, no fault  1s ago")
    assert console_state_text(True, 10, 7.0, True) == "INTERLOCK OPEN, FAULT 10 STALE 7s"
    assert len(console_state_text(False, 0, 3600.0, True)) <= 36  # the counters panel's width


def test_a_condition_restated_is_not_counted_again_but_a_new_fault_code_is_its_own_alarm(
        tmp_path, db_path):
    controller = idle_controller(tmp_path, db_path)
    controller._on_event(EventRow(1.0, "fault", "alarm", 10, "F10 door: open"))
    controller._on_event(EventRow(2.0, "fault", "alarm", 10, "F10 door: open"))  # restated
    (alarm,) = controller.alarms
    assert controller.alarm_count(alarm) == 1
    controller._on_event(EventRow(3.0, "fault", "alarm", 10, "F10 door: open (again)"))
    assert controller.alarm_count(alarm) == 2  # the same fault code again: counted
    controller._on_event(EventRow(4.0, "fault", "alarm", 20, "F20 over temperature"))
    # Another code is another alarm; the console reports one fault at a time, so F10 ended.
    assert [(a.code, a.cleared, controller.alarm_count(a)) for a in controller.alarms] == [
        (20, False, 1), (10, True, 2)]
    # A warning-level fault is no alarm, but the console reports it instead of F20.
    controller._on_event(EventRow(5.0, "fault", "warning", 30, "F30 energy monitor"))
    assert [(a.code, a.cleared) for a in controller.alarms] == [(10, True), (20, True)]
    controller._on_event(EventRow(6.0, "fault_cleared", "info", 30, "console reports no fault"))
    assert [(a.code, a.cleared) for a in controller.alarms] == [(10, True), (20, True)]
    controller.store.close()


def test_an_adapter_unplugged_between_sessions_shows_link_down_and_comes_back(simulate,
                                                                              db_path):
    sim = simulate("ps755-ref")
    controller = LiveController(db_path, sim.profile, str(sim.path)).start()
    try:
        wait_until(lambda: controller.status is not None, what="the first status reading")
        assert controller.alarms == []
        sim.link.unplug()
        wait_until(lambda: controller.link_state == "down", what="the link to go down")
        assert controller._thread.is_alive()  # the recording thread outlives the unplug
        assert controller.link_problem().startswith(f"console not reachable on {sim.path}: ")
        # An alarm of its own (class 2), as when the link is lost in a session.
        (lost,) = controller.alarms
        assert (lost.word, lost.safety_class, lost.cleared) == ("LINK LOST", 2, False)
        assert lost.message.startswith(f"between sessions, console on {sim.path} ")
        assert lost.message.count(str(sim.path)) == 1, lost.message  # said once
        read_before = controller.status.read_unix_s
        sim.link.plug()
        wait_until(lambda: controller.link_state == "up", 30, "the link to come back")
        wait_until(lambda: controller.alarms[0].cleared, what="the link alarm to clear")
        wait_until(lambda: controller.status.read_unix_s > read_before, what="a new reading")
        # And a session starts: the thread serves actions again.
        controller.start_session(INFO).result(timeout=10)
    finally:
        controller.shutdown()


def test_a_console_without_a_status_query_is_never_claimed_ok(tmp_path, db_path):
    import dataclasses

    profile = open_profile("ps755-ref")
    silent = dataclasses.replace(profile, status=dataclasses.replace(profile.status, get=None,
                                                                     code=None))
    controller = LiveController(db_path, silent, str(tmp_path / "absent"))
    assert not controller.status_readable and controller.status is None
    controller.store.close()
    asking = LiveController(tmp_path / "asking.db", profile, "x")
    assert asking.status_readable
    asking.store.close()
