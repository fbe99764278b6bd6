"""What people read: units as they are written on paper, and how long a session lasted."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import pytest
from test_tui_screens import run, table_rows
from textual.pilot import Pilot
from tui_support import frozen_app, wait_for

from laserlog.domain.units import display_unit
from laserlog.review.summary import format_session
from laserlog.storage.store import Store
from laserlog.tui.session_screen import SessionScreen


@pytest.mark.parametrize("stored,shown", [("J/cm**2", "J/cm²"), ("dimensionless", ""),
                                          ("degC", "°C"), ("mJ", "mJ"), (None, "")])
def test_stored_units_read_as_people_write_them(stored, shown):
    assert display_unit(stored) == shown


def test_a_session_summary_says_how_long_it_lasted(db_path):
    with Store(db_path) as store:
        session_id = store.create_session(
            device_id=None, profile_id="ps755-ref", port="/dev/x", operator_id="tech-07",
            client_ref="C-1042", area="left cheek", skin_type="III", eyewear_checked=True,
            checklist_json=None)
        started = datetime.fromisoformat(
            store.session(session_id)["started_utc"].replace("Z", "+00:00"))
        ended = started + timedelta(minutes=20, seconds=14)
        store.end_session(session_id, "ended", "done",
                          ended_utc=ended.isoformat(timespec="milliseconds")
                          .replace("+00:00", "Z"))
        text = format_session(store, session_id)
    assert "lasted    20:14" in text, text


def test_the_session_screen_shows_settings_in_readable_units(tmp_path):
    app = frozen_app(tmp_path, history=True)
    session = app.reader.sessions()[0]
    with sqlite3.connect(tmp_path / "frozen.db") as conn:
        conn.executemany("INSERT INTO settings (session_id, received_unix_s, name, value, unit)"
                         " VALUES (?, 1.8e9, ?, ?, ?)",
                         [(session["id"], "fluence", 0.95, "J/cm**2"),
                          (session["id"], "pulse_count", 3.0, "dimensionless")])

    async def scenario(pilot: Pilot) -> None:
        pilot.app.push_screen(SessionScreen(session["id"]))
        screen = await wait_for(pilot, lambda: isinstance(pilot.app.screen, SessionScreen)
                                and pilot.app.screen)
        await pilot.press("t")  # the Settings tab
        await wait_for(pilot, lambda: screen.query("#setting-table"))
        units = {r[1]: r[3] for r in table_rows(screen, "#setting-table")}
        assert units["fluence"] == "J/cm²" and units["pulse_count"] == ""

    run(app, scenario)


def test_a_profile_reads_its_ranges_in_written_units():
    from laserlog.config.profile import open_profile
    from laserlog.review.summary import format_profile

    text = format_profile(open_profile("ps755-ref"))
    assert "0.1..10 J/cm²" in text and "J/cm**2" not in text and "dimensionless" not in text
