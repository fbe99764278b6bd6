"""What every protocol driver shares: the observation queue, settings watch, polled counters.

A protocol module subclasses `Driver` and supplies framing and the command exchange; the
recorder only ever calls the methods defined here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from laserlog.domain.model import (
    DeviceIdentity,
    LinkEvent,
    Observation,
    PulseReading,
    SettingReading,
    StatusReading,
)
from laserlog.errors import IdentityMismatch, ProtocolError
from laserlog.link.plausibility import INT64_MAX, max_rate_hz, plausible_shots

if TYPE_CHECKING:
    from laserlog.config.profile import Conversion, Profile
    from laserlog.link.transport import Link

#: How often settings are read back to catch changes made on the console's own panel.
SETTINGS_POLL_S = 2.0

# Pulse fields as they appear on the wire -> PulseReading attribute.
PULSE_ATTRS = {
    "seq": "seq",
    "energy": "energy_j",
    "fluence": "fluence_j_cm2",
    "spot": "spot_mm",
    "pulse_duration": "pulse_duration_ps",
    "wavelength": "wavelength_nm",
    "rep_rate": "rep_rate_hz",
    "handpiece": "handpiece",
    "beamlet_energy": "beamlet_energy_j",
}


def pulse_builder(fields: tuple[str, ...], conversions: dict[str, Conversion]
                  ) -> Callable[[float, tuple[bytes | int | float, ...]], PulseReading]:
    """Return a function turning raw field values (in wire order) into a PulseReading.

    The unit factors are folded into one generated expression per field, so a pulse costs
    one int() or float() and at most a multiply-add per field: this runs once per pulse,
    and a generic loop over the fields doubled the parse time (measured).
    """
    by_attr: dict[str, str] = {}
    constants: dict[str, float] = {}
    for index, name in enumerate(fields):
        attr = PULSE_ATTRS[name]  # fields are checked against PULSE_FIELDS when a profile loads
        if name in ("seq", "handpiece"):
            by_attr[attr] = f"int(raw[{index}])"
            continue
        conv = conversions[name]
        expr = f"float(raw[{index}])"
        if conv.scale != 1.0:
            constants[f"s{index}"] = conv.scale
            expr += f" * s{index}"
        if conv.offset != 0.0:
            constants[f"o{index}"] = conv.offset
            expr += f" + o{index}"
        by_attr[attr] = expr
    args = ", ".join(by_attr.get(attr, "None") for attr in PulseReading._fields[1:])
    source = f"def build(received_unix_s, raw):\n    return _new(_cls, (received_unix_s, {args}))\n"
    namespace: dict[str, object] = {"_new": tuple.__new__, "_cls": PulseReading, **constants}
    exec(compile(source, f"<pulse builder {', '.join(fields)}>", "exec"), namespace)
    return namespace["build"]  # type: ignore[return-value]


class Driver:
    """Talk to one console over one link; turn what it says into observations."""

    def __init__(self, profile: Profile, link: Link, clock: Callable[[], float] = time.time) -> None:
        self.profile = profile
        self.link = link
        self.clock = clock
        self.pending: deque[Observation] = deque()
        self.identity: DeviceIdentity | None = None
        self.settings: dict[str, float] = {}
        #: What laserlog last set for parameters the console cannot report (readable =
        #: false): their only known value. Kept when `settings` is cleared to be read anew.
        self.last_set: dict[str, float] = {}
        self._last_counter: int | None = None
        self._counter_read_at = 0.0  # monotonic: when _last_counter was read
        #: A counter reading not yet believed (too high a jump, or lower than before), and
        #: when it was read: the next reading tells a misread from a restart or a real jump.
        self._suspect: tuple[int, float] | None = None
        self._max_rate_hz = max_rate_hz(profile)
        self.monotonic = time.monotonic  # when counter readings were taken (tests replace it)
        #: The console's shot counter when the session started (pushed consoles that have one).
        self.counter_at_start: int | None = None
        # Nothing is polled until start(): a driver used for one query must not wander off.
        self._next_counter_poll = float("inf")
        self._next_settings_poll = float("inf")
        self._next_keepalive = float("inf")

    # -- to be provided by a protocol ---------------------------------------------------
    def query_identity(self) -> DeviceIdentity:
        """Ask the console who it is."""
        raise NotImplementedError

    def get(self, name: str) -> float:
        """Read a parameter, in its canonical unit."""
        raise NotImplementedError

    def set(self, name: str, value: float) -> float:
        """Write a parameter given in its canonical unit; return the value the console took."""
        raise NotImplementedError

    def command(self, name: str) -> None:
        """Send a named command from the profile (stream_on, fire, stop...)."""
        raise NotImplementedError

    def read_status(self) -> StatusReading | None:
        """Query the console's status, when the profile says how."""
        raise NotImplementedError

    def pump(self, timeout_s: float) -> None:
        """Read what has arrived (waiting up to timeout_s) and queue what it means."""
        raise NotImplementedError

    # -- shared behaviour -----------------------------------------------------------------
    def identify(self, expect_serial: str | None = None) -> DeviceIdentity:
        """Identify the console, refusing another model or another serial number."""
        identity = self.query_identity()
        if identity.model != self.profile.identity.model:
            raise IdentityMismatch(
                f"console on {self.link.url} identifies as model {identity.model!r}, "
                f"but profile {self.profile.id} is for {self.profile.identity.model!r}")
        if expect_serial is not None and identity.serial != expect_serial:
            raise IdentityMismatch(
                f"console on {self.link.url} has serial number {identity.serial!r}, "
                f"expected {expect_serial!r}")
        self.identity = identity
        return identity

    def gettable(self) -> list[str]:
        """Return the parameters that can be read back."""
        return [n for n, p in self.profile.parameters.items()
                if (p.get is not None or p.code is not None) and p.readable]

    def took(self, name: str, value: float) -> None:
        """Note a value the console took; for a setting it cannot report, queue it as read."""
        self.settings[name] = value
        if not self.profile.parameters[name].readable:
            self.last_set[name] = value
            self.pending.append(SettingReading(self.clock(), name, value))

    def read_settings(self) -> dict[str, float]:
        """Read every readable parameter; queue a SettingReading for each that changed."""
        now = self.clock()
        for name in self.gettable():
            if name == self.profile.pulses.counter:
                continue
            value = self.get(name)
            if self.settings.get(name) != value:
                self.settings[name] = value
                self.pending.append(SettingReading(now, name, value))
        for name, value in self.last_set.items():  # known only as laserlog set them
            if self.settings.get(name) != value:
                self.settings[name] = value
                self.pending.append(SettingReading(now, name, value))
        return dict(self.settings)

    def start(self, *, settings_read: bool = False) -> None:
        """Prepare for a session: read settings (unless just read: `settings_read`), start
        pushed pulses or take the counter baseline."""
        if not settings_read:
            self.read_settings()
        if self.profile.pulses.mode == "pushed":
            counter = self.profile.parameters.get(self.profile.pulses.counter or "")
            if counter is not None and (counter.get is not None or counter.code is not None):
                self.counter_at_start = self._read_counter()
            if "stream_on" in self.profile.commands:
                self.command("stream_on")
        else:
            self._last_counter = self._read_counter()
            self._counter_read_at = self.monotonic()
        now = time.monotonic()
        self._next_settings_poll = now + SETTINGS_POLL_S
        self._next_counter_poll = now + self.profile.pulses.poll_interval_s
        if self.profile.keepalive is not None:
            self._next_keepalive = now + self.profile.keepalive.interval_s

    def stop(self) -> None:
        """Stop pushed pulses where the console supports it."""
        if self.profile.pulses.mode == "pushed" and "stream_off" in self.profile.commands:
            self.command("stream_off")

    def poll(self, timeout_s: float = 0.05) -> list[Observation]:
        """Return everything observed since the last call, polling counters and settings when due."""
        now = time.monotonic()
        pulses = self.profile.pulses
        if now >= self._next_keepalive:
            self._send_keepalive(now)
        if pulses.mode == "polled" and now >= self._next_counter_poll:
            self._next_counter_poll = now + pulses.poll_interval_s
            self._poll_counter()
        if now >= self._next_settings_poll:
            self._next_settings_poll = now + SETTINGS_POLL_S
            try:
                self.read_settings()
                if self.profile.status.get is not None or self.profile.status.code is not None:
                    status = self.read_status()
                    if status is not None:
                        self.pending.append(status)
            except ProtocolError as exc:
                self.pending.append(LinkEvent(self.clock(), "timeout", str(exc)))
        if not self.pending:
            wait_s = timeout_s
            if pulses.mode == "polled":
                wait_s = min(wait_s, max(0.0, self._next_counter_poll - time.monotonic()))
            self.pump(wait_s)
        out = list(self.pending)
        self.pending.clear()
        return out

    def _send_keepalive(self, now: float) -> None:
        """Send the profile's keep-alive command, so the console's watchdog stays content."""
        keepalive = self.profile.keepalive
        assert keepalive is not None
        self._next_keepalive = now + keepalive.interval_s
        try:
            self.command(keepalive.command)
        except ProtocolError as exc:
            self.pending.append(LinkEvent(self.clock(), "timeout", str(exc)))

    def _read_counter(self) -> int:
        name = self.profile.pulses.counter or ""
        value = self.get(name)
        if not 0 <= value <= INT64_MAX:  # NaN fails too
            raise ProtocolError(f"shot counter {name} read {value!r}: not a count")
        return int(round(value))

    def _poll_counter(self) -> None:
        """Read the shot counter; turn the shots it believably counted into pulse readings.

        A reading is evidence, not truth: a rise is believed only if the console could have
        fired that many shots since the last reading; a lower reading is a misread when the
        next one carries on from before, a restart when the next one confirms it.
        """
        try:
            count = self._read_counter()
        except ProtocolError as exc:
            self.pending.append(LinkEvent(self.clock(), "timeout", str(exc)))
            return
        read_at = self.monotonic()
        last = self._last_counter
        if last is None:
            self._last_counter, self._counter_read_at = count, read_at
            return
        rate = self._max_rate_hz
        suspect = self._suspect
        if last <= count <= last + plausible_shots(rate, read_at - self._counter_read_at):
            if suspect is not None:
                self.pending.append(LinkEvent(
                    self.clock(), "counter_misread",
                    f"shot counter read {suspect[0]} between {last} and {count}: a misread, "
                    "not believed"))
            self._believe(count, read_at, first=last + 1)
            return
        if suspect is not None and suspect[0] <= count <= suspect[0] + plausible_shots(
                rate, read_at - suspect[1]):
            since_last_s = read_at - self._counter_read_at
            if suspect[0] < last and count <= plausible_shots(rate, since_last_s):
                # Two readings below the old count agree: the console restarted from 0.
                self._believe(count, read_at, first=1)
                return
            self.pending.append(LinkEvent(
                self.clock(), "counter_jump",
                f"shot counter moved from {last} to {suspect[0]} (then {count}), not as a "
                f"console firing at {rate:g} Hz counts: the shots in between are not counted"))
            self._believe(count, read_at, first=suspect[0] + 1)
            return
        self._suspect = (count, read_at)
        self._next_counter_poll = time.monotonic()  # read it again at once
        if count > last:
            elapsed_s = read_at - self._counter_read_at
            self.pending.append(LinkEvent(
                self.clock(), "counter_implausible",
                f"shot counter read {count} after {last} {elapsed_s:.2g} s earlier: more than "
                f"the console can fire (at most {plausible_shots(rate, elapsed_s)} at "
                f"{rate:g} Hz); not believed, read again"))

    def _believe(self, count: int, read_at: float, *, first: int) -> None:
        """Take a counter reading as true and queue a pulse reading per shot from `first`."""
        self._last_counter, self._counter_read_at, self._suspect = count, read_at, None
        now = self.clock()
        for seq in range(first, count + 1):
            self.pending.append(PulseReading(now, seq=seq))
