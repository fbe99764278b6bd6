"""The course page in a real headless Chromium, its figures checked against plain SQL."""

from __future__ import annotations

import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_serve_browser import FLAGS, chromium

from conftest import copy_with_anchor, wait_until
from servekit import fill_course, served


@pytest.fixture(scope="module")
def course_db(tmp_path_factory) -> Path:
    return fill_course(tmp_path_factory.mktemp("course"))


def by_sql(db: Path) -> dict[int, tuple]:
    """Return each session of course 1 by plain SQL: (kind, pulses, energy_j, mean and max
    fluence J/cm2)."""
    with sqlite3.connect(db) as conn:
        return {r[0]: r[1:] for r in conn.execute("""
            SELECT s.id, k.kind, s.pulse_count, s.total_energy_j,
              (SELECT avg(fluence_j_cm2) FROM pulses p WHERE p.session_id = s.id),
              (SELECT max(fluence_j_cm2) FROM pulses p WHERE p.session_id = s.id)
            FROM sessions s JOIN session_kind k ON k.session_id = s.id
            WHERE k.course_id = 1 ORDER BY s.started_utc""")}


def test_course_page_draws_windows_dose_test_spot_override_and_passes(course_db, tmp_path):
    from cdp import Browser

    expected = by_sql(course_db)
    assert [k for k, *_ in expected.values()] == ["test_spot", "course", "course", "course"]
    full_j = sum(e for k, _, e, _, _ in expected.values() if k == "course")
    with sqlite3.connect(course_db) as conn:
        passes = dict(conn.execute("SELECT pass_number, count(*) FROM pulse_passes"
                                   " WHERE session_id = 2 GROUP BY pass_number"))
    browser = Browser(chromium(), tmp_path / "profile", FLAGS)
    try:
        with served(course_db) as base:
            browser.open(base + "/-/laserlog/client?client=C-1042")
            browser.click_and_wait("#course-link-1")
            shown = browser.evaluate("""({
                url: location.pathname,
                delivered: document.querySelector('#course-delivered').textContent,
                energy: document.querySelector('#course-energy').textContent,
                next: document.querySelector('#next-window').textContent,
                rows: [...document.querySelectorAll('#course-sessions tbody tr[data-kind]')].map(tr => ({
                  session: Number(tr.id.replace('session-', '')), kind: tr.dataset.kind,
                  label: tr.querySelector('.label').textContent,
                  days: tr.querySelector('.days').textContent,
                  window: tr.querySelector('.window').textContent,
                  energy: tr.querySelector('.energy').textContent,
                  cumulative: tr.querySelector('.cumulative').textContent,
                  mean: tr.querySelector('.mean-fluence').textContent,
                  max: tr.querySelector('.max-fluence').textContent,
                  passes: [...document.querySelectorAll(`#detail-${tr.dataset.session} .pass`)]
                    .map(p => p.textContent),
                  notes: (document.querySelector(`#detail-${tr.dataset.session} .notes`)
                          || {textContent: ''}).textContent}))})""")
            wait_until(lambda: browser.evaluate(
                "document.querySelectorAll('.laserlog-chart canvas, .laserlog-chart svg')"
                ".length") >= 3, 30, "the course page's three charts")
            shots = [browser.screenshot(tmp_path / f"course-{w}.png", w) for w in (1280, 800)]
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(base + "/-/laserlog/courses/9", timeout=10)
    finally:
        browser.close()
    assert shown["url"] == "/-/laserlog/courses/1"
    assert shown["delivered"] == "3"
    assert shown["energy"] == f"{full_j:.4f} J"
    rows = {r["session"]: r for r in shown["rows"]}
    assert list(rows) == list(expected)
    cumulative = 0.0
    for session, (kind, _, energy_j, mean, high) in expected.items():
        row = rows[session]
        assert row["kind"] == kind
        assert row["energy"] == f"{energy_j:.4f} J"
        assert row["mean"] == f"{mean:.3f} J/cm²" and row["max"] == f"{high:.3f} J/cm²"
        if kind == "course":
            cumulative += energy_j
            assert row["cumulative"] == f"{cumulative:.4f} J"
    spot, first, early, late = rows.values()
    assert spot["label"] == "test spot" and "erythema 1 (slight redness)" in spot["notes"]
    assert "read out 2026-03-05 08:30:00 UTC · 09:30:00 CET" in spot["notes"]
    assert first["label"] == "#1" and first["days"] == "-"
    assert early["days"] == "10" and "2026-03-27 –2026-04-17" in early["window"]
    assert "early" in early["window"] and "override by lso-01" in early["notes"]
    assert late["days"] == "50" and "late" in late["window"]
    assert [p.split(":")[0] for p in first["passes"]] == ["pass 1 (upper cheek)",
                                                          "pass 2 (lower cheek)"]
    assert [int(p.split(": ")[1].split(" ")[0]) for p in first["passes"]] == [
        passes[1], passes[2]]
    assert shown["next"] == "2026-05-26 – 2026-06-16"
    assert missing.value.code == 404
    assert browser.errors == []
    for shot in shots:
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")


