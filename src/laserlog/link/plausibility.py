"""Tell what a console could physically have reported from what it cannot have.

A reading is a claim: a cable, a misread digit or a broken console can send any bytes.
Before a reading becomes a pulse it passes `PulseGate`: every integer inside SQLite's
64-bit range, every measured quantity finite, above zero, and within a hard bound (the
profile's range widened `HARD_FACTOR` times). A value between the range and the hard
bound may be a real overdose: it is stored as delivered, and limits raise the alarm. A
profile may set the hard bound itself (`hard_max` of a parameter) and the console's top
rate (`[pulses] max_rate_hz`).
A shot counter is believed only as far as the console could have fired since the last
reading (`plausible_shots`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from laserlog.domain.model import PulseReading

if TYPE_CHECKING:
    from laserlog.config.profile import Profile

#: SQLite stores integers as signed 64-bit: anything outside cannot be stored.
INT64_MAX = 2**63 - 1
#: How far beyond its range a console's reading may still be a real (if dangerous) value.
HARD_FACTOR = 10.0
#: A counter may run this many times faster than the console's highest repetition rate
#: (clock jitter, a poll that came late) and still be believed...
RATE_MARGIN = 4.0
#: ...plus this many shots, whatever the time.
SHOT_SLACK = 5
#: The repetition rate assumed when a profile states none.
DEFAULT_MAX_RATE_HZ = 100.0
#: More shots than any console fires in its life (10 Hz for 3000 years): a sequence number
#: that jumps further is a misread, never a count of lost pulses.
LIFETIME_SHOTS = 10**12

#: PulseReading field -> (profile parameter, label, unit).
MEASURED = {
    "energy_j": ("energy", "energy", "J"),
    "fluence_j_cm2": ("fluence", "fluence", "J/cm2"),
    "spot_mm": ("spot", "spot", "mm"),
    "pulse_duration_ps": ("pulse_duration", "pulse duration", "ps"),
    "wavelength_nm": ("wavelength", "wavelength", "nm"),
    "rep_rate_hz": ("rep_rate", "repetition rate", "Hz"),
    "beamlet_energy_j": ("beamlet_energy", "beamlet energy", "J"),
}
_SEQ = PulseReading._fields.index("seq")
_HANDPIECE = PulseReading._fields.index("handpiece")


def hard_bounds(profile: Profile, parameter: str) -> tuple[float, float]:
    """Return the lowest and highest value a console could report for a quantity.

    The range's minimum divided by HARD_FACTOR (else the smallest positive float) up to its
    maximum times HARD_FACTOR (else the largest finite float); a spot is also bounded by
    the handpieces' spots.
    """
    low, high = sys.float_info.min, sys.float_info.max
    param = profile.parameters.get(parameter)
    lows = [param.min] if param is not None and param.min is not None else []
    highs = [param.max] if param is not None and param.max is not None else []
    if parameter == "spot":
        for hp in profile.handpieces.values():
            lows += [s for s in (hp.spot_mm, hp.spot_min_mm) if s is not None]
            highs += [s for s in (hp.spot_mm, hp.spot_max_mm) if s is not None]
    positive = [v for v in lows if v > 0]
    if positive and not (param is not None and param.min is not None and param.min <= 0):
        low = max(low, min(positive) / HARD_FACTOR)
    if param is not None and param.hard_max is not None:
        high = param.hard_max  # the profile says how far a real reading can go
    elif highs and max(highs) > 0:
        high = max(highs) * HARD_FACTOR
    return low, high


class PulseGate:
    """The physical check every pulse reading passes before it can become a pulse."""

    __slots__ = ("_checks", "bounds")

    def __init__(self, profile: Profile) -> None:
        checks = []
        #: Profile parameter name -> (lowest, highest) physical value, canonical unit.
        self.bounds: dict[str, tuple[float, float]] = {}
        for attr, (parameter, label, unit) in MEASURED.items():
            low, high = self.bounds[parameter] = hard_bounds(profile, parameter)
            checks.append((PulseReading._fields.index(attr), label, unit, low, high))
        self._checks = tuple(checks)

    def completed_problem(self, energy_j: float | None, fluence_j_cm2: float | None,
                          spot_mm: float | None, pulse_duration_ps: float | None = None,
                          wavelength_nm: float | None = None,
                          rep_rate_hz: float | None = None) -> str | None:
        """Return what is not physical about a pulse completed from the settings, else None."""
        for name, label, unit, value in (
                ("energy", "energy", "J", energy_j),
                ("fluence", "fluence", "J/cm2", fluence_j_cm2),
                ("spot", "spot", "mm", spot_mm),
                ("pulse_duration", "pulse duration", "ps", pulse_duration_ps),
                ("wavelength", "wavelength", "nm", wavelength_nm),
                ("rep_rate", "repetition rate", "Hz", rep_rate_hz)):
            low, high = self.bounds[name]
            if value is not None and not low <= value <= high:
                return (f"{label} {value:.6g} {unit} is not physical (expected "
                        f"{low:.3g}..{high:.3g} {unit})")
        return None

    @staticmethod
    def bad_seq(reading: PulseReading) -> str | None:
        """Return why the reading's sequence number cannot be stored, None when it can."""
        seq = reading[_SEQ]
        if seq is None or 0 <= seq <= INT64_MAX:
            return None
        return f"sequence number {seq} is outside 0..{INT64_MAX}"

    def problem(self, reading: PulseReading) -> str | None:
        """Return what is not physical about a reading (field, value, expected), else None."""
        code = reading[_HANDPIECE]
        if code is not None and not 0 <= code <= INT64_MAX:
            return f"handpiece code {code} is outside 0..{INT64_MAX}"
        for index, label, unit, low, high in self._checks:
            value = reading[index]
            # NaN fails both comparisons, infinity the upper one.
            if value is not None and not low <= value <= high:
                return (f"{label} {value:.6g} {unit} is not physical (expected "
                        f"{low:.3g}..{high:.3g} {unit})")
        return None


def max_rate_hz(profile: Profile) -> float:
    """Return the highest repetition rate the profile says the console fires at."""
    if profile.pulses.max_rate_hz is not None:
        return profile.pulses.max_rate_hz
    param = profile.parameters.get("rep_rate")
    candidates = [v for v in (param.max if param else None, param.initial if param else None,
                              profile.pulses.fixed.get("rep_rate")) if v is not None and v > 0]
    return max(candidates) if candidates else DEFAULT_MAX_RATE_HZ


def plausible_shots(rate_hz: float, elapsed_s: float) -> int:
    """Return the most shots a console firing at `rate_hz` could fire in `elapsed_s`."""
    return int(rate_hz * RATE_MARGIN * max(0.0, elapsed_s)) + SHOT_SLACK
