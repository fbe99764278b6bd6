"""The live screen and the session form, driven by keys (Pilot) against a simulated console."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Log, Static
from tui_support import burst, fast_keys, screen_text, wait_for  # noqa: F401 (fast_keys: a fixture)

from laserlog.tui.app import LaserlogApp
from laserlog.tui.assess_form import AssessmentForm
from laserlog.tui.controller import LiveController
from laserlog.tui.history_screen import HistoryScreen
from laserlog.tui.live_screen import LiveScreen
from laserlog.tui.session_form import SessionForm
from laserlog.tui.summary_screen import SummaryScreen

pytestmark = pytest.mark.usefixtures("fast_keys")


@pytest.fixture
def live(simulate, db_path):
    """Return a factory of apps on seeded simulated consoles that fire while a session records."""
    controllers: list[LiveController] = []

    def make(profile: str = "ps755-ref", rate_hz: float = 50.0) -> LaserlogApp:
        sim = simulate(profile, seed=3, rate_hz=rate_hz)

        def fire() -> None:
            sim.console.firing = True

        def hold() -> None:
            sim.console.firing = False

        controller = LiveController(db_path, sim.profile, str(sim.path), on_session_start=fire,
                                    on_session_end=hold)
        controller.sim = sim  # type: ignore[attr-defined]
        controllers.append(controller)
        return LaserlogApp(controller)

    yield make
    for controller in controllers:
        controller.shutdown()


def run(app: LaserlogApp, scenario: Callable[[Pilot], Awaitable[None]],
        size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(main())


async def type_into(pilot: Pilot, selector: str, text: str) -> None:
    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    await pilot.pause()
    await pilot.press(*text)


async def fill_form(pilot: Pilot, *, operator: str = "tech-07", client: str = "C-1042",
                    area: str = "left cheek", skin: str = "3", ticks: bool = True,
                    typed: bool = False) -> SessionForm:
    """Fill the session form: typed key by key, or (faster) by setting each field's value."""
    await pilot.press("s")
    form = await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionForm)
                          and pilot.app.screen, what="the session form")
    assert isinstance(form, SessionForm)
    await wait_for(pilot, lambda: pilot.app.controller.link_state == "up", what="the link")
    for selector, text in (("#operator", operator), ("#client", client), ("#area", area),
                           ("#skin", skin)):
        if text and typed:
            await type_into(pilot, selector, text)
        elif text:
            form.query_one(selector, Input).value = text
            await pilot.pause()
    if ticks:
        for item in pilot.app.checklist:
            form.query_one(f"#check-{item.key}").focus()
            await pilot.press("space")
    return form


async def start_session(pilot: Pilot, **kw: object) -> int:
    await fill_form(pilot, **kw)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LiveScreen)
                   and pilot.app.controller.session is not None, what="the session to start")
    session = pilot.app.controller.session
    assert session is not None
    return session.session_id


async def end_session(pilot: Pilot, *, skip_assessment: bool = True) -> None:
    """End the session with `x` and `y`; skip the assessment it offers (Esc) unless told."""
    await pilot.press("x")
    await pilot.pause()
    await pilot.press("y")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AssessmentForm)
                   and pilot.app.screen.keys_ready, what="the assessment form")
    assert isinstance(pilot.app.screen_stack[-2], SummaryScreen)
    if skip_assessment:
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SummaryScreen),
                       what="the summary")


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def tail(app: LaserlogApp) -> list[str]:
    return list(app.live.query_one("#tail", Log).lines)


