"""An independent COMPex excimer laser on a pty, written from a public driver of its RS-232 set.

Source: the `CompexLaser` class of https://github.com/ibrummel/PLD-Laser-Brain
(`Laser_Hardware.py`, with its `Laser_Codes.txt`). It knows nothing of laserlog's profile
or simulator. What it takes from the source:

- commands and replies end with CR; a query (`NAME?`) is answered with the bare value, a
  set (`NAME=value`) and an `OPMODE=...` action with nothing at all;
- `OPMODE?` answers `OFF:n` or `ON:n` (n from the code table: `OFF:0` laser off, `OFF:1`
  interlock, `OFF:21` warm-up, `OFF:31` timeout, `ON:0` running);
- `MODE` is `HV`, `EGY PGR` or `EGY NGR`; `TRIGGER` is `INT` or `EXT`;
- `EGY SET?` is the preset energy, `EGY=0` resets it to the gas menu's default;
  `EGY?` is the preset while off and the measured energy while on (0 between pulses);
- `COUNTER?` counts pulses since `COUNTER=RESET` (taken only while off); `TOTALCOUNTER?`
  counts the tube's lifetime and cannot be reset;
- `FILTER=n` takes only 0, 1, 2, 4, 8 or 16 and ignores anything else.

It fires only when a technician does so from its panel (`fire_from_panel`), or after
`OPMODE=ON` once the start delay has passed.
"""

from __future__ import annotations

import time
from pathlib import Path

from pty_peer import PtyPeer

MENU_DEFAULT_ENERGY_MJ = 150  # what EGY=0 restores; the source names no figure


class Compex:
    """The laser's state and its answer (possibly none) to one command line."""

    def __init__(self, total_counter: int = 48_000_000, start_delay_s: float = 4.1) -> None:
        self.total_counter = total_counter
        self.user_counter = 0
        self.rep_rate_hz = 10
        self.energy_mj = MENU_DEFAULT_ENERGY_MJ
        self.hv_kv = 22.0
        self.mode = "EGY NGR"
        self.trigger = "INT"
        self.filter = 0
        self.interlock_out = False
        self.running = False
        self.start_at: float | None = None  # OPMODE=ON waits the start delay
        self.start_delay_s = start_delay_s
        self.shots_left: int | None = None  # a panel burst: stop after this many
        self.pulse_just_fired = False
        self.heard: list[str] = []

    def opmode(self) -> str:
        if self.interlock_out:
            return "OFF:1"
        return "ON:0" if self.running else "OFF:0"

    def answer(self, line: str) -> str | None:
        """Return the reply line to `line`, or None: sets and actions are never answered."""
        self.heard.append(line)
        queries = {
            "OPMODE?": self.opmode,
            "REPRATE?": lambda: str(self.rep_rate_hz),
            "EGY SET?": lambda: str(self.energy_mj),
            "EGY?": self._energy_reading,
            "HV?": lambda: f"{self.hv_kv:.1f}",
            "MODE?": lambda: self.mode,
            "TRIGGER?": lambda: self.trigger,
            "FILTER?": lambda: str(self.filter),
            "COUNTER?": lambda: str(self.user_counter),
            "TOTALCOUNTER?": lambda: str(self.total_counter),
            "INTERLOCK?": lambda: "INTERLOCK" if self.interlock_out else "NONE",
            "TYPE OF LASER?": lambda: "COMPex 205",
            "VERSION?": lambda: "V2.12",
            "PRESSURE?": lambda: "3250",
        }
        if line in queries:
            return queries[line]()
        name, equals, value = line.partition("=")
        if equals:
            self._take(name, value)
        return None

    def _energy_reading(self) -> str:
        if not self.running:
            return str(self.energy_mj)
        measured = self.energy_mj if self.pulse_just_fired else 0
        self.pulse_just_fired = False
        return str(measured)

    def _take(self, name: str, value: str) -> None:
        """Apply a set or an action; what the source says is ignored leaves no trace."""
        if name == "OPMODE":
            if value == "ON" and not self.interlock_out:
                self.start_at = time.monotonic() + self.start_delay_s
            elif value == "OFF":
                self.running, self.start_at = False, None
        elif name == "REPRATE" and value.isdigit():
            self.rep_rate_hz = int(value)
        elif name == "EGY" and value.isdigit():
            self.energy_mj = int(value) or MENU_DEFAULT_ENERGY_MJ
        elif name == "HV" and self.mode == "HV":
            self.hv_kv = float(value)
        elif name == "MODE" and value in ("HV", "EGY PGR", "EGY NGR"):
            self.mode = value
        elif name == "TRIGGER" and value in ("INT", "EXT"):
            self.trigger = value
        elif name == "FILTER" and value in ("0", "1", "2", "4", "8", "16"):
            self.filter = int(value)
        elif name == "COUNTER" and value == "RESET" and not self.running:
            self.user_counter = 0

    def tick(self, now: float) -> None:
        """Start a delayed OPMODE=ON once its delay has passed."""
        if self.start_at is not None and now >= self.start_at:
            self.running, self.start_at = True, None


class Emulator(PtyPeer):
    """Serve a COMPex on a pty behind a stable symlink, firing at its repetition rate."""

    def __init__(self, link: Path, laser: Compex | None = None) -> None:
        super().__init__(link)
        self.laser = laser or Compex()
        self._next_shot_s = time.monotonic()

    def __enter__(self) -> Emulator:
        super().__enter__()
        return self

    def fire_from_panel(self, shots: int) -> None:
        """Fire `shots` pulses as a technician does from the laser's own keypad."""
        with self.lock:
            self.laser.running = True
            self.laser.shots_left = shots

    def answer_lines(self, lines: list[str]) -> str:
        replies = [self.laser.answer(line.strip("\n")) for line in lines if line.strip()]
        return "".join(reply + "\r" for reply in replies if reply is not None)

    def tick(self, now_s: float) -> None:
        laser = self.laser
        laser.tick(now_s)
        if not laser.running:
            self._next_shot_s = now_s
            return
        while now_s >= self._next_shot_s and laser.running:
            laser.total_counter += 1
            laser.user_counter += 1
            laser.pulse_just_fired = True
            self._next_shot_s += 1.0 / laser.rep_rate_hz
            if laser.shots_left is not None:
                laser.shots_left -= 1
                if laser.shots_left <= 0:
                    laser.running, laser.shots_left = False, None
