"""Text line protocols: query/set templates, an OK/ERR convention, pushed pulse and fault lines.

Both ends live here: `Driver` talks to a console, `Device` is the console's side for the
simulator. Both read the same templates from the profile.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from laserlog.driver import Driver as BaseDriver
from laserlog.driver import pulse_builder
from laserlog.errors import ProfileError, ProtocolError
from laserlog.model import DeviceIdentity, LinkEvent, StatusReading
from laserlog.template import Template, compile_template

if TYPE_CHECKING:
    from laserlog.profile import Parameter, Profile
    from laserlog.sim.console import Console, SimPulse
    from laserlog.transport import Link

OPTION_KEYS = {"ok", "error"}


def check_profile(profile: Profile) -> None:
    """Check the keys this protocol needs: templates for what the driver must ask."""
    options = profile.protocol_options
    for key in options:
        if key not in OPTION_KEYS:
            raise ProfileError(profile.source, f"{profile.protocol}.{key}", "unknown key",
                               expected="one of " + ", ".join(sorted(OPTION_KEYS)))
    for key in OPTION_KEYS & set(options):
        try:
            compile_template(options[key])
        except (ValueError, AttributeError) as exc:
            raise ProfileError(profile.source, f"{profile.protocol}.{key}", str(exc),
                               value=options[key]) from None
    for name, param in profile.parameters.items():
        if param.get is None and param.set is None:
            raise ProfileError(profile.source, f"parameters.{name}", "neither get nor set",
                               expected="a get template, a set template or both")
    if profile.pulses.mode == "pushed" and profile.pulses.line is None:
        raise ProfileError(profile.source, "pulses.line", "missing",
                           expected="the template of a pushed pulse line")


class LineFramer:
    """Split a byte stream into lines on a terminator; overlong runs are cut and reported."""

    def __init__(self, terminator: bytes, max_line_bytes: int) -> None:
        self.terminator = terminator
        self.max_line_bytes = max_line_bytes
        self._buffer = b""
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Return the complete lines in what has arrived so far."""
        buffer = self._buffer + data if self._buffer else data
        lines = buffer.split(self.terminator)
        self._buffer = lines.pop()
        if len(self._buffer) > self.max_line_bytes:
            self.overflows += 1
            lines.append(self._buffer)
            self._buffer = b""
        return lines


class FixedWidthFramer:
    """Cut replies of a fixed width that follow a prefix (e.g. CR LF then 15 characters)."""

    def __init__(self, prefix: bytes, width: int) -> None:
        self.prefix = prefix
        self.width = width
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data
        frames: list[bytes] = []
        while True:
            start = buffer.find(self.prefix) if self.prefix else 0
            if start < 0:
                keep = len(self.prefix) - 1
                junk, buffer = buffer[:-keep] if keep else buffer, buffer[-keep:] if keep else b""
                if junk.strip():
                    frames.append(junk)
                break
            if buffer[:start].strip():
                frames.append(buffer[:start])
            end = start + len(self.prefix) + self.width
            if len(buffer) < end:
                buffer = buffer[start:]
                break
            frames.append(buffer[start + len(self.prefix):end])
            buffer = buffer[end:]
        self._buffer = buffer
        return frames


def make_framer(profile: Profile, incoming: bool) -> LineFramer | FixedWidthFramer:
    """Return the framer for what the host reads (incoming=True) or what the console reads."""
    t = profile.transport
    if not incoming:
        return LineFramer(t.write_terminator, t.max_line_bytes)
    if t.reply_width is not None:
        return FixedWidthFramer(t.reply_prefix, t.reply_width)
    return LineFramer(t.read_terminator, t.max_line_bytes)


def _options(profile: Profile) -> tuple[Template | None, Template | None]:
    o = profile.protocol_options
    ok = compile_template(o["ok"]) if "ok" in o else None
    err = compile_template(o["error"]) if "error" in o else None
    return ok, err


def _set_reply(param: Parameter, ok: Template | None) -> Template | None:
    return param.set_reply or ok or param.reply


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _wire_value(param: Parameter, canonical: float, template: Template,
                scale: float = 1.0) -> float | int:
    """Return a canonical value as the wire shows it (times set_scale when written by set)."""
    value = param.conversion.from_canonical(canonical) * param.wire_scale * scale
    return int(round(value)) if "value" in template.integer_fields else value


