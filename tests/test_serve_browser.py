"""The dashboard in a real headless Chromium: every chart renders, no console errors."""

from __future__ import annotations

import math
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import wait_until
from servekit import fill, served

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """Return Debian's chromium, installing it when missing (as root); skip if impossible."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root "
                    "(apt-get install -y chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot install chromium: {exc}")
        if result.returncode != 0:
            pytest.skip(f"cannot install chromium ({' '.join(command)}): {result.stderr[-300:]}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but it is not on PATH")
    return found


def browse(browser: str, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on a page, giving its scripts time to fetch and draw."""
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=15000", "--window-size=1400,1400",
                           *args, url], capture_output=True, text=True, timeout=120)


def test_dashboard_renders_every_chart_in_headless_chromium(tmp_path_factory):
    from laserlog.web.dashboard import SLUG, dashboards

    browser = chromium()
    folder = tmp_path_factory.mktemp("browser")
    db = fill(folder)
    charts = dashboards("laserlog")[SLUG]["charts"]
    with served(db) as base:
        url = f"{base}/-/dashboards/{SLUG}"
        dom = browse(browser, folder / "profile-dom", url, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        shot = folder / "dashboard.png"
        picture = browse(browser, folder / "profile-shot", url, f"--screenshot={shot}")
    html = dom.stdout
    for slug, chart in charts.items():
        card = html.split(f'id="chart-{slug}"', 1)
        assert len(card) == 2, slug
        body = card[1][:20000]
        if chart["library"] == "vega-lite":
            assert "vega-embed" in body[:3000] and re.search(r"<(canvas|svg)\b", body), slug
        else:
            assert re.search(r"<p[^>]*>\s*[\d.]+[^<]*</p>", body[:2000]), slug  # its number
    console = [line for line in dom.stderr.splitlines() + picture.stderr.splitlines()
               if "CONSOLE" in line]
    assert not [line for line in console if re.search(r"error|uncaught", line, re.I)], console
    assert shot.exists() and shot.stat().st_size > 10_000, picture.stderr[-2000:]
    print(f"dashboard screenshot: {shot}")


@pytest.fixture(scope="module")
def officer_db(tmp_path_factory) -> Path:
    from servekit import fill_officer

    return fill_officer(tmp_path_factory.mktemp("officer"))


def last_six_by_sql(db: Path) -> list[tuple[int, float, int]]:
    """Return C-1042's last six left-cheek sessions (corrected area) by plain SQL:
    (session, energy_j, out-of-limit pulses), oldest first."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("""
            SELECT s.id, s.total_energy_j,
              (SELECT coalesce(sum(count), 0) FROM events e WHERE e.session_id = s.id
                 AND e.kind = 'out_of_limit')
            FROM sessions s
            WHERE s.client_ref = 'C-1042' AND coalesce((SELECT new_value FROM corrections c
              WHERE c.row_id = s.id AND c.table_name = 'sessions' AND c.column_name = 'area'
              ORDER BY c.id DESC LIMIT 1), s.area) = 'left cheek'
            ORDER BY s.started_utc DESC, s.id DESC LIMIT 6""").fetchall()
    return sorted(rows)


def test_officer_answers_energy_and_limits_for_a_client_area_in_three_page_loads(
        officer_db, tmp_path):
    from cdp import Browser

    with sqlite3.connect(officer_db) as conn:
        on_cheek = conn.execute("SELECT count(*) FROM sessions WHERE client_ref = 'C-1042' AND"
                                " area IN ('left cheek', 'chin')").fetchone()[0]
        elsewhere = conn.execute("SELECT count(*) FROM sessions WHERE client_ref = 'C-1042' AND"
                                 " area = 'forehead'").fetchone()[0]
    assert on_cheek == 8 and elsewhere == 2  # more than six there, and other areas

    expected = last_six_by_sql(officer_db)
    energy_j = math.fsum(e for _, e, _ in expected)  # the page's exact sum, not one order's
    out_of_limit = [s for s, _, n in expected if n]
    assert len(expected) == 6 and len(out_of_limit) == 2

    browser = Browser(chromium(), tmp_path / "profile", FLAGS)
    try:
        with served(officer_db) as base:
            browser.open(base + "/")
            browser.fill({"#f-client": "C-1042", "#f-area": "left cheek", "#f-last": "6"})
            browser.click_and_wait("#ask-client")
            assert len(browser.navigations) <= 3, browser.navigations
            shown = browser.evaluate("""({
                energy: document.querySelector('#answer-energy').textContent,
                sessions: document.querySelector('#answer-sessions').textContent,
                out: [...document.querySelectorAll('#answer-out-of-limit li')]
                       .map(li => Number(li.dataset.session)),
                rows: [...document.querySelectorAll('#sessions tbody tr')]
                       .map(tr => Number(tr.id.replace('session-', ''))),
                signoff: document.querySelector('#session-6 .signoff').textContent,
                corrected: document.querySelector('#session-6').textContent})""")
            wait_until(lambda: browser.evaluate(
                "document.querySelectorAll('.laserlog-chart canvas, .laserlog-chart svg')"
                ".length") >= 3, 30, "the client page's three charts")
            shots = [browser.screenshot(tmp_path / f"client-{w}.png", w) for w in (1280, 800)]
            browser.open(base + "/")
            shots += [browser.screenshot(tmp_path / f"home-{w}.png", w) for w in (1280, 800)]
    finally:
        browser.close()
    assert shown["energy"] == f"{energy_j:.4f} J"
    assert int(shown["sessions"]) == 6
    assert shown["out"] == out_of_limit
    assert shown["rows"] == [s for s, _, _ in expected]
    assert "corrected, recorded as chin" in shown["corrected"]
    assert shown["signoff"] == "unsigned"
    assert browser.errors == []
    for shot in shots:
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
