"""The clinical arithmetic: regime from pulse duration, spot areas, energy = fluence x area.

Plain floats only: this runs once per pulse.
"""

from __future__ import annotations

import math

PS_PER_NS = 1_000.0
PS_PER_US = 1_000_000.0
MM2_PER_CM2 = 100.0

#: Relative disagreement above which reported energy, fluence and spot are an anomaly.
AGREEMENT_TOLERANCE = 0.05


def regime(pulse_duration_ps: float) -> str:
    """Classify a pulse duration: "ps" below 1 ns, "ns" below 1 us, otherwise "long".

    Raises ValueError for zero, negative or non-finite durations: they are never pulses.
    """
    if not pulse_duration_ps > 0.0 or pulse_duration_ps == math.inf:
        raise ValueError(f"pulse duration must be a positive finite time, got {pulse_duration_ps} ps")
    if pulse_duration_ps < PS_PER_NS:
        return "ps"
    if pulse_duration_ps < PS_PER_US:
        return "ns"
    return "long"


def round_area_cm2(diameter_mm: float) -> float:
    """Return the area of a round spot of this diameter, in cm^2."""
    return math.pi * diameter_mm * diameter_mm / 4.0 / MM2_PER_CM2


def rect_area_cm2(width_mm: float, height_mm: float) -> float:
    """Return the area of a square or rectangular spot, in cm^2."""
    return width_mm * height_mm / MM2_PER_CM2


def spot_area_cm2(shape: str, spot_mm: float, aspect: float = 1.0) -> float:
    """Return the area of a spot whose characteristic size is `spot_mm`.

    For "round" spot_mm is the diameter; for "square" the side; for "rect" the width, the
    height being width x aspect.
    """
    if shape == "round":
        return round_area_cm2(spot_mm)
    if shape == "square":
        return rect_area_cm2(spot_mm, spot_mm)
    if shape == "rect":
        return rect_area_cm2(spot_mm, spot_mm * aspect)
    raise ValueError(f"unknown spot shape {shape!r}")


def energy_from_fluence_j(fluence_j_cm2: float, area_cm2: float) -> float:
    """Return the pulse energy implied by a flat-top fluence over an area."""
    return fluence_j_cm2 * area_cm2


def fluence_from_energy_j_cm2(energy_j: float, area_cm2: float) -> float:
    """Return the mean fluence of a pulse energy spread over an area."""
    return energy_j / area_cm2


def disagreement(energy_j: float, fluence_j_cm2: float, area_cm2: float) -> float:
    """Return how far reported energy and fluence x area disagree, relative to the energy."""
    implied_j = fluence_j_cm2 * area_cm2
    reference = max(abs(energy_j), abs(implied_j))
    if reference == 0.0:
        return 0.0
    return abs(energy_j - implied_j) / reference


def beamlet_fluence_j_cm2(
    energy_j: float, energy_fraction: float, beamlet_count: int, beamlet_diameter_mm: float
) -> float:
    """Return the fluence inside each beamlet of a fractional (microlens) array.

    A fraction of the pulse energy goes into `beamlet_count` round beamlets; the rest is the
    background. Per-beamlet fluence is never compared with flat-spot limits.
    """
    return energy_j * energy_fraction / (beamlet_count * round_area_cm2(beamlet_diameter_mm))


def interpolate(points: tuple[tuple[float, float], ...], x: float) -> float:
    """Interpolate linearly in a table of (x, y) points, clamped at both ends."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]
