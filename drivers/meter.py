"""Pulse-energy meters (kind = "meter"): poll a new-data flag, read the last pulse's energy.

The exchange is the line protocol's (`drivers/line.py`, whose `Driver` this one extends);
what it cannot express is here:
a flag whose reply is a word (Gentec `New Data Available`), an over-range reply instead of
a number (Ophir `*OVER`), and exponents printed with one digit (Ophir `*1.234E-3`).
Both ends live here: `Driver` reads a meter, `Device` is a simulated meter whose head
measures what a simulated console fires into it (`laserlog.sim.beam`), optionally biased.

Options table `[meter]` (see docs/review.md):

| key | meaning |
|---|---|
| `ok`, `error` | acknowledgement of sets and commands; refusal (`{code}` or `{message}`) |
| `new_data_yes`, `new_data_no` | the `{value}` of the new-data parameter's reply (`pulses.counter`) with and without a new pulse |
| `over` | the whole reply to an energy read when the head is over its range |
| `setup` | commands sent before a check, in order (e.g. `["energy_mode"]`) |
| `exponent_digits` | simulator: digits of printed exponents (1 prints `1.234E-3`; default 2) |
| `sim_bias` | simulator: the head reads the delivered energy times (1 + sim_bias) |
| `identity_fields` | simulator: values of identity reply fields other than model, serial, firmware |
"""

from __future__ import annotations

import random
import re
import string
import threading
import time
from typing import TYPE_CHECKING, Any

from laserlog.config.template import Template, compile_template
from laserlog.domain.model import StatusReading
from laserlog.drivers.line import Driver as LineDriver
from laserlog.drivers.line import LineFramer, LineOptions, _wire_value
from laserlog.errors import ProfileError, ProtocolError

if TYPE_CHECKING:
    from laserlog.config.profile import Parameter, Profile
    from laserlog.link.transport import Link
    from laserlog.link.wire import ConsoleState, SimPulse

OPTION_KEYS = {"ok", "error", "new_data_yes", "new_data_no", "over", "setup", "exponent_digits",
               "sim_bias", "identity_fields"}
_EXPONENT = re.compile(r"([eE][-+])0*(\d)")


def _templates(profile: Profile) -> tuple[Template | None, Template | None]:
    options = profile.protocol_options
    return (compile_template(options["ok"]) if "ok" in options else None,
            compile_template(options["error"]) if "error" in options else None)


class MeterOverRange(ProtocolError):
    """Raise when the meter reports its head saturated: the check needs a higher range."""


def _opt(profile: Profile, key: str, default: Any = None) -> Any:
    return profile.protocol_options.get(key, default)


