"""A simulated console's state: settings, firing, shot counter, faults; seeded noise.

Protocol-free: a driver module's `Device` renders this state on the wire. Values are in
canonical units (J, J/cm^2, mm, ps, nm, Hz).
"""

from __future__ import annotations

import random

from laserlog.config.profile import Profile
from laserlog.domain import dosimetry
from laserlog.domain.dosimetry import interpolate
from laserlog.link.wire import ERR_INTERLOCK, ERR_RANGE, ERR_READ_ONLY, SimPulse

NOISE_TABLE_SIZE = 4096


class Settings(dict[str, float]):
    """A console's settings, counting their changes so derived values are recomputed only then."""

    version = 0

    def __setitem__(self, key: str, value: float) -> None:
        super().__setitem__(key, value)
        self.version += 1


class Console:
    """The simulated console's state machine."""

    def __init__(self, profile: Profile, seed: int = 0, rep_rate_hz: float | None = None) -> None:
        self.profile = profile
        self.rng = random.Random(seed)
        self.serial = profile.simulator.serial
        self.firmware = profile.simulator.firmware
        self.params: Settings = Settings()
        # Gaussian noise drawn once from the seed: flooding at 100 k pulses/s cannot afford
        # two gauss() calls per pulse, and a 4096-sample cycle is noise enough for a console.
        self._noise = [self.rng.gauss(0.0, 1.0) for _ in range(NOISE_TABLE_SIZE)]
        self._noise_at = 0
        self._setpoint_key: tuple[int, float | None] | None = None
        self._setpoint: tuple[float, float, float, float, float, float, float, int] = (
            0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0)
        for name, param in profile.parameters.items():
            if param.initial is not None:
                self.params[name] = param.initial
            elif param.min is not None and param.max is not None:
                self.params[name] = (param.min + param.max) / 2
            else:
                self.params[name] = param.min if param.min is not None else 0.0
        hp = profile.default_handpiece
        if hp is not None:
            self.params["handpiece"] = float(hp.code)
            if hp.spot_mm is not None and "spot" in profile.parameters:
                self.params["spot"] = hp.spot_mm
        self.rate_override_hz = rep_rate_hz
        self.shot_counter = int(self.params.get(profile.pulses.counter or "", 0))
        self.firing = False
        self.streaming = profile.pulses.mode == "pushed" and "stream_on" not in profile.commands
        self.fault_code = 0
        self.interlock_open = False
        #: The state flags ([status.flags]) the console shows as set, from [simulator] flags.
        self.flags: tuple[str, ...] = profile.simulator.flags
        self.host_seen_s: float | None = None  # monotonic time the host last sent anything

    # -- settings ---------------------------------------------------------------------------
    @property
    def rep_rate_hz(self) -> float:
        if self.rate_override_hz is not None:
            return self.rate_override_hz
        if "rep_rate" in self.params:
            return self.params["rep_rate"]
        return self.profile.simulator.rep_rate_hz or self.profile.pulses.fixed.get("rep_rate", 1.0)

    @property
    def handpiece_code(self) -> int:
        if "handpiece" in self.params:
            return int(self.params["handpiece"])
        hp = self.profile.default_handpiece
        return hp.code if hp is not None else 0

    def spot_mm(self) -> float:
        hp = self.profile.handpiece(self.handpiece_code)
        if "spot" in self.params:
            return self.params["spot"]
        if hp is not None and hp.spot_mm is not None:
            return hp.spot_mm
        return self.profile.pulses.fixed.get("spot", 1.0)

    def area_cm2(self) -> float:
        hp = self.profile.handpiece(self.handpiece_code)
        spot = self.spot_mm()
        return hp.area_cm2(spot) if hp is not None else dosimetry.round_area_cm2(spot)

    def set_energy_j(self) -> float:
        """Return the energy the console is set to deliver per pulse."""
        p = self.params
        transfer = self.profile.pulses.energy_transfer
        if "energy" in p:
            return p["energy"]
        hp = self.profile.handpiece(self.handpiece_code)
        if "beamlet_energy" in p and hp is not None and hp.fractional:
            return p["beamlet_energy"] * hp.beamlet_count / hp.beamlet_energy_fraction
        if "fluence" in p:
            return p["fluence"] * self.area_cm2()
        if transfer is not None:
            return interpolate(transfer[1], p[transfer[0]])
        return self.profile.pulses.fixed.get("energy", 0.0)

    def value(self, name: str) -> float:
        """Return a parameter as the console would report it (derived ones computed)."""
        if name == self.profile.pulses.counter:
            return float(self.shot_counter)
        if name == "fluence" and "energy" in self.params:
            return self.params["energy"] / self.area_cm2()
        if name == "energy" and "energy" not in self.params:
            return self.set_energy_j()
        return self.params.get(name, 0.0)

    def set(self, name: str, value: float) -> int:
        """Apply a setting; return 0 or the error code the console answers with."""
        param = self.profile.parameters.get(name)
        if param is None or not param.settable:
            return ERR_READ_ONLY
        if not param.in_range(value) and param.range_checked:
            return ERR_RANGE
        if name == self.profile.pulses.counter:
            self.shot_counter = int(value)
            return 0
        if name == "handpiece":
            hp = self.profile.handpiece(int(value))
            if hp is None:
                return ERR_RANGE
            if hp.spot_mm is not None and "spot" in self.params:
                self.params["spot"] = hp.spot_mm
        if name == "spot":
            hp = self.profile.handpiece(self.handpiece_code)
            if (hp is not None and hp.spot_min_mm is not None and hp.spot_max_mm is not None
                    and not hp.spot_min_mm <= value <= hp.spot_max_mm):
                return ERR_RANGE
        self.params[name] = value
        return 0

    def run(self, command: str) -> int:
        """Run a named command; return 0 or an error code."""
        if command in ("fire", "fire_on", "start"):
            if self.interlock_open:
                return ERR_INTERLOCK
            self.firing = True
        elif command in ("stop", "fire_off", "standby"):
            self.firing = False
        elif command == "stream_on":
            self.streaming = True
        elif command == "stream_off":
            self.streaming = False
        return 0

    # -- pulses and faults ----------------------------------------------------------------
    def setpoint(self) -> tuple[float, float, float, float, float, float, float, int]:
        """Return what every pulse shares until a setting changes: energy (J), duration (ps),
        area (cm^2), spot (mm), beamlet share of energy, wavelength (nm), rate (Hz), handpiece."""
        key = (self.params.version, self.rate_override_hz)
        if key != self._setpoint_key:
            hp = self.profile.handpiece(self.handpiece_code)
            share = (hp.beamlet_energy_fraction / hp.beamlet_count
                     if hp is not None and hp.fractional else 0.0)
            duration = (self.params.get("pulse_duration")
                        or self.profile.pulses.fixed.get("pulse_duration", 1.0))
            wavelength = self.params.get("wavelength") or (self.profile.wavelengths_nm or (0.0,))[0]
            self._setpoint = (self.set_energy_j(), duration, self.area_cm2(), self.spot_mm(),
                              share, wavelength, self.rep_rate_hz, self.handpiece_code)
            self._setpoint_key = key
        return self._setpoint

    def fire_pulse(self) -> SimPulse:
        """Fire one pulse: count it and return what the console measured, with seeded noise."""
        self.shot_counter += 1
        energy, duration, area, spot, share, wavelength, rate, handpiece = self.setpoint()
        sim = self.profile.simulator
        at = self._noise_at
        following = at + 2
        if following >= NOISE_TABLE_SIZE - 1:
            following = self.rng.randrange(2)  # wrap at a seeded phase: energy and duration swap
        self._noise_at = following
        energy_j = energy * (1.0 + sim.noise * self._noise[at])
        if energy_j < 0.0:
            energy_j = 0.0
        duration_ps = abs(duration * (1.0 + sim.pulse_duration_jitter * self._noise[at + 1]))
        return SimPulse(self.shot_counter, energy_j, energy_j / area, spot, duration_ps,
                        wavelength, rate, handpiece, energy_j * share)

    def heard_host(self, now_s: float) -> None:
        """Note that the host spoke; a fault its silence raised clears."""
        self.host_seen_s = now_s
        keepalive = self.profile.keepalive
        if keepalive is not None and keepalive.fault and self.fault_code == keepalive.fault:
            self.clear_fault()

    def check_watchdog(self, now_s: float) -> int | None:
        """Stop firing when the host has been silent past the profile's watchdog.

        Return None while the watchdog is content, else the fault code it raised (0 for none).
        """
        keepalive = self.profile.keepalive
        if (keepalive is None or keepalive.timeout_s is None or not self.firing
                or self.host_seen_s is None or now_s - self.host_seen_s <= keepalive.timeout_s):
            return None
        self.firing = False
        if keepalive.fault is None:
            return 0
        self.raise_fault(keepalive.fault)
        return keepalive.fault

    def raise_fault(self, code: int) -> None:
        """Enter a fault from the profile's table; an interlock fault stops firing."""
        self.fault_code = code
        fault = self.profile.status.faults.get(code)
        if fault is not None and fault.interlock:
            self.interlock_open = True
            self.firing = False

    def clear_fault(self) -> None:
        self.fault_code = 0
        self.interlock_open = False

    def power_cycle(self) -> None:
        """Restart: firing stops and the session shot counter restarts from zero."""
        self.firing = False
        self.shot_counter = 0
        self.clear_fault()
