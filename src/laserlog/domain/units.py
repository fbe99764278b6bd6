"""Units at the edges: one pint registry, used at profile load and in reports, never per pulse.

Stored quantities use the units clinics use; a profile's units compile into plain
multiplication factors to these.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pint

# Quantity name -> (canonical unit stored in the database, pint dimensionality).
CANONICAL: dict[str, tuple[str, str]] = {
    "energy": ("J", "[energy]"),
    "fluence": ("J/cm**2", "[energy] / [area]"),
    "spot": ("mm", "[length]"),
    "length": ("mm", "[length]"),
    "pulse_duration": ("ps", "[time]"),
    "time": ("s", "[time]"),
    "wavelength": ("nm", "[length]"),
    "rep_rate": ("Hz", "1 / [time]"),
    "temperature": ("degC", "[temperature]"),
    "voltage": ("V", "[electric_potential]"),
    "count": ("dimensionless", "[]"),
    "fraction": ("dimensionless", "[]"),
}

# How a stored unit reads on screen and on paper: no pint spelling, nothing for a count.
DISPLAY = {"J/cm**2": "J/cm²", "dimensionless": "", "degC": "°C"}


def display_unit(unit: str | None) -> str:
    """Return a stored unit as people read it ('J/cm**2' -> 'J/cm²', 'dimensionless' -> '')."""
    return DISPLAY.get(unit or "", unit or "")


# Column suffix for each canonical unit, so names carry their unit.
SUFFIX = {
    "J": "j",
    "J/cm**2": "j_cm2",
    "mm": "mm",
    "ps": "ps",
    "s": "s",
    "nm": "nm",
    "Hz": "hz",
    "degC": "c",
    "V": "v",
    "dimensionless": "",
}


#: A unit as profiles write it: names joined by *, / or a space, each with an optional small
#: power (mJ, J/cm^2, J/cm**2, 1/s). Anything else (10**10**10, calls, attributes) is refused
#: before pint sees it: pint evaluates what it parses.
_UNIT_NAME = r"[A-Za-z\u00b5\u03bc\u00b0\u2126_]+(?:\s*(?:\*\*|\^)\s*-?[1-4])?"
UNIT_GRAMMAR = re.compile(rf"(?:1\s*/\s*)?{_UNIT_NAME}(?:\s*[*/ ]\s*{_UNIT_NAME}){{0,4}}")
#: A quantity as profiles write it: a finite decimal number, then a unit.
QUANTITY_GRAMMAR = re.compile(
    r"\s*([-+]?(?:\d{1,30}\.?\d{0,30}|\.\d{1,30})(?:[eE][-+]?\d{1,3})?)\s*(.*?)\s*")


def check_unit(unit: str) -> None:
    """Raise ValueError unless `unit` is a plain unit expression (no arithmetic to evaluate)."""
    if len(unit) > 40 or UNIT_GRAMMAR.fullmatch(unit) is None:
        raise ValueError(f"{unit!r} is not a unit such as 'mJ', 'J/cm^2' or 'ps'")


@cache
def registry() -> pint.UnitRegistry:
    """Return the program's single pint registry (built on first use: it costs ~0.4 s)."""
    import pint

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def factor_to_canonical(unit: str, quantity: str) -> tuple[float, float]:
    """Return (scale, offset) turning a value in `unit` into the canonical unit of `quantity`.

    Raises ValueError with a readable reason when the unit is unknown or of the wrong dimension.
    """
    import pint

    if quantity not in CANONICAL:
        raise ValueError(f"unknown quantity {quantity!r}; known: {', '.join(sorted(CANONICAL))}")
    canonical, dimension = CANONICAL[quantity]
    if unit != "dimensionless":
        check_unit(unit)
    ureg = registry()
    try:
        parsed = ureg.Quantity(1.0, unit)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError,
            TypeError, ValueError, AssertionError) as exc:
        raise ValueError(f"unknown unit {unit!r} ({exc})") from None
    if parsed.dimensionality != ureg.get_dimensionality(dimension):
        raise ValueError(
            f"unit {unit!r} is a {parsed.dimensionality or 'dimensionless'} quantity, "
            f"not {quantity} ({dimension})"
        )
    zero = ureg.Quantity(0.0, unit).to(canonical).magnitude
    one = ureg.Quantity(1.0, unit).to(canonical).magnitude
    return float(one - zero), float(zero)


def parse_quantity(text: str, quantity: str) -> float:
    """Parse a string such as "650 ps" into a float in the canonical unit of `quantity`.

    The number must be finite and the unit a plain unit: nothing is evaluated.
    """
    import pint

    found = QUANTITY_GRAMMAR.fullmatch(text) if len(text) <= 80 else None
    if found is None:
        raise ValueError(f"cannot read {text!r} as a number and a unit, such as '650 ps'")
    number, unit = float(found.group(1)), found.group(2)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    if unit:
        check_unit(unit)
    ureg = registry()
    try:
        parsed = ureg.Quantity(number, unit or "dimensionless")
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError,
            TypeError, ValueError, AssertionError) as exc:
        raise ValueError(f"cannot read {text!r} as a quantity ({exc})") from None
    canonical, dimension = CANONICAL[quantity]
    if parsed.dimensionality != ureg.get_dimensionality(dimension):
        raise ValueError(f"{text!r} is not a {quantity} ({dimension})")
    value = float(parsed.to(canonical).magnitude)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is beyond any {quantity} a console reports")
    return value
