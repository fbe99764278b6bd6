"""Helpers for the TUI tests: apps on simulated consoles, and frozen states for snapshots.

A frozen state is built from the real pieces (a seeded simulated console's pulses, the
recorder's own ingest and totals, the controller's own alarm path) with a fixed clock, so a
snapshot shows the same screen on every run.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot

from laserlog.config.profile import Profile, open_profile
from laserlog.domain.model import PulseReading, SettingReading, StatusReading
from laserlog.recording.completion import PulseCompleter
from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.sim.console import Console
from laserlog.storage.rows import EventRow
from laserlog.storage.store import INSERT_PULSE, Store
from laserlog.tui.app import LaserlogApp
from laserlog.tui.controller import ConsoleStatus, LiveController, LiveSession

#: A fixed moment for frozen screens: 2026-03-02 09:30:00 UTC.
T0 = 1772443800.0
FROZEN_ELAPSED_S = 754.0


async def settle(min_sleep: float = 0.0, max_sleep: float = 1.0) -> None:
    """Let queued messages run: a stand-in for Textual's wait_for_idle in these tests.

    wait_for_idle waits until the whole process stops using CPU; with a simulated console and
    the recorder running in the same process it never does, and each key costs its full
    second. The tests wait on the outcome they expect instead (wait_for).
    """
    for _ in range(4):
        await asyncio.sleep(0.005)


@pytest.fixture
def fast_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Pilot key presses return once their messages ran, not when the process idles."""
    import textual.app
    import textual.pilot

    monkeypatch.setattr(textual.app, "wait_for_idle", settle)
    monkeypatch.setattr(textual.pilot, "wait_for_idle", settle)


@pytest.fixture
def steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a focused field's cursor shown instead of blinking, so a picture does not depend
    on how long the machine took to draw it (half a second on a loaded machine hides it)."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


def snapshot_then_shut(snap_compare: Any, app: LaserlogApp, size: tuple[int, int],
                       run_before: Any) -> bool:
    """Return whether the app's picture at `size` after `run_before` matches its stored one;
    the app's recorder is shut down whatever happens."""
    try:
        return bool(snap_compare(app, terminal_size=size, run_before=run_before))
    finally:
        app.controller.shutdown()


def burst(pilot: Pilot, *keys: str) -> None:
    """Send keys the way a scanner or a fast typist does: all queued before any is handled."""
    for key in keys:
        name = {" ": "space", "\t": "tab", "\n": "enter", "-": "minus"}.get(key, key)
        char = {"tab": "\t", "enter": "\r", "space": " ", "minus": "-"}.get(name, key)
        event = events.Key(name, char)
        event.set_sender(pilot.app)
        pilot.app.post_message(event)


