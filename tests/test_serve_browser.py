"""The dashboard in a real headless Chromium: every chart renders, no console errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