def test_session_started_from_the_form_shows_pulses_live_and_totals_equal_the_database(
        live, db_path):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        session_id = await start_session(pilot, typed=True)
        controller = pilot.app.controller
        await wait_for(pilot, lambda: controller.totals.pulses >= 25, what="25 pulses")
        await wait_for(pilot, lambda: len(tail(app)) >= 20, what="the tail")
        assert "HP1" in tail(app)[-1] and "pico" in tail(app)[-1]
        header = str(app.live.query_one("#session-header", Static).render())
        assert f"Session {session_id}" in header and "C-1042" in header and "skin III" in header
        assert "picosecond" in str(app.live.query_one("#settings", Static).render())
        await end_session(pilot)
        totals = controller.totals
        shown = screen_text(pilot.app)
        assert f"pulses    {totals.pulses}" in shown
        (row,) = query(db_path, "SELECT pulse_count, total_energy_j, eyewear_checked, "
                       "checklist_json, skin_type, status FROM sessions WHERE id = ?", session_id)
        assert row[0] == totals.pulses == query(
            db_path, "SELECT count(*) FROM pulses WHERE session_id = ?", session_id)[0][0]
        assert row[1] == pytest.approx(totals.energy_j)
        assert row[2] == 1 and row[4] == "III" and row[5] == "ended"
        assert json.loads(row[3]) == {"consent": True, "eyewear": True, "sun_exposure": True}
        counters = str(app.live.query_one("#counters", Static).render())
        assert f"{totals.pulses:,}" in counters

    run(app, scenario)


def test_form_refuses_what_the_recorder_refuses_with_the_reason_beside_the_field(live, db_path):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        form = await fill_form(pilot, client="Jane Doe", skin="7", ticks=False)
        await pilot.press("ctrl+s")
        errors = {name: str(form.query_one(f"#{name}-error", Static).render())
                  for name in ("operator", "client", "skin", "check-eyewear", "check-consent")}
        assert "not a pseudonym" in errors["client"]
        assert "not a Fitzpatrick type" in errors["skin"]
        assert errors["operator"] == ""
        assert "required" in errors["check-eyewear"] and "required" in errors["check-consent"]
        assert pilot.app.screen is form and pilot.app.controller.session is None
        assert pilot.app.focused is form.query_one("#client")
        # Mending the field clears its reason as the technician types.
        form.query_one("#client", Input).value = "C-7700"
        await pilot.pause()
        assert str(form.query_one("#client-error", Static).render()) == ""
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, LiveScreen)

    run(app, scenario)
    assert query(db_path, "SELECT count(*) FROM sessions") == [(0,)]


def test_notes_and_markers_are_recorded_as_events_of_the_session(live, db_path):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        session_id = await start_session(pilot)
        controller = pilot.app.controller
        await wait_for(pilot, lambda: controller.totals.pulses >= 3)
        pressed_n = time.time()
        await pilot.press("n")
        await type_into(pilot, "#text", "spot ok")
        typing_done = controller.totals.pulses + 3
        await wait_for(pilot, lambda: controller.totals.pulses >= typing_done,
                       what="a slow typist")
        enter = time.time()
        await pilot.press("enter")
        await pilot.press("m")
        await pilot.press("m")
        await wait_for(pilot, lambda: sum("marker 2" in line for line in tail(app)),
                       what="the markers in the tail")
        assert any("note: spot ok" in line for line in tail(app))
        assert any(line.rstrip().endswith(" marker 1") for line in tail(app))
        assert not any("marker: marker" in line for line in tail(app))
        await end_session(pilot)
        rows = query(db_path, "SELECT kind, message, received_unix_s FROM events WHERE "
                     "session_id = ? AND kind IN ('note', 'marker') ORDER BY id", session_id)
        assert [row[:2] for row in rows] == [("note", "spot ok"), ("marker", "marker 1"),
                                             ("marker", "marker 2")]
        assert pressed_n <= rows[0][2] < enter  # stamped when n was pressed

    run(app, scenario)


def test_space_pauses_the_tail_counting_what_it_holds_back_while_recording_goes_on(live):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        await start_session(pilot)
        controller = pilot.app.controller
        await wait_for(pilot, lambda: len(tail(app)) >= 5)
        await pilot.press("space")
        held = tail(app)
        counted = controller.totals.pulses
        status = app.live.query_one("#tail-status", Static)
        await wait_for(pilot, lambda: "PAUSED +" in str(status.render())
                       and not str(status.render()).startswith("PAUSED +0"))
        await wait_for(pilot, lambda: controller.totals.pulses >= counted + 10)
        assert tail(app) == held  # nothing drawn while paused
        await pilot.press("space")
        assert "PAUSED" not in str(status.render())
        assert len(tail(app)) > len(held)
        last_seq = int(re.match(r"#\s*(\d+)", tail(app)[-1]).group(1))  # type: ignore[union-attr]
        assert last_seq >= counted + 9

    run(app, scenario)