async def wait_for(pilot: Pilot, condition: Callable[[], object], timeout_s: float = 10.0,
                   what: str = "condition") -> object:
    """Return the first truthy value of `condition`, letting the app run meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await pilot.pause(0.02)


def screen_text(app: LaserlogApp) -> str:
    """Return what the current screen shows, as plain text."""
    from textual.widgets import DataTable, Input, Log, Static

    parts: list[str] = []
    for widget in app.screen.query("*"):
        if not widget.display:
            continue
        if isinstance(widget, Log):
            parts.extend(widget.lines)
        elif isinstance(widget, Input):
            parts.append(widget.value)
        elif isinstance(widget, DataTable):
            for row in range(widget.row_count):
                parts.append(" ".join(str(c) for c in widget.get_row_at(row)))
        elif isinstance(widget, Static):
            parts.append(str(widget.render()))
    return "\n".join(parts)


def seeded_readings(profile: Profile, count: int, *, seed: int = 7, start_unix_s: float = T0,
                    rate_hz: float = 5.0) -> list[PulseReading]:
    """Return pulses from a seeded simulated console, as its driver would report them."""
    console = Console(profile, seed=seed)
    out = []
    for i in range(count):
        p = console.fire_pulse()
        out.append(PulseReading(start_unix_s + (i + 1) / rate_hz, seq=p.seq, energy_j=p.energy_j,
                                fluence_j_cm2=p.fluence_j_cm2, spot_mm=p.spot_mm,
                                pulse_duration_ps=float(round(p.pulse_duration_ps)),
                                handpiece=p.handpiece))
    return out


class FrozenController(LiveController):
    """A controller whose state is set by the test instead of a recording thread."""

    def start(self) -> FrozenController:
        return self

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self.store.close()


def frozen_app(tmp_path: Path, *, pulses: int = 0, alarm: bool = False,
               history: bool = False, profile: str = "ps755-ref") -> LaserlogApp:
    """Return an app showing a session `pulses` pulses in, optionally with an interlock alarm."""
    p = open_profile(profile)
    db = tmp_path / "frozen.db"
    if history:
        build_history(db, p)
    controller = FrozenController(db, p, "/dev/ttyFROZEN")
    from laserlog.domain.model import DeviceIdentity

    controller.link_state = "up"
    controller.identity = DeviceIdentity(p.identity.model, p.simulator.serial, "2.1.0")
    controller._idle_settings = {"energy": 0.12, "fluence": 0.955, "spot": 4.0,
                                 "pulse_duration": 650.0, "rep_rate": 5.0, "wavelength": 755.0,
                                 "handpiece": 1.0}
    if pulses:
        info = SessionInfo("tech-07", "C-1042", "left cheek", "III", True,
                           {"eyewear": True, "consent": True, "sun_exposure": True})
        recorder = Recorder(controller.store, p, controller.port, on_event=controller._on_event,
                            on_pulse=controller._on_pulse)
        with controller.store.conn:  # a fixed start, so the history row repeats too
            cur = controller.store.conn.execute(
                "INSERT INTO sessions (uuid, profile_id, port, operator_id, client_ref, area,"
                " skin_type, eyewear_checked, started_utc) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                ("00000000-0000-0000-0000-00000000f00d", p.id, controller.port,
                 info.operator_id, info.client_ref, info.area, info.skin_type,
                 "2026-03-02T09:30:00.000Z"))
        session_id = int(cur.lastrowid or 0)
        recorder.session_id = session_id
        recorder.completer = PulseCompleter(p, session_id)
        controller._recorder = recorder
        controller.session = LiveSession(session_id, info, T0)
        controller.last_session_id = session_id
        # What a start on a console never checked with a meter says (recording.calstatus).
        controller.calibration_warning = ("no calibration check recorded for this console: "
                                          "check its output with `laserlog calibrate`")
        recorder.ingest([SettingReading(T0, name, value)
                         for name, value in controller._idle_settings.items()])
        recorder.ingest(seeded_readings(p, pulses))
        at = T0 + pulses / 5.0 + 0.1
        if alarm:
            recorder.ingest([StatusReading(at, fault_code=10, interlock_open=True)])
        # The console's status, read a second before the frozen moment (as if polled).
        recorder.ingest([StatusReading(T0 + FROZEN_ELAPSED_S - 1, fault_code=10 if alarm else 0,
                                       interlock_open=alarm)])
    else:
        controller._idle_status = ConsoleStatus(False, 0, T0 + FROZEN_ELAPSED_S - 1)
    if alarm and not pulses:
        controller._on_event(EventRow(T0, "link_lost", "alarm", None,
                                      "console stopped answering on /dev/ttyFROZEN"))
    app = LaserlogApp(controller, clock=lambda: T0 + FROZEN_ELAPSED_S)
    return app


def build_history(db: Path, profile: Profile) -> None:
    """Fill a database with past sessions at fixed times (three clients, two operators)."""
    with Store(db) as store:
        device = store.device_id(profile.id, profile.identity.model, profile.simulator.serial,
                                 "2.1.0")
    conn = sqlite3.connect(db)
    plan = [  # (day, operator, client, area, skin, pulses)
        ("2026-02-23", "tech-07", "C-1042", "left cheek", "III", 40),
        ("2026-02-24", "tech-03", "C-2001", "forearm", "II", 25),
        ("2026-02-26", "tech-07", "C-1042", "left cheek", "III", 60),
        ("2026-03-01", "tech-03", "C-3310", "upper lip", "IV", 30),
        ("2026-03-02", "tech-07", "C-1042", "right cheek", "III", 20),
    ]
    with conn:
        for number, (day, operator, client, area, skin, count) in enumerate(plan, start=1):
            start = f"{day}T09:{10 + number:02d}:00.000Z"
            cur = conn.execute(
                "INSERT INTO sessions (uuid, device_id, profile_id, port, operator_id, client_ref,"
                " area, skin_type, eyewear_checked, started_utc, ended_utc, status, end_reason)"
                " VALUES (?, ?, ?, '/dev/ttyUSB0', ?, ?, ?, ?, 1, ?, ?, 'ended',"
                " 'ended by operator')",
                (f"00000000-0000-0000-0000-{number:012d}", device, profile.id, operator, client,
                 area, skin, start, start.replace("T09", "T10")))
            session_id = int(cur.lastrowid or 0)
            completer = PulseCompleter(profile, session_id)
            rows = [completer.pulse(r, []) for r in seeded_readings(
                profile, count, seed=number, start_unix_s=T0 - 86400 * (10 - number))]
            conn.executemany(INSERT_PULSE, rows)
            conn.execute("INSERT INTO settings (session_id, received_unix_s, name, value, unit)"
                         " VALUES (?, ?, 'spot', ?, 'mm')", (session_id, T0, 3.0 + number / 2))
    conn.close()
    with Store(db) as store:
        for session_id in range(1, len(plan) + 1):
            store.recount(session_id)


def add_events(db: Path, session_id: int, count: int) -> None:
    """Record `count` short events in a past session, as the recorder commits them."""
    from laserlog.storage import chain
    from laserlog.storage.store import INSERT_EVENT

    with Store(db) as store, store.conn:
        for number in range(count):
            store.conn.execute(INSERT_EVENT, (session_id, T0 + number, "note", "info", None,
                                              f"note {number + 1}", None, 1, None))
        head = chain.append_batch(store.conn, session_id, {"events": count})
        chain.write_anchor(store.path, head)
        store.recount(session_id)


def add_reactions(db: Path, session_id: int = 3) -> None:
    """Record, through the real functions, what session `session_id` caused, at fixed times
    from its day D: an assessment (D 23:30) and its correction (D+2), a PIH from D+3 updated
    not-resolved (D+3) then resolving (D+4), and a blister from D+1 retracted as entered in
    error; the user tech-07 reports them."""
    from datetime import UTC, date, datetime, timedelta

    from laserlog.recording import courses
    from laserlog.review.reactions import add_adverse, assess, change_adverse
    from laserlog.review.users import add_user, unlock

    real_now = courses.now

    def at(days: int, clock: str = "09:00") -> None:
        moment = datetime.fromisoformat(f"{(day + timedelta(days=days)).isoformat()}T{clock}")
        courses.now = lambda: moment.replace(tzinfo=UTC)  # type: ignore[assignment]

    try:
        with Store(db) as store:
            started = store.conn.execute("SELECT started_utc FROM sessions WHERE id = ?",
                                         (session_id,)).fetchone()[0]
            day = date.fromisoformat(started[:10])
            add_user(store, "tech-07", "Tech Seven", "technician", "tech seven passphrase")
            signer = unlock(store, "tech-07", "tech seven passphrase")
            at(0, "23:30")
            assess(store, session_id, erythema=2, oedema=1, pain_nrs=4, note="marked redness",
                   user_id="tech-07")
            at(2)
            assess(store, session_id, erythema=1, oedema=0, pain_nrs=2, blister=True,
                   note="small blister at the jaw", user_id="tech-07")
            at(4)
            pih = add_adverse(store, session_id, kind="pih", onset=day + timedelta(days=3),
                              seriousness="non-serious", by=None, unlock=lambda _: signer,
                              where=UTC, note="patchy")
            wrong = add_adverse(store, session_id, kind="blister",
                                onset=day + timedelta(days=1), seriousness="serious", by=None,
                                unlock=lambda _: signer, where=UTC)
            change_adverse(store, pih, by=None, unlock=lambda _: signer, where=UTC,
                           outcome="not-resolved", outcome_day=day + timedelta(days=3))
            change_adverse(store, pih, by=None, unlock=lambda _: signer, where=UTC,
                           outcome="resolving", outcome_day=day + timedelta(days=4))
            change_adverse(store, wrong, by=None, unlock=lambda _: signer, where=UTC,
                           reason="entered for the wrong client")
    finally:
        courses.now = real_now  # type: ignore[assignment]
