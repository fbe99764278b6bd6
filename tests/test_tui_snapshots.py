"""Snapshots of every main screen at 80x24 and 120x36, in the normal and the alarm state.

The screens are fed by a seeded simulated console through the recorder's own ingest, with a
fixed clock, so they repeat. Regenerate after a deliberate change with
`pytest tests/test_tui_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot
from tui_support import (  # noqa: F401 (steady_cursor is a fixture)
    add_events,
    add_reactions,
    frozen_app,
    snapshot_then_shut,
    steady_cursor,
    wait_for,
)

from laserlog.tui.session_form import SessionForm
from laserlog.tui.summary_screen import SummaryScreen

pytestmark = pytest.mark.usefixtures("steady_cursor")

SIZES = {"80x24": (80, 24), "120x36": (120, 36)}
STATES = ("normal", "alarm")


@pytest.fixture(autouse=True)
def no_user_profiles(tmp_path, monkeypatch):
    """Keep this machine's own profiles and checklist out of the pictures."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("LASERLOG_PROFILES", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


async def drained(pilot: Pilot) -> None:
    app = pilot.app
    # The trends redraw at most twice a second: on a loaded machine the feed may drain in
    # several ticks, the last one's points waiting for the next redraw.
    await wait_for(pilot, lambda: not app.controller.feed and not app.controller.events
                   and app.live.is_mounted and not app.live._spark_dirty,
                   what="the feed to be drained and the trends drawn")
    await pilot.pause()


def snapshot_app(tmp_path, screen: str, state: str):
    alarm = state == "alarm"
    if screen == "live":
        return frozen_app(tmp_path, pulses=40, alarm=alarm)
    app = frozen_app(tmp_path, history=True, alarm=alarm)
    if screen == "summary":
        add_events(app.controller.db_path, 3, 30)
    return app


KEYS = {"history": ("f3",), "energy": ("f4",), "profiles": ("f5",), "help": ("f1",)}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("screen", ["live", "form", "history", "session", "summary", "energy",
                                    "profiles", "help"])
def test_screen_snapshot(screen, state, size, tmp_path, snap_compare):
    app = snapshot_app(tmp_path, screen, state)

    async def run_before(pilot: Pilot) -> None:
        await drained(pilot)
        if screen in KEYS:
            await pilot.press(*KEYS[screen])
        elif screen == "form":
            form = SessionForm()
            await pilot.app.push_screen(form)
            form.query_one("#client").value = "C-1042"
            form.query_one("#area").value = "left cheek"
            form.query_one("#skin").value = "9"
            form.query_one("#skin").focus()
            await pilot.pause()
            form.query_one("#operator").focus()  # leaving the skin field shows its reason
        elif screen == "session":
            await pilot.press("f3", "enter")
        elif screen == "summary":
            summary = SummaryScreen(3)
            await pilot.app.push_screen(summary)
            await wait_for(pilot, lambda: summary.events_shown is not None,
                           what="the events fitted to the screen")
        await pilot.pause()
        await pilot.pause()

    assert snapshot_then_shut(snap_compare, app, SIZES[size], run_before)


def test_assessment_form_at_the_end_of_a_session(tmp_path, snap_compare):
    """The form `x` offers over the summary at 80x24: filled in, one grade off its scale."""
    from laserlog.tui.assess_form import AssessmentForm

    app = snapshot_app(tmp_path, "summary", "normal")

    async def run_before(pilot: Pilot) -> None:
        await drained(pilot)
        summary = SummaryScreen(3, assess=True)
        await pilot.app.push_screen(summary)
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AssessmentForm)
                       and pilot.app.screen.keys_ready, what="the assessment form")
        await wait_for(pilot, lambda: summary.events_shown is not None,
                       what="the events fitted to the screen")
        await pilot.press("2", "enter", "1", "enter", "1", "2", "enter", "space", "tab", "tab",
                          *"marked redness", "ctrl+s")
        await pilot.pause()
        await pilot.pause()

    assert snapshot_then_shut(snap_compare, app, (80, 24), run_before)


@pytest.mark.parametrize("size", SIZES)
def test_session_reactions_tab(size, tmp_path, snap_compare):
    """A past session's reactions: the corrected assessment, an event's updates, a retraction."""
    from laserlog.tui.session_screen import SessionScreen

    app = snapshot_app(tmp_path, "session", "normal")
    add_reactions(tmp_path / "frozen.db", session_id=3)

    async def run_before(pilot: Pilot) -> None:
        await drained(pilot)
        await pilot.press("f3", "down", "down", "enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionScreen),
                       what="session 3")
        await pilot.press("c")
        await pilot.pause()
        await pilot.pause()

    assert snapshot_then_shut(snap_compare, app, SIZES[size], run_before)


@pytest.mark.parametrize("screen", ["live", "form"])
def test_alarm_reads_without_colour(screen, tmp_path, snap_compare, monkeypatch):
    """With NO_COLOR the alarm, the link, the ticks and a field's error still read."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = snapshot_app(tmp_path, screen, "alarm")
    assert app.no_color

    async def run_before(pilot: Pilot) -> None:
        await drained(pilot)
        if screen == "form":
            form = SessionForm()
            await pilot.app.push_screen(form)
            form.query_one("#skin").value = "9"
            form.query_one("#skin").focus()
            await pilot.pause()
            form.query_one("#check-consent").value = True
            form.query_one("#check-consent").focus()  # leaving the skin field shows its reason
        await pilot.pause()

    assert snapshot_then_shut(snap_compare, app, (80, 24), run_before)


def test_every_snapshot_file_belongs_to_a_test():
    """No picture outlives its test. (The snapshot plugin's own check of unused pictures is
    off when the tests run on several processes, so this one asks pytest for the tests.)"""
    folder = Path(__file__).parent / "__snapshots__"
    modules = sorted(f.name for f in folder.iterdir() if f.is_dir())
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider",
         *(str(folder.parent / f"{m}.py") for m in modules)],
        capture_output=True, text=True, timeout=120, cwd=folder.parent.parent)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    tests = {tuple(line.split("::")) for line in collected.stdout.splitlines() if "::" in line}
    pictures = {(f"tests/{svg.parent.name}.py", svg.stem) for svg in folder.glob("*/*.svg")}
    assert pictures, "no snapshot pictures found"
    assert pictures - tests == set(), ("pictures of no test: delete them, or run "
                                       "`pytest -n 0 --snapshot-update`")
