"""Profile format v2: one TOML file describes a console for both its driver and its simulator.

Loading validates every key (type, unit dimension, range) and compiles units into plain
conversion factors, so nothing per pulse needs pint. See docs/profiles.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from laserlog.config.template import Template, compile_template
from laserlog.config.tomlreader import TableReader
from laserlog.domain import dosimetry
from laserlog.errors import ProfileError

FORMAT_VERSION = 2
#: Older formats still read: format 1 differs only in `hard_max` (format 2: `plausible_max`)
#: and in lacking the constructs format 2 added (laserlog.config.upgrade rewrites a file).
READABLE_FORMATS = (1, 2)
PARITIES = {"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S",
            "N": "N", "E": "E", "O": "O", "M": "M", "S": "S"}
PULSE_FIELDS = {
    "seq": "count",
    "energy": "energy",
    "fluence": "fluence",
    "spot": "spot",
    "pulse_duration": "pulse_duration",
    "wavelength": "wavelength",
    "rep_rate": "rep_rate",
    "handpiece": "count",
    "beamlet_energy": "energy",
}
QUANTITY_EXAMPLES = {"energy": "'200 mJ'", "fluence": "'3 J/cm^2'", "spot": "'4 mm'",
                     "pulse_duration": "'650 ps'", "wavelength": "'1064 nm'",
                     "rep_rate": "'10 Hz'"}
SEVERITIES = ("info", "warning", "alarm")
#: Status-word bits with a meaning of their own; every other bit names a fault.
STATUS_BITS = ("interlock", "firing")
#: Fitzpatrick skin types, the keys of [envelope.<type>].
SKIN_TYPES = ("I", "II", "III", "IV", "V", "VI")
SHAPES = ("round", "square", "rect")


@dataclass(frozen=True, slots=True)
class Conversion:
    """Plain factors from a console's unit to the canonical stored unit."""

    unit: str
    quantity: str
    scale: float = 1.0
    offset: float = 0.0

    def to_canonical(self, value: float) -> float:
        return value * self.scale + self.offset

    def from_canonical(self, value: float) -> float:
        return (value - self.offset) / self.scale


@dataclass(frozen=True, slots=True)
class Transport:
    """Serial line settings and framing."""

    baud: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    write_terminator: bytes = b"\r\n"
    read_terminator: bytes = b"\r\n"
    reply_prefix: bytes = b""
    reply_width: int | None = None
    command_gap_s: float = 0.0
    timeout_s: float = 1.0
    max_line_bytes: int = 256


@dataclass(frozen=True, slots=True)
class Parameter:
    """One console setting: its unit, allowed range and how to get and set it."""

    name: str
    conversion: Conversion
    min: float | None  # canonical unit
    max: float | None  # canonical unit
    get: Template | None = None
    reply: Template | None = None
    set: Template | None = None
    set_reply: Template | None = None
    wire_scale: float = 1.0
    set_scale: float = 1.0
    code: int | None = None
    encoding: str | None = None
    initial: float | None = None  # canonical unit, for the simulator
    #: The highest value a reading may have and still be physical (canonical unit); above
    #: it a reading is no pulse. None: ten times `max` (laserlog.link.plausibility).
    #: Written `plausible_max` in format 2, `hard_max` in format 1.
    hard_max: float | None = None
    #: An enumerated parameter's words on the wire (`QSW?` -> `REP`); its value is the index.
    values: tuple[str, ...] = ()
    #: False: the console cannot report this setting (no get, or a get that answers
    #: something else): its value is what laserlog last set. Default: it has a get.
    readable: bool = True
    #: False: the console takes values outside min..max without refusing them; only
    #: laserlog's own range check keeps them from it.
    range_checked: bool = True

    @property
    def settable(self) -> bool:
        return self.set is not None or self.code is not None

    def word(self, index: float) -> str:
        """Return an enumerated parameter's word for a value, refusing one it does not have."""
        position = int(round(index))
        if not self.values or position != index or not 0 <= position < len(self.values):
            raise ValueError(f"{self.name} has no value {index:g} (its values: "
                             f"{', '.join(f'{i} = {v}' for i, v in enumerate(self.values))})")
        return self.values[position]

    def shown(self, canonical: float) -> str:
        """Return a canonical value as text in the console's own unit, e.g. '250 mJ'."""
        if self.values:
            try:
                return self.word(canonical)
            except ValueError:
                return f"{canonical:g} (no such value)"
        unit = self.conversion.unit
        value = self.conversion.from_canonical(canonical)
        return f"{value:.6g}" + ("" if unit == "dimensionless" else f" {unit}")

    def in_range(self, value: float) -> bool:
        # Bounds compiled through a unit factor carry float noise (999 us -> 0.000998999... s).
        slack = 1e-9 * abs(value)
        return ((self.min is None or value >= self.min - slack)
                and (self.max is None or value <= self.max + slack))


@dataclass(frozen=True, slots=True)
class Command:
    """An action without a value (start streaming, fire, stop) and its acknowledgement.

    An action may take several commands in turn (laser on, then Q-switch on): `steps`
    holds them all, `send` the first.
    """

    name: str
    send: str
    reply: Template | None = None
    code: int | None = None
    steps: tuple[str, ...] = ()

    @property
    def sends(self) -> tuple[str, ...]:
        """Return every command of the action, in the order they are sent."""
        return self.steps or (self.send,)


@dataclass(frozen=True, slots=True)
class Fault:
    """A status or fault code from the console's table."""

    code: int
    name: str
    severity: str
    message: str
    interlock: bool = False


