"""A stateful model: whatever happens on the line, the database holds what the console sent
minus what the record itself says was lost.

Rules: pulses, garbage, unplug/replug, console reboot, recorder crash (kill -9: the batch
in memory is gone) and restart (resuming the interrupted session). The console is the
simulator's own console model and line device; the link is in memory, so hundreds of
steps run in seconds.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import laserlog.recording.recorder as recorder_module
from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import open_profile
from laserlog.errors import PortError
from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.sim.console import Console
from laserlog.storage.store import Store

# The console here fires a burst with no time between its shots: held to no repetition rate
# (laserlog.link.plausibility), every gap it makes is one to believe.
_REAL = open_profile("ps755-ref")
PROFILE = replace(_REAL, pulses=replace(_REAL.pulses, max_rate_hz=1e7))
INFO = SessionInfo("tech-01", "C-1001", eyewear_checked=True)


class Wire:
    """The cable and the console at its far end: an in-memory stand-in for a serial port."""

    def __init__(self) -> None:
        self.console = Console(PROFILE, seed=1)
        self.console.streaming = True
        self.device = driver_module(PROFILE).Device(PROFILE, self.console)
        self.plugged = True
        self.inbox = bytearray()
        self.open_ports = 0
        self.sent = 0  # pulses the console fired, across reboots

    # -- the console's side --------------------------------------------------------------
    def fire(self, count: int) -> None:
        for _ in range(count):
            frame = self.device.pulse(self.console.fire_pulse())
            self.sent += 1
            if self.plugged and self.open_ports:
                self.inbox += frame

    def garbage(self, data: bytes) -> None:
        if self.plugged and self.open_ports:
            self.inbox += data + b"\r\n"

    # -- the host's side (the Link interface) ----------------------------------------------
    def link(self, url: str, transport: object, **_: object) -> WireLink:
        return WireLink(self, url)


class WireLink:
    def __init__(self, wire: Wire, url: str) -> None:
        self.wire = wire
        self.url = url
        self.is_open = False

    def open(self) -> WireLink:
        if not self.wire.plugged:
            raise PortError(f"port {self.url} does not exist")
        self.is_open = True
        self.wire.open_ports += 1
        self.wire.inbox.clear()  # opening a port discards what the console sent before
        return self

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self.wire.open_ports -= 1

    def _check(self) -> None:
        if not self.wire.plugged or not self.is_open:
            raise PortError(f"{self.url}: device disconnected")

    def write(self, data: bytes) -> None:
        self._check()
        self.wire.inbox += self.wire.device.receive(data)

    def read_available(self, timeout_s: float) -> bytes:
        self._check()
        data = bytes(self.wire.inbox)
        self.wire.inbox.clear()
        return data

    def discard_input(self) -> None:
        self._check()
        self.wire.inbox.clear()


class RecordingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.db = Path(self.tmp.name) / "log.db"
        self.store = Store(self.db)
        self.wire = Wire()
        self.port = f"wire://console-{id(self)}"
        self._real_link = recorder_module.Link
        recorder_module.Link = self.wire.link  # type: ignore[assignment]
        self.recorder: Recorder | None = self._start(resume=False)
        self.blind_reboot = False  # the console restarted while nobody could see it

    def _start(self, *, resume: bool) -> Recorder:
        recorder = Recorder(self.store, PROFILE, self.port)
        recorder.connect()  # holding the port, it marks the crashed session interrupted
        resumes = self.store.latest_interrupted(self.port)["id"] if resume else None
        recorder.start(INFO, resumes=resumes)
        return recorder

    def _settle(self) -> None:
        """Let the recorder read everything and commit it."""
        rec = self.recorder
        if rec is None:
            return
        for _ in range(3):
            rec.step(0.0)
        rec.flush()
        rec.writer.drain()

    @rule(count=st.integers(min_value=1, max_value=40))
    def pulses(self, count: int) -> None:
        self.wire.fire(count)
        self._settle()

    @rule(data=st.binary(min_size=1, max_size=30).filter(lambda b: b"\r\n" not in b))
    def garbage(self, data: bytes) -> None:
        self.wire.garbage(data)
        self._settle()

    @precondition(lambda self: self.wire.plugged)
    @rule()
    def unplug(self) -> None:
        self.wire.plugged = False
        self._settle()

    @precondition(lambda self: not self.wire.plugged)
    @rule()
    def replug(self) -> None:
        self.wire.plugged = True
        for _ in range(10):  # the recorder's back-off: let it try until it is back
            self._settle()
            if self.recorder is None or self.recorder._link_up:
                break
            if self.recorder is not None:
                self.recorder._next_attempt = 0.0

    @rule()
    def reboot(self) -> None:
        if self.recorder is None or not self.wire.plugged or not self.recorder._link_up:
            self.blind_reboot = True
        self.wire.console.power_cycle()
        self.wire.console.streaming = True
        self._settle()

    @precondition(lambda self: self.recorder is not None)
    @rule()
    def crash(self) -> None:
        rec = self.recorder
        assert rec is not None
        rec._batch.pulses.clear()  # kill -9: what was not yet handed to the writer is gone
        rec._batch.events.clear()
        rec._batch.settings.clear()
        rec.writer.close()
        if rec.link is not None:
            rec.link.close()
        rec._port_lock.release()
        self.recorder = None

    @precondition(lambda self: self.recorder is None and self.wire.plugged)
    @rule()
    def restart(self) -> None:
        self.recorder = self._start(resume=True)

    @invariant()
    def database_is_what_was_sent_minus_what_was_recorded_lost(self) -> None:
        if self.recorder is None or not self.wire.plugged or not self.recorder._link_up:
            return
        # One more pulse makes any loss since the last one visible to the sequence check.
        self.wire.fire(1)
        self._settle()
        with sqlite3.connect(self.db) as conn:
            stored = conn.execute("SELECT count(*) FROM pulses").fetchone()[0]
            lost = conn.execute("SELECT coalesce(sum(missing_pulses), 0) FROM events"
                                " WHERE kind IN ('gap', 'counter_reset')").fetchone()[0]
            dupes = conn.execute("SELECT count(*) FROM pulses p JOIN pulses q ON p.seq = q.seq"
                                 " AND p.id < q.id AND p.received_unix_s = q.received_unix_s"
                                 ).fetchone()[0]
        assert dupes == 0
        if self.blind_reboot:
            # A restart nobody saw can hide pulses from the counter: the record may under-count
            # the loss, never invent pulses or losses.
            assert stored + lost <= self.wire.sent, (stored, lost, self.wire.sent)
        else:
            assert stored + lost == self.wire.sent, (stored, lost, self.wire.sent)

    def teardown(self) -> None:
        try:
            if self.recorder is not None:
                self.recorder.end()
        finally:
            recorder_module.Link = self._real_link  # type: ignore[assignment]
            self.store.close()
            self.tmp.cleanup()


RecordingMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_recording_state_machine = pytest.mark.filterwarnings("ignore")(RecordingMachine.TestCase)
