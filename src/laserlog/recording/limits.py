"""Per-pulse limit checks, compiled once from a profile's ranges and the site's limits.

A check is an index into the stored pulse row and two floats, so testing a pulse costs a
few comparisons. A pulse beyond a limit is stored as it was delivered, and an
`out_of_limit` event says which limit it passed: a warning for the profile's range (plus
the site's tolerance), an alarm for a limit the safety officer set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from laserlog.config.siteconfig import LIMIT_COLUMNS, SiteConfig
from laserlog.storage.rows import PULSE_COLUMNS, EventRow, PulseAt

if TYPE_CHECKING:
    from laserlog.config.profile import Profile

#: Where the columns limits check sit in a stored pulse row.
ROW_INDEX = {name: PULSE_COLUMNS.index(name) for name in (
    "pulse_duration_ps", "energy_j", "fluence_j_cm2", "spot_mm", "wavelength_nm", "rep_rate_hz",
    "beamlet_fluence_j_cm2")}
#: Profile parameters whose allowed range bounds a stored column. The repetition rate and
#: wavelength are left to the site file: they say nothing about the dose.
PROFILE_PARAMETERS = {"energy": "energy_j", "fluence": "fluence_j_cm2", "spot": "spot_mm",
                      "pulse_duration": "pulse_duration_ps"}
LABELS = {"energy_j": "energy", "fluence_j_cm2": "fluence", "spot_mm": "spot",
          "pulse_duration_ps": "pulse duration", "wavelength_nm": "wavelength",
          "rep_rate_hz": "repetition rate", "beamlet_fluence_j_cm2": "beamlet fluence"}


@dataclass(frozen=True, slots=True)
class Limit:
    """One bound pair on one stored column, and whose it is."""

    index: int
    column: str
    low: float
    high: float
    source: str  # "profile ps755-ref" or "site"
    severity: str

    def describe(self) -> str:
        unit = LIMIT_COLUMNS[self.column]
        parts = []
        if self.low > -math.inf:
            parts.append(f"min {self.low:.4g} {unit}")
        if self.high < math.inf:
            parts.append(f"max {self.high:.4g} {unit}")
        return f"{LABELS[self.column]} {' '.join(parts)} ({self.source})"


class LimitSet:
    """The compiled checks for one session."""

    __slots__ = ("_plan", "limits")

    def __init__(self, limits: list[Limit]) -> None:
        self.limits = tuple(limits)
        self._plan = tuple((limit.index, limit.low, limit.high, limit) for limit in limits)

    def __bool__(self) -> bool:
        return bool(self.limits)

    def check(self, row: tuple, events: list[EventRow]) -> None:
        """Append an out_of_limit event for each limit this pulse row passes."""
        for index, low, high, limit in self._plan:
            value = row[index]
            if value is None or low <= value <= high:
                continue
            unit = LIMIT_COLUMNS[limit.column]
            side = "below" if value < limit.low else "above"
            bound = limit.low if value < limit.low else limit.high
            events.append(EventRow(
                row[PulseAt.RECEIVED_UNIX_S], "out_of_limit", limit.severity, None,
                f"pulse {_seq_text(row[PulseAt.SEQ])}: {LABELS[limit.column]} "
                f"{value:.4g} {unit} {side} the {limit.source} limit {bound:.4g} {unit}",
                raw=limit.column))


def _seq_text(seq: int | None) -> str:
    return "?" if seq is None else str(seq)


def compile_limits(profile: Profile, site: SiteConfig) -> LimitSet:
    """Return the checks for a console: its profile's ranges, widened by the site's tolerance,
    and the site's own limits."""
    limits: list[Limit] = []
    tolerance = site.profile_tolerance
    for name, column in PROFILE_PARAMETERS.items():
        param = profile.parameters.get(name)
        if param is None or (param.min is None and param.max is None):
            continue
        low = param.min * (1 - tolerance) if param.min is not None else -math.inf
        high = param.max * (1 + tolerance) if param.max is not None else math.inf
        limits.append(Limit(ROW_INDEX[column], column, low, high, f"profile {profile.id}",
                            "warning"))
    for column, (site_low, site_high) in sorted(site.bounds_for(profile.id).items()):
        limits.append(Limit(ROW_INDEX[column], column,
                            site_low if site_low is not None else -math.inf,
                            site_high if site_high is not None else math.inf, "site", "alarm"))
    return LimitSet(limits)