@dataclass(frozen=True, slots=True)
class Handpiece:
    """A handpiece: its spot geometry, fixed or zoom, optionally a fractional beamlet array."""

    code: int
    name: str
    shape: str
    spot_mm: float | None = None
    spot_min_mm: float | None = None
    spot_max_mm: float | None = None
    aspect: float = 1.0
    beamlet_rows: int = 0
    beamlet_cols: int = 0
    beamlet_diameter_mm: float = 0.0
    beamlet_pitch_mm: float = 0.0
    beamlet_energy_fraction: float = 1.0

    @property
    def fractional(self) -> bool:
        return self.beamlet_rows > 0

    @property
    def beamlet_count(self) -> int:
        return self.beamlet_rows * self.beamlet_cols

    def area_cm2(self, spot_mm: float) -> float:
        return dosimetry.spot_area_cm2(self.shape, spot_mm, self.aspect)


@dataclass(frozen=True, slots=True)
class PulseSpec:
    """How pulses arrive: pushed lines with a sequence number, or a polled shot counter."""

    mode: str  # "pushed" | "polled"
    line: Template | None = None
    fields: dict[str, Conversion] = field(default_factory=dict)
    counter: str | None = None
    poll_interval_s: float = 0.1
    #: The fastest the console fires, when the profile says (else its rep_rate parameter's).
    max_rate_hz: float | None = None
    fixed: dict[str, float] = field(default_factory=dict)  # canonical values
    energy_transfer: tuple[str, tuple[tuple[float, float], ...]] | None = None
    code: int | None = None
    encoding: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StatusSpec:
    """How the console reports status and faults."""

    get: Template | None = None
    reply: Template | None = None
    fault_line: Template | None = None
    faults: dict[int, Fault] = field(default_factory=dict)
    code: int | None = None
    fault_code: int | None = None
    #: Named bits of a status word ({word} in the reply): name -> bit number.
    bits: dict[str, int] = field(default_factory=dict)
    #: Bits that are neither fault nor interlock (laser on, shutter open, warming up):
    #: name -> bit number. They are recorded as the console's state, never as alarms.
    flags: dict[str, int] = field(default_factory=dict)

    def decode_flags(self, word: int) -> tuple[str, ...]:
        """Return the names of the state flags set in a status word, in bit order."""
        return tuple(name for name, bit in sorted(self.flags.items(), key=lambda i: i[1])
                     if word >> bit & 1)

    def decode_word(self, word: int) -> tuple[int, bool | None, bool | None]:
        """Return (fault code, interlock open, firing) from a status word's named bits.

        The fault is the first fault-table entry, in bit order, whose bit is set (else, with
        the interlock bit set, the table's interlock fault). The interlock is open when the
        `interlock` bit or the bit of an interlock fault is set; interlock and firing are
        None when the word has no bit that tells.
        """
        bits = self.bits
        codes = self._fault_codes()
        fault = 0
        for name, bit in sorted(bits.items(), key=lambda item: item[1]):
            if word >> bit & 1 and name not in STATUS_BITS:
                fault = codes[name]
                break
        interlock_bits = [bit for name, bit in bits.items()
                          if name == "interlock" or (name in codes and
                                                     self.faults[codes[name]].interlock)]
        interlock: bool | None = None
        if interlock_bits:
            interlock = any(word >> bit & 1 for bit in interlock_bits)
        elif fault:
            interlock = self.faults[fault].interlock
        if interlock and not fault:
            # The interlock bit alone: report it as the table's interlock fault, if any.
            fault = next((code for code, f in self.faults.items() if f.interlock), 0)
        firing = bool(word >> bits["firing"] & 1) if "firing" in bits else None
        return fault, interlock, firing

    def encode_word(self, fault_code: int, interlock_open: bool, firing: bool,
                    flags: tuple[str, ...] = ()) -> int:
        """Return the status word a console in this state shows (the simulator's side)."""
        word = 0
        for name in flags:
            if name in self.flags:
                word |= 1 << self.flags[name]
        bits = self.bits
        if interlock_open and "interlock" in bits:
            word |= 1 << bits["interlock"]
        if firing and "firing" in bits:
            word |= 1 << bits["firing"]
        fault = self.faults.get(fault_code)
        if fault is not None and fault.name in bits:
            word |= 1 << bits[fault.name]
        return word

    def _fault_codes(self) -> dict[str, int]:
        return {fault.name: code for code, fault in self.faults.items()}


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A command the host repeats so the console's watchdog keeps it enabled."""

    command: str
    interval_s: float
    timeout_s: float | None = None  # the console's watchdog, for the simulator
    fault: int | None = None  # the fault the console raises when its watchdog trips


