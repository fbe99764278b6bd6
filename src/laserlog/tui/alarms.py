"""Which recorded events are alarms, how severe each is, and the symbol and word it shows.

Alarms are ordered by safety class, most severe first (`by_severity`): a technician reads the
first alarm on the bar, so it must be the one that matters most and is still true.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from laserlog.storage.rows import EventRow

#: Shown before every alarm word: readable through safety eyewear that filters colours.
SYMBOL = "!!"

# Event kinds that always raise an alarm, with the word the alarm bar shows.
_WORDS = {
    "interlock_open": "INTERLOCK",
    "fault": "FAULT",
    "gap": "PULSE GAP",
    "counter_reset": "PULSE GAP",
    "link_lost": "LINK LOST",
    "identity_refused": "WRONG CONSOLE",
    "out_of_range": "OUT OF RANGE",
    "invalid_reading": "UNKNOWN DOSE",
    "counter_implausible": "COUNTER IMPLAUSIBLE",
    "recorder_error": "NOT RECORDING",
    "database_locked": "DATABASE LOCKED",
    "disk_full": "DISK FULL",
    "rows_spilled": "ROWS SPILLED",
}

#: Safety class per alarm kind: 1 the laser or the record is unsafe now (interlock, fault,
#: recorder error); 2 the record is at risk (link, database); 3 the dose is wrong or unknown;
#: 4 gaps and warnings (every kind not named here).
SAFETY_CLASS = {
    "interlock_open": 1, "fault": 1, "recorder_error": 1,
    "link_lost": 2, "identity_refused": 2, "database_locked": 2, "disk_full": 2,
    "rows_spilled": 2,
    "out_of_range": 3, "invalid_reading": 3, "counter_implausible": 3,
    "out_of_envelope": 3, "out_of_limit": 3, "above_test_spot": 3,
}
LEAST_SEVERE_CLASS = 4

#: Event kinds that end a condition, and the alarm kind whose condition they end.
CLEARS = {
    "interlock_closed": "interlock_open",
    "fault_cleared": "fault",
    "link_restored": "link_lost",
    "database_unlocked": "database_locked",
    "disk_space_restored": "disk_full",
}
#: Alarm kinds that are conditions: true until a clearing event says otherwise.
CONDITIONS = frozenset(CLEARS.values())


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm raised from an event: waiting to be acknowledged, or a condition still true."""

    number: int
    kind: str
    word: str
    message: str
    raised_unix_s: float
    session_id: int | None
    #: The condition ended (the console said so); it stays until acknowledged.
    cleared: bool = False
    #: Acknowledged while the condition is still true: no bell, but it stays on the bar.
    acknowledged: bool = False
    #: The console's code for a fault: each fault code is an alarm of its own.
    code: int | None = None

    @property
    def safety_class(self) -> int:
        """Return the alarm's safety class: 1 most severe, 4 least."""
        return SAFETY_CLASS.get(self.kind, LEAST_SEVERE_CLASS)

    @property
    def is_condition(self) -> bool:
        """Return whether the alarm lasts until a clearing event (interlock, fault, link...)."""
        return self.kind in CONDITIONS

    @property
    def label(self) -> str:
        """Return the alarm as the bar shows it: symbol, word, message."""
        return f"{SYMBOL} {self.word}: {self.message}"


def same_trouble(alarm: Alarm, event: EventRow) -> bool:
    """Return whether an event repeats a standing alarm (counted) rather than raising one."""
    if alarm.cleared or alarm.kind != event.kind:
        return False
    return alarm.kind != "fault" or alarm.code == event.code


def severity_key(alarm: Alarm) -> tuple[bool, int, float, int]:
    """Return the sort key of an alarm: true before cleared, then safety class, then age."""
    return (alarm.cleared, alarm.safety_class, alarm.raised_unix_s, alarm.number)


def by_severity(alarms: Iterable[Alarm]) -> list[Alarm]:
    """Return alarms most severe first; a cleared condition never leads one still true."""
    return sorted(alarms, key=severity_key)


def alarm_word(event: EventRow) -> str | None:
    """Return the alarm word for an event, or None when the event is not an alarm."""
    word = _WORDS.get(event.kind)
    if word is None and event.severity == "alarm":
        word = event.kind.replace("_", " ").upper()
    if word == "FAULT" and event.severity != "alarm":
        return None  # a warning-level fault (e.g. an energy monitor) is logged, not alarmed
    return word
