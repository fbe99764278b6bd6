"""What drivers observe on the line, as plain records in canonical units.

Drivers emit these; the recorder turns them into stored rows. A value the console did not
report is None, to be completed from settings and the handpiece.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class PulseReading(NamedTuple):
    """One pulse as the console reported it.

    A named tuple rather than a frozen dataclass: it is built once per pulse, and building
    one costs ~1.3 us against ~3 us for a frozen dataclass with slots (measured here).
    """

    received_unix_s: float
    seq: int | None = None
    energy_j: float | None = None
    fluence_j_cm2: float | None = None
    spot_mm: float | None = None
    pulse_duration_ps: float | None = None
    wavelength_nm: float | None = None
    rep_rate_hz: float | None = None
    handpiece: int | None = None
    beamlet_energy_j: float | None = None


@dataclass(frozen=True, slots=True)
class SettingReading:
    """A console setting read back or changed (canonical unit of its quantity)."""

    received_unix_s: float
    name: str
    value: float


@dataclass(frozen=True, slots=True)
class StatusReading:
    """Console status: fault code (0 = none), interlock state, firing, named state flags."""

    received_unix_s: float
    fault_code: int = 0
    interlock_open: bool = False
    firing: bool | None = None
    #: The console's state by name (status-line state, or [status.flags] set), in order;
    #: None when the console does not tell. A state, never an alarm.
    state: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """Something about the line itself: garbled input, lost or restored link, timeouts."""

    received_unix_s: float
    kind: str  # "garbled" | "link_lost" | "link_restored" | "timeout" | "error_reply"
    detail: str = ""
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who the console says it is."""

    model: str
    serial: str
    firmware: str = ""


Observation = PulseReading | SettingReading | StatusReading | LinkEvent
