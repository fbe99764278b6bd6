"""One time model: stored in UTC, grouped in the site's time zone by the reports, the energy
screen (F4) and the web view alike, with ISO 8601 weeks."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from textual.widgets import Static
from tui_support import fast_keys, frozen_app, wait_for  # noqa: F401 (a fixture)

from laserlog.config.siteconfig import parse_site
from laserlog.errors import ProfileError
from laserlog.storage.store import Store
from laserlog.tui.energy_screen import EnergyScreen

from reviewkit import assert_clean_error, cli
from servekit import served

#: 23:30 UTC on Wednesday 2 December 2026: already Thursday 3 December in Auckland, still
#: Wednesday afternoon in Los Angeles; ISO week 49 in both (strftime's %W says 48).
LATE_UTC = "2026-12-02T23:30:00.000Z"
ZONES = [("Pacific/Auckland", "2026-12-03", "2026-W49", "2026-12"),
         ("America/Los_Angeles", "2026-12-02", "2026-W49", "2026-12")]


def late_session(db: Path, zone: str) -> None:
    """Write a site file naming `zone` and one ended session (with a fault) at LATE_UTC."""
    (db.parent / "site.toml").write_text(f'timezone = "{zone}"\n')
    if not db.exists():
        Store(db).close()
    fault_unix_s = datetime.fromisoformat(LATE_UTC.replace("Z", "+00:00")).timestamp() + 60
    with sqlite3.connect(db) as conn:
        cur = conn.execute(
            "INSERT INTO sessions (uuid, profile_id, port, operator_id, client_ref, area,"
            " started_utc, ended_utc, status, pulse_count, total_energy_j)"
            " VALUES ('00000000-0000-0000-0000-00000000d0c2', 'ps755-ref', '/dev/ttyUSB0',"
            " 'tech-07', 'C-1042', 'left cheek', ?, ?, 'ended', 10, 1.25)",
            (LATE_UTC, LATE_UTC.replace("23:30", "23:50")))
        conn.execute("INSERT INTO events (session_id, received_unix_s, kind, severity, message)"
                     " VALUES (?, ?, 'fault', 'alarm', 'fault 10')", (cur.lastrowid, fault_unix_s))


@pytest.fixture(autouse=True)
def _site_beside_the_database(monkeypatch):
    monkeypatch.delenv("LASERLOG_SITE", raising=False)


@pytest.mark.parametrize("zone,day,week,month", ZONES)
def test_reports_group_days_weeks_and_months_in_the_site_zone(tmp_path, zone, day, week, month):
    db = tmp_path / "laserlog.db"
    late_session(db, zone)
    for by, key in (("day", day), ("week", week), ("month", month)):
        result = cli("report", "energy", "--by", by, "--format", "csv", "--db", str(db))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[1].startswith(f"{key},1,"), (by, result.stdout)
    for by, key in (("day", day), ("month", month)):
        result = cli("report", "faults", "--by", by, "--format", "csv", "--db", str(db))
        assert result.stdout.splitlines()[1].startswith(f"{key},fault,1,"), (by, result.stdout)


@pytest.mark.parametrize("zone,day,week,_month", ZONES)
def test_energy_screen_counts_days_and_iso_weeks_in_the_site_zone(tmp_path, zone, day, week,
                                                                   _month):
    app = frozen_app(tmp_path)
    late_session(tmp_path / "frozen.db", zone)

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("f4")
            screen = await wait_for(pilot, lambda: isinstance(pilot.app.screen, EnergyScreen)
                                    and pilot.app.screen)
            chart = screen.query_one("#energy-chart", Static)
            assert str(chart.render()).splitlines()[1].startswith(f"{day} "), chart.render()
            await pilot.press("w")
            assert str(chart.render()).splitlines()[1].startswith(f"{week} "), chart.render()
            assert zone in str(screen.query_one("#energy-title", Static).render())

    try:
        asyncio.run(main())
    finally:
        app.controller.shutdown()


def test_web_view_counts_days_and_iso_weeks_in_the_site_zone(tmp_path):
    from laserlog.web.dashboard import SLUG, dashboards

    charts = dashboards("laserlog")[SLUG]["charts"]
    for zone, day, week, month in ZONES:
        db = tmp_path / zone.replace("/", "-") / "laserlog.db"
        db.parent.mkdir()
        late_session(db, zone)
        with served(db) as url:
            def rows(sql: str) -> list[dict]:
                response = httpx.get(f"{url}/laserlog.json", timeout=30,
                                     params={"sql": _unbracket(sql), "_shape": "array"})
                assert response.status_code == 200, response.text
                return response.json()

            assert [r["week"] for r in rows(charts["energy-per-week"]["query"])] == [week]
            assert [r["day"] for r in rows(charts["pulses-per-day"]["query"])] == [day]
            for name, key in (("energy_by_day", day), ("energy_by_week", week),
                              ("energy_by_month", month)):
                response = httpx.get(f"{url}/laserlog/{name}.json", timeout=30,
                                     params={"_shape": "array", "from": "", "to": ""})
                assert response.status_code == 200, response.text
                assert [r[name.rsplit("_", 1)[1]] for r in response.json()] == [key], name


def _unbracket(sql: str) -> str:
    """Drop a dashboard query's optional [[ ... ]] filter clauses (no dates given)."""
    import re

    return re.sub(r"\[\[.*?\]\]", "", sql)


def test_an_unknown_time_zone_is_refused_with_the_near_name(tmp_path):
    with pytest.raises(ProfileError, match=r"timezone.*did you mean Europe/Paris"):
        parse_site({"timezone": "Europe/Pariss"}, "site.toml")
    assert parse_site({"timezone": "Pacific/Auckland"}, "site.toml").timezone == "Pacific/Auckland"
    assert parse_site({}, "site.toml").zone is None  # the machine's zone
    db = tmp_path / "laserlog.db"
    late_session(db, "UTC")
    (tmp_path / "site.toml").write_text('timezone = "Mars/Olympus_Mons"\n')
    result = cli("report", "energy", "--by", "week", "--db", str(db))
    assert_clean_error(result, "timezone")
