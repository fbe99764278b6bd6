"""Which recorded events are alarms, and the symbol and word each shows (never colour alone)."""

from __future__ import annotations

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
    "recorder_error": "NOT RECORDING",
}


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm raised from an event, waiting to be acknowledged."""

    number: int
    kind: str
    word: str
    message: str
    raised_unix_s: float
    session_id: int | None

    @property
    def label(self) -> str:
        """Return the alarm as the bar shows it: symbol, word, message."""
        return f"{SYMBOL} {self.word}: {self.message}"


def alarm_word(event: EventRow) -> str | None:
    """Return the alarm word for an event, or None when the event is not an alarm."""
    word = _WORDS.get(event.kind)
    if word is None and event.severity == "alarm":
        word = event.kind.replace("_", " ").upper()
    if word == "FAULT" and event.severity != "alarm":
        return None  # a warning-level fault (e.g. an energy monitor) is logged, not alarmed
    return word
