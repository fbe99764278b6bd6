"""Offer a third-party protocol driver every name it needs, from one module that stays put.

A driver module registered under the `laserlog.drivers` entry-point group provides
`Driver` (the host side, a subclass of `Driver` below), `Device` (the console side, for the
simulator, built with the profile and a `ConsoleState`) and `check_profile(profile)`.
A protocol that is the line protocol with a twist (other framing, an extra flag) extends
`LineDriver`, `LineDevice` and `check_line_profile` instead of starting from `Driver`.
Import from here, not from the stage packages: they may move, these names will not.

    from laserlog.plugin import Driver, Profile, ProfileError, PulseReading
"""

from __future__ import annotations

from laserlog.config.profile import Conversion, Parameter, Profile
from laserlog.config.template import Template, compile_template
from laserlog.domain.model import (
    DeviceIdentity,
    LinkEvent,
    Observation,
    PulseReading,
    SettingReading,
    StatusReading,
)
from laserlog.drivers.line import Device as LineDevice
from laserlog.drivers.line import Driver as LineDriver
from laserlog.drivers.line import check_profile as check_line_profile
from laserlog.errors import IdentityMismatch, ProfileError, ProtocolError
from laserlog.link.driver import PULSE_ATTRS, Driver, pulse_builder
from laserlog.link.transport import Link
from laserlog.link.wire import (
    ERR_INTERLOCK,
    ERR_RANGE,
    ERR_READ_ONLY,
    ERR_SYNTAX,
    ConsoleState,
    SimPulse,
)

__all__ = [
    "ERR_INTERLOCK", "ERR_RANGE", "ERR_READ_ONLY", "ERR_SYNTAX", "PULSE_ATTRS",
    "ConsoleState", "Conversion", "DeviceIdentity", "Driver", "IdentityMismatch",
    "LineDevice", "LineDriver", "Link", "LinkEvent", "Observation", "Parameter", "Profile",
    "ProfileError", "ProtocolError", "PulseReading", "SettingReading", "SimPulse",
    "StatusReading", "Template", "check_line_profile", "compile_template", "pulse_builder",
]
