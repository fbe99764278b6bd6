"""Find protocol drivers: bundled ones in laserlog.drivers, third-party ones by entry point.

A driver module provides `Driver` (the host side), `Device` (the console side, for the
simulator) and `check_profile(profile)` (validation of its own profile keys).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Protocol

from laserlog.errors import ProfileError

ENTRY_POINT_GROUP = "laserlog.drivers"


class NamesADriver(Protocol):
    """A profile, as far as finding its driver goes (the loader calls this mid-parse)."""

    @property
    def source(self) -> str: ...

    @property
    def protocol(self) -> str: ...


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Return every driver name with the module that provides it."""
    # Found by name, not imported by this module: the drivers sit above the profile format.
    bundled = importlib.import_module("laserlog.drivers")
    found = {
        info.name: f"laserlog.drivers.{info.name}"
        for info in pkgutil.iter_modules(bundled.__path__)
        if not info.name.startswith("_")
    }
    found.update(_entry_points())
    return found


def load(name: str) -> ModuleType:
    """Import and return the driver module called `name`."""
    modules = available()
    if name not in modules:
        raise KeyError(name)
    return importlib.import_module(modules[name])


def driver_module(profile: NamesADriver) -> ModuleType:
    """Return the driver module a profile names, or raise a ProfileError naming the key."""
    try:
        return load(profile.protocol)
    except KeyError:
        raise ProfileError(profile.source, "device.protocol", "no such driver",
                           value=profile.protocol,
                           expected="one of " + ", ".join(sorted(available()))) from None
