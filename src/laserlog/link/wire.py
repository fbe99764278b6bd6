"""Name what both ends of a console link share: refusal codes, a fired pulse, a console's state.

The bundled drivers hold both sides of a protocol (`Driver` for the host, `Device` for the
console); the simulator drives the `Device` side. Both depend on these names, so neither
depends on the other.
"""

from __future__ import annotations

import random
from typing import NamedTuple, Protocol

# Error codes a simulated console answers with (profiles may map them in their fault table).
ERR_SYNTAX = 1
ERR_RANGE = 2
ERR_READ_ONLY = 3
ERR_INTERLOCK = 5


class SimPulse(NamedTuple):
    """One simulated pulse, as the console would measure it (a named tuple: made per pulse)."""

    seq: int
    energy_j: float
    fluence_j_cm2: float
    spot_mm: float
    pulse_duration_ps: float
    wavelength_nm: float
    rep_rate_hz: float
    handpiece: int
    beamlet_energy_j: float

    def field(self, name: str) -> float:
        """Return a pulse field by its profile name (energy, fluence, spot, ...)."""
        return self[FIELD_INDEX[name]]


#: Profile pulse-field name -> position in SimPulse.
FIELD_INDEX = {"seq": 0, "energy": 1, "fluence": 2, "spot": 3, "pulse_duration": 4,
               "wavelength": 5, "rep_rate": 6, "handpiece": 7, "beamlet_energy": 8}


class ConsoleState(Protocol):
    """What a driver's `Device` side reads and changes on the console it answers for."""

    serial: str
    firmware: str
    rng: random.Random
    firing: bool
    fault_code: int
    interlock_open: bool

    def value(self, name: str) -> float:
        """Return a parameter as the console would report it."""
        ...

    def set(self, name: str, value: float) -> int:
        """Apply a setting; return 0 or the refusal code."""
        ...

    def run(self, command: str) -> int:
        """Run a named command (fire, stop, stream_on, ...); return 0 or the refusal code."""
        ...
