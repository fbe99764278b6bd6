"""Fixed-width replies parsed by column (e.g. CR LF then exactly 15 characters).

The command exchange is the line protocol's (the framer is chosen from the transport's
`reply_width`); this module adds what fixed-width consoles such as the CFR command set of
flash-lamp Nd:YAG lasers need:

- Every reply template renders to exactly the declared width, at zero and at both ends of
  the parameter's range, so the simulator and the driver agree column by column.
- Values written may be scaled (`set_scale`): these consoles take ``ENE110`` for 11.0 J but
  answer ``energy    11.0J``.
- The status reply is read by field name: `interlock` (nonzero = open, and the fault code
  when there is no `fault` field), `lamp` (0 stop, 1 single, 2 started, +4 with external
  trigger), and optionally `fault`, `firing`, `simmer`, `qswitch`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from laserlog.domain.model import StatusReading
from laserlog.drivers.line import Device as LineDevice
from laserlog.drivers.line import Driver as LineDriver
from laserlog.drivers.line import _set_reply, _wire_value, status_reading
from laserlog.drivers.line import check_profile as check_line_profile
from laserlog.errors import ProfileError

if TYPE_CHECKING:
    from laserlog.config.profile import Parameter, Profile
    from laserlog.config.template import Template

__all__ = ["Device", "Driver", "check_profile"]

#: Fields a status reply may carry; the simulator renders each from the console's state.
STATUS_FIELDS = frozenset({"fault", "interlock", "firing", "lamp", "simmer", "qswitch", "word"})
LAMP_STOPPED = 0
LAMP_STARTED = 2
#: The lamp state adds this when it runs from an external trigger.
EXTERNAL_TRIGGER = 4


def _lamp_firing(fields: dict[str, str]) -> bool | None:
    """Return whether the console fires, from a `firing` flag or the lamp state."""
    if "firing" in fields:
        return bool(int(fields["firing"]))
    if "lamp" in fields:
        return int(fields["lamp"]) % EXTERNAL_TRIGGER == LAMP_STARTED
    return None


class Driver(LineDriver):
    """Host side of a fixed-width protocol: the line exchange, status read by field."""

    def read_status(self) -> StatusReading | None:
        """Query the status word; report the interlock, the fault code and whether it fires."""
        st = self.profile.status
        if st.get is None or st.reply is None:
            return None
        fields = self.exchange(st.get.render(), st.reply)
        if "word" in fields:
            reading = status_reading(self.profile, st.reply, fields, self.clock())
            firing = _lamp_firing(fields)
            return reading if firing is None else replace(reading, firing=firing)
        interlock = int(fields.get("interlock", "0"))
        # Without a fault field the interlock code is the only fault the console reports.
        code = int(fields["fault"]) if "fault" in fields else interlock
        fault = st.faults.get(code)
        return StatusReading(self.clock(), code, interlock != 0 or bool(fault and fault.interlock),
                             _lamp_firing(fields))


class Device(LineDevice):
    """Console side of a fixed-width protocol, answering from a simulated console's state."""

    def answer(self, line: bytes) -> bytes:
        """Return the reply to one command; settings and status are rendered here."""
        kind, name = self._gets.get(line, ("", ""))
        if kind == "param":
            param = self.profile.parameters[name]
            assert param.reply is not None
            return self._render(param, param.reply)
        if kind == "status":
            return self.frame(self._status_text())
        if kind:
            return super().answer(line)
        for template, param in self._sets:
            fields = template.match(line)
            if fields is None:
                continue
            # Out of range the console keeps its setting: the reply shows the value it kept.
            raw = float(fields["value"]) / (param.wire_scale * param.set_scale)
            self.console.set(param.name, param.conversion.to_canonical(raw))
            reply = _set_reply(param, self._ok)
            return self._render(param, reply) if reply is not None else b""
        return super().answer(line)

    def _render(self, param: Parameter, template: Template) -> bytes:
        """Return a framed reply showing the console's value of `param`."""
        value = self.console.value(param.name)
        return self.frame(template.render(value=_wire_value(param, value, template)))

    def _status_text(self) -> str:
        """Return the status reply rendered from the console's state."""
        c = self.console
        reply = self.profile.status.reply
        assert reply is not None
        # The simulator's "fire" starts lamp and Q-switch together; the lamp simmers meanwhile.
        started = LAMP_STARTED if c.firing else LAMP_STOPPED
        return reply.render(fault=c.fault_code, interlock=int(c.interlock_open),
                            firing=int(c.firing), lamp=started, simmer=int(c.firing),
                            qswitch=started,
                            word=self.profile.status.encode_word(c.fault_code, c.interlock_open,
                                                                 c.firing))


def _render_width(template: Template, profile: Profile, key: str, value: float = 0.0) -> str:
    """Render a template with sample values, raising a ProfileError if it cannot render."""
    values: dict[str, object] = {}
    for name in template.fields:
        sample = value if name == "value" else 0.0
        values[name] = round(sample) if name in template.integer_fields else sample
    if "serial" in values:
        values["serial"] = profile.simulator.serial
    try:
        return template.render(**values)
    except (ValueError, TypeError) as exc:
        raise ProfileError(profile.source, key, f"template does not render: {exc}",
                           value=template.text) from None


def _samples(param: Parameter) -> list[float]:
    """Return the values a reply must fit: zero and both ends of the range, in reply units."""
    ends = [param.min, param.max]
    return [0.0] + [param.conversion.from_canonical(end) for end in ends if end is not None]


def check_profile(profile: Profile) -> None:
    """Check the line keys, then that every reply template has the declared width."""
    check_line_profile(profile, STATUS_FIELDS)
    width = profile.transport.reply_width
    if width is None:
        raise ProfileError(profile.source, "transport.reply_width", "missing",
                           expected="the fixed width of every reply, in characters")
    replies: list[tuple[str, Template, list[float]]] = []
    for name, param in profile.parameters.items():
        for attr in ("reply", "set_reply"):
            template = getattr(param, attr)
            if template is not None:
                replies.append((f"parameters.{name}.{attr}", template, _samples(param)))
    for name, command in profile.commands.items():
        if command.reply is not None:
            replies.append((f"commands.{name}.reply", command.reply, [0.0]))
    status = profile.status.reply
    if status is not None:
        unknown = sorted(set(status.fields) - STATUS_FIELDS)
        if unknown:
            raise ProfileError(profile.source, "status.reply", f"unknown field {{{unknown[0]}}}",
                               value=status.text,
                               expected="fields among " + ", ".join(sorted(STATUS_FIELDS)))
        replies.append(("status.reply", status, [0.0]))
    for key, template, samples in replies:
        for sample in samples:
            rendered = _render_width(template, profile, key, sample)
            if len(rendered) != width:
                raise ProfileError(profile.source, key, f"renders {len(rendered)} characters",
                                   value=rendered,
                                   expected=f"exactly {width} (transport.reply_width)")
