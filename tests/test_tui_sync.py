"""The session screen ships to a central server in the background and shows how that goes."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import test_sync
from test_sync import _server_count
from textual.pilot import Pilot
from tui_support import (
    FROZEN_ELAPSED_S,
    T0,
    frozen_app,
    screen_text,
    snapshot_then_shut,
    steady_cursor,  # noqa: F401 (a fixture)
    wait_for,
)

from laserlog.recording.recorder import SessionInfo
from laserlog.recording.shipping import ShipperStatus
from laserlog.tui.app import LaserlogApp
from laserlog.tui.controller import LiveController

from ports import free_port
from reviewkit import cli

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'laserlog[central]')")

INFO = SessionInfo("tech-07", "C-1042", "left cheek", "III", True, {"eyewear": True, "consent": True, "sun_exposure": True})

# The PostgreSQL server and a fresh database on it (tests/test_sync.py).
server = test_sync.server
url = test_sync.url


def _closed_port_url() -> str:
    return f"postgresql://console:secret@127.0.0.1:{free_port()}/laserlog"


def _run(app: LaserlogApp, scenario) -> None:
    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await scenario(pilot)

    asyncio.run(main())


def test_live_controller_ships_the_session_and_the_screen_says_so(simulate, db_path, url):
    sim = simulate("ps755-ref", seed=3, rate_hz=100)
    controller = LiveController(db_path, sim.profile, str(sim.path), sync_url=url,
                                on_session_start=lambda: setattr(sim.console, "firing", True),
                                on_session_end=lambda: setattr(sim.console, "firing", False))
    app = LaserlogApp(controller)

    async def scenario(pilot: Pilot) -> None:
        await wait_for(pilot, lambda: controller.link_state == "up", what="the link")
        session_id = await asyncio.wrap_future(controller.start_session(INFO))
        await wait_for(pilot, lambda: controller.totals.pulses >= 50, what="50 pulses")
        assert await asyncio.wrap_future(controller.end_session()) == session_id
        with sqlite3.connect(db_path) as conn:
            local = conn.execute("SELECT count(*) FROM pulses").fetchone()[0]
        await wait_for(pilot, lambda: controller.shipper.status().shipped_pulses == local,
                       timeout_s=30, what="the session shipped in the background")
        await wait_for(pilot, lambda: f"{local:,} pulses shipped" in screen_text(app),
                       what="the shipped count on screen")
        assert "sync ok " in screen_text(app)

    try:
        _run(app, scenario)
    finally:
        controller.shutdown()
    with sqlite3.connect(db_path) as conn:
        local = conn.execute("SELECT count(*) FROM pulses").fetchone()[0]
    assert _server_count(url, "pulses") == local >= 50
    verified = cli("verify", "--db", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_live_screen_shows_retrying_while_the_server_is_down(simulate, db_path):
    sim = simulate("ps755-ref", seed=3, rate_hz=50)
    controller = LiveController(db_path, sim.profile, str(sim.path), sync_url=_closed_port_url())
    app = LaserlogApp(controller)

    async def scenario(pilot: Pilot) -> None:
        text = await wait_for(pilot, lambda: "sync retrying" in screen_text(app)
                              and screen_text(app), timeout_s=30, what="the retrying state")
        assert "unreachable: " in str(text)
        assert "secret" not in str(text)
        assert controller.shipper.status().failures >= 1
        # Recording goes on regardless.
        await wait_for(pilot, lambda: controller.link_state == "up", what="the link")
        session_id = await asyncio.wrap_future(controller.start_session(INFO))
        assert await asyncio.wrap_future(controller.end_session()) == session_id

    try:
        _run(app, scenario)
    finally:
        controller.shutdown()
    assert controller.shipper.stop() is False


class _FixedShipping:
    """A fixed shipping state, so the screen with it repeats."""

    def __init__(self, status: ShipperStatus) -> None:
        self._status = status

    def status(self) -> ShipperStatus:
        return self._status


@pytest.mark.usefixtures("steady_cursor")
def test_retrying_state_reads_at_80x24_without_colour(tmp_path, snap_compare, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("LASERLOG_PROFILES", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    app = frozen_app(tmp_path, pulses=40)
    app.controller.shipper = _FixedShipping(ShipperStatus(  # type: ignore[assignment]
        state="retrying", syncs=4, failures=3, shipped_pulses=1234,
        last_success_unix_s=T0 + 600, retry_unix_s=T0 + FROZEN_ELAPSED_S + 8,
        last_error="cannot reach the central server console@central.example/laserlog: "
                   "Connection refused (nothing was written; the next sync retries)"))

    async def run_before(pilot: Pilot) -> None:
        controller = app.controller
        # And the trends drawn: they redraw at most twice a second, after the last drain.
        await wait_for(pilot, lambda: not controller.feed and not controller.events
                       and app.live.is_mounted and not app.live._spark_dirty,
                       what="the feed to be drained and the trends drawn")
        await pilot.pause()
        assert "sync retrying in 8 s | 1,234 pulses shipped | unreachable: " in screen_text(app)
        await pilot.pause()
        await pilot.pause()

    assert snapshot_then_shut(snap_compare, app, (80, 24), run_before)
