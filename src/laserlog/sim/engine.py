"""Serve one profile's simulated console on a pty: answer commands, push pulses at the rate.

The protocol lives in the profile's driver module (`Device`); the engine only keeps time.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from laserlog.drivers_registry import driver_module
from laserlog.profile import Profile
from laserlog.sim.console import Console
from laserlog.sim.pty_link import PtyLink

#: Pulses are emitted in batches of at most this many per loop turn when flooding.
MAX_BURST = 2048


class Simulator:
    """A simulated console on a pty, run in the caller's thread or in a background one."""

    def __init__(self, profile: Profile, link_path: str | Path, *, seed: int = 0,
                 rate_hz: float | None = None, fire: bool = False,
                 max_pulses: int | None = None) -> None:
        self.profile = profile
        self.console = Console(profile, seed=seed, rep_rate_hz=rate_hz)
        self.device = driver_module(profile).Device(profile, self.console)
        self.link = PtyLink(link_path)
        self.max_pulses = max_pulses
        self.pulses_sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        if fire:
            self.console.streaming = True
            self.console.firing = True
        if profile.simulator.power_on_junk:
            self.link.write(profile.simulator.power_on_junk)

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

    def serve(self) -> None:
        """Run until stopped: answer the host, fire pulses on schedule."""
        next_pulse = time.monotonic()
        console = self.console
        while not self._stop.is_set():
            active = console.firing and self.profile.pulses.mode in ("pushed", "polled")
            if active and (self.max_pulses is None or self.pulses_sent < self.max_pulses):
                wait_s = max(0.0, next_pulse - time.monotonic())
            else:
                wait_s = 0.05
                next_pulse = time.monotonic()
            fd = self.link.master_fd
            if fd < 0:
                time.sleep(wait_s or 0.01)
                continue
            readable, _, _ = select.select([fd], [], [], min(wait_s, 0.05))
            if readable:
                data = self.link.read()
                if data:
                    with self._lock:
                        reply = self.device.receive(data)
                    if reply:
                        self.link.write(reply)
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
                    pulse = console.fire_pulse()
                    if console.streaming:
                        out.append(self.device.pulse(pulse))
            self.pulses_sent += due
            next_pulse += due * period_s
            if out:
                self.link.write(b"".join(out))


def wait_for_path(path: str | Path, timeout_s: float = 5.0) -> bool:
    """Wait until a simulator's link path exists."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False
