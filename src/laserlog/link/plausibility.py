"""Tell what a console could physically have reported from what it cannot have.

A reading is a claim: a cable, a misread digit or a broken console can send any bytes.
Before a reading becomes a pulse (recording.completion), every integer must lie inside
SQLite's 64-bit range and every quantity the row holds must be finite, above zero and
within a hard bound (`PulseGate.bounds`: the profile's range widened `HARD_FACTOR` times,
or its `plausible_max`, `hard_max` in format 1). A value between the range and the hard
bound may be a real overdose: it is stored as delivered, and limits raise the alarm. A shot counter is believed only as
far as the console could have fired since the last reading (`plausible_shots`, at the
profile's `[pulses] max_rate_hz` or its rep_rate parameter's maximum).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

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

#: What a pulse row holds that must be physical: (profile parameter, label, unit).
CHECKED = (("energy", "energy", "J"), ("fluence", "fluence", "J/cm2"), ("spot", "spot", "mm"),
           ("pulse_duration", "pulse duration", "ps"), ("wavelength", "wavelength", "nm"),
           ("rep_rate", "repetition rate", "Hz"))


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
    """The hard bounds of one profile's quantities, and the words for a value beyond them.

    The recorder compares values with `bounds` itself, once per pulse; `problem` words a
    failure only when one happened.
    """

    __slots__ = ("bounds",)

    def __init__(self, profile: Profile) -> None:
        #: Profile parameter name -> (lowest, highest) physical value, canonical unit.
        self.bounds = {name: hard_bounds(profile, name) for name, _, _ in CHECKED}

    def problem(self, **values: float | None) -> str | None:
        """Return what is not physical among values given by parameter name, else None."""
        for name, label, unit in CHECKED:
            value = values.get(name)
            low, high = self.bounds[name]
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