@dataclass(frozen=True, slots=True)
class Identity:
    """How the console says who it is."""

    model: str
    get: Template | None = None
    reply: Template | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class SimSpec:
    """What the simulator does beyond the profile's protocol."""

    serial: str = "SIM-0001"
    firmware: str = "1.0"
    noise: float = 0.03
    handpiece: int | None = None
    rep_rate_hz: float | None = None
    pulse_duration_jitter: float = 0.02
    power_on_junk: bytes = b""
    #: The state flags ([status.flags]) the simulated console shows as set.
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SkinEnvelope:
    """What one Fitzpatrick skin type may receive from this console (format 2 [envelope.T]).

    Recording holds each session to it, joined with the site's (laserlog.config.envelopes).
    """

    skin_type: str
    recommended_fluence_j_cm2: float | None = None
    max_fluence_j_cm2: float | None = None
    #: Wavelengths (nm) not to be used on this skin type; all of the console's with `avoid = true`.
    avoid_wavelengths_nm: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated device profile."""

    id: str
    name: str
    kind: str
    protocol: str
    source: str
    description: str
    wavelengths_nm: tuple[float, ...]
    transport: Transport
    identity: Identity
    parameters: dict[str, Parameter]
    commands: dict[str, Command]
    status: StatusSpec
    pulses: PulseSpec
    handpieces: dict[int, Handpiece]
    simulator: SimSpec
    protocol_options: dict[str, Any] = field(default_factory=dict)
    keepalive: KeepAlive | None = None
    extends: tuple[str, ...] = ()  # the files this profile inherits from, nearest first
    format_version: int = FORMAT_VERSION
    #: [bounds]: hard bounds per parameter (canonical unit, None = the range's own end),
    #: never to be exceeded and inside the parameter's range. Parsed and kept, not enforced.
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: [envelope.<skin type>]: per Fitzpatrick type I..VI, held against every pulse.
    envelopes: dict[str, SkinEnvelope] = field(default_factory=dict)

    @property
    def default_handpiece(self) -> Handpiece | None:
        if self.simulator.handpiece is not None:
            return self.handpieces.get(self.simulator.handpiece)
        return next(iter(self.handpieces.values()), None)

    def handpiece(self, code: int | None) -> Handpiece | None:
        if code is None:
            return self.default_handpiece
        return self.handpieces.get(code)

    def without_ranges(self) -> Profile:
        """Return a copy whose parameters have no range, to see what the console refuses."""
        return replace(self, parameters={name: replace(p, min=None, max=None)
                                         for name, p in self.parameters.items()})


def _bytes(reader: TableReader, name: str, default: str) -> bytes:
    """Read a text key that goes on the wire as bytes (one byte per character, U+0000-U+00FF)."""
    text = reader.str(name, default)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise reader.error(name, "has a character that is not a single byte", value=text,
                           expected="characters U+0000 to U+00FF (escape bytes as \\u00XX)") from None


def _template(reader: TableReader, name: str) -> Template | None:
    text = reader.opt_str(name)
    if text is None:
        return None
    try:
        return compile_template(text)
    except ValueError as exc:
        raise reader.error(name, str(exc), value=text, expected="a format template such as "
                           "'EN {value:.1f}'") from None


def _query(reader: TableReader, name: str) -> Template | None:
    """Return a command sent as written (a query): a template without fields."""
    template = _template(reader, name)
    if template is not None and template.fields:
        raise reader.error(name, f"has a field {{{template.fields[0]}}}, which nothing fills: a "
                           "query is sent as written", value=template.text,
                           expected="a command without fields, such as 'EN?'")
    return template


def _check_set_renders(r: TableReader, param: Parameter) -> None:
    """Render a set template with the range's ends and the initial value, as the driver will."""
    template = param.set
    if template is None:
        return
    extra = [f for f in template.fields if f != "value"]
    if extra:
        raise r.error("set", f"unknown field {{{extra[0]}}}", value=template.text,
                      expected="a template whose only field is {value}")
    for label, canonical in (("min", param.min), ("max", param.max), ("initial", param.initial)):
        if canonical is None:
            continue
        wire = param.conversion.from_canonical(canonical) * param.wire_scale * param.set_scale
        value: float | int = (int(round(wire)) if "value" in template.integer_fields else wire)
        try:
            text = template.render(value=value)
        except (ValueError, OverflowError, KeyError, IndexError, TypeError) as exc:
            raise r.error("set", f"cannot be written with the {label} value {wire:g} ({exc})",
                          value=template.text) from None
        if len(text) > 1000:
            raise r.error("set", f"writes {len(text)} characters for the {label} value",
                          value=template.text, expected="a command of at most 1000 characters")


def _conversion(reader: TableReader, key: str, unit: str, quantity: str) -> Conversion:
    from laserlog.domain.units import factor_to_canonical

    try:
        scale, offset = factor_to_canonical(unit, quantity)
    except ValueError as exc:
        raise reader.error(key, str(exc), value=unit,
                           expected=f"a unit of {quantity}") from None
    return Conversion(unit, quantity, scale, offset)


def _quantity(reader: TableReader, key: str, quantity: str) -> float:
    from laserlog.domain.units import parse_quantity

    text = reader.str(key)
    try:
        return parse_quantity(text, quantity)
    except ValueError as exc:
        example = QUANTITY_EXAMPLES.get(quantity, "'1 mm'")
        raise reader.error(key, str(exc), value=text,
                           expected=f"a {quantity} such as {example}") from None


def _transport(r: TableReader) -> Transport:
    parity = r.str("parity", "none")
    if parity not in PARITIES:
        raise r.error("parity", "not allowed", value=parity, expected="none, even, odd, mark or space")
    stopbits = r.float("stopbits", 1)
    if stopbits not in (1, 1.5, 2):
        raise r.error("stopbits", "not allowed", value=stopbits, expected="1, 1.5 or 2")
    transport = Transport(
        baud=r.int("baud", 9600, minimum=50, maximum=4_000_000),
        bytesize=r.int("bytesize", 8, minimum=5, maximum=8),
        parity=PARITIES[parity],
        stopbits=stopbits,
        write_terminator=_bytes(r, "write_terminator", "\r\n"),
        read_terminator=_bytes(r, "read_terminator", "\r\n"),
        reply_prefix=_bytes(r, "reply_prefix", ""),
        reply_width=r.opt_int("reply_width", minimum=1, maximum=4096),
        command_gap_s=r.float("command_gap_ms", 0, minimum=0, maximum=10_000) / 1000.0,
        timeout_s=r.float("timeout_s", 1.0, positive=True, maximum=60),
        max_line_bytes=r.int("max_line_bytes", 256, minimum=8, maximum=65536),
    )
    r.done()
    if transport.reply_width is None and not transport.read_terminator:
        raise r.error("read_terminator", "empty", expected="a terminator, or reply_width for "
                      "fixed-width replies")
    return transport


