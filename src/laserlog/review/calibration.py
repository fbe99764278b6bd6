"""Calibration checks: fire N shots into an energy meter and compare with the set energy.

For each shot the meter's reading is compared with the console's set energy:
deviation = (measured - set) / set. Within the site's warn deviation (10 %) a shot passes,
up to the fail deviation (20 %, the IEC 60601-2-22 acceptance figure) it warns, beyond it
fails. The check's result is that of the mean reading. Nothing is written until every
shot is in: a meter that does not answer, another model, a refused fire command or a
timeout leave the database as it was.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import Profile
from laserlog.config.siteconfig import SiteConfig
from laserlog.domain import dosimetry
from laserlog.errors import IdentityMismatch, LaserlogError, PortError, ProtocolError
from laserlog.link.portlock import PortLock
from laserlog.link.transport import Link
from laserlog.review.users import User
from laserlog.storage import chain
from laserlog.storage.store import Store, utc_now

SHOT_COLUMNS = ("calibration_id", "shot", "received_unix_s", "set_energy_j",
                "measured_energy_j", "deviation", "result")
CHECK_COLUMNS = ("device_id", "profile_id", "console_serial", "meter_profile_id", "meter_model",
                 "meter_serial", "meter_firmware", "user_id", "started_utc", "ended_utc", "shots",
                 "wavelength_nm", "set_energy_j", "mean_measured_energy_j", "deviation",
                 "max_abs_deviation", "result", "warn_deviation", "fail_deviation", "fired_by")


class CalibrationError(LaserlogError):
    """Raise when a check cannot be made; nothing is recorded."""


def classify(deviation: float, warn: float, fail: float) -> str:
    """Return pass, warn or fail for a relative deviation from the set energy."""
    size = abs(deviation)
    if size <= warn:
        return "pass"
    if size <= fail:
        return "warn"
    return "fail"


def set_energy_j(profile: Profile, settings: dict[str, float]) -> float | None:
    """Return the energy per pulse the console is set to, from its settings and handpiece."""
    if "energy" in settings:
        return settings["energy"]
    code = settings.get("handpiece")
    hp = profile.handpiece(int(code) if code is not None else None)
    if "beamlet_energy" in settings and hp is not None and hp.fractional:
        return settings["beamlet_energy"] * hp.beamlet_count / hp.beamlet_energy_fraction
    transfer = profile.pulses.energy_transfer
    if transfer is not None and transfer[0] in settings:
        return dosimetry.interpolate(transfer[1], settings[transfer[0]])
    spot = settings.get("spot", hp.spot_mm if hp is not None else None)
    if "fluence" in settings and spot:
        area = hp.area_cm2(spot) if hp is not None else dosimetry.round_area_cm2(spot)
        return settings["fluence"] * area
    return profile.pulses.fixed.get("energy")


@dataclass(frozen=True, slots=True)
class Shot:
    """One shot of a check."""

    number: int
    received_unix_s: float
    set_energy_j: float
    measured_energy_j: float
    deviation: float
    result: str


@dataclass(slots=True)
class Check:
    """A finished check, as recorded."""

    calibration_id: int
    profile_id: str
    console_model: str
    console_serial: str
    console_firmware: str
    meter_profile_id: str
    meter_model: str
    meter_serial: str
    meter_firmware: str
    user_id: str
    started_utc: str
    ended_utc: str
    wavelength_nm: float | None
    set_energy_j: float
    mean_measured_energy_j: float
    deviation: float
    max_abs_deviation: float
    result: str
    fired_by: str
    warn_deviation: float
    fail_deviation: float
    shots: list[Shot] = field(default_factory=list)


def vars_of(shot: Shot) -> dict[str, Any]:
    return {k: getattr(shot, k) for k in Shot.__slots__}


def _open(profile: Profile, port: str):
    link = Link(port, profile.transport).open()
    try:
        driver = driver_module(profile).Driver(profile, link)
        link.discard_input()
    except BaseException:
        link.close()
        raise
    return link, driver


def run_check(store: Store, console: Profile, port: str, meter: Profile, meter_port: str, *,
              user: User, site: SiteConfig, shots: int, fire: bool | None = None,
              console_serial: str | None = None, meter_serial: str | None = None,
              timeout_s: float | None = None,
              say: Callable[[str], None] = lambda text: None) -> Check:
    """Make one check and record it; raise CalibrationError (nothing written) when it cannot."""
    if meter.kind != "meter":
        raise CalibrationError(f"profile {meter.id} is a {meter.kind} console, not an energy "
                               "meter (kind = \"meter\"); pass a meter profile to --meter")
    if console.kind == "meter":
        raise CalibrationError(f"profile {console.id} is an energy meter; --profile names the "
                               "console to check")
    can_fire = "fire" in console.commands and "stop" in console.commands
    if fire and not can_fire:
        raise CalibrationError(f"profile {console.id} has no fire and stop commands: the "
                               "technician fires (leave out --fire)")
    firing = can_fire if fire is None else fire
    timeout_s = timeout_s if timeout_s is not None else (10.0 if firing else 120.0)
    lock = PortLock(port).acquire()
    links: list[Link] = []
    fired = False
    try:
        link, driver = _open(console, port)
        links.append(link)
        identity = driver.identify(console_serial)
        settings = driver.read_settings()
        set_j = set_energy_j(console, settings)
        if set_j is None or not set_j > 0 or not math.isfinite(set_j):
            raise CalibrationError(f"cannot tell the set energy of {console.id} from its "
                                   f"settings ({', '.join(sorted(settings)) or 'none'})")
        wavelength = settings.get("wavelength")
        if wavelength is None and len(console.wavelengths_nm) == 1:
            wavelength = console.wavelengths_nm[0]
        try:
            meter_link, meter_driver = _open(meter, meter_port)
        except PortError as exc:
            raise CalibrationError(f"meter: {exc}") from None
        links.append(meter_link)
        try:
            meter_id = meter_driver.identify()
        except IdentityMismatch as exc:
            raise IdentityMismatch(f"meter: {exc}") from None
        except ProtocolError as exc:
            raise CalibrationError(f"the meter on {meter_port} does not answer as a {meter.name} "
                                   f"should: {exc}") from None
        serial = meter_id.serial
        if meter_serial and serial and meter_serial != serial:
            raise IdentityMismatch(f"meter on {meter_port} has serial {serial!r}, expected "
                                   f"{meter_serial!r}")
        serial = serial or (meter_serial or "")
        if not serial:
            raise CalibrationError(f"{meter.name} does not report its serial number: give the "
                                   "head's serial number with --meter-serial SN")
        for done in meter_driver.prepare(wavelength):
            say(f"meter: {done}")
        meter_driver.clear()
        started = utc_now()
        say(f"checking {console.id} serial {identity.serial or '-'}: set energy {set_j:.4g} J, "
            f"{shots} shot(s) into {meter_id.model} serial {serial}")
        if firing:
            driver.command("fire")
            fired = True
        else:
            say(f"fire {shots} shot(s) into the meter now (waiting up to {timeout_s:g} s per shot)")
        taken: list[Shot] = []
        for number in range(1, shots + 1):
            measured = meter_driver.wait_shot(timeout_s)
            if measured is None:
                raise CalibrationError(f"the meter measured {number - 1} of {shots} shot(s) "
                                       f"within {timeout_s:g} s; nothing was recorded")
            deviation = (measured - set_j) / set_j
            result = classify(deviation, site.warn_deviation, site.fail_deviation)
            taken.append(Shot(number, time.time(), set_j, measured, deviation, result))
            say(f"shot {number}/{shots}: measured {measured:.4g} J ({deviation:+.1%}) "
                f"{result.upper()}")
        if fired:
            driver.command("stop")
            fired = False
    except ProtocolError as exc:
        raise CalibrationError(f"{exc}; nothing was recorded") from None
    finally:
        if fired:
            try:
                driver.command("stop")
            except LaserlogError:
                say("WARNING: the stop command failed: stop the console by hand")
        for link in links:
            link.close()
        lock.release()
    mean = statistics.fmean(s.measured_energy_j for s in taken)
    deviation = (mean - set_j) / set_j
    check = Check(0, console.id, identity.model, identity.serial, identity.firmware, meter.id, meter_id.model, serial,
                  meter_id.firmware, user.user_id, started, utc_now(), wavelength, set_j, mean,
                  deviation, max(abs(s.deviation) for s in taken),
                  classify(deviation, site.warn_deviation, site.fail_deviation),
                  "laserlog" if firing else "technician", site.warn_deviation,
                  site.fail_deviation, taken)
    record(store, check)
    return check


def record(store: Store, check: Check) -> int:
    """Write a check and its shots in one transaction with its chain link; return its id."""
    conn = store.conn
    with conn:
        conn.execute("INSERT OR IGNORE INTO devices (profile_id, model, serial, firmware,"
                     " first_seen_utc) VALUES (?, ?, ?, ?, ?)",
                     (check.profile_id, check.console_model, check.console_serial,
                      check.console_firmware, utc_now()))
        device_id = conn.execute("SELECT id FROM devices WHERE profile_id = ? AND serial = ?",
                                 (check.profile_id, check.console_serial)).fetchone()[0]
        values = (device_id, check.profile_id, check.console_serial, check.meter_profile_id,
                  check.meter_model, check.meter_serial, check.meter_firmware, check.user_id,
                  check.started_utc, check.ended_utc, len(check.shots), check.wavelength_nm,
                  check.set_energy_j, check.mean_measured_energy_j, check.deviation,
                  check.max_abs_deviation, check.result, check.warn_deviation,
                  check.fail_deviation, check.fired_by)
        cur = conn.execute(f"INSERT INTO calibrations ({', '.join(CHECK_COLUMNS)}) VALUES "
                           f"({', '.join('?' * len(CHECK_COLUMNS))})", values)
        cal_id = int(cur.lastrowid or 0)
        conn.executemany(f"INSERT INTO calibration_shots ({', '.join(SHOT_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(SHOT_COLUMNS))})",
                         [(cal_id, s.number, s.received_unix_s, s.set_energy_j,
                           s.measured_energy_j, s.deviation, s.result) for s in check.shots])
        last = conn.execute("SELECT max(id) FROM calibration_shots").fetchone()[0]
        head = chain.append(conn, session_id=None, kind="calibration",
                            ranges=[("calibrations", cal_id, cal_id),
                                    ("calibration_shots", last - len(check.shots) + 1, last)])
    chain.write_anchor(store.path, head)
    check.calibration_id = cal_id
    return cal_id