def check_profile(profile: Profile) -> None:
    """Check what a meter profile needs: kind meter, energy and new-data parameters, options."""
    source = profile.source

    def bad(key: str, problem: str, **kw: Any) -> ProfileError:
        return ProfileError(source, key, problem, **kw)

    if profile.kind != "meter":
        raise bad("device.kind", "the meter protocol is for energy meters", value=profile.kind,
                  expected='"meter"')
    options = profile.protocol_options
    for key, value in options.items():
        if key not in OPTION_KEYS:
            raise bad(f"meter.{key}", "unknown key", expected="one of " + ", ".join(sorted(OPTION_KEYS)))
        if key in ("ok", "error"):
            try:
                compile_template(value)
            except (ValueError, AttributeError) as exc:
                raise bad(f"meter.{key}", str(exc), value=value) from None
        elif key in ("new_data_yes", "new_data_no", "over") and not isinstance(value, str):
            raise bad(f"meter.{key}", "wrong type", value=value, expected="text")
    for key in ("new_data_yes", "new_data_no"):
        if key not in options:
            raise bad(f"meter.{key}", "missing", expected="the new-data flag's reply value")
    setup = options.get("setup", [])
    if not isinstance(setup, list) or any(c not in profile.commands for c in setup):
        raise bad("meter.setup", "not a list of this profile's commands", value=setup,
                  expected="names from [commands]")
    digits = options.get("exponent_digits", 2)
    if isinstance(digits, bool) or digits not in (1, 2):
        raise bad("meter.exponent_digits", "not allowed", value=digits, expected="1 or 2")
    bias = options.get("sim_bias", 0.0)
    if isinstance(bias, bool) or not isinstance(bias, int | float) or not -0.9 <= bias <= 5:
        raise bad("meter.sim_bias", "not allowed", value=bias, expected="a number from -0.9 to 5")
    fields = options.get("identity_fields", {})
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise bad("meter.identity_fields", "wrong type", value=fields,
                  expected="a table of text values")
    energy = profile.parameters.get("energy")
    if energy is None or energy.get is None or energy.reply is None:
        raise bad("parameters.energy", "missing", expected="get and reply of the last pulse's energy")
    if profile.pulses.mode != "polled" or profile.pulses.counter is None:
        raise bad("pulses.mode", "a meter is polled", value=profile.pulses.mode,
                  expected='"polled", with counter = the new-data flag parameter')
    flag = profile.parameters[profile.pulses.counter]
    if flag.get is None or flag.reply is None:
        raise bad(f"parameters.{profile.pulses.counter}", "cannot be read",
                  expected="get and reply of the new-data flag")
    if profile.identity.get is None or profile.identity.reply is None:
        raise bad("identity", "missing", expected="get and reply: a check records the meter's model")