def test_slash_filters_the_tail_and_escape_clears_it(live):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        await start_session(pilot)
        await wait_for(pilot, lambda: len(tail(app)) >= 12)
        await pilot.press("m")
        await wait_for(pilot, lambda: any("marker 1" in line for line in tail(app)))
        await pilot.press("slash")
        await pilot.press(*"marker")
        assert tail(app) and all("marker" in line for line in tail(app))
        assert "filter: marker" in str(app.live.query_one("#tail-status", Static).render())
        await pilot.press("enter", "escape")
        await wait_for(pilot, lambda: len(tail(app)) >= 12)
        assert any("HP1" in line for line in tail(app))

    run(app, scenario)


def test_interlock_alarm_shows_on_every_screen_rings_and_its_acknowledgement_is_recorded(
        live, db_path):
    app = live()
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]

    async def scenario(pilot: Pilot) -> None:
        session_id = await start_session(pilot)
        controller = pilot.app.controller
        await wait_for(pilot, lambda: controller.totals.pulses >= 3)
        await pilot.press("f3")
        assert isinstance(pilot.app.screen, HistoryScreen)
        controller.sim.inject_fault(10)
        bar = pilot.app.screen.query_one("#alarm", Static)
        await wait_for(pilot, lambda: "!! " in str(bar.render()), what="the alarm bar")
        assert "INTERLOCK" in str(bar.render()) or "FAULT" in str(bar.render())
        assert bells
        assert "!! " in str(app.live.query_one("#alarm", Static).render())
        await wait_for(pilot, lambda: len(controller.alarms) >= 2, what="interlock and fault")
        await pilot.press("a")
        await wait_for(pilot, lambda: pilot.app.screen.query("#text"))
        assert pilot.app.screen.query_one("#text", Input).value == "tech-07"
        listed = str(pilot.app.screen.query_one("#dialog-body", Static).render())
        assert "INTERLOCK (interlock_open): interlock open" in listed
        assert "FAULT (fault): " in listed
        await pilot.press("enter")
        await wait_for(pilot, lambda: not controller.unacknowledged, what="acknowledgement")
        # Silenced, not hidden: the interlock is still open, so it stays on the bar.
        await wait_for(pilot, lambda: "acked, still true" in str(bar.render()))
        assert str(bar.render()).startswith(("!! INTERLOCK", "!! FAULT"))
        await pilot.press("f2")
        assert controller.totals.interlock_open
        assert "INTERLOCK OPEN" in str(app.live.query_one("#counters", Static).render())
        await end_session(pilot)
        acks = query(db_path, "SELECT message FROM events WHERE session_id = ? AND"
                     " kind = 'alarm_ack'", session_id)
        assert acks and all("acknowledged by tech-07 at 20" in m for (m,) in acks)
        words = " ".join(m for (m,) in acks)
        assert "INTERLOCK" in words and "FAULT" in words

    run(app, scenario)


def test_value_outside_the_consoles_range_is_an_alarm_recorded_once_until_acknowledged(
        live, db_path):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        session_id = await start_session(pilot)
        controller = pilot.app.controller
        await wait_for(pilot, lambda: controller.totals.pulses >= 3)
        controller.sim.console.params["energy"] = 0.9  # 900 mJ: above the console's 500 mJ
        await wait_for(pilot, lambda: any(a.word == "OUT OF RANGE" for a in controller.alarms))
        counted = controller.totals.pulses
        await wait_for(pilot, lambda: controller.totals.pulses >= counted + 10)
        assert "OUT OF RANGE" in str(app.live.query_one("#alarm", Static).render())
        await end_session(pilot)
        rows = query(db_path, "SELECT message FROM events WHERE session_id = ? AND"
                     " kind = 'out_of_range'", session_id)
        assert len(rows) >= 1 and all(m.startswith(("energy", "fluence")) for (m,) in rows)
        assert len(rows) <= 2  # latched: one per quantity, not one per pulse

    run(app, scenario)


