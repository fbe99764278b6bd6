"""The site's course policy: indications, their interval windows, test spots, what is required.

Read from the `[courses]` section of the site file (laserlog.config.siteconfig):

```toml
[courses]
required = false            # true: every session belongs to a course or is a test spot
test_spot_required = false  # true: a course's first full session needs an uneventful,
                            # read-out, unexpired test spot on the same console
test_spot_valid_days = 183  # a test spot counts this long after it was done (6 months)
test_spot_max_pulses = 50   # `record --test-spot` stops after this many pulses
uneventful_max_grade = 1    # a read-out with every finding at or below this is uneventful
baseline_photos = 0         # baseline photos (`photo add --kind baseline`) a course needs
                            # before its first full session
above_test_spot = "alarm"   # "refuse": a set fluence above the tested one refuses the start,
                            # and a pulse above it stops emission (the console's stop command)

[courses.intervals]         # default window per indication, "MIN-MAX" or "MIN-MAX/TARGET"
pores = "21-42/28"          # days; a name not built in adds an indication
melasma = "28-56"

[courses.test_spot_wait_hours]   # how long after a test spot its read-out counts, per type
I = 24
IV = 168
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from laserlog.errors import LaserlogError

#: Indications every site knows; the site file adds its own.
INDICATIONS = ("pores", "pigmentation", "texture", "acne_scars", "rejuvenation")
#: Read-out findings, each graded 0 (none) to 3 (severe).
FINDINGS = ("erythema", "oedema", "blister", "hyperpigmentation", "hypopigmentation")
#: Vendor guidance: 24-48 h for types I-III, 5-7 days or more for IV-VI.
DEFAULT_WAIT_HOURS = {"I": 48.0, "II": 48.0, "III": 48.0, "IV": 168.0, "V": 168.0, "VI": 168.0}
#: What a fluence above the highest a test spot tested does: "alarm", or "refuse" the start
#: (and stop emission when a pulse passes it).
ABOVE_TEST_SPOT = ("alarm", "refuse")
#: The longest window anyone plans with (a year).
MAX_INTERVAL_DAYS = 366
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_WINDOW = re.compile(r"\s*(-?\d{1,9})\s*[-\u2013]\s*(-?\d{1,9})\s*(?:/\s*(-?\d{1,9})\s*)?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Window:
    """The days a course's sessions are spaced: at least `min_days`, at most `max_days`."""

    min_days: int
    max_days: int
    target_days: int | None = None

    def text(self) -> str:
        """Return the window as the form and `course show` print it: 21–42."""
        return f"{self.min_days}\u2013{self.max_days}"


def parse_window(text: str, what: str = "--interval") -> Window:
    """Return the window "MIN-MAX" (or "MIN-MAX/TARGET") names, or raise LaserlogError."""
    match = _WINDOW.fullmatch(text or "")
    if match is None:
        raise LaserlogError(f"{what} {text!r}: not a window; expected MIN-MAX in days, "
                            "e.g. 21-42")
    low, high = int(match[1]), int(match[2])
    target = int(match[3]) if match[3] is not None else None
    return checked_window(low, high, target, what)


def checked_window(low: int, high: int, target: int | None, what: str) -> Window:
    """Return the window, or raise LaserlogError for a negative, empty or inverted one."""
    shown = f"{low}-{high}" + (f"/{target}" if target is not None else "")
    if low < 0 or high < 0:
        raise LaserlogError(f"{what} {shown}: negative days; expected MIN-MAX with "
                            "0 <= MIN <= MAX, e.g. 21-42")
    if low > high:
        raise LaserlogError(f"{what} {shown}: inverted window (minimum {low} > maximum "
                            f"{high}); expected MIN-MAX with MIN <= MAX, e.g. 21-42")
    if high == 0:
        raise LaserlogError(f"{what} {shown}: empty window (no day allowed); expected a "
                            "maximum of at least 1 day, e.g. 21-42")
    if high > MAX_INTERVAL_DAYS:
        raise LaserlogError(f"{what} {shown}: a maximum above {MAX_INTERVAL_DAYS} days; "
                            "expected a window of at most a year")
    if target is not None and not low <= target <= high:
        raise LaserlogError(f"{what} {shown}: target {target} days is outside the window "
                            f"{low}-{high}; expected a target inside it")
    return Window(low, high, target)


@dataclass(frozen=True, slots=True)
class CoursePolicy:
    """What the site decided about courses and test spots."""

    required: bool = False
    test_spot_required: bool = False
    test_spot_valid_days: int = 183
    test_spot_max_pulses: int = 50
    uneventful_max_grade: int = 1
    intervals: dict[str, Window] = field(default_factory=dict)
    wait_hours: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WAIT_HOURS))
    baseline_photos: int = 0
    above_test_spot: str = "alarm"

    @property
    def indications(self) -> tuple[str, ...]:
        """Return the indications a course may name: the built-in ones and the site's."""
        return INDICATIONS + tuple(sorted(set(self.intervals) - set(INDICATIONS)))


def parse_policy(reader: Any) -> CoursePolicy:
    """Return the policy a site file's `[courses]` table (a TableReader) declares."""
    required = reader.bool("required", False)
    spot_required = reader.bool("test_spot_required", False)
    valid = reader.int("test_spot_valid_days", 183, minimum=1, maximum=3660)
    max_pulses = reader.int("test_spot_max_pulses", 50, minimum=1, maximum=10000)
    grade = reader.int("uneventful_max_grade", 1, minimum=0, maximum=3)
    baseline = reader.int("baseline_photos", 0, minimum=0, maximum=20)
    above = reader.str("above_test_spot", "alarm", choices=ABOVE_TEST_SPOT)
    intervals: dict[str, Window] = {}
    table = reader.sub("intervals")
    for name in list(table.table):
        if not _NAME.fullmatch(name):
            raise table.error(name, "not an indication name",
                              expected="lower-case letters, digits and '_', e.g. acne_scars")
        text = table.str(name)
        try:
            intervals[name] = parse_window(text, "window")
        except LaserlogError as exc:  # its own "; expected ..." gives way to the file's
            raise table.error(name, str(exc).partition("; expected ")[0],
                              expected="\"MIN-MAX\" or \"MIN-MAX/TARGET\" in days, e.g. "
                              "\"21-42/28\"") from None
    table.done()
    wait = dict(DEFAULT_WAIT_HOURS)
    waits = reader.sub("test_spot_wait_hours")
    for key in list(waits.table):
        if key not in DEFAULT_WAIT_HOURS:
            raise waits.error(key, "not a Fitzpatrick skin type", expected="I, II, III, IV, V "
                              "or VI")
        wait[key] = waits.float(key, minimum=0, maximum=24 * 60)
    waits.done()
    reader.done()
    return CoursePolicy(required, spot_required, valid, max_pulses, grade, intervals, wait,
                        baseline, above)