class Driver(LineDriver):
    """Host side: the line protocol's exchange, plus the new-data flag and the energy reply."""

    device_word = "meter"

    def __init__(self, profile: Profile, link: Link, **kw: object) -> None:
        super().__init__(profile, link, **kw)
        self.over = _opt(profile, "over")
        self.new_yes = _opt(profile, "new_data_yes")
        self.new_no = _opt(profile, "new_data_no")
        assert profile.pulses.counter is not None
        self._flag = profile.parameters[profile.pulses.counter]
        self._energy = profile.parameters["energy"]

    def compile_options(self, profile: Profile) -> LineOptions:
        ok, error = _templates(profile)
        return LineOptions(ok=ok, error=error)

    def set(self, name: str, value: float) -> float:
        param = self.profile.parameters[name]
        if param.set is not None and not param.in_range(value):
            raise ProtocolError(f"meter {name} {value:g} is outside the profile's range")
        return super().set(name, value)

    # -- the meter's exchange: one command, one reply line, judged at once ----------------
    def pump(self, timeout_s: float) -> None:
        data = self.link.read_available(timeout_s)
        if data:
            self.replies.extend(line for line in self.framer.feed(data) if line.strip())

    def reply_to(self, request: str) -> str:
        """Send one command and return its reply line as sent (a word, a number, `*OVER`)."""
        t = self.profile.transport
        self.replies.clear()
        self.link.write(self.wire(request.encode("latin-1")))
        deadline = time.monotonic() + t.timeout_s
        while not self.replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"no reply to {request!r} within {t.timeout_s:g} s on "
                                    f"{self.link.url}")
            self.pump(min(left, 0.05))
        reply = self.replies.popleft()
        if self._error is not None and self._error.match(reply) is not None:
            raise ProtocolError(f"meter refused {request!r}: {reply.decode('latin-1')}")
        return reply.decode("latin-1")

    def exchange(self, request: str, expect: Template | None,
                 query: bool = False) -> dict[str, str]:
        """Send one command and match its one reply line to `expect` (the line driver's
        get, set, command and identity all come through here; a meter has no status line,
        so `query` changes nothing)."""
        reply = self.reply_to(request)
        if expect is None:
            return {}
        fields = expect.match(reply.encode("latin-1"))
        if fields is None:
            raise ProtocolError(f"meter answered {request!r} with {reply!r}; expected "
                                f"{expect.text!r}")
        return fields

    def get(self, name: str) -> float:
        if name == self.profile.pulses.counter:
            return 1.0 if self.new_data() else 0.0  # the flag may be a word (Gentec)
        return super().get(name)

    def read_status(self) -> StatusReading | None:
        return None

    def start(self, *, settings_read: bool = False) -> None:
        raise ProtocolError(f"{self.profile.id} is an energy meter, not a console: use it with "
                            "`laserlog calibrate --meter`")

    def prepare(self, wavelength_nm: float | None) -> list[str]:
        """Send the setup commands and the console's wavelength; return what was done."""
        done = []
        for name in _opt(self.profile, "setup", []):
            self.command(name)
            done.append(self.profile.commands[name].send)
        param = self.profile.parameters.get("wavelength")
        if wavelength_nm is not None and param is not None and param.settable:
            if param.in_range(wavelength_nm):
                self.set("wavelength", float(round(wavelength_nm)))
                done.append(f"wavelength {wavelength_nm:g} nm")
            else:
                done.append(f"wavelength {wavelength_nm:g} nm is outside the meter's range: "
                            "left as it was")
        return done

    def new_data(self) -> bool:
        """Return whether the meter measured a pulse since the energy was last read."""
        flag = self._flag
        assert flag.get is not None and flag.reply is not None
        fields = flag.reply.match(self.reply_to(flag.get.render()).encode("latin-1"))
        if fields is None:
            raise ProtocolError(f"meter answered {flag.get.render()!r} with something else than "
                                f"{flag.reply.text!r}")
        value = fields.get("value", "")
        if value == self.new_yes:
            return True
        if value == self.new_no:
            return False
        raise ProtocolError(f"meter's new-data flag says {value!r}; expected {self.new_yes!r} "
                            f"or {self.new_no!r}")

    def read_energy_j(self) -> float:
        """Return the last pulse's energy in J (reading clears the new-data flag)."""
        param = self._energy
        assert param.get is not None and param.reply is not None
        request = param.get.render()
        reply = self.reply_to(request)
        if self.over is not None and reply == self.over:
            raise MeterOverRange(f"meter over range ({reply!r}): choose a higher range or "
                                 "lower the energy")
        fields = param.reply.match(reply.encode("latin-1"))
        if fields is None:
            raise ProtocolError(f"meter answered {request!r} with {reply!r}; expected "
                                f"{param.reply.text!r}")
        return param.conversion.to_canonical(float(fields["value"]) / param.wire_scale)

    def clear(self) -> None:
        """Forget a pulse measured before the check started."""
        if self.new_data():
            self.read_energy_j()

    def wait_shot(self, timeout_s: float, poll_s: float | None = None) -> float | None:
        """Return the next measured pulse energy (J), or None when none came in time."""
        poll_s = self.profile.pulses.poll_interval_s if poll_s is None else poll_s
        deadline = time.monotonic() + timeout_s
        while True:
            if self.new_data():
                return self.read_energy_j()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(poll_s, left))  # the documented way: poll the flag ~every 100 ms


class MeterHead:
    """A simulated head: measures each delivered pulse (bias, noise) and raises the flag."""

    def __init__(self, profile: Profile, seed: int = 0) -> None:
        self.bias = float(_opt(profile, "sim_bias", 0.0))
        self.noise = profile.simulator.noise
        self.max_j = profile.parameters["energy"].max
        self.rng = random.Random(seed)
        self.last_j: float | None = 0.0  # None: over range
        self.new = False
        self.measured = 0
        self._lock = threading.Lock()

    def deliver(self, energy_j: float) -> None:
        """Measure one pulse arriving at the head."""
        with self._lock:
            value = energy_j * (1.0 + self.bias) * (1.0 + self.rng.gauss(0.0, self.noise))
            self.last_j = None if self.max_j is not None and value > self.max_j else max(value, 0.0)
            self.new = True
            self.measured += 1

    def read(self) -> float | None:
        with self._lock:
            self.new = False
            return self.last_j

    def has_new(self) -> bool:
        with self._lock:
            return self.new