class Driver(BaseDriver):
    """Host side of a text line protocol."""

    def __init__(self, profile: Profile, link: Link, **kw: object) -> None:
        super().__init__(profile, link, **kw)  # type: ignore[arg-type]
        self.framer = make_framer(profile, incoming=True)
        self.replies: deque[bytes] = deque()
        self._awaiting = False
        self._ok, self._error = _options(profile)
        pulses = profile.pulses
        self._pulse_regex = pulses.line.regex if pulses.line is not None else None
        self._build_pulse = (pulse_builder(pulses.line.fields, pulses.fields)
                             if pulses.line is not None else None)
        self._fault_regex = profile.status.fault_line.regex if profile.status.fault_line else None
        self.garbled = 0

    # -- reading --------------------------------------------------------------------------
    def pump(self, timeout_s: float) -> None:
        data = self.link.read_available(timeout_s)
        if data:
            self.feed(data)

    def feed(self, data: bytes) -> None:
        """Classify each complete frame: pulse, fault, reply to the pending query, or garbage."""
        now = self.clock()
        pulse_regex, build, fault_regex = self._pulse_regex, self._build_pulse, self._fault_regex
        pending = self.pending
        for frame in self.framer.feed(data):
            if pulse_regex is not None:
                found = pulse_regex.match(frame)
                if found is not None:
                    pending.append(build(now, found.groups()))  # type: ignore[misc]
                    continue
            if fault_regex is not None:
                found = fault_regex.match(frame)
                if found is not None:
                    code = int(found.group("code"))
                    fault = self.profile.status.faults.get(code)
                    pending.append(StatusReading(now, code, bool(fault and fault.interlock)))
                    continue
            if self._awaiting:
                self.replies.append(frame)
            elif frame.strip():
                self.garbled += 1
                pending.append(LinkEvent(now, "garbled", "unexpected line", frame[:200]))

    def exchange(self, request: str, expect: Template | None) -> dict[str, str]:
        """Send one command and wait for the reply matching `expect` (or an error reply)."""
        t = self.profile.transport
        self.replies.clear()
        self._awaiting = expect is not None
        try:
            self.link.write(request.encode("latin-1") + t.write_terminator)
            if expect is None:
                return {}
            deadline = time.monotonic() + t.timeout_s
            while True:
                while self.replies:
                    frame = self.replies.popleft()
                    fields = expect.match(frame)
                    if fields is not None:
                        return fields
                    if self._error is not None and (err := self._error.match(frame)) is not None:
                        raise ProtocolError(f"console refused {request!r}: error {err.get('code', frame.decode('latin-1'))}")
                    if frame.strip():
                        self.garbled += 1
                        self.pending.append(LinkEvent(self.clock(), "garbled",
                                                      f"unexpected reply to {request!r}", frame[:200]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProtocolError(f"no reply to {request!r} within {t.timeout_s:g} s "
                                        f"on {self.link.url}")
                self.pump(min(left, 0.05))
        finally:
            self._awaiting = False

    # -- commands -------------------------------------------------------------------------
    def query_identity(self) -> DeviceIdentity:
        ident = self.profile.identity
        if ident.get is None or ident.reply is None:
            return DeviceIdentity(ident.model, "", "")
        fields = self.exchange(ident.get.render(), ident.reply)
        return DeviceIdentity(fields.get("model", ident.model), fields.get("serial", ""),
                              fields.get("firmware", ""))

    def get(self, name: str) -> float:
        param = self.profile.parameters[name]
        if param.get is None or param.reply is None:
            raise ProtocolError(f"parameter {name} cannot be read")
        fields = self.exchange(param.get.render(), param.reply)
        return param.conversion.to_canonical(float(fields["value"]) / param.wire_scale)

    def set(self, name: str, value: float) -> float:
        param = self.profile.parameters[name]
        if param.set is None:
            raise ProtocolError(f"parameter {name} cannot be set")
        if not param.in_range(value):
            raise ProtocolError(f"{name} {value:g} is outside the profile's range "
                                f"{_bound(param.min)}..{_bound(param.max)} "
                                f"(canonical unit of {param.conversion.quantity})")
        request = param.set.render(value=_wire_value(param, value, param.set, param.set_scale))
        self.exchange(request, _set_reply(param, self._ok))
        self.settings[name] = value
        return value

    def command(self, name: str) -> None:
        cmd = self.profile.commands[name]
        self.exchange(cmd.send, cmd.reply or self._ok)

    def read_status(self) -> StatusReading | None:
        st = self.profile.status
        if st.get is None or st.reply is None:
            return None
        fields = self.exchange(st.get.render(), st.reply)
        code = int(fields.get("fault", "0"))
        fault = st.faults.get(code)
        interlock = fields.get("interlock")
        firing = fields.get("firing")
        return StatusReading(self.clock(), code,
                             bool(int(interlock)) if interlock is not None else bool(fault and fault.interlock),
                             bool(int(firing)) if firing is not None else None)


class Device:
    """Console side of a text line protocol, answering from a simulated console's state."""

    def __init__(self, profile: Profile, console: Console) -> None:
        self.profile = profile
        self.console = console
        self.framer = make_framer(profile, incoming=False)
        self._ok, self._error = _options(profile)
        self._gets: dict[bytes, tuple[str, str]] = {}
        self._sets: list[tuple[Template, Parameter]] = []
        for name, param in profile.parameters.items():
            if param.get is not None:
                self._gets[param.get.render().encode("latin-1")] = ("param", name)
            if param.set is not None:
                self._sets.append((param.set, param))
        for name, cmd in profile.commands.items():
            self._gets[cmd.send.encode("latin-1")] = ("command", name)
        if profile.identity.get is not None:
            self._gets[profile.identity.get.render().encode("latin-1")] = ("identity", "")
        if profile.status.get is not None:
            self._gets[profile.status.get.render().encode("latin-1")] = ("status", "")

    def frame(self, text: str) -> bytes:
        t = self.profile.transport
        return t.reply_prefix + text.encode("latin-1") + t.read_terminator

    def error(self, code: int) -> bytes:
        return self.frame(self._error.render(code=code)) if self._error is not None else b""

    def receive(self, data: bytes) -> bytes:
        """Return the console's answer to what the host sent."""
        return b"".join(self.answer(line) for line in self.framer.feed(data) if line)

    def answer(self, line: bytes) -> bytes:
        c = self.console
        kind_name = self._gets.get(line)
        if kind_name is not None:
            kind, name = kind_name
            if kind == "identity":
                ident = self.profile.identity
                assert ident.reply is not None
                return self.frame(ident.reply.render(model=ident.model, serial=c.serial,
                                                     firmware=c.firmware))
            if kind == "status":
                assert self.profile.status.reply is not None
                return self.frame(self.profile.status.reply.render(
                    fault=c.fault_code, interlock=int(c.interlock_open), firing=int(c.firing)))
            if kind == "command":
                error = c.run(name)
                if error:
                    return self.error(error)
                cmd = self.profile.commands[name]
                reply = cmd.reply or self._ok
                return self.frame(reply.render()) if reply is not None else b""
            param = self.profile.parameters[name]
            assert param.reply is not None
            return self.frame(param.reply.render(value=_wire_value(param, c.value(name), param.reply)))
        for template, param in self._sets:
            fields = template.match(line)
            if fields is None:
                continue
            try:
                raw = float(fields["value"])
            except (KeyError, ValueError):
                return self.error(1)
            value = param.conversion.to_canonical(raw / (param.wire_scale * param.set_scale))
            error = c.set(param.name, value)
            if error:
                return self.error(error)
            reply = _set_reply(param, self._ok)
            if reply is None:
                return b""
            return self.frame(reply.render(value=_wire_value(param, c.value(param.name), reply)))
        return self.error(1)

    def pulse(self, pulse: SimPulse) -> bytes:
        """Return the pushed line announcing a pulse."""
        spec = self.profile.pulses
        if spec.mode != "pushed" or spec.line is None:
            return b""
        values: dict[str, float | int] = {}
        for name in spec.line.fields:
            value = pulse.field(name)
            if name in ("seq", "handpiece"):
                values[name] = int(value)
            else:
                value = spec.fields[name].from_canonical(value)
                values[name] = int(round(value)) if name in spec.line.integer_fields else value
        return self.frame(spec.line.render(**values))

    def fault(self, code: int) -> bytes:
        """Return the pushed line announcing a fault (or nothing if the console pushes none)."""
        st = self.profile.status
        return self.frame(st.fault_line.render(code=code)) if st.fault_line is not None else b""
