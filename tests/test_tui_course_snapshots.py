"""Snapshots of the courses on the screen at 80x24 and 120x36: the form's course line, its
refusal of an early start with the officer's row, a course planned on the form, and the
summary of a course session with its course, warnings, alarms and aftercare.

Regenerate after a deliberate change with
`pytest tests/test_tui_course_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_tui_snapshots import drained, no_user_profiles  # noqa: F401 (a fixture)
from textual.pilot import Pilot
from tui_support import T0, add_events, frozen_app, steady_cursor, wait_for  # noqa: F401 (steady_cursor is a fixture)

from laserlog.config.courses import Window
from laserlog.config.documents import read_document
from laserlog.recording import courses
from laserlog.review.documents import record_aftercare
from laserlog.storage import chain
from laserlog.storage.store import INSERT_EVENT, Store
from laserlog.tui.session_form import SessionForm
from laserlog.tui.summary_screen import SummaryScreen

SIZES = {"80x24": (80, 24), "120x36": (120, 36)}
SITE = """[courses]
[courses.intervals]
pores = "21-42/28"
[documents]
consent = "consent.md"
aftercare = "aftercare.md"
"""
#: When the form opens: 26 days after session 3 (in the window), or 4 days (too early).
OPENED = {"course": datetime(2026, 3, 24, 9, 0, tzinfo=UTC),
          "early": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
          "new": datetime(2026, 3, 2, 9, 0, tzinfo=UTC)}
EVENTS = [  # (kind, severity, count, message) as the recorder words them
    ("interval_late", "warning", 1, "late for course 1: 45 day(s) since session 1 on "
     "2026-01-12, window 21\u201342 days"),
    ("above_test_spot", "alarm", 7, "pulse 12: fluence 1.02 J/cm2 above the highest tested "
     "at 755 nm (0.95 J/cm2)"),
    ("out_of_envelope", "warning", 4, "4 pulses between pulse 20 and 31: fluence up to 0.99 "
     "J/cm2 above the skin type III recommended 0.9 J/cm2 at 755 nm"),
    ("out_of_envelope", "alarm", 2, "2 pulses between pulse 40 and 41: fluence up to 1.21 "
     "J/cm2 above the skin type III maximum 1.2 J/cm2 at 755 nm"),
]

pytestmark = pytest.mark.usefixtures("steady_cursor")


@pytest.fixture
def course_app(tmp_path, monkeypatch):
    """A frozen app on a site with courses, consent and aftercare; course 1 (C-1042, left
    cheek, pores) holds session 3 as its first full session."""
    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    (tmp_path / "site.toml").write_text(SITE)
    (tmp_path / "consent.md").write_text("# Consent\n\nI agree.\n")
    (tmp_path / "aftercare.md").write_text("# Aftercare\n\nAvoid the sun.\n")
    app = frozen_app(tmp_path, history=True)
    with Store(app.controller.db_path) as store:
        course = courses.find(store.conn, courses.create(
            store, client="C-1042", area="left cheek", indication="pores", sessions=6,
            window=Window(21, 42, 28), profile_id=None, note=None))
        assert course is not None
        courses.attach(store, course, [3])
    yield app
    app.controller.shutdown()


def late_course_session(app) -> None:
    """Give session 3 the events of a late course session and the aftercare given."""
    db = app.controller.db_path
    with Store(db) as store:
        with store.conn:
            for number, (kind, severity, count, message) in enumerate(EVENTS):
                store.conn.execute(INSERT_EVENT, (3, T0 + number, kind, severity, None,
                                                  message, None, count, None))
            head = chain.append_batch(store.conn, 3, {"events": len(EVENTS)})
        chain.write_anchor(store.path, head)
        store.recount(3)
        record_aftercare(store, 3, read_document(db.parent / "aftercare.md", "aftercare",
                                                 "aftercare"), "end")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("state", ["course", "early", "new", "summary"])
def test_course_snapshot(state, size, course_app, snap_compare, monkeypatch):
    app = course_app
    monkeypatch.setattr(courses, "now", lambda: OPENED.get(state, OPENED["course"]))
    if state == "summary":
        late_course_session(app)
        add_events(app.controller.db_path, 3, 0)

    async def run_before(pilot: Pilot) -> None:
        await drained(pilot)
        if state == "summary":
            summary = SummaryScreen(3)
            await pilot.app.push_screen(summary)
            await wait_for(pilot, lambda: summary.events_shown is not None,
                           what="the events fitted to the screen")
            await pilot.pause()
            return
        form = SessionForm()
        await pilot.app.push_screen(form)
        for name, value in (("operator", "tech-07"), ("client", "C-1042"),
                            ("area", "left cheek"), ("skin", "III")):
            form.query_one(f"#{name}").value = value
        for item in pilot.app.checklist:
            form.query_one(f"#check-{item.key}").value = True
        if state == "new":
            form.query_one("#new-course").value = True
            await pilot.pause()
            form.query_one("#indication").value = "pores"
            form.query_one("#sessions").value = "6"
            form.query_one("#witness").value = "lso-01"
            await pilot.pause()
            form.query_one("#witness-passphrase").focus()
        else:
            form.query_one("#course").value = "1"
            await pilot.pause()
            if state == "early":
                await pilot.press("ctrl+s")
                await pilot.pause()
                form.query_one("#early-officer").focus()
            else:
                form.query_one("#new-course").focus()
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZES[size], run_before=run_before)
