"""Declared, seeded faults for the simulator, so a failing run repeats.

A spec is a comma-separated list; rates are probabilities per frame, times are seconds
after the simulator starts, durations follow a '+':

    garble=0.01,drop=0.01,truncate=0.005,badcrc=0.01     corrupt frames the console sends
    latency=0.05                                          delay every reply by 50 ms
    stale=0.02,late=0.01                                  repeat the previous reply / answer too late
    silent=5+3                                            stop answering commands at 5 s for 3 s
    junk                                                  junk bytes at power-up (and after reboot)
    unplug=4+3                                            unplug the adapter at 4 s for 3 s
    reboot=6                                              power-cycle at 6 s: the counter restarts
    burst=5                                               push 5 pulse frames before each reply
    fault=10@3+2                                          console fault code 10 at 3 s, cleared at 5 s
    garbage=1                                             a garbage frame after each pulse frame
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from laserlog.errors import LaserlogError

RATE_FAULTS = ("garble", "drop", "truncate", "badcrc", "stale", "late", "garbage")
LATE_REPLY_S = 1.5  # later than any bundled profile's reply timeout


class FaultSpecError(LaserlogError):
    """Raise when a --faults spec cannot be read."""


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A fault that happens at a time, for a while."""

    kind: str  # "silent" | "unplug" | "reboot" | "fault"
    at_s: float
    for_s: float = 0.0
    code: int = 0


@dataclass(slots=True)
class FaultPlan:
    """What goes wrong, and the seeded dice that decide when."""

    rates: dict[str, float] = field(default_factory=dict)
    latency_s: float = 0.0
    junk: bool = False
    burst: int = 0
    schedule: list[Scheduled] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    counts: dict[str, int] = field(default_factory=dict)
    _previous_reply: bytes = b""

    def seed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _roll(self, kind: str) -> bool:
        rate = self.rates.get(kind, 0.0)
        return rate > 0.0 and self.rng.random() < rate

    def corrupt(self, frame: bytes) -> bytes:
        """Return a frame as it arrives after the line's faults (maybe empty, maybe cut)."""
        if not frame:
            return frame
        if self._roll("drop"):
            self._count("drop")
            return b""
        if self._roll("truncate"):
            self._count("truncate")
            frame = frame[: self.rng.randrange(0, len(frame))]
        if self._roll("garble"):
            self._count("garble")
            data = bytearray(frame)
            for _ in range(self.rng.randint(1, 3)):
                data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
            frame = bytes(data)
        if self._roll("badcrc"):
            self._count("badcrc")
            data = bytearray(frame)
            # The checksum sits at the end of a binary frame; before a line's terminator on text.
            index = len(data) - 1 if data[-1:] not in (b"\n", b"\r") else max(0, len(data) - 3)
            data[index] ^= 0xFF
            frame = bytes(data)
        return frame

    def garbage_after_pulse(self) -> bytes:
        """Return a garbage frame to push after a pulse frame (or nothing)."""
        if not self._roll("garbage"):
            return b""
        self._count("garbage")
        size = self.rng.randint(1, 40)
        # Printable noise plus control bytes, ending like a line so it frames as one.
        return bytes(self.rng.choice(b"#~!@$%^&*()xyzQ\x00\x01\x7f\xfe ") for _ in range(size)) + b"\r\n"

    def reply(self, data: bytes) -> tuple[bytes, float]:
        """Return the reply to send and how long to wait before sending it."""
        delay_s = self.latency_s
        if data and self._roll("stale") and self._previous_reply:
            self._count("stale")
            data, self._previous_reply = self._previous_reply, data
        elif data:
            self._previous_reply = data
        if data and self._roll("late"):
            self._count("late")
            delay_s += LATE_REPLY_S
        return data, delay_s


def parse_spec(spec: str, seed: int = 0) -> FaultPlan:
    """Read a fault spec (see the module docstring); raise FaultSpecError naming the bad part."""
    plan = FaultPlan()
    plan.seed(seed)
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, value = part.partition("=")
        try:
            if name in RATE_FAULTS:
                rate = float(value) if value else 1.0
                if not 0.0 <= rate <= 1.0:
                    raise ValueError("a probability between 0 and 1")
                plan.rates[name] = rate
            elif name == "latency":
                plan.latency_s = _positive(value)
            elif name == "junk":
                plan.junk = True
            elif name == "burst":
                plan.burst = int(value)
                if plan.burst < 0:
                    raise ValueError("a count of 0 or more")
            elif name in ("silent", "unplug"):
                at, _, length = value.partition("+")
                plan.schedule.append(Scheduled(name, _positive(at), _positive(length or "1")))
            elif name == "reboot":
                plan.schedule.append(Scheduled(name, _positive(value)))
            elif name == "fault":
                code, _, when = value.partition("@")
                at, _, length = when.partition("+")
                plan.schedule.append(Scheduled(name, _positive(at or "0"),
                                               _positive(length) if length else 0.0, int(code)))
            else:
                raise ValueError("a known fault: " + ", ".join(
                    (*RATE_FAULTS, "latency", "junk", "burst", "silent", "unplug", "reboot", "fault")))
        except ValueError as exc:
            reason = str(exc) if " " in str(exc) else "numbers where numbers belong"
            raise FaultSpecError(f"--faults {spec!r}: cannot read {part!r}; expected {reason} "
                                 "(e.g. 'garble=0.01,unplug=4+3,fault=10@3+2')") from None
    plan.schedule.sort(key=lambda s: s.at_s)
    return plan


def _positive(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise ValueError("a time in seconds, 0 or more")
    return value