def _parameter(name: str, r: TableReader, version: int = FORMAT_VERSION) -> Parameter:
    words = _values(r, version)
    quantity = r.str("quantity", "count" if words else None)
    from laserlog.domain.units import CANONICAL

    if quantity not in CANONICAL:
        raise r.error("quantity", "unknown quantity", value=quantity,
                      expected="one of " + ", ".join(sorted(CANONICAL)))
    if words and quantity != "count":
        raise r.error("quantity", "an enumerated parameter counts its values", value=quantity,
                      expected="quantity 'count' (or none) with `values`")
    conversion = _conversion(r, "unit", r.str("unit", "dimensionless"), quantity)
    if words:
        for key in ("min", "max"):
            if r.has(key):
                raise r.error(key, "not for an enumerated parameter", value=r.raw(key),
                              expected="no min or max: `values` is the range (0 .. "
                                       f"{len(words) - 1})")
        low: float | None = 0.0
        high: float | None = float(len(words) - 1)
    else:
        low = r.opt_float("min")
        high = r.opt_float("max")
    if low is not None and high is not None and low > high:
        raise r.error("max", "range is inverted", value=f"min {low:g} > max {high:g}",
                      expected="min <= max")
    initial = _initial(r, words)
    plausible_key, stale_key = (("hard_max", "plausible_max") if version < 2
                                else ("plausible_max", "hard_max"))
    if r.has(stale_key):
        raise r.error(stale_key, f"not a format {version} key", value=r.raw(stale_key),
                      expected=f"{plausible_key} (format {version}); `laserlog profiles "
                               "upgrade FILE` rewrites a format 1 file")
    hard_max = r.opt_float(plausible_key, positive=True)
    if hard_max is not None and high is not None and hard_max < high:
        raise r.error(plausible_key, "below the range's maximum", value=hard_max,
                      expected=f"at least max ({high:g}): a value in range is always physical")
    if initial is not None and ((low is not None and initial < low) or (high is not None and initial > high)):
        bounds = [f"at least {low:g}"] if low is not None else []
        bounds += [f"at most {high:g}"] if high is not None else []
        raise r.error("initial", "outside the allowed range", value=initial,
                      expected=" and ".join(bounds))

    def canon(x: float | None) -> float | None:
        return None if x is None else conversion.to_canonical(x)

    param = Parameter(
        name=name,
        conversion=conversion,
        min=canon(low),
        max=canon(high),
        get=_query(r, "get"),
        reply=_template(r, "reply"),
        set=_template(r, "set"),
        set_reply=_template(r, "set_reply"),
        wire_scale=r.float("wire_scale", 1.0, positive=True),
        set_scale=r.float("set_scale", 1.0, positive=True),
        code=r.opt_int("code", minimum=0, maximum=255),
        encoding=r.opt_str("encoding"),
        initial=canon(initial),
        hard_max=canon(hard_max),
        values=words,
        readable=r.bool("readable", r.has("get") or r.has("code")),
        range_checked=r.bool("range_checked", True),
    )
    r.done()
    if param.readable and param.get is None and param.code is None:
        raise r.error("readable", "true without a get", value=True,
                      expected="a get template, or readable = false")
    if param.get is not None and param.reply is None:
        raise r.error("reply", "missing", expected="a reply template for the get command")
    if param.reply is not None and "value" not in param.reply.fields:
        raise r.error("reply", "has no {value} field", value=param.reply.text)
    if param.reply is not None and (extra := [f for f in param.reply.fields if f != "value"]):
        raise r.error("reply", f"unknown field {{{extra[0]}}}: a reply carries only {{value}}",
                      value=param.reply.text,
                      expected="a template whose only field is {value}; a status line that "
                               "follows every reply is [line.status_line]")
    if words:
        for key in ("reply", "set"):
            template = getattr(param, key)
            if template is not None and "value" in template.integer_fields | _numeric(template):
                raise r.error(key, "reads {value} as a number, but the values are words",
                              value=template.text, expected="a text field such as '{value}'")
    else:
        _check_set_renders(r, param)
    return param


def _numeric(template: Template) -> set[str]:
    """Return the fields of a template whose format spec reads a number (f, e, g, %)."""
    import string

    return {name for _, name, spec, _ in string.Formatter().parse(template.text)
            if name and spec and spec[-1] in "eEfFgG%"}


def _values(r: TableReader, version: int) -> tuple[str, ...]:
    """Read an enumerated parameter's `values`: distinct words, sent and read as written."""
    if not r.has("values"):
        return ()
    if version < 2:
        raise r.error("values", "needs profile format 2", expected="format = 2 at the top of "
                      "the file (`laserlog profiles upgrade FILE`)")
    words = r.list("values")
    if len(words) < 2 or not all(isinstance(w, str) and w and w == w.strip() for w in words):
        raise r.error("values", "wrong shape", value=words,
                      expected="two or more words without surrounding spaces, e.g. "
                               "['OFF', 'REP', 'SINGLE']")
    if len(set(words)) != len(words):
        raise r.error("values", "a word is listed twice", value=words,
                      expected="each word once")
    return tuple(words)


def _initial(r: TableReader, words: tuple[str, ...]) -> float | None:
    """Return `initial`: a number, or for an enumerated parameter one of its words (its index)."""
    if not words:
        return r.opt_float("initial")
    text = r.raw("initial")
    if text is None:
        return None
    if text not in words:
        raise r.error("initial", "not one of the values", value=text,
                      expected="one of " + ", ".join(words))
    return float(words.index(text))