class Device:
    """Meter side, for the simulator: answers the profile's commands from a `MeterHead`."""

    def __init__(self, profile: Profile, console: ConsoleState) -> None:
        self.profile = profile
        self.console = console
        self.head = MeterHead(profile, seed=console.rng.randrange(2**31))
        t = profile.transport
        self.framer = LineFramer(t.write_terminator, t.max_line_bytes)
        self._ok, self._error = _templates(profile)
        self._digits = int(_opt(profile, "exponent_digits", 2))
        self._fields = dict(_opt(profile, "identity_fields", {}))
        self._gets: dict[bytes, str] = {}
        self._sets: list[tuple[Template, Parameter]] = []
        for name, param in profile.parameters.items():
            if param.get is not None:
                self._gets[param.get.render().encode("latin-1")] = name
            if param.set is not None:
                self._sets.append((param.set, param))
        self._commands = {cmd.send.encode("latin-1"): name for name, cmd in profile.commands.items()}
        ident = profile.identity
        self._identify = ident.get.render().encode("latin-1") if ident.get is not None else None

    @property
    def bias(self) -> float:
        return self.head.bias

    @bias.setter
    def bias(self, value: float) -> None:
        self.head.bias = value

    def frame(self, text: str) -> bytes:
        if self._digits == 1:
            text = _EXPONENT.sub(r"\1\2", text)
        t = self.profile.transport
        return t.reply_prefix + text.encode("latin-1") + t.read_terminator

    def receive(self, data: bytes) -> bytes:
        """Return the meter's answer to what the host sent."""
        return b"".join(self.answer(line) for line in self.framer.feed(data) if line)

    def error(self) -> bytes:
        if self._error is None:
            return b""  # a meter without an error reply stays silent
        return self.frame(self._error.render(code=1, message="UNKNOWN COMMAND"))

    def answer(self, line: bytes) -> bytes:
        profile = self.profile
        if line == self._identify:
            assert profile.identity.reply is not None
            ident_reply = profile.identity.reply
            values: dict[str, object] = {"model": profile.identity.model,
                                         "serial": self.console.serial,
                                         "firmware": self.console.firmware, **self._fields}
            for _, field, spec, _ in string.Formatter().parse(ident_reply.text):
                if field is not None and field in ident_reply.integer_fields:
                    # a serial printed {serial:d}, capability bits {capabilities:X}
                    base = 16 if (spec or "")[-1:] in ("x", "X") else 10
                    values[field] = int(str(values.get(field, "0")), base)
            return self.frame(ident_reply.render(**values))
        name = self._gets.get(line)
        if name is not None:
            param = profile.parameters[name]
            assert param.reply is not None
            if name == profile.pulses.counter:
                flag = _opt(profile, "new_data_yes") if self.head.has_new() \
                    else _opt(profile, "new_data_no")
                return self.frame(param.reply.render(value=flag))
            if name == "energy":
                value = self.head.read()
                if value is None:
                    over = _opt(profile, "over")
                    return self.frame(over) if over is not None else \
                        self.frame(param.reply.render(value=_wire_value(param, param.max or 0.0,
                                                                        param.reply)))
                return self.frame(param.reply.render(value=_wire_value(param, value, param.reply)))
            return self.frame(param.reply.render(
                value=_wire_value(param, self.console.value(name), param.reply)))
        command = self._commands.get(line)
        if command is not None:
            ack = profile.commands[command].reply or self._ok
            return self.frame(ack.render()) if ack is not None else b""
        for template, param in self._sets:
            fields = template.match(line)
            if fields is None:
                continue
            try:
                raw = float(fields["value"])
            except (KeyError, ValueError):
                return self.error()
            value = param.conversion.to_canonical(raw / param.wire_scale)
            if self.console.set(param.name, value):
                return self.error()
            answer = param.set_reply or self._ok
            return self.frame(answer.render(value=_wire_value(param, value, answer))) \
                if answer is not None else b""
        return self.error()

    def pulse(self, pulse: SimPulse) -> bytes:
        return b""  # a meter pushes nothing

    def fault(self, code: int) -> bytes:
        return b""