def add_photos(db: Path, folder: Path) -> None:
    """Record two photos of course 1 through the real functions: a baseline before any
    consent was recorded, then an after photo of session 2 once tech-07 witnessed one."""
    from laserlog.config.documents import read_document
    from laserlog.config.photos import PhotoFile
    from laserlog.recording import courses, photos
    from laserlog.review.documents import record_consent
    from laserlog.review.users import unlock
    from laserlog.storage.store import Store

    (folder / "consent.md").write_text("# Consent\n\nI agree to photos of my cheek.\n")
    with Store(db) as store:
        course = courses.find(store.conn, 1)
        assert course is not None
        photos.record(store, course, None, PhotoFile("C-1042/front-0.jpg", "a1" * 32, 2048),
                      view="front", kind="baseline", area=None, added_by="tech-07")
        record_consent(store, course, read_document(folder / "consent.md", "consent", "test"),
                       unlock(store, "tech-07", "tech seven passphrase"))
        photos.record(store, course, 2, PhotoFile("C-1042/<left> & 1.jpg", "b2" * 32, 4096),
                      view="left", kind="after", area="upper cheek", added_by="tech-07")


def test_the_client_and_course_pages_show_reactions_beside_their_sessions(course_db, tmp_path):
    """Session 2's corrected assessment and adverse events (one retracted) and a GAIS score
    dated on session 3's day show in those sessions' rows, on both pages; the course page
    lists the course's photos by reference, never an image or a link to a file."""
    import shutil

    from cdp import Browser
    from tui_support import add_reactions

    from laserlog.recording import courses
    from laserlog.review import outcomes
    from laserlog.review.users import unlock
    from laserlog.storage.store import Store

    db = copy_with_anchor(course_db, tmp_path / "laserlog.db")
    shutil.copy(course_db.with_name("site.toml"), tmp_path / "site.toml")
    add_reactions(db, session_id=2)
    with Store(db) as store:
        third_day = store.conn.execute("SELECT substr(started_utc, 1, 10) FROM sessions"
                                       " WHERE id = 3").fetchone()[0]
        outcomes.add(store, courses.find(store.conn, 1), "gais", 4, third_day, "tech-07",
                     lambda who: unlock(store, who, "tech seven passphrase"))
    add_photos(db, tmp_path)
    read = """(rows => Object.fromEntries(rows.map(id => [id, {
        text: (document.querySelector(`${id} .laserlog-reactions`) || {innerText: ''}).innerText,
        retracted: [...document.querySelectorAll(`${id} .adverse.retracted`)].map(e => ({
          text: e.innerText,
          line: getComputedStyle(e.querySelector('.what')).textDecorationLine}))}])))"""
    browser = Browser(chromium(), tmp_path / "profile", FLAGS)
    try:
        with served(db) as base:
            browser.open(base + "/-/laserlog/client?client=C-1042")
            client = browser.evaluate(read + "(['#session-2', '#session-3', '#session-4'])")
            browser.open(base + "/-/laserlog/courses/1")
            course = browser.evaluate(read + "(['#detail-2', '#detail-3', '#detail-4'])")
            wait_until(lambda: browser.evaluate(
                "document.querySelectorAll('#chart-outcome-time svg, #chart-outcome-time "
                "canvas, #chart-outcome-dose svg, #chart-outcome-dose canvas').length") == 2,
                30, "the outcome charts")
            drawn = browser.evaluate("laserlogCharts['outcome-dose'].data.values")
            browser.screenshot(tmp_path / "course-outcomes.png", 1280)
            shown = browser.evaluate("""({
                photos: [...document.querySelectorAll('#course-photos tbody tr')].map(
                  tr => [...tr.cells].map(td => td.innerText)),
                images: document.querySelectorAll('img').length,
                links: [...document.querySelectorAll('#course-photos a')].map(
                  a => a.getAttribute('href'))})""")
    finally:
        browser.close()
    with sqlite3.connect(db) as conn:
        expected = [[str(i), kind, view, area or "-", "-" if session is None else str(session),
                     path, sha256[:12], consent[:12] if consent else "none recorded", by]
                    for i, kind, view, area, session, path, sha256, consent, by in conn.execute(
                        "SELECT id, kind, view, area, session_id, relative_path, sha256,"
                        " consent_sha256, added_by FROM photos WHERE course_id = 1"
                        " ORDER BY id")]
    assert len(expected) == 2 and expected[1][7] != "none recorded"
    assert [row[:9] for row in shown["photos"]] == expected
    assert all(row[9].endswith(("CET", "CEST")) for row in shown["photos"])
    assert shown["images"] == 0 and shown["links"] == ["/-/laserlog/sessions/2/report"]
    for page, (second, third, fourth) in (("client", client.values()),
                                          ("course", course.values())):
        assert "erythema 1, oedema 0, pain 2/10, blister" in second["text"], page
        assert "CORRECTED" in second["text"] and "erythema 2" not in second["text"], page
        assert "adverse event #1: pih" in second["text"], page
        assert "outcome resolving" in second["text"] and "not-resolved" in second["text"]
        assert len(second["retracted"]) == 1, page
        (gone,) = second["retracted"]
        assert gone["text"].startswith("adverse event #2: blister"), page
        assert "RETRACTED: entered for the wrong client" in gone["text"], page
        assert gone["line"] == "line-through", page
        assert f"outcome {third_day}: gais 4 by tech-07" in third["text"], page
        assert "gais" not in second["text"] and fourth["text"] == "", page
    # The outcome charts: the GAIS score at the cumulative energy of the sessions by its day.
    with sqlite3.connect(db) as conn:
        energy_j = conn.execute("SELECT sum(s.total_energy_j) FROM session_kind k JOIN sessions s"
                                " ON s.id = k.session_id WHERE k.course_id = 1 AND k.kind ="
                                " 'course' AND substr(s.started_utc, 1, 10) <= ?",
                                (third_day,)).fetchone()[0]
    assert [(d["metric"], d["value"], d["date"]) for d in drawn] == [("gais", 4.0, third_day)]
    assert drawn[0]["cumulative_energy_j"] == pytest.approx(energy_j)
    assert browser.errors == []