def test_pulse_gap_and_lost_link_raise_alarms(live):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        await start_session(pilot)
        controller = pilot.app.controller
        sim = controller.sim
        await wait_for(pilot, lambda: controller.totals.pulses >= 3)
        with sim._lock:
            sim.console.shot_counter += 5
        await wait_for(pilot, lambda: any(a.word == "PULSE GAP" for a in controller.alarms))
        sim.link.unplug()
        await wait_for(pilot, lambda: any(a.word == "LINK LOST" for a in controller.alarms))
        (lost,) = [a for a in controller.alarms if a.word == "LINK LOST"]
        # laserlog's words, naming the port and what to check; not pyserial's.
        assert lost.message.startswith(f"console on {sim.path} disconnected while "), lost.message
        assert "readiness" not in lost.message
        top = app.live.query_one("#top", Static)
        await wait_for(pilot, lambda: "x LINK DOWN" in str(top.render()))
        sim.link.plug()
        await wait_for(pilot, lambda: controller.link_state == "up", timeout_s=30)  # a loaded machine reconnects slower
        assert controller.totals.missing_pulses >= 5

    run(app, scenario)


def test_quitting_while_recording_asks_then_ends_the_session_with_everything_committed(
        live, db_path):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        await start_session(pilot)
        await wait_for(pilot, lambda: pilot.app.controller.totals.pulses >= 5)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert "is recording" in screen_text(pilot.app)
        await pilot.press("y")
        await wait_for(pilot, lambda: pilot.app.controller.session is None)

    run(app, scenario)
    (row,) = query(db_path, "SELECT status, end_reason, pulse_count FROM sessions")
    assert row[0] == "ended" and row[1] == "ended on quit"
    assert row[2] == query(db_path, "SELECT count(*) FROM pulses")[0][0] > 0


def test_returning_client_sees_the_course_and_can_start_from_the_last_settings(live, db_path):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        controller = pilot.app.controller
        sim = controller.sim
        with sim._lock:  # this client's area was treated at 3.0 mm, 200 mJ
            sim.console.params.update(spot=3.0, energy=0.2)
        await start_session(pilot)
        await wait_for(pilot, lambda: controller.totals.pulses >= 5)
        await end_session(pilot)
        first_energy = controller.totals.energy_j
        await pilot.press("escape")
        with sim._lock:  # another client since: back to 4 mm, 120 mJ
            sim.console.params.update(spot=4.0, energy=0.12)
        form = await fill_form(pilot)
        returning = str(form.query_one("#returning", Static).render())
        assert "Returning client C-1042: 1 earlier session(s)" in returning
        assert f"{first_energy:.3f} J" in returning
        assert "spot 3.0 mm" in returning and "energy 200.0 mJ" in returning
        assert "session 2 of the course for left cheek" in returning
        use_last = form.query_one("#use-last")
        assert use_last.display
        use_last.focus()
        await pilot.press("space")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: controller.session is not None)
        assert sim.console.params["spot"] == 3.0 and sim.console.params["energy"] == 0.2
        await wait_for(pilot, lambda: any("started from the last settings" in line
                                          for line in tail(app)))

    run(app, scenario)


def last_seq(app: LaserlogApp) -> int:
    """Return the pulse number on the last pulse line the tail shows."""
    for line in reversed(tail(app)):
        found = re.match(r"#\s*(\d+)", line)
        if found:
            return int(found.group(1))
    return 0


def bottom_seq(app: LaserlogApp) -> int:
    """Return the pulse number on the last pulse line in view (what the technician reads)."""
    log = app.live.query_one("#tail", Log)
    first = int(log.scroll_y)
    seen = tail(app)[first:first + log.scrollable_content_region.height]
    for line in reversed(seen):
        found = re.match(r"#\s*(\d+)", line)
        if found:
            return int(found.group(1))
    return 0


