"""An independent MicroJewel controller on a pty, written from the public py-ujlaser driver.

It knows nothing of laserlog's profile or simulator: it speaks the command set that driver
documents (`;LA:` + command + CR in, replies ending CR LF, `ok` or `?n`), keeps a shot
count, and fires only when armed (`EN 1`) and told (`FL 1`) or fired from its own panel.
"""

from __future__ import annotations

import time
from pathlib import Path

from pty_peer import PtyPeer

# Status word bits (py-ujlaser's LaserStatusResponse).
ENABLED, ACTIVE, INTERLOCK, READY_TO_ENABLE, READY_TO_FIRE = 1, 2, 64, 1024, 2048


class MicroJewel:
    """The controller's state and its answers to one command line."""

    def __init__(self, shot_count: int = 120_000) -> None:
        self.shot_count = shot_count
        self.rep_rate_hz = 1
        self.enabled = False
        self.active = False
        self.interlock_out = False
        self.heard: list[str] = []
        self.shots_left: int | None = None  # a panel burst: stop after this many

    def status_word(self) -> int:
        word = READY_TO_ENABLE
        if self.enabled:
            word |= ENABLED | READY_TO_FIRE
        if self.active:
            word |= ACTIVE
        if self.interlock_out:
            word |= INTERLOCK
        return word

    def answer(self, line: str) -> str:
        self.heard.append(line)
        if not line.startswith(";LA:"):
            return "?1"
        command = line[4:]
        queries = {"SS?": lambda: str(self.status_word()), "SC?": lambda: str(self.shot_count),
                   "RR?": lambda: str(self.rep_rate_hz), "TR?": lambda: "24.125",
                   "FT?": lambda: "31.500", "EN?": lambda: str(int(self.enabled))}
        if command in queries:
            return queries[command]()
        keyword, _, argument = command.partition(" ")
        if keyword not in ("RR", "EN", "FL"):
            return "?3" if keyword else "?2"
        if not argument:
            return "?4"
        if not argument.isdigit():
            return "?5"
        value = int(argument)
        if keyword == "RR":
            if not 1 <= value <= 5:
                return "?5"
            self.rep_rate_hz = value
        elif keyword == "EN":
            if value not in (0, 1) or (value and self.interlock_out):
                return "?5" if value not in (0, 1) else "?8"
            self.enabled = bool(value)
            self.active = self.active and self.enabled
        else:
            if value not in (0, 1):
                return "?5"
            if value and not self.enabled:
                return "?8"
            self.active = bool(value)
        return "ok"


class Emulator(PtyPeer):
    """Serve a MicroJewel on a pty behind a stable symlink, firing at its repetition rate."""

    def __init__(self, link: Path) -> None:
        super().__init__(link)
        self.laser = MicroJewel()
        self._next_shot_s = time.monotonic()

    def __enter__(self) -> Emulator:
        super().__enter__()
        return self

    def fire_from_panel(self, shots: int) -> None:
        """Fire `shots` pulses as a technician does from the controller's own panel."""
        with self.lock:
            self.laser.enabled = True
            self.laser.active = True
            self.laser.shots_left = shots

    def answer_lines(self, lines: list[str]) -> str:
        return "".join(self.laser.answer(line) + "\r\n" for line in lines if line)

    def tick(self, now_s: float) -> None:
        laser = self.laser
        if not laser.active:
            self._next_shot_s = now_s
            return
        while now_s >= self._next_shot_s and laser.active:
            laser.shot_count += 1
            self._next_shot_s += 1.0 / laser.rep_rate_hz
            if laser.shots_left is not None:
                laser.shots_left -= 1
                if laser.shots_left <= 0:
                    laser.active = laser.enabled = False
                    laser.shots_left = None
