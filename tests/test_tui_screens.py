"""History, a past session, energy, profiles, help and the palette, by key (Pilot)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Static
from tui_support import (  # noqa: F401 (fast_keys: a fixture)
    add_events,
    add_reactions,
    build_history,
    fast_keys,
    frozen_app,
    screen_text,
    wait_for,
)

from laserlog.config.profile import open_profile
from laserlog.storage.store import Store
from laserlog.tui.app import LaserlogApp
from laserlog.tui.energy_screen import EnergyScreen, bar, energy_chart
from laserlog.tui.help_screen import HelpScreen
from laserlog.tui.history_screen import HistoryScreen
from laserlog.tui.live_screen import LiveScreen
from laserlog.tui.profiles_screen import ProfilesScreen
from laserlog.tui.queries import energy_by_period, find_sessions
from laserlog.tui.session_screen import SessionScreen

pytestmark = pytest.mark.usefixtures("fast_keys")


def run(app: LaserlogApp, scenario: Callable[[Pilot], Awaitable[None]],
        size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    try:
        asyncio.run(main())
    finally:
        app.controller.shutdown()


def table_rows(screen, selector: str) -> list[list[str]]:
    table = screen.query_one(selector, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def open_history(pilot: Pilot) -> HistoryScreen:
    """Press F3 and return the history screen once it shows."""
    await pilot.press("f3")
    screen = await wait_for(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen)
                            and pilot.app.screen)
    assert isinstance(screen, HistoryScreen)
    return screen


def test_history_lists_filters_sorts_and_opens_sessions(tmp_path):
    app = frozen_app(tmp_path, history=True)

    async def scenario(pilot: Pilot) -> None:
        screen = await open_history(pilot)
        assert [r[0] for r in table_rows(screen, "#sessions")] == ["5", "4", "3", "2", "1"]
        await pilot.press("slash", *"C-1042", "enter")
        rows = table_rows(screen, "#sessions")
        assert [r[0] for r in rows] == ["5", "3", "1"] and {r[4] for r in rows} == {"C-1042"}
        assert "3 session(s) matching 'C-1042'" in str(
            screen.query_one("#history-status", Static).render())
        await pilot.press("o", "o", "o", "o", "o")  # started -> ... -> energy
        assert screen.sort == "energy"
        energies = [float(r[8]) for r in table_rows(screen, "#sessions")]
        assert energies == sorted(energies, reverse=True)
        await pilot.press("r")
        assert [float(r[8]) for r in table_rows(screen, "#sessions")] == sorted(energies)
        await pilot.press("enter")
        detail = await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionScreen)
                                and pilot.app.screen)
        lowest = int(table_rows(screen, "#sessions")[0][0])
        assert detail.session_id == lowest
        await pilot.press("escape")
        assert pilot.app.screen is screen
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, LiveScreen)

    run(app, scenario)


def test_a_session_pages_its_pulses_by_keyset_and_shows_events_and_totals(tmp_path):
    app = frozen_app(tmp_path, history=True)
    reader = app.reader
    (session,) = [s for s in reader.sessions() if s["pulse_count"] == 60]
    total, page_size = session["pulse_count"], 25

    async def scenario(pilot: Pilot) -> None:
        pilot.app.push_screen(SessionScreen(session["id"], page_size))
        screen = await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionScreen)
                                and pilot.app.screen.page_ids and pilot.app.screen)
        head = str(screen.query_one("#session-head", Static).render())
        assert f"pulses {total:,}" in head and "regimes picosecond" in head
        first = table_rows(screen, "#pulse-table")
        assert len(first) == page_size and first[0][0] == "1"
        seqs = [int(r[0]) for r in first]
        pages = 1
        while len(seqs) < total:
            await pilot.press("right_square_bracket")
            page = [int(r[0]) for r in table_rows(screen, "#pulse-table")]
            assert page and page[0] == seqs[-1] + 1
            seqs += page
            pages += 1
        assert seqs == list(range(1, total + 1))
        await pilot.press("left_square_bracket")
        assert pages == 3
        assert table_rows(screen, "#pulse-table")[0][0] == str((pages - 2) * page_size + 1)
        await pilot.press("t")
        assert table_rows(screen, "#setting-table")[0][1:] == ["spot", f"{3.0 + 1.5:g}", "mm"]

    run(app, scenario)


def test_a_past_session_shows_its_standing_assessment_and_adverse_events(tmp_path):
    app = frozen_app(tmp_path, history=True)
    add_reactions(tmp_path / "frozen.db", session_id=3)

    async def scenario(pilot: Pilot) -> None:
        screen = await open_history(pilot)
        await pilot.press("down", "down", "enter")
        detail = await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionScreen)
                                and pilot.app.screen)
        assert detail.session_id == 3
        head = str(detail.query_one("#session-head", Static).render())
        assert "reactions: assessed (corrected); adverse: pih resolving; 1 retracted" in head
        await pilot.press("c")
        await wait_for(pilot, lambda: detail.query_one("#session-tabs").active == "reactions",
                       what="the reactions tab")
        text = detail.query_one("#reactions-text", Static).render()
        plain = str(text)
        # The correction stands, not the first assessment.
        assert "erythema 1, oedema 0, pain 2/10, blister  CORRECTED" in plain
        assert "erythema 2" not in plain
        assert "#1 pih  onset 2026-03-01  non-serious" in plain
        assert "outcome resolving (2026-03-02)" in plain and "not-resolved" in plain
        retracted = "#2 blister  onset 2026-02-27  serious  left cheek"
        assert ("RETRACTED: entered for the wrong client" in plain
                and retracted in plain)
        struck = [str(text)[s.start:s.end] for s in text.spans if "strike" in str(s.style)]
        assert struck == [retracted]
        await pilot.press("escape")
        assert pilot.app.screen is screen
        await pilot.press("up", "enter")  # session 4 has no reactions: no line, tab says so
        other = await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionScreen)
                               and pilot.app.screen.session_id == 4 and pilot.app.screen)
        assert "reactions" not in str(other.query_one("#session-head", Static).render())
        assert "none reported" in str(other.query_one("#reactions-text", Static).render())

    run(app, scenario)


def test_energy_chart_by_day_and_week_by_device_and_operator(tmp_path):
    app = frozen_app(tmp_path, history=True)
    by_operator = energy_by_period(app.reader, "week", "operator")
    assert {b.key for b in by_operator} == {"tech-07", "tech-03"}
    assert sum(b.energy_j for b in by_operator) == pytest.approx(
        sum(s["total_energy_j"] for s in app.reader.sessions()))

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("f4")
        screen = await wait_for(pilot, lambda: isinstance(pilot.app.screen, EnergyScreen)
                                and pilot.app.screen)
        chart = screen.query_one("#energy-chart", Static)
        text = str(chart.render())
        assert "2026-02-23" in text and "PSR755" in text and "█" in text
        await pilot.press("w", "g")
        text = str(chart.render())
        # ISO 8601 weeks start on Monday: 23 Feb to 1 Mar 2026 is W09, 2 Mar starts W10.
        assert "2026-W09" in text and "2026-W10" in text and "2026-W08" not in text
        assert "tech-07" in text and "2026-02-23" not in text
        assert "per week by operator" in str(screen.query_one("#energy-title", Static).render())

    run(app, scenario)


def test_energy_bars_scale_to_the_largest_and_the_chart_accumulates():
    assert bar(10, 10, 8) == "█" * 8
    assert bar(5, 10, 8) == "████    "
    assert bar(0, 10, 4) == "    "
    from laserlog.tui.queries import EnergyBar

    text = energy_chart([EnergyBar("2026-03-01", "a", 1.0, 5, 1),
                         EnergyBar("2026-03-02", "a", 2.5, 9, 1)], "day", "device", 60)
    assert text.splitlines()[-1].rstrip().endswith("2.500      3.500")


def test_profiles_screen_lists_every_profile_with_ranges_and_handpieces(tmp_path):
    app = frozen_app(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("f5")
        screen = await wait_for(pilot, lambda: isinstance(pilot.app.screen, ProfilesScreen)
                                and pilot.app.screen)
        names = [r[0] for r in table_rows(screen, "#profile-table")]
        assert {"ps755-ref", "ps1064-ref", "cfr-ndyag", "fx1550-ref"} <= set(names)
        detail = screen.query_one("#profile-detail", Static)
        await wait_for(pilot, lambda: "ps755-ref" in str(detail.render()))
        assert "handpieces:" in str(detail.render()) and "0.001..0.5 J" in str(detail.render())
        await pilot.press("up")
        await wait_for(pilot, lambda: "ps755-ref" not in str(detail.render()).splitlines()[0])

    run(app, scenario)


def test_help_opens_with_f1_or_question_mark_and_lists_every_screen_key(tmp_path):
    app = frozen_app(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        for key in ("f1", "question_mark"):
            await pilot.press(key)
            assert isinstance(pilot.app.screen, HelpScreen)
            text = screen_text(pilot.app)
            for needle in ("space", "PAUSED +N", "ctrl+p", "acknowledge", "F3", "ctrl+s"):
                assert needle in text
            await pilot.press("escape")
            assert isinstance(pilot.app.screen, LiveScreen)

    run(app, scenario)


def test_command_palette_reaches_the_screens(tmp_path):
    app = frozen_app(tmp_path)

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("ctrl+p")
        await pilot.press(*"History")
        results = pilot.app.screen.query_one(OptionList)
        await wait_for(pilot, lambda: results.option_count, what="a hit")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen))

    run(app, scenario)


def test_acknowledging_a_link_alarm_outside_a_session_is_recorded_with_who(tmp_path):
    app = frozen_app(tmp_path, alarm=True)

    async def scenario(pilot: Pilot) -> None:
        bar_text = str(pilot.app.live.query_one("#alarm", Static).render())
        assert bar_text.startswith("!! LINK LOST")
        # What the recording thread runs for `a` (the frozen app has no thread).
        count = pilot.app.controller._acknowledge(1772443900.0, "lso-01")
        assert count == 1

    run(app, scenario)
    import sqlite3

    with sqlite3.connect(tmp_path / "frozen.db") as conn:
        (row,) = conn.execute("SELECT session_id, kind, message FROM events").fetchall()
    assert row[0] is None and row[1] == "alarm_ack"
    assert row[2] == ("1 alarm(s) acknowledged by lso-01 at 2026-03-02T09:31:40Z: LINK LOST "
                      "(link_lost): console stopped answering on /dev/ttyFROZEN")


def test_history_filter_words_narrow_together_client_area_and_operator(tmp_path):
    app = frozen_app(tmp_path, history=True)

    async def scenario(pilot: Pilot) -> None:
        screen = await open_history(pilot)
        await pilot.press("slash", *"C-1042 left cheek")
        assert [r[0] for r in table_rows(screen, "#sessions")] == ["3", "1"]
        assert "2 session(s) matching 'C-1042 left cheek'" in str(
            screen.query_one("#history-status", Static).render())
        await pilot.press(*[("backspace")] * len("C-1042 left cheek"), *"forearm  tech-03")
        assert [r[0] for r in table_rows(screen, "#sessions")] == ["2"]
        await pilot.press(*"  C-1042")  # no C-1042 session on the forearm
        assert table_rows(screen, "#sessions") == []

    run(app, scenario)


_WORDS = ["C-1042", "c-10", "left", "cheek", "tech-07", "TECH", "forearm", "ended", "ps755",
          "%", "_", "\\", "'", "lip", "x"]


@given(st.lists(st.sampled_from(_WORDS) | st.text(st.characters(max_codepoint=127), max_size=6),
                max_size=4))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_every_session_found_matches_every_filter_word_and_none_is_missed(tmp_path, words):
    db = tmp_path / "history.db"
    if not db.exists():
        build_history(db, open_profile("ps755-ref"))
    text = " ".join(words)
    with Store(db, readonly=True) as store:
        found = {row["id"] for row in find_sessions(store, text)}
        everything = store.query("SELECT * FROM sessions")
    fields = ("client_ref", "operator_id", "area", "profile_id", "status")
    printable = ["".join(c for c in word if c.isprintable()) for word in text.split()]
    expected = {row["id"] for row in everything if all(
        any(word.lower() in (row[name] or "").lower() for name in fields)
        for word in printable if word)}
    assert found == expected


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
def test_the_summary_shows_as_many_events_as_fit_and_counts_the_rest(tmp_path, size):
    from textual.containers import VerticalScroll

    from laserlog.tui.summary_screen import SummaryScreen

    app = frozen_app(tmp_path, history=True)
    add_events(app.controller.db_path, 2, 40)

    async def scenario(pilot: Pilot) -> None:
        summary = SummaryScreen(2)
        await pilot.app.push_screen(summary)
        shown = await wait_for(pilot, lambda: summary.events_shown, what="the events fitted")
        assert isinstance(shown, int) and shown > (12 if size[1] > 24 else 5)
        text = str(summary.query_one("#summary", Static).render())
        assert f"note {40 - shown + 1}" in text and f"note {40 - shown}:" not in text
        assert f"... {40 - shown} earlier event(s)" in text
        body = summary.query_one("#summary-body", VerticalScroll)
        static = summary.query_one("#summary", Static)
        await pilot.pause()
        # Everything shown fits, and one more event would not have.
        assert static.outer_size.height <= body.scrollable_content_region.height
        assert body.scrollable_content_region.height - static.outer_size.height < 1 + 1

    run(app, scenario, size=size)


FOOTER_KEYS = {"live": ["s Start", "x End", "n Note", "m Marker", "f1 Help", "a Ack"],
               "history": ["/ Filter", "f1 Help", "a Ack"]}


def footer_text(screen) -> str:
    """Return the footer as drawn: every key the screen width leaves room for, in order."""
    from textual.widgets._footer import FooterKey

    width = screen.size.width
    keys = sorted(((key.region.x, key) for key in screen.query(FooterKey) if key.display),
                  key=lambda item: item[0])
    return " ".join(f"{key.key_display} {key.description}" for x, key in keys
                    if key.region.right <= width and key.region.width > 0)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
@pytest.mark.parametrize("screen_name", ["live", "history"])
def test_the_footer_shows_the_keys_that_matter_whole_at_80_and_120_columns(tmp_path, size,
                                                                          screen_name):
    app = frozen_app(tmp_path, pulses=5, history=True, alarm=True)

    async def scenario(pilot: Pilot) -> None:
        if screen_name == "history":
            await open_history(pilot)
        await pilot.pause()
        shown = await wait_for(pilot, lambda: footer_text(pilot.app.screen))
        for key in FOOTER_KEYS[screen_name]:
            assert key in str(shown), shown

    run(app, scenario, size=size)


def test_a_field_error_stands_out_without_colour(tmp_path, monkeypatch):
    """NO_COLOR greys every colour: an error is drawn reversed and bold, not in red alone."""
    from laserlog.tui.session_form import SessionForm

    monkeypatch.setenv("NO_COLOR", "1")
    app = frozen_app(tmp_path)
    assert app.no_color

    async def scenario(pilot: Pilot) -> None:
        form = SessionForm()
        await pilot.app.push_screen(form)
        form.query_one("#skin").value = "9"
        form.query_one("#skin").focus()
        await pilot.pause()
        form.query_one("#operator").focus()
        error = form.query_one("#skin-error", Static)
        await wait_for(pilot, lambda: "not a Fitzpatrick" in str(error.render()))
        style = error.rich_style
        assert style.reverse and style.bold

    run(app, scenario)