def test_tail_follows_the_newest_pulse_again_after_scrolling_up_and_resuming(live):
    app = live(rate_hz=100.0)

    async def scenario(pilot: Pilot) -> None:
        await start_session(pilot)
        controller = pilot.app.controller
        log = app.live.query_one("#tail", Log)
        await wait_for(pilot, lambda: len(tail(app)) >= 40, what="a tail longer than the view")
        await pilot.press("space", "pageup", "space")
        status = app.live.query_one("#tail-status", Static)
        assert "following the tail" in str(status.render())
        counted = controller.totals.pulses
        await wait_for(pilot, lambda: controller.totals.pulses >= counted + 30,
                       what="30 more pulses")
        # What is in view is the newest pulse, not where the view was left.
        await wait_for(pilot, lambda: bottom_seq(app) >= counted + 25 and log.is_vertical_scroll_end,
                       what="the view to follow the newest pulses")
        # Scrolling up pauses (and says so); End follows again, and keeps following.
        await pilot.press("pageup")
        await wait_for(pilot, lambda: "PAUSED" in str(status.render()), what="the pause")
        await pilot.press("end")
        await wait_for(pilot, lambda: "following the tail" in str(status.render()),
                       what="following again")
        counted = controller.totals.pulses
        await wait_for(pilot, lambda: bottom_seq(app) >= counted + 25, what="still following")

    run(app, scenario)


def test_idle_screen_shows_a_faulted_console_within_two_seconds_and_never_an_unread_state(live):
    app = live()
    app.controller.sim.inject_fault(10)  # faulted before laserlog ever looks

    async def scenario(pilot: Pilot) -> None:
        controller = pilot.app.controller
        bar = app.live.query_one("#alarm", Static)
        counters = app.live.query_one("#counters", Static)
        shown: list[str] = []

        def fault_shown() -> bool:
            shown.append(f"{bar.render()}\n{counters.render()}")
            return "INTERLOCK OPEN, FAULT 10" in shown[-1] and "!! " in str(bar.render())

        await wait_for(pilot, lambda: fault_shown() or controller.link_state == "up",
                       what="the link")
        loop = asyncio.get_running_loop()
        up_at = loop.time()
        await wait_for(pilot, fault_shown, timeout_s=5, what="the fault on the idle screen")
        assert loop.time() - up_at <= 2.0
        assert controller.session is None
        for text in shown:  # before the first reading: unknown, never a state not read
            assert "interlock closed" not in text and "no active alarms" not in text
        assert "console state unknown" in shown[0] or "FAULT 10" in shown[0]

    run(app, scenario)


def test_a_wrong_port_says_why_on_the_idle_screen_before_any_form(tmp_path, db_path):
    from laserlog.config.profile import open_profile

    port = str(tmp_path / "ttyUSB9")
    app = LaserlogApp(LiveController(db_path, open_profile("ps755-ref"), port))

    async def scenario(pilot: Pilot) -> None:
        header = app.live.query_one("#session-header", Static)
        await wait_for(pilot, lambda: f"console not reachable on {port}: " in str(
            header.render()), what="the reason on the idle screen")
        assert "does not exist: check the port name" in str(header.render())
        assert "Errno" not in str(header.render())  # laserlog's words, not the library's
        assert "console state unknown" in str(app.live.query_one("#counters", Static).render())
        await pilot.app.action_quit()

    try:
        run(app, scenario)
    finally:
        app.controller.shutdown()