def _pulses(r: TableReader, parameters: dict[str, Parameter]) -> PulseSpec:
    mode = r.str("mode", choices=("pushed", "polled"))
    fields: dict[str, Conversion] = {}
    units = r.sub("units")
    for key in list(units.table):
        if key not in PULSE_FIELDS:
            raise units.error(key, "unknown pulse field", expected="one of " + ", ".join(PULSE_FIELDS))
        fields[key] = _conversion(units, key, units.str(key), PULSE_FIELDS[key])
    units.done()
    fixed: dict[str, float] = {}
    fixed_table = r.sub("fixed")
    for key in list(fixed_table.table):
        if key not in PULSE_FIELDS or key in ("seq", "handpiece"):
            raise fixed_table.error(key, "cannot be fixed", expected="energy, fluence, spot, "
                                    "pulse_duration, wavelength or rep_rate")
        fixed[key] = _quantity(fixed_table, key, PULSE_FIELDS[key])
        if not fixed[key] > 0:  # stored on every pulse: it must be physical
            raise fixed_table.error(key, "not above zero", value=fixed_table.table[key],
                                    expected=f"a positive {PULSE_FIELDS[key]}")
    fixed_table.done()
    transfer = None
    tr = r.sub("energy_transfer")
    if tr.table:
        source = tr.str("parameter")
        if source not in parameters:
            raise tr.error("parameter", "no such parameter", value=source,
                           expected="one of " + ", ".join(parameters))
        if not parameters[source].readable and not parameters[source].settable:
            raise tr.error("parameter", "can be neither read nor set, so the energy cannot "
                           "be worked out from it", value=source,
                           expected="a parameter the console reports (get) or laserlog sets "
                           "(set)")
        out_conv = _conversion(tr, "energy_unit", tr.str("energy_unit"), "energy")
        points = []
        for index, point in enumerate(tr.list("points")):
            if (not isinstance(point, list) or len(point) != 2
                    or not all(isinstance(v, int | float) for v in point)):
                raise tr.error(f"points[{index}]", "wrong shape", value=point,
                               expected="[parameter value, output energy]")
            points.append((parameters[source].conversion.to_canonical(float(point[0])),
                           out_conv.to_canonical(float(point[1]))))
        if len(points) < 2 or any(b[0] <= a[0] for a, b in zip(points, points[1:], strict=False)):
            raise tr.error("points", "need two or more points in increasing order", value=points)
        tr.done()
        transfer = (source, tuple(points))
    encoding = []
    for index, item in enumerate(r.list("encoding", [])):
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise r.error(f"encoding[{index}]", "wrong shape", value=item,
                          expected='["field", "struct code"]')
        encoding.append((item[0], item[1]))
    spec = PulseSpec(
        mode=mode,
        line=_template(r, "line"),
        fields=fields,
        counter=r.opt_str("counter"),
        poll_interval_s=r.float("poll_interval_ms", 100, positive=True) / 1000.0,
        max_rate_hz=r.opt_float("max_rate_hz", positive=True, maximum=1e7),
        fixed=fixed,
        energy_transfer=transfer,
        code=r.opt_int("code", minimum=0, maximum=255),
        encoding=tuple(encoding),
    )
    r.done()
    if spec.line is not None:
        if not spec.line.fields or not spec.line.text.strip():
            raise r.error("line", "has no field: every blank or fixed line would be a pulse",
                          value=spec.line.text, expected="a template with {seq} or a measured "
                          "field, such as 'P {seq:d} E{energy:.2f}'")
        for name in spec.line.fields:
            if name not in PULSE_FIELDS:
                raise r.error("line", f"unknown field {{{name}}}", value=spec.line.text,
                              expected="fields among " + ", ".join(PULSE_FIELDS))
            if name not in fields and name not in ("seq", "handpiece"):
                raise r.error(f"units.{name}", "missing", expected=f"the unit of {{{name}}}")
    if mode == "polled" and spec.counter is None:
        raise r.error("counter", "missing", expected="the parameter that holds the shot counter")
    if spec.counter is not None and spec.counter not in parameters:
        raise r.error("counter", "no such parameter", value=spec.counter,
                      expected="one of " + ", ".join(parameters))
    return spec


def _handpiece(r: TableReader) -> Handpiece:
    shape = r.str("shape", choices=SHAPES)
    rows_cols = r.list("beamlets", [0, 0])
    if (len(rows_cols) != 2 or not all(type(v) is int and v >= 0 for v in rows_cols)
            or (rows_cols[0] == 0) != (rows_cols[1] == 0)):
        raise r.error("beamlets", "wrong shape", value=rows_cols,
                      expected="[rows, columns]: two whole numbers, both 0 or both positive")
    hp = Handpiece(
        code=r.int("code", minimum=0),
        name=r.str("name"),
        shape=shape,
        spot_mm=r.opt_float("spot_mm", positive=True),
        spot_min_mm=r.opt_float("spot_min_mm", positive=True),
        spot_max_mm=r.opt_float("spot_max_mm", positive=True),
        aspect=r.float("aspect", 1.0, positive=True),
        beamlet_rows=rows_cols[0],
        beamlet_cols=rows_cols[1],
        beamlet_diameter_mm=r.float("beamlet_diameter_um", 0, minimum=0) / 1000.0,
        beamlet_pitch_mm=r.float("beamlet_pitch_um", 0, minimum=0) / 1000.0,
        beamlet_energy_fraction=r.float("beamlet_energy_fraction", 1.0, positive=True, maximum=1.0),
    )
    r.done()
    if hp.spot_mm is None and (hp.spot_min_mm is None or hp.spot_max_mm is None):
        raise r.error("spot_mm", "missing", expected="spot_mm, or spot_min_mm and spot_max_mm for a zoom")
    if hp.spot_min_mm is not None and hp.spot_max_mm is not None and hp.spot_min_mm > hp.spot_max_mm:
        raise r.error("spot_max_mm", "range is inverted", value=hp.spot_max_mm,
                      expected=f"at least spot_min_mm ({hp.spot_min_mm:g})")
    if hp.fractional and hp.beamlet_diameter_mm <= 0:
        raise r.error("beamlet_diameter_um", "missing", expected="the beamlet diameter of the array")
    return hp


