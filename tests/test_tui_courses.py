"""The session form's courses: a course planned on the form, a test spot, aftercare at the end.

Driven by keys (Pilot) against a seeded simulated console, on a site with consent and
aftercare texts; the form must refuse what `course new` refuses, in the same words.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_courses import cli, rows
from test_tui_live import fill_form, live, run  # noqa: F401 (live: a fixture)
from textual.pilot import Pilot
from textual.widgets import Input, Static
from tui_support import fast_keys, screen_text, wait_for  # noqa: F401 (fast_keys: a fixture)

from laserlog.tui.live_screen import LiveScreen
from laserlog.tui.session_form import SessionForm
from laserlog.tui.summary_screen import SummaryScreen

pytestmark = pytest.mark.usefixtures("fast_keys")

PASSPHRASE = "witness passphrase 7"
CONSENT = "# Consent\n\nI agree to a course of picosecond treatment.\n"
AFTERCARE = "# Aftercare\n\n- Avoid direct sun for two weeks.\n"
SITE = """[courses]
test_spot_max_pulses = 5
[courses.intervals]
pores = "21-42/28"
[documents]
consent = "consent.md"
aftercare = "aftercare.md"
"""
WRITTEN = ("courses", "course_consents", "documents", "session_kinds", "sessions",
           "session_aftercare")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def counts(db: Path) -> tuple[int, ...]:
    return tuple(rows(db, f"SELECT count(*) FROM {table}")[0][0] for table in WRITTEN)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site with an interval for pores, consent and aftercare texts and a witness."""
    from laserlog.review.users import add_user
    from laserlog.storage.store import Store

    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    (tmp_path / "site.toml").write_text(SITE)
    (tmp_path / "consent.md").write_text(CONSENT)
    (tmp_path / "aftercare.md").write_text(AFTERCARE)
    db = tmp_path / "laserlog.db"
    with Store(db) as store:
        add_user(store, "lso-01", "Dr Jane Roe", "officer", PASSPHRASE)
    return db


@pytest.fixture
def app(site: Path, live):  # noqa: F811 (the fixture imported above)
    """The app on a seeded simulated console, recording into the site's database."""
    return live()


async def plan_course(pilot: Pilot, form: SessionForm, *, indication: str = "pores",
                      sessions: str = "6", interval: str = "", witness: str = "lso-01",
                      passphrase: str = PASSPHRASE, typed: bool = False) -> None:
    """Tick New course and fill its plan: typed key by key, or (faster) set."""
    form.query_one("#new-course").focus()
    await pilot.press("space")
    fields = [("indication", indication), ("sessions", sessions), ("interval", interval)]
    if witness:  # the witness rows are there only where the site keeps a consent document
        fields += [("witness", witness), ("witness-passphrase", passphrase)]
    for name, text in fields:
        box = form.query_one(f"#{name}", Input)
        if typed:
            box.focus()
            await pilot.pause()
            await pilot.press(*text)
        else:
            box.value = text
    await pilot.pause()


def test_a_course_planned_on_the_form_is_recorded_at_the_start_and_aftercare_at_the_end(
        app, site):
    before = counts(site)
    seen: dict[str, object] = {}

    async def scenario(pilot: Pilot) -> None:
        form = await fill_form(pilot)
        await plan_course(pilot, form)
        seen["line"] = str(form.query_one("#course-line", Static).render())
        seen["consent"] = str(form.query_one("#consent-line", Static).render())
        await pilot.press("escape")  # a cancelled form writes nothing
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen), what="the live screen")
        seen["after_cancel"] = counts(site)
        form = await fill_form(pilot)
        await plan_course(pilot, form, typed=True)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, LiveScreen)
                       and app.controller.session is not None, what="the session to start")
        await wait_for(pilot, lambda: app.controller.totals.pulses >= 3, what="pulses")
        await pilot.press("x")
        await wait_for(pilot, lambda: "aftercare" in screen_text(app), what="the end dialog")
        seen["dialog"] = screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen)
                       or len(app.screen_stack) > 2 and isinstance(app.screen_stack[-2],
                                                                   SummaryScreen),
                       what="the summary")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SummaryScreen), what="summary")
        seen["summary"] = screen_text(app)

    run(app, scenario, size=(100, 50))
    assert seen["after_cancel"] == before
    assert seen["line"] == ("new course: pores, session 1 of 6 \u00b7 window 21\u201342 days, "
                            "target 28 days \u00b7 recorded when the session starts")
    assert f"Consent {sha(CONSENT)[:12]} (consent.md)" in str(seen["consent"])
    assert f"Aftercare {sha(AFTERCARE)[:12]} (aftercare.md): given" in str(seen["dialog"])
    assert rows(site, "SELECT id, client_ref, area, indication, profile_id, planned_sessions,"
                      " min_interval_days, max_interval_days, target_interval_days"
                      " FROM courses") == [
        (1, "C-1042", "left cheek", "pores", "ps755-ref", 6, 21, 42, 28)]
    assert rows(site, "SELECT course_id, consent_sha256, witness_user_id FROM"
                      " course_consents") == [(1, sha(CONSENT), "lso-01")]
    assert rows(site, "SELECT session_id, kind, course_id FROM session_kinds") == [
        (1, "course", 1)]
    assert rows(site, "SELECT session_id, aftercare_sha256, how FROM session_aftercare") == [
        (1, sha(AFTERCARE), "end")]
    assert "kind      course session of course 1" in str(seen["summary"])
    assert f"aftercare {sha(AFTERCARE)[:12]} (aftercare.md) given" in str(seen["summary"])


