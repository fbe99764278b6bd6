"""Write a number at its column's precision, as the unit in the column's name says.

CSV is read by people and spreadsheets: `0.12040000000000001` is float noise, not a
measurement. Energy is kept to 0.1 mJ, fluence to 0.001 J/cm², spot to 0.01 mm, durations
to 1 ps, rates to 0.01 Hz and wavelengths to 0.1 nm; other columns are written as stored.
"""

from __future__ import annotations

import math
from typing import Any

#: Decimals by the unit a column's name ends with (fluence's `_j_cm2` before energy's `_j`).
DECIMALS = (("_j_cm2", 3), ("_j", 4), ("_mm", 2), ("_ps", 0), ("_hz", 2), ("_nm", 1))


def decimals(column: str) -> int | None:
    """Return how many decimals a column's numbers carry (None: as stored)."""
    for suffix, places in DECIMALS:
        if column.endswith(suffix):
            return places
    return None


def as_text(column: str, value: Any) -> Any:
    """Return a float as text at its column's precision; anything else unchanged."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    places = decimals(column)
    if places is None:
        return value
    text = f"{value:.{places}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def row_text(row: dict[str, Any]) -> dict[str, Any]:
    """Return a row with each float at its column's precision."""
    return {column: as_text(column, value) for column, value in row.items()}