def parse_profile(data: dict[str, Any], source: str) -> Profile:
    """Validate a parsed TOML document and return the compiled profile."""
    root = TableReader(source, "", data)
    version = root.int("format")
    if version not in READABLE_FORMATS:
        raise root.error("format", "unsupported profile format", value=version,
                         expected=" or ".join(str(v) for v in READABLE_FORMATS))
    if root.has("extends"):
        raise root.error("extends", "cannot be followed here", value=root.raw("extends"),
                         expected="a profile file loaded with load_profile()")
    dev = root.sub("device", required=True)
    profile_id = dev.str("id")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", profile_id):
        raise dev.error("id", "not a valid profile name", value=profile_id,
                        expected="lower-case letters, digits, '.', '_' or '-'")
    name = dev.str("name")
    kind = dev.str("kind", choices=("reference", "documented", "meter"))
    protocol = dev.str("protocol")
    from laserlog.config.drivers_registry import available

    drivers = available()
    if protocol not in drivers:
        raise dev.error("protocol", "no such driver", value=protocol,
                        expected="one of " + ", ".join(sorted(drivers)))
    description = dev.str("description", "")
    model = dev.str("model")
    wavelengths = dev.list("wavelengths_nm", [])
    for index, w in enumerate(wavelengths):
        if isinstance(w, bool) or not isinstance(w, int | float) or not 100 <= w <= 20_000:
            raise dev.error(f"wavelengths_nm[{index}]", "not a wavelength", value=w,
                            expected="a number of nanometres between 100 and 20000")
    dev.done()

    transport = _transport(root.sub("transport"))

    ident = root.sub("identity")
    identity = Identity(model=model, get=_query(ident, "get"), reply=_template(ident, "reply"),
                        code=ident.opt_int("code", minimum=0, maximum=255))
    ident.done()

    parameters = {key: _parameter(key, sub, version)
                  for key, sub in root.subtables("parameters")}

    commands: dict[str, Command] = {}
    for key, sub in root.subtables("commands"):
        steps = _steps(sub, version)
        commands[key] = Command(key, steps[0] if steps else sub.str("send", ""),
                                _template(sub, "reply"),
                                sub.opt_int("code", minimum=0, maximum=255),
                                steps if len(steps) > 1 else ())
        sub.done()
    _check_distinct_commands(root, commands, parameters)

    st = root.sub("status")
    faults: dict[int, Fault] = {}
    for fr in st.array_of_tables("faults"):
        fault = Fault(code=fr.int("code", minimum=0), name=fr.str("name"),
                      severity=fr.str("severity", "alarm", choices=SEVERITIES),
                      message=fr.str("message"), interlock=fr.bool("interlock", False))
        fr.done()
        if fault.code in faults:
            raise fr.error("code", "duplicate fault code", value=fault.code)
        faults[fault.code] = fault
    status = StatusSpec(get=_query(st, "get"), reply=_template(st, "reply"),
                        fault_line=_template(st, "fault_line"), faults=faults,
                        code=st.opt_int("code", minimum=0, maximum=255),
                        fault_code=st.opt_int("fault_code", minimum=0, maximum=255),
                        bits=_status_bits(st.sub("bits"), faults),
                        flags=_status_flags(st, version))
    st.done()
    if status.flags and (status.reply is None or "word" not in status.reply.fields):
        raise st.error("flags", "needs a status word", expected="a status reply carrying "
                       "{word}, e.g. 'SS {word:d}'")
    clash = sorted(set(status.flags) & (set(status.bits) | set(STATUS_BITS)))
    if clash or set(status.flags.values()) & set(status.bits.values()):
        name = clash[0] if clash else next(n for n, b in status.flags.items()
                                           if b in status.bits.values())
        raise st.error(f"flags.{name}", "named or numbered in [status.bits] too",
                       value=status.flags[name], expected="each bit in one table: faults, "
                       "interlock and firing in [status.bits], other states in [status.flags]")
    if status.reply is not None and "word" in status.reply.fields and not status.bits:
        raise st.error("bits", "missing", expected="a [status.bits] table naming the bits of "
                       "{word}")
    if status.bits and (status.reply is None or "word" not in status.reply.fields):
        raise st.error("reply", "has no {word} field", value=status.reply and status.reply.text,
                       expected="a status reply carrying the word, e.g. 'STB {word:04X}'")

    pulses = _pulses(root.sub("pulses", required=True), parameters)

    handpieces: dict[int, Handpiece] = {}
    for hr in root.array_of_tables("handpieces"):
        hp = _handpiece(hr)
        if hp.code in handpieces:
            raise hr.error("code", "duplicate handpiece code", value=hp.code)
        handpieces[hp.code] = hp

    sr = root.sub("simulator")
    sim = SimSpec(
        serial=sr.str("serial", "SIM-0001"),
        firmware=sr.str("firmware", "1.0"),
        noise=sr.float("noise", 0.03, minimum=0, maximum=0.5),
        handpiece=sr.opt_int("handpiece", minimum=0),
        rep_rate_hz=sr.opt_float("rep_rate_hz", positive=True),
        pulse_duration_jitter=sr.float("pulse_duration_jitter", 0.02, minimum=0, maximum=0.5),
        power_on_junk=_bytes(sr, "power_on_junk", ""),
        flags=tuple(sr.list("flags", [])),
    )
    sr.done()
    for index, flag in enumerate(sim.flags):
        if flag not in status.flags:
            raise sr.error(f"flags[{index}]", "no such state flag", value=flag,
                           expected="a name from [status.flags]" + (
                               f" ({', '.join(status.flags)})" if status.flags else ""))
    if sim.handpiece is not None and sim.handpiece not in handpieces:
        raise sr.error("handpiece", "no such handpiece code", value=sim.handpiece,
                       expected="one of " + ", ".join(str(c) for c in handpieces))

    keepalive = _keepalive(root.sub("keepalive"), commands, faults)

    options = root.raw(protocol, {})
    if not isinstance(options, dict):
        raise root.error(protocol, "wrong type", value=options, expected="a table")
    bounds = _bounds(root, parameters, version)
    envelopes = _envelopes(root, wavelengths, version)
    root.done()
    profile = Profile(
        id=profile_id, name=name, kind=kind, protocol=protocol, source=source,
        description=description, wavelengths_nm=tuple(float(w) for w in wavelengths),
        transport=transport, identity=identity, parameters=parameters, commands=commands,
        status=status, pulses=pulses, handpieces=handpieces, simulator=sim,
        protocol_options=options, keepalive=keepalive, format_version=version,
        bounds=bounds, envelopes=envelopes,
    )
    if transport.bytesize < 8:
        _check_data_bits(profile)
    return profile