def test_the_form_refuses_a_bad_plan_in_the_words_of_course_new(app, site):
    """Each window `course new` refuses, the form refuses beside Interval in its words;
    a wrong witness passphrase starts nothing and writes nothing."""
    cases = [("pores", "5-1"), ("pores", "-1-5"), ("pores", "0-0"), ("pores", "1-400"),
             ("pores", "3 weeks"), ("texture", ""), ("warts", "")]
    said: list[tuple[str, str]] = []
    before = counts(site)

    async def scenario(pilot: Pilot) -> None:
        form = await fill_form(pilot)
        await plan_course(pilot, form, passphrase="not the passphrase")
        for indication, interval in cases:
            form.query_one("#indication", Input).value = indication
            form.query_one("#interval", Input).value = interval
            await pilot.press("ctrl+s")
            field = "#indication-error" if indication == "warts" else "#interval-error"
            said.append((field, str(form.query_one(field, Static).render())))
        form.query_one("#indication", Input).value = "pores"
        form.query_one("#interval", Input).value = ""
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "not started" in str(
            form.query_one("#form-error", Static).render()), what="the refusal")
        said.append(("#form-error", str(form.query_one("#form-error", Static).render())))

    run(app, scenario, size=(100, 50))
    for (indication, interval), (field, text) in zip(cases, said, strict=False):
        argv = ["course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
                indication, "--sessions", "6", "--db", str(site)]
        status, _, err = cli(*argv, *([f"--interval={interval}"] if interval else []))
        assert status == 2
        name = field[1:].removesuffix("-error")
        message = err.strip().removeprefix("laserlog: error: ")
        assert text and message.replace(f"--{name}", name) == text, (text, err)
    assert said[-1][1].startswith("not started: witness lso-01: ")
    assert counts(site) == before


def test_a_test_spot_from_the_form_stops_at_the_sites_limit(app, site):
    async def scenario(pilot: Pilot) -> None:
        form = await fill_form(pilot)
        form.query_one("#test-spot").focus()
        await pilot.press("space")
        assert "Test spot (stops after 5 pulses)" in screen_text(app)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.controller.last_session_id is not None
                       and app.controller.session is None, what="the test spot to stop")
        # Nobody ended it through the end dialog: the screen asks about aftercare once.
        await wait_for(pilot, lambda: "ended by itself. Aftercare" in screen_text(app),
                       what="the aftercare question")
        await pilot.press("y")
        await wait_for(pilot, lambda: rows(site, "SELECT count(*) FROM session_aftercare")
                       == [(1,)], what="the aftercare row")

    run(app, scenario, size=(100, 50))
    assert rows(site, "SELECT session_id, how FROM session_aftercare") == [(1, "end")]
    assert rows(site, "SELECT kind, course_id FROM session_kinds") == [("test_spot", None)]
    pulses, reason = rows(site, "SELECT pulse_count, end_reason FROM sessions")[0]
    assert 5 <= pulses < 15 and reason == "test spot: the site's limit of 5 pulses reached"
    assert rows(site, "SELECT count(*) FROM courses") == [(0,)]