def test_the_form_asks_for_a_reason_before_starting_on_a_faulted_console(live, db_path):
    from laserlog.review.users import add_user
    from laserlog.storage.store import Store

    with Store(db_path) as store:
        add_user(store, "tech-07", "Tech Seven", "technician", "seven's long passphrase")
    app = live()
    app.controller.sim.inject_fault(10)

    async def scenario(pilot: Pilot) -> None:
        controller = pilot.app.controller
        await wait_for(pilot, lambda: controller.status is not None, what="a status reading")
        form = await fill_form(pilot)
        trouble = str(form.query_one("#console-trouble", Static).render())
        assert "console reports fault 10" in trouble and "your reason and passphrase" in trouble
        await pilot.press("ctrl+s")
        error = form.query_one("#form-error", Static)
        await wait_for(pilot, lambda: "not started: type why it is safe" in str(
            error.render()), what="the refusal")
        assert controller.session is None
        await type_into(pilot, "#override", "fault latched, door checked")
        await pilot.press("ctrl+s")  # no passphrase: refused, saying why
        await wait_for(pilot, lambda: "registered user who gives their passphrase" in str(
            error.render()), what="the refusal without a passphrase")
        assert controller.session is None
        await type_into(pilot, "#override-passphrase", "seven's long passphrase")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: controller.session is not None, what="the start")
        await end_session(pilot)

    run(app, scenario)
    rows = query(db_path, "SELECT message FROM events WHERE kind = 'start_over_fault'")
    assert len(rows) == 1 and rows[0][0].endswith("reason: fault latched, door checked")


def test_the_calibration_warning_stands_whole_on_the_screen_while_the_session_runs(live):
    app = live()  # a console never checked with a meter: the start says so

    async def scenario(pilot: Pilot) -> None:
        await start_session(pilot)
        controller = pilot.app.controller
        line = app.live.query_one("#calibration", Static)
        await wait_for(pilot, lambda: line.display and "CALIBRATION" in str(line.render()),
                       what="the calibration warning")
        text = str(line.render())
        assert "no calibration check recorded for this console" in text
        assert text.endswith("check its output with `laserlog calibrate`")  # whole, not cut
        # Wrapped at 80 columns, once it is laid out (the text lands before the layout).
        await wait_for(pilot, lambda: line.size.height >= 2, what="the warning laid out")
        assert line.size.width <= 80
        # Many pulses later it is still there, while the tail has moved on.
        await wait_for(pilot, lambda: controller.totals.pulses >= 40, timeout_s=20)
        await pilot.pause()
        assert line.display and str(line.render()) == text
        await end_session(pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not line.display, what="the warning gone with the session")

    run(app, scenario)


def test_a_note_typed_in_one_burst_with_a_marker_after_it_records_both(live, db_path):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        session_id = await start_session(pilot)
        burst(pilot, "n", *"client asked to pause", "enter", "m")
        await wait_for(pilot, lambda: len(query(
            db_path, "SELECT 1 FROM events WHERE session_id = ? AND kind IN ('note', 'marker')",
            session_id)) == 2, what="the note and the marker")
        assert isinstance(pilot.app.screen, LiveScreen)
        await end_session(pilot)

    run(app, scenario)
    rows = query(db_path, "SELECT kind, message FROM events WHERE kind IN ('note', 'marker')"
                          " ORDER BY id")
    assert rows == [("note", "client asked to pause"), ("marker", "marker 1")]


def test_form_shows_the_skin_type_envelope_and_refuses_an_avoided_wavelength_as_record_does(
        live, db_path):
    from conftest import START
    from reviewkit import cli

    site = db_path.parent / "site.toml"
    site.write_text("[envelope.V.755]\navoid = true\n\n[envelope.IV.755]\n"
                    "recommended_fluence_j_cm2 = 0.8\nmax_fluence_j_cm2 = 1.5\n")
    refused = cli("record", "--profile", "ps755-ref", "--port", str(db_path.parent / "none"),
                  "--operator", "tech-07", "--client", "C-1042",
                  *[a if a != "III" else "V" for a in START], "--db", str(db_path))
    assert refused.returncode == 2
    record_words = refused.stderr.strip().split("--skin-type: ", 1)[1]
    app = live()

    async def scenario(pilot: Pilot) -> None:
        form = await fill_form(pilot, skin="4")
        line = form.query_one("#envelope-line", Static)
        assert str(line.render()) == ("skin type IV envelope on ps755-ref: 755 nm: recommended "
                                      f"up to 0.8, at most 1.5 J/cm2 (site file {site} "
                                      "[envelope.IV.755])")
        form.query_one("#skin", Input).value = "V"
        await pilot.pause()
        assert "755 nm is not to be used on skin type V" in str(line.render())
        await pilot.press("ctrl+s")
        assert str(form.query_one("#skin-error", Static).render()) == record_words
        assert pilot.app.screen is form and pilot.app.controller.session is None

    run(app, scenario)
    assert query(db_path, "SELECT count(*) FROM sessions") == [(0,)]