def _steps(r: TableReader, version: int) -> tuple[str, ...]:
    """Read a command's `send`: one command, or (format 2) a list sent in turn."""
    value = r.raw("send", "")
    if isinstance(value, str):
        return (value,) if value else ()
    if version < 2:
        raise r.error("send", "a list of commands needs profile format 2", value=value,
                      expected="format = 2 at the top of the file (`laserlog profiles "
                               "upgrade FILE`), or one command")
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v for v in value)):
        raise r.error("send", "wrong type", value=value, expected="a command, or a list of "
                      "commands sent in turn, e.g. ['EN 1', 'FL 1']")
    if len(set(value)) != len(value):
        raise r.error("send", "the same command twice in one action", value=value,
                      expected="each command once")
    return tuple(value)


def _check_distinct_commands(root: TableReader, commands: dict[str, Command],
                             parameters: dict[str, Parameter]) -> None:
    """Refuse two actions that send the same command: the console could not tell them apart
    (the simulator would run only one of them, and a transcript could not say which)."""
    owner: dict[str, str] = {}
    for name, cmd in commands.items():
        for text in cmd.sends:
            if not text:
                continue
            if text in owner and owner[text] != name:
                raise ProfileError(root.source, f"commands.{name}.send", f"sends {text!r}, "
                                   f"as commands.{owner[text]} does", value=text,
                                   expected="a command string used by one action only")
            owner[text] = name
    for pname, param in parameters.items():
        query = param.get.render() if param.get is not None else None
        for text, name in owner.items():
            if text == query:
                raise ProfileError(root.source, f"commands.{name}.send", f"sends {text!r}, "
                                   f"which reads parameters.{pname}", value=text,
                                   expected="a command other than any parameter's get")
            if param.set is not None and param.set.match(text.encode("latin-1")) is not None:
                raise ProfileError(root.source, f"commands.{name}.send", f"sends {text!r}, "
                                   f"which is also parameters.{pname}.set "
                                   f"({param.set.text!r})", value=text,
                                   expected="a command the console cannot take for a set")


def _status_flags(st: TableReader, version: int) -> dict[str, int]:
    """Read [status.flags]: state bits that are neither fault nor interlock (format 2)."""
    r = st.sub("flags")
    if r.table and version < 2:
        raise st.error("flags", "needs profile format 2", expected="format = 2 at the top of "
                       "the file (`laserlog profiles upgrade FILE`)")
    flags: dict[str, int] = {}
    for name in list(r.table):
        bit = r.int(name, minimum=0, maximum=63)
        if bit in flags.values():
            raise r.error(name, "bit used twice", value=bit, expected="one name per bit")
        flags[name] = bit
    r.done()
    return flags


def _bounds(root: TableReader, parameters: dict[str, Parameter],
            version: int) -> dict[str, tuple[float | None, float | None]]:
    """Read [bounds.NAME]: hard bounds inside a parameter's range, in its own unit."""
    if root.has("bounds") and version < 2:
        raise root.error("bounds", "needs profile format 2", expected="format = 2")
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, sub in root.subtables("bounds"):
        param = parameters.get(name)
        if param is None:
            raise root.error(f"bounds.{name}", "no such parameter", value=name,
                          expected="one of " + ", ".join(parameters))
        low, high = sub.opt_float("min"), sub.opt_float("max")
        sub.done()
        if low is None and high is None:
            raise sub.error("max", "missing", expected="min, max or both, in "
                            f"{param.conversion.unit}")
        conv = param.conversion
        lo = None if low is None else conv.to_canonical(low)
        hi = None if high is None else conv.to_canonical(high)
        if lo is not None and hi is not None and lo > hi:
            raise sub.error("max", "range is inverted", value=high, expected=f"at least min "
                            f"({low:g})")
        for key, value in (("min", lo), ("max", hi)):
            if value is not None and not param.in_range(value):
                raise sub.error(key, "outside the parameter's range", value=param.shown(value),
                                expected="a hard bound inside parameters."
                                         f"{name}'s min..max (bounds are the stricter limit)")
        out[name] = (lo, hi)
    return out


def _envelopes(root: TableReader, wavelengths: list[Any],
               version: int) -> dict[str, SkinEnvelope]:
    """Read [envelope.<skin type>] for Fitzpatrick types I..VI."""
    if root.has("envelope") and version < 2:
        raise root.error("envelope", "needs profile format 2", expected="format = 2")
    out: dict[str, SkinEnvelope] = {}
    for skin, sub in root.subtables("envelope"):
        if skin not in SKIN_TYPES:
            raise root.error(f"envelope.{skin}", "not a Fitzpatrick skin type", value=skin,
                          expected="one of " + ", ".join(SKIN_TYPES))
        recommended = sub.opt_float("recommended_fluence_j_cm2", positive=True, maximum=1000)
        most = sub.opt_float("max_fluence_j_cm2", positive=True, maximum=1000)
        avoid = sub.raw("avoid", False)
        sub.done()
        if recommended is not None and most is not None and recommended > most:
            raise sub.error("recommended_fluence_j_cm2", "above max_fluence_j_cm2",
                            value=recommended, expected=f"at most {most:g} J/cm2")
        if avoid is True:
            avoided = tuple(float(w) for w in wavelengths)
        elif avoid is False:
            avoided = ()
        elif (isinstance(avoid, list) and avoid
              and all(isinstance(w, int | float) and not isinstance(w, bool) for w in avoid)):
            unknown = [w for w in avoid if w not in wavelengths]
            if unknown:
                raise sub.error("avoid", "not one of the console's wavelengths",
                                value=unknown[0], expected="among device.wavelengths_nm "
                                f"({', '.join(f'{w:g}' for w in wavelengths)})")
            avoided = tuple(float(w) for w in avoid)
        else:
            raise sub.error("avoid", "wrong type", value=avoid, expected="true (every "
                            "wavelength of this console), false, or a list of wavelengths in nm")
        out[skin] = SkinEnvelope(skin, recommended, most, avoided)
    return out


