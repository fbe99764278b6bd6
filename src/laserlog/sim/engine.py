"""Serve one profile's simulated console on a pty: answer commands, push pulses at the rate.

The protocol lives in the profile's driver module (`Device`); the engine only keeps time.
"""

from __future__ import annotations

import heapq
import os
import select
import threading
import time
from dataclasses import replace
from pathlib import Path

from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import Profile
from laserlog.link.plausibility import max_rate_hz
from laserlog.link.wire import SimPulse
from laserlog.sim.console import Console
from laserlog.sim.faults import FaultPlan, Scheduled
from laserlog.sim.pty_link import PtyLink

#: Pulses are emitted in batches of at most this many per loop turn when flooding.
MAX_BURST = 2048


class Simulator:
    """A simulated console on a pty, run in the caller's thread or in a background one."""

    def __init__(self, profile: Profile, link_path: str | Path, *, seed: int = 0,
                 rate_hz: float | None = None, fire: bool = False,
                 max_pulses: int | None = None, faults: FaultPlan | None = None) -> None:
        if rate_hz is not None and rate_hz > max_rate_hz(profile):
            # A console fired faster than its profile's top rate is that fast: `profile` says
            # so, or a recorder given it would not believe the gaps this console can make.
            profile = replace(profile, pulses=replace(profile.pulses, max_rate_hz=rate_hz))
        self.profile = profile
        self.console = Console(profile, seed=seed, rep_rate_hz=rate_hz)
        self.device = driver_module(profile).Device(profile, self.console)
        self.faults = faults if faults is not None else FaultPlan()
        self.link = PtyLink(link_path)
        self.max_pulses = max_pulses
        self.pulses_sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._delayed: list[tuple[float, int, bytes]] = []  # (due, order, bytes) heap
        self._order = 0
        self._started = time.monotonic()
        self._schedule = list(self.faults.schedule)
        self._undo: list[tuple[float, Scheduled]] = []
        #: What the fault plan did and when (wall-clock seconds), for tests and reports.
        self.fault_log: list[tuple[float, str, int]] = []
        if fire:
            self.console.streaming = True
            self.console.firing = True
        self._power_on()

    @property
    def path(self) -> Path:
        return self.link.path

    def start(self) -> Simulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.serve, name=f"sim-{self.profile.id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.link.close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject_fault(self, code: int) -> None:
        """Raise a console fault and push its line, as the console would."""
        with self._lock:
            self.console.raise_fault(code)
            self.link.write(self.device.fault(code))

    def _power_on(self) -> None:
        junk = self.profile.simulator.power_on_junk
        if self.faults.junk and not junk:
            junk = bytes(self.faults.rng.randrange(256) for _ in range(24))
        if junk:
            self.link.write(junk)

    def _send(self, data: bytes, delay_s: float = 0.0) -> None:
        if not data:
            return
        if delay_s <= 0.0 and not self._delayed:
            self.link.write(data)
            return
        self._order += 1
        heapq.heappush(self._delayed, (time.monotonic() + delay_s, self._order, data))

    def _run_schedule(self, now: float) -> None:
        elapsed = now - self._started
        while self._schedule and self._schedule[0].at_s <= elapsed:
            event = self._schedule.pop(0)
            self.fault_log.append((time.time(), event.kind, self.console.shot_counter))
            with self._lock:
                if event.kind == "unplug":
                    self.link.unplug()
                elif event.kind == "reboot":
                    self.console.power_cycle()
                    self._power_on()
                elif event.kind == "fault":
                    self.console.raise_fault(event.code)
                    self.link.write(self.device.fault(event.code))
            if event.for_s:
                self._undo.append((now + event.for_s, event))
        for item in [u for u in self._undo if u[0] <= now]:
            self._undo.remove(item)
            event = item[1]
            self.fault_log.append((time.time(), f"{event.kind}_end", self.console.shot_counter))
            with self._lock:
                if event.kind == "unplug":
                    self.link.plug()
                    self._power_on()
                elif event.kind == "fault":
                    self.console.clear_fault()
                    self.link.write(self.device.fault(0))

    def _silenced(self, now: float) -> bool:
        return any(e.kind == "silent" for _, e in self._undo)

    def serve(self) -> None:
        """Run until stopped: answer the host, fire pulses on schedule, play the fault plan."""
        next_pulse = time.monotonic()
        console = self.console
        faults = self.faults
        while not self._stop.is_set():
            now = time.monotonic()
            if self._schedule or self._undo:
                self._run_schedule(now)
            tripped = console.check_watchdog(now)
            if tripped:
                self._send(self.device.fault(tripped))
            while self._delayed and self._delayed[0][0] <= now:
                self.link.write(heapq.heappop(self._delayed)[2])
            active = console.firing and (self.max_pulses is None or self.pulses_sent < self.max_pulses)
            if active:
                wait_s = max(0.0, next_pulse - now)
            else:
                wait_s = 0.05
                next_pulse = now
            if self._delayed:
                wait_s = min(wait_s, max(0.0, self._delayed[0][0] - now))
            fd = self.link.master_fd
            if fd < 0:
                # Unplugged: the console goes on firing; nothing reaches the host.
                time.sleep(min(wait_s, 0.05) if wait_s else 0.001)
            else:
                try:
                    readable, _, _ = select.select([fd], [], [], min(wait_s, 0.05))
                except OSError:
                    continue  # unplugged from another thread while waiting: the fd is gone
                if readable:
                    data = self.link.read()
                    if data and not self._silenced(now):
                        with self._lock:
                            console.heard_host(now)
                            burst = b"".join(self._pulse_frame(console.fire_pulse())
                                             for _ in range(faults.burst if console.firing else 0))
                            reply = self.device.receive(data)
                        self.pulses_sent += faults.burst if console.firing else 0
                        self._send(burst)
                        reply, delay_s = faults.reply(reply)
                        self._send(reply, delay_s)
            if not active:
                continue
            now = time.monotonic()
            if now < next_pulse:
                continue
            period_s = 1.0 / console.rep_rate_hz
            due = min(MAX_BURST, int((now - next_pulse) / period_s) + 1)
            if self.max_pulses is not None:
                due = min(due, self.max_pulses - self.pulses_sent)
            out = []
            with self._lock:
                for _ in range(due):
                    frame = self._pulse_frame(console.fire_pulse())
                    if frame:
                        out.append(frame)
            self.pulses_sent += due
            next_pulse += due * period_s
            if out and self.link.master_fd >= 0:
                self._send(b"".join(out))

    def _pulse_frame(self, pulse: SimPulse) -> bytes:
        """Return the bytes announcing a pulse, after the line's faults."""
        if not self.console.streaming:
            return b""
        frame = self.device.pulse(pulse)
        if not frame:
            return b""
        faults = self.faults
        if faults.rates:
            frame = faults.corrupt(frame) + faults.garbage_after_pulse()
        return frame


def wait_for_path(path: str | Path, timeout_s: float = 5.0) -> bool:
    """Wait until a simulator's link path exists."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False
