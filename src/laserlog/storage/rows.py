"""Name the rows the store takes: the columns of a pulse, an event and a setting, in order.

Pulse rows are plain tuples (a flood makes 100 000 a second); `PulseAt` names their
positions, so code reads `row[PulseAt.ENERGY_J]`, never `row[5]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

PULSE_COLUMNS = (
    "session_id", "seq", "received_unix_s", "pulse_duration_ps", "regime", "energy_j",
    "fluence_j_cm2", "spot_mm", "wavelength_nm", "rep_rate_hz", "handpiece",
    "beamlet_fluence_j_cm2", "derived",
)
EVENT_COLUMNS = ("session_id", "received_unix_s", "kind", "severity", "code", "message",
                 "missing_pulses", "count", "raw")
SETTING_COLUMNS = ("session_id", "received_unix_s", "name", "value", "unit")
#: A session's end kept in a recovery file when the database could not take it.
SESSION_END_COLUMNS = ("session_id", "ended_utc", "status", "end_reason")

#: A pulse row: one value per PULSE_COLUMNS entry, in that order.
PulseRow = tuple


class PulseAt:
    """Where each column sits in a pulse row."""

    SESSION_ID = PULSE_COLUMNS.index("session_id")
    SEQ = PULSE_COLUMNS.index("seq")
    RECEIVED_UNIX_S = PULSE_COLUMNS.index("received_unix_s")
    PULSE_DURATION_PS = PULSE_COLUMNS.index("pulse_duration_ps")
    REGIME = PULSE_COLUMNS.index("regime")
    ENERGY_J = PULSE_COLUMNS.index("energy_j")
    FLUENCE_J_CM2 = PULSE_COLUMNS.index("fluence_j_cm2")
    SPOT_MM = PULSE_COLUMNS.index("spot_mm")
    WAVELENGTH_NM = PULSE_COLUMNS.index("wavelength_nm")
    REP_RATE_HZ = PULSE_COLUMNS.index("rep_rate_hz")
    HANDPIECE = PULSE_COLUMNS.index("handpiece")
    BEAMLET_FLUENCE_J_CM2 = PULSE_COLUMNS.index("beamlet_fluence_j_cm2")
    DERIVED = PULSE_COLUMNS.index("derived")


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event to store (see EVENT_COLUMNS; the session is added when it is written)."""

    received_unix_s: float
    kind: str
    severity: str = "info"
    code: int | None = None
    message: str = ""
    missing_pulses: int | None = None
    count: int = 1
    raw: str | None = None


class SessionEnd(NamedTuple):
    """How a session ended (see SESSION_END_COLUMNS): what `Store.end_session` writes."""

    session_id: int
    ended_utc: str
    status: str
    end_reason: str