def _status_bits(r: TableReader, faults: dict[int, Fault]) -> dict[str, int]:
    """Read [status.bits]: name = bit number, each name `interlock`, `firing` or a fault's."""
    names = {fault.name for fault in faults.values()}
    bits: dict[str, int] = {}
    for name in list(r.table):
        bit = r.int(name, minimum=0, maximum=63)
        if name not in STATUS_BITS and name not in names:
            raise r.error(name, "not a bit this profile knows", value=name,
                          expected="interlock, firing or the name of a [[status.faults]] "
                                   "entry" + (f" ({', '.join(sorted(names))})" if names else ""))
        if bit in bits.values():
            raise r.error(name, "bit used twice", value=bit, expected="one name per bit")
        bits[name] = bit
    r.done()
    return bits


def _keepalive(r: TableReader, commands: dict[str, Command],
               faults: dict[int, Fault]) -> KeepAlive | None:
    """Read [keepalive]: the command the host repeats, how often, the console's watchdog."""
    if not r.table:
        r.done()
        return None
    command = r.str("command")
    if command not in commands:
        raise r.error("command", "no such command", value=command,
                      expected="one of the [commands] tables" +
                      (f": {', '.join(commands)}" if commands else " (define one)"))
    keepalive = KeepAlive(
        command=command,
        interval_s=r.float("interval_ms", positive=True, maximum=600_000) / 1000.0,
        timeout_s=(None if (t := r.opt_float("watchdog_ms", positive=True, maximum=3_600_000))
                   is None else t / 1000.0),
        fault=r.opt_int("fault", minimum=0),
    )
    r.done()
    if keepalive.timeout_s is not None and keepalive.interval_s >= keepalive.timeout_s:
        raise r.error("interval_ms", "not shorter than the console's watchdog",
                      value=keepalive.interval_s * 1000,
                      expected=f"less than watchdog_ms ({keepalive.timeout_s * 1000:g})")
    if keepalive.fault is not None and keepalive.fault not in faults:
        raise r.error("fault", "no such fault code", value=keepalive.fault,
                      expected="a code from [[status.faults]]")
    return keepalive


def _check_data_bits(profile: Profile) -> None:
    """Refuse text the line cannot carry: 7 data bits carry ASCII only (5 or 6, less)."""
    limit = 1 << profile.transport.bytesize
    texts: list[tuple[str, str]] = [
        ("transport.write_terminator", profile.transport.write_terminator.decode("latin-1")),
        ("transport.read_terminator", profile.transport.read_terminator.decode("latin-1")),
        ("transport.reply_prefix", profile.transport.reply_prefix.decode("latin-1")),
    ]
    ident = profile.identity
    texts += [(f"identity.{k}", t.text) for k, t in (("get", ident.get), ("reply", ident.reply)) if t]
    for name, param in profile.parameters.items():
        for attr in ("get", "reply", "set", "set_reply"):
            template = getattr(param, attr)
            if template is not None:
                texts.append((f"parameters.{name}.{attr}", template.text))
    for name, cmd in profile.commands.items():
        texts += [(f"commands.{name}.send", text) for text in cmd.sends]
        if cmd.reply is not None:
            texts.append((f"commands.{name}.reply", cmd.reply.text))
    st = profile.status
    texts += [(f"status.{k}", t.text) for k, t in
              (("get", st.get), ("reply", st.reply), ("fault_line", st.fault_line)) if t]
    if profile.pulses.line is not None:
        texts.append(("pulses.line", profile.pulses.line.text))
    texts += [(f"{profile.protocol}.{k}", v) for k, v in profile.protocol_options.items()
              if isinstance(v, str)]
    for key, text in texts:
        wide = next((ch for ch in text if ord(ch) >= limit), None)
        if wide is not None:
            raise ProfileError(profile.source, key, f"has a character that {profile.transport.bytesize} "
                               "data bits cannot carry", value=text,
                               expected=f"characters below U+{limit:04X} "
                                        f"(transport.bytesize = {profile.transport.bytesize})")


def load_profile(path: str | Path, extra_dirs: list[str] | None = None) -> Profile:
    """Read, validate and compile the profile at `path`, checked by its protocol's driver too.

    A profile that `extends` another is merged over it first (see laserlog.config.family); the
    parent is looked for beside the file, then in `extra_dirs` and the profile search path.
    An error names the line of the key when the file has it.
    """
    from laserlog.config.family import load_family, read_toml

    path = Path(path)
    source = str(path)
    data, text = read_toml(path, source)
    family = load_family(path, data, text, source, extra_dirs)
    try:
        profile = parse_profile(family.data, source)
        from laserlog.config.drivers_registry import driver_module

        driver_module(profile).check_profile(profile)
    except ProfileError as exc:
        raise _located(exc, family) from None
    if len(family.chain) > 1:
        profile = replace(profile, extends=tuple(str(p) for p in family.chain[1:]))
    return profile


def _located(error: ProfileError, family: Any) -> ProfileError:
    """Return the error with the line of its key, naming the parent file it was inherited from."""
    from laserlog.config.tomlreader import key_line

    if error.line is not None or not error.key or error.source != str(family.chain[0]):
        return error
    origin = family.source_of(error.key) or error.source
    line = key_line(family.texts.get(origin, ""), family.local_key(error.key, origin))
    if origin == error.source:
        return ProfileError(error.source, error.key, error.problem, value=error.value,
                            expected=error.expected, line=line)
    where = f"{origin}:{line}" if line else origin
    return ProfileError(error.source, error.key, f"{error.problem} (inherited from {where})",
                        value=error.value, expected=error.expected)


def open_profile(name: str, extra: list[str] | None = None) -> Profile:
    """Find, load and validate a profile by name or path."""
    from laserlog.config.catalog import find_profile

    return load_profile(find_profile(name, extra), extra)  # extra also finds its parents
