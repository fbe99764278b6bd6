"""Write a stored value as the officer reads it: times as dates, numbers in their units.

Datasette's own unit display turns Unix seconds into `1.796198 Gs` and J/cm² into `kJ/m²`;
laserlog gives no Datasette units and writes each value here instead. A time reads as its
UTC date and time with the site's local time beside it; a number reads at its column's
clinical precision (laserlog.review.precision) followed by the unit its name carries.
"""

from __future__ import annotations

import math
from datetime import UTC, tzinfo
from typing import Any

from markupsafe import Markup, escape

from laserlog.domain import localtime
from laserlog.review.precision import as_text

#: The unit a column's name ends with, as people write it (fluence's `_j_cm2` before `_j`).
UNITS = (("_j_cm2", "J/cm²"), ("_j", "J"), ("_mm", "mm"), ("_ps", "ps"), ("_hz", "Hz"),
         ("_nm", "nm"))


def unit(column: str) -> str | None:
    """Return the unit a column's name carries (None: none laserlog writes)."""
    for suffix, text in UNITS:
        if column.endswith(suffix):
            return text
    return None


def is_time(column: str) -> bool:
    """Return whether a column holds a time: ISO text in UTC (`_utc`) or Unix seconds."""
    return column.endswith(("_utc", "_unix_s"))


def time_text(moment: str | float, zone: tzinfo | None) -> tuple[str, str] | None:
    """Return a stored time as ('2026-05-01 14:03:07 UTC', '16:03:07 CEST'); None if unreadable."""
    try:
        utc = localtime.local(moment, UTC)
        here = localtime.local(moment, zone)
    except (ValueError, OverflowError, OSError):
        return None
    day = "" if here.date() == utc.date() else f"{here:%Y-%m-%d} "
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC", f"{day}{here:%H:%M:%S} {here.tzname()}"


def number_text(column: str, value: float | int) -> str | None:
    """Return a number at its column's precision with its unit; None for other columns."""
    symbol = unit(column)
    if symbol is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return f"{as_text(column, float(value))} {symbol}"


def cell(column: str, value: Any, zone: tzinfo | None) -> Markup | None:
    """Return a cell's HTML, or None to leave it to Datasette (text, counts, empty cells)."""
    if value is None or isinstance(value, bool):
        return None
    if is_time(column) and isinstance(value, int | float | str) and value != "":
        if isinstance(value, str) and not value[:4].isdigit():
            return None  # '-' and such: shown as stored
        times = time_text(value, zone)
        if times is None:
            return None
        return Markup(f'<span class="utc">{escape(times[0])}</span><br>'
                      f'<span class="local">{escape(times[1])}</span>')
    if isinstance(value, int | float):
        text = number_text(column, value)
        return Markup(f'<span class="number">{escape(text)}</span>') if text else None
    return None