def test_the_end_of_a_session_offers_an_assessment_recorded_as_laserlog_assess_records_it(
        live, db_path):
    from laserlog.review.reactions import ASSESSMENT_COLUMNS

    app = live()

    async def scenario(pilot: Pilot) -> None:
        session_id = await start_session(pilot)
        await wait_for(pilot, lambda: pilot.app.controller.totals.pulses >= 3)
        await end_session(pilot, skip_assessment=False)
        form = pilot.app.screen
        assert pilot.app.focused is form.query_one("#erythema")
        # Each grade is held to its scale beside its field; nothing is written.
        await pilot.press("4", "enter", "1", "enter")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "4 is outside its scale: 0-3" in str(form.query_one("#erythema-error").render())
        assert "required: 0-10" in str(form.query_one("#pain-error").render())
        assert pilot.app.focused is form.query_one("#erythema")
        assert query(db_path, "SELECT count(*) FROM assessments") == [(0,)]
        # Mended: erythema 2, oedema 1, pain 4, blister ticked, a note; Enter in it records.
        await pilot.press("backspace", "2", "enter", "enter", "4", "enter", "space", "tab",
                          "tab", *"marked redness", "enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SummaryScreen),
                       what="the summary after recording")
        summary = pilot.app.screen
        await wait_for(pilot, lambda: "assessed  erythema 2, oedema 1, pain 4/10, blister"
                       in screen_text(pilot.app), what="the assessment in the summary")
        assert summary.session_id == session_id
        # `e` opens the form again; Esc leaves the summary as it was.
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AssessmentForm))
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is summary)

    run(app, scenario)
    columns = ", ".join(ASSESSMENT_COLUMNS)
    (row,) = query(db_path, f"SELECT {columns} FROM assessments")
    got = dict(zip(ASSESSMENT_COLUMNS, row, strict=True))
    assert {k: got[k] for k in ("session_id", "pass_number", "erythema", "oedema", "pain_nrs",
                                "blister", "purpura", "note", "correction", "user_id")} == {
        "session_id": 1, "pass_number": None, "erythema": 2, "oedema": 1, "pain_nrs": 4,
        "blister": 1, "purpura": 0, "note": "marked redness", "correction": 0,
        "user_id": "tech-07"}
    assert 0 <= got["hours_after_end"] < 0.1
    # The same row `laserlog assess` writes: in the hash chain, verified.
    from laserlog.storage.verify import verify_database

    assert verify_database(db_path).ok


def test_skipping_the_assessment_writes_nothing(live, db_path):
    app = live()

    async def scenario(pilot: Pilot) -> None:
        await start_session(pilot)
        await wait_for(pilot, lambda: pilot.app.controller.totals.pulses >= 2)
        await end_session(pilot, skip_assessment=False)
        await pilot.press("2", "enter", "1")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SummaryScreen))
        assert "assessed" not in screen_text(pilot.app)

    run(app, scenario)
    assert query(db_path, "SELECT count(*) FROM assessments") == [(0,)]


def test_an_assessment_typed_in_one_burst_fills_each_field(live, db_path):
    """Keys queued before any is handled (a fast typist, keys sent together) each reach the
    field they were typed for: Tab moves the focus the moment it is read."""
    app = live()

    async def scenario(pilot: Pilot) -> None:
        await start_session(pilot)
        await wait_for(pilot, lambda: pilot.app.controller.totals.pulses >= 2)
        await end_session(pilot, skip_assessment=False)
        burst(pilot, "2", "\t", "1", "\t", "4", "\t", " ", "\t", "\t", *"ok at 1 h", "\n")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SummaryScreen),
                       what="the summary after recording")

    run(app, scenario)
    assert query(db_path, "SELECT erythema, oedema, pain_nrs, blister, purpura, note"
                          " FROM assessments") == [(2, 1, 4, 1, 0, "ok at 1 h")]
