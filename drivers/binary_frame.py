"""Binary framed protocol: start byte, length, opcode, payload, CRC-16/CCITT-FALSE.

Every frame, in both directions::

    start | length | opcode | payload ... | crc_hi | crc_lo

`length` counts opcode + payload (1..max_length). The CRC is CRC-16/CCITT-FALSE
(`binascii.crc_hqx(data, 0xFFFF)`) over length, opcode and payload, sent big-endian.
Multi-byte payload values use the profile's `byte_order`.

Requests and what answers them (opcodes come from the profile)::

    identify  [identity.code]         -> [identity.code] model NUL serial NUL firmware
    get       [get] id                -> [get] id value
    set       [set] id value          -> [ack] [set] id value-taken
    command   [commands.<name>.code]  -> [ack] [commands.<name>.code]
    status    [status.code]           -> [status.code] fault:u16 interlock:u8 firing:u8
    refused   any request             -> [error] request-opcode error-code:u8

Pushed by the console, unasked::

    pulse     [pulses.code] the fields of pulses.encoding, in order
    fault     [status.fault_code] fault:u16

`id` is a parameter's `code`, `value` is packed with its `encoding` after dividing by its
unit and multiplying by its `wire_scale`. Both ends live here: `Driver` talks to a console,
`Device` is the console's side for the simulator; both compile the same `Layout`.
"""

from __future__ import annotations

import struct
import time
from binascii import crc_hqx
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from laserlog.domain.model import DeviceIdentity, LinkEvent, StatusReading
from laserlog.errors import ProfileError, ProtocolError
from laserlog.link.driver import PULSE_ATTRS, pulse_builder
from laserlog.link.driver import Driver as BaseDriver
from laserlog.link.wire import ERR_RANGE, ERR_READ_ONLY, ERR_SYNTAX, FIELD_INDEX

if TYPE_CHECKING:
    from collections.abc import Callable

    from laserlog.config.profile import Conversion, Profile
    from laserlog.link.transport import Link
    from laserlog.link.wire import ConsoleState, SimPulse

Frame = tuple[int, bytes]  # (opcode, payload)

CRC_SEED = 0xFFFF
#: Bytes a frame adds around opcode + payload: start, length, two CRC bytes.
OVERHEAD_BYTES = 4
#: How long the line must stay silent before the start of a frame with no whole frame behind
#: it is abandoned: a loaded USB adapter or console may pause inside a frame far longer than
#: frame_timeout_ms and still send the rest.
ABANDON_AFTER_S = 1.0
#: Most of a skipped run kept in a garbled event, so junk floods cannot fill memory.
MAX_REPORTED_BYTES = 200

INTEGER_BOUNDS: dict[str, tuple[int, int]] = {
    "b": (-(2**7), 2**7 - 1), "B": (0, 2**8 - 1),
    "h": (-(2**15), 2**15 - 1), "H": (0, 2**16 - 1),
    "i": (-(2**31), 2**31 - 1), "I": (0, 2**32 - 1),
    "q": (-(2**63), 2**63 - 1), "Q": (0, 2**64 - 1),
}
FLOAT_CODES = ("e", "f", "d")
BYTE_ORDERS = {"big": ">", "little": "<"}
OPCODE_KEYS = ("ack", "error", "get", "set")
OPTION_KEYS = frozenset({"start_byte", "byte_order", "max_length", "frame_timeout_ms",
                         "writable", "errors", *OPCODE_KEYS})
ENCODING_EXPECTED = "one struct code of " + " ".join([*INTEGER_BOUNDS, *FLOAT_CODES])


def _crc_holds(buf: bytearray, at: int, end: int) -> bool:
    """Return whether the frame from `at` to `end` carries the CRC of its length, opcode and
    payload."""
    return crc_hqx(buf[at + 1:end - 2], CRC_SEED) == (buf[end - 2] << 8 | buf[end - 1])


def encode_frame(start_byte: int, opcode: int, payload: bytes = b"") -> bytes:
    """Return opcode + payload framed with start byte, length and CRC."""
    body = bytes((len(payload) + 1, opcode)) + payload
    return bytes((start_byte,)) + body + crc_hqx(body, CRC_SEED).to_bytes(2, "big")


class FrameSplitter:
    """Split a byte stream into (opcode, payload) frames, skipping what is not a frame.

    Bytes before a start byte, start bytes with an impossible length and frames with a bad
    CRC are skipped; each run of skipped bytes lands in `garbage` as (reason, bytes) for the
    caller to drain. After a bad CRC only the start byte is dropped, because the real frame
    may begin inside the one that failed.
    """

    def __init__(self, start_byte: int, max_length: int = 255) -> None:
        self.start_byte = start_byte
        self.max_length = max_length
        self.garbage: list[tuple[str, bytes]] = []
        self.frames = 0
        self.skipped_bytes = 0
        self.bad_crc = 0
        self.bad_length = 0
        self._buffer = bytearray()

    @property
    def holding(self) -> int:
        """Return how many bytes of an incomplete frame are waiting for the rest."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Return the complete frames in what has arrived so far."""
        self._buffer += data
        return self._split(abandon_first=False)

    def frame_behind_first(self) -> bool:
        """Return whether a whole frame with a good CRC waits behind the first byte held: then
        what the first start byte promised is not coming, and it holds back a real frame."""
        buf, size = self._buffer, len(self._buffer)
        at = buf.find(self.start_byte, 1)
        while 0 < at < size - 1:
            length = buf[at + 1]
            end = at + length + OVERHEAD_BYTES
            if 0 < length <= self.max_length and end <= size and _crc_holds(buf, at, end):
                return True
            at = buf.find(self.start_byte, at + 1)
        return False

    def expire(self) -> list[Frame]:
        """Abandon an incomplete frame that stopped arriving; return frames found behind it.

        A stray start byte whose length promises more bytes than ever come would otherwise
        hold back every frame after it.
        """
        return self._split(abandon_first=True) if self._buffer else []

    def _split(self, abandon_first: bool) -> list[Frame]:
        buf = self._buffer
        size = len(buf)
        start, max_length = self.start_byte, self.max_length
        frames: list[Frame] = []
        junk_from = -1
        reasons: list[str] = []

        def skip(at: int, reason: str) -> None:
            nonlocal junk_from
            if junk_from < 0:
                junk_from = at
            if reason not in reasons:
                reasons.append(reason)

        def report(until: int) -> None:
            nonlocal junk_from
            if junk_from < 0:
                return
            count = until - junk_from
            self.skipped_bytes += count
            raw = bytes(buf[junk_from:min(until, junk_from + MAX_REPORTED_BYTES)])
            self.garbage.append((f"skipped {count} bytes: {', '.join(reasons)}", raw))
            junk_from = -1
            reasons.clear()

        pos = 0
        if abandon_first:
            skip(0, "incomplete frame abandoned")
            pos = 1
        while pos < size:
            at = buf.find(start, pos)
            if at < 0:
                skip(pos, "no start byte")
                pos = size
                break
            if at > pos:
                skip(pos, "no start byte")
            if at + 1 >= size:
                pos = at
                break
            length = buf[at + 1]
            if length == 0 or length > max_length:
                self.bad_length += 1
                skip(at, "impossible length")
                pos = at + 1
                continue
            end = at + length + OVERHEAD_BYTES
            if end > size:
                pos = at
                break
            if not _crc_holds(buf, at, end):
                self.bad_crc += 1
                skip(at, "bad CRC")
                pos = at + 1
                continue
            report(at)
            frames.append((buf[at + 2], bytes(buf[at + 3:end - 2])))
            pos = end
        report(pos)
        del buf[:pos]
        self.frames += len(frames)
        return frames


@dataclass(frozen=True, slots=True)
class ValueCodec:
    """How one parameter's value travels: id byte, struct code, wire scale and unit factors."""

    name: str
    code: int
    packer: struct.Struct
    conversion: Conversion
    wire_scale: float
    bounds: tuple[int, int] | None  # integer encodings only

    def encode(self, canonical: float) -> bytes:
        """Pack a value in the canonical unit, clamped to what the encoding can hold."""
        wire = self.conversion.from_canonical(canonical) * self.wire_scale
        if self.bounds is None:
            return self.packer.pack(wire)
        low, high = self.bounds
        return self.packer.pack(min(max(round(wire), low), high))

    def decode(self, data: bytes) -> float:
        """Unpack a value into the canonical unit."""
        return self.conversion.to_canonical(self.packer.unpack(data)[0] / self.wire_scale)


@dataclass(frozen=True, slots=True)
class Layout:
    """A profile's binary layout: opcodes, value encodings and packers, compiled once."""

    start_byte: int
    max_length: int
    frame_timeout_s: float
    ack: int
    error: int
    get: int
    set: int
    identify: int
    status: int | None
    fault: int | None
    pulse: int | None
    commands: dict[str, int]
    params: dict[str, ValueCodec]
    params_by_code: dict[int, ValueCodec]
    writable: frozenset[str]
    error_messages: dict[int, str]
    status_packer: struct.Struct  # fault:u16 interlock:u8 firing:u8
    fault_packer: struct.Struct  # fault:u16
    pulse_fields: tuple[str, ...] = ()
    pulse_packer: struct.Struct | None = None
    pulse_bounds: tuple[tuple[int, int] | None, ...] = ()

    def frame(self, opcode: int, payload: bytes = b"") -> bytes:
        """Return a framed opcode + payload."""
        return encode_frame(self.start_byte, opcode, payload)

    def refusal(self, code: int | None) -> str:
        """Describe a console error code for a technician."""
        if code is None:
            return "an error without a code"
        meaning = self.error_messages.get(code)
        return f"error {code} ({meaning})" if meaning else f"error {code}"


def _fail(profile: Profile, key: str, problem: str, **kw: Any) -> ProfileError:
    return ProfileError(profile.source, key, problem, **kw)


def _option_int(profile: Profile, key: str, default: int | None, low: int, high: int) -> int:
    options = profile.protocol_options
    where = f"{profile.protocol}.{key}"
    if key not in options:
        if default is None:
            raise _fail(profile, where, "missing", expected=f"a whole number {low}..{high}")
        return default
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(profile, where, "not allowed", value=value,
                    expected=f"a whole number {low}..{high}")
    return value


def _packer_code(profile: Profile, key: str, code: object, order: str) -> str:
    if not isinstance(code, str) or (code not in INTEGER_BOUNDS and code not in FLOAT_CODES):
        raise _fail(profile, key, "not a binary encoding", value=code, expected=ENCODING_EXPECTED)
    return order + code


def _check_no_line_keys(profile: Profile) -> None:
    found: list[tuple[str, object]] = [
        ("identity.get", profile.identity.get), ("identity.reply", profile.identity.reply),
        ("status.get", profile.status.get), ("status.reply", profile.status.reply),
        ("status.fault_line", profile.status.fault_line), ("pulses.line", profile.pulses.line),
    ]
    for name, param in profile.parameters.items():
        for attr in ("get", "reply", "set", "set_reply"):
            found.append((f"parameters.{name}.{attr}", getattr(param, attr)))
    for name, cmd in profile.commands.items():
        found.append((f"commands.{name}.send", cmd.send or None))
        found.append((f"commands.{name}.reply", cmd.reply))
    for key, value in found:
        if value is not None:
            raise _fail(profile, key, "a line-protocol key in a binary_frame profile",
                        value=getattr(value, "text", value),
                        expected="no template: binary frames use code/encoding keys")


def _value_codec(profile: Profile, name: str, order: str) -> ValueCodec:
    param = profile.parameters[name]
    where = f"parameters.{name}"
    if param.code is None:
        raise _fail(profile, f"{where}.code", "missing", expected="the parameter's id byte 0..255")
    if param.encoding is None:
        raise _fail(profile, f"{where}.encoding", "missing", expected=ENCODING_EXPECTED)
    packer = struct.Struct(_packer_code(profile, f"{where}.encoding", param.encoding, order))
    bounds = INTEGER_BOUNDS.get(param.encoding)
    if bounds is not None:
        for limit_name, limit in (("min", param.min), ("max", param.max)):
            if limit is None:
                continue
            wire = round(param.conversion.from_canonical(limit) * param.wire_scale)
            if not bounds[0] <= wire <= bounds[1]:
                raise _fail(profile, f"{where}.{limit_name}", "does not fit the encoding",
                            value=f"{wire} on the wire ({param.encoding!r}, wire_scale "
                                  f"{param.wire_scale:g})",
                            expected=f"{bounds[0]}..{bounds[1]}: a wider encoding or a "
                                     "smaller wire_scale")
    return ValueCodec(name, param.code, packer, param.conversion, param.wire_scale, bounds)


def _pulse_plan(profile: Profile, order: str, max_length: int
                ) -> tuple[tuple[str, ...], struct.Struct, tuple[tuple[int, int] | None, ...]]:
    spec = profile.pulses
    if spec.code is None:
        raise _fail(profile, "pulses.code", "missing",
                    expected="the opcode of a pushed pulse frame")
    if not spec.encoding:
        raise _fail(profile, "pulses.encoding", "missing",
                    expected='[["seq", "I"], ["energy", "I"], ...]')
    names: list[str] = []
    codes: list[str] = []
    for index, (name, code) in enumerate(spec.encoding):
        key = f"pulses.encoding[{index}]"
        if name not in PULSE_ATTRS:
            raise _fail(profile, key, "unknown pulse field", value=name,
                        expected="one of " + ", ".join(PULSE_ATTRS))
        if name in names:
            raise _fail(profile, key, "field listed twice", value=name)
        codes.append(_packer_code(profile, key, code, "")[-1])
        if name in ("seq", "handpiece"):
            if code not in INTEGER_BOUNDS:
                raise _fail(profile, key, "must be a whole number", value=code,
                            expected="an integer struct code such as I or B")
        elif name not in spec.fields:
            raise _fail(profile, f"pulses.units.{name}", "missing",
                        expected=f"the unit of the {name} field")
        names.append(name)
    for name in spec.fields:
        if name not in names:
            raise _fail(profile, f"pulses.units.{name}", "unit of a field the pulse frame "
                        "does not carry", expected="a field listed in pulses.encoding")
    packer = struct.Struct(order + "".join(codes))
    if packer.size + 1 > max_length:
        raise _fail(profile, "pulses.encoding", f"a pulse frame of {packer.size + 1} bytes "
                    "is longer than max_length", expected=f"at most {max_length} "
                    f"({profile.protocol}.max_length)")
    return tuple(names), packer, tuple(INTEGER_BOUNDS.get(c) for c in codes)


def compile_layout(profile: Profile) -> Layout:
    """Validate the profile's binary keys and compile its layout, or raise ProfileError."""
    options = profile.protocol_options
    proto = profile.protocol
    for key in options:
        if key not in OPTION_KEYS:
            raise _fail(profile, f"{proto}.{key}", "unknown key",
                        expected="one of " + ", ".join(sorted(OPTION_KEYS)))
    _check_no_line_keys(profile)
    order_name = options.get("byte_order", "big")
    if order_name not in BYTE_ORDERS:
        raise _fail(profile, f"{proto}.byte_order", "not allowed", value=order_name,
                    expected="big or little")
    order = BYTE_ORDERS[order_name]
    start_byte = _option_int(profile, "start_byte", 0xAA, 0, 255)
    max_length = _option_int(profile, "max_length", 64, 8, 255)
    frame_timeout_ms = _option_int(profile, "frame_timeout_ms", 50, 1, 10_000)
    ops = {key: _option_int(profile, key, None, 0, 255) for key in OPCODE_KEYS}

    if profile.identity.code is None:
        raise _fail(profile, "identity.code", "missing",
                    expected="the opcode of the identify request")
    owners: dict[int, str] = {}

    def claim(opcode: int | None, key: str) -> None:
        if opcode is None:
            return
        if opcode in owners:
            raise _fail(profile, key, "opcode already used", value=opcode,
                        expected=f"an opcode other than {owners[opcode]}'s")
        owners[opcode] = key

    for key, opcode in ops.items():
        claim(opcode, f"{proto}.{key}")
    claim(profile.identity.code, "identity.code")
    claim(profile.status.code, "status.code")
    claim(profile.status.fault_code, "status.fault_code")
    claim(profile.pulses.code, "pulses.code")
    commands: dict[str, int] = {}
    for name, cmd in profile.commands.items():
        if cmd.code is None:
            raise _fail(profile, f"commands.{name}.code", "missing",
                        expected="the command's opcode 0..255")
        claim(cmd.code, f"commands.{name}.code")
        commands[name] = cmd.code

    params: dict[str, ValueCodec] = {}
    by_code: dict[int, ValueCodec] = {}
    for name in profile.parameters:
        codec = _value_codec(profile, name, order)
        if codec.code in by_code:
            raise _fail(profile, f"parameters.{name}.code", "id already used", value=codec.code,
                        expected=f"an id other than parameter {by_code[codec.code].name}'s")
        if codec.packer.size + 2 > max_length:
            raise _fail(profile, f"parameters.{name}.encoding", "too wide for max_length",
                        value=profile.parameters[name].encoding,
                        expected=f"at most {max_length - 2} bytes")
        params[name] = codec
        by_code[codec.code] = codec

    writable = options.get("writable", [])
    if not isinstance(writable, list):
        raise _fail(profile, f"{proto}.writable", "wrong type", value=writable,
                    expected="a list of parameter names")
    for index, name in enumerate(writable):
        if name not in params:
            raise _fail(profile, f"{proto}.writable[{index}]", "no such parameter", value=name,
                        expected="one of " + ", ".join(params))

    messages: dict[int, str] = {}
    errors = options.get("errors", {})
    if not isinstance(errors, dict):
        raise _fail(profile, f"{proto}.errors", "wrong type", value=errors,
                    expected="a table of error code = message")
    for key, message in errors.items():
        if not key.isdigit() or not 0 <= int(key) <= 255 or not isinstance(message, str):
            raise _fail(profile, f"{proto}.errors.{key}", "not allowed", value=message,
                        expected="error code 0..255 = a message text")
        messages[int(key)] = message

    for code in profile.status.faults:
        if code > 0xFFFF:
            raise _fail(profile, "status.faults", "fault code does not fit 16 bits", value=code,
                        expected="0..65535")

    sim = profile.simulator
    identity_length = 3 + len(profile.identity.model) + len(sim.serial) + len(sim.firmware)
    if identity_length > max_length:
        raise _fail(profile, "simulator.serial", f"the identity reply ({identity_length} bytes) "
                    "is longer than max_length", value=sim.serial,
                    expected=f"model, serial and firmware within {max_length - 3} characters")

    names: tuple[str, ...] = ()
    packer: struct.Struct | None = None
    bounds: tuple[tuple[int, int] | None, ...] = ()
    if profile.pulses.mode == "pushed":
        names, packer, bounds = _pulse_plan(profile, order, max_length)
    elif profile.pulses.counter is not None and profile.pulses.counter not in params:
        raise _fail(profile, "pulses.counter", "no such parameter", value=profile.pulses.counter)
    return Layout(
        start_byte=start_byte, max_length=max_length, frame_timeout_s=frame_timeout_ms / 1000.0,
        ack=ops["ack"], error=ops["error"], get=ops["get"], set=ops["set"],
        identify=profile.identity.code, status=profile.status.code,
        fault=profile.status.fault_code, pulse=profile.pulses.code, commands=commands,
        params=params, params_by_code=by_code, writable=frozenset(writable),
        error_messages=messages,
        status_packer=struct.Struct(order + "HBB"), fault_packer=struct.Struct(order + "H"),
        pulse_fields=names, pulse_packer=packer, pulse_bounds=bounds,
    )


def check_profile(profile: Profile) -> None:
    """Check the keys this protocol needs: opcodes, parameter ids and encodings, pulse layout."""
    compile_layout(profile)


class Driver(BaseDriver):
    """Host side of the binary framed protocol."""

    def __init__(self, profile: Profile, link: Link, **kw: object) -> None:
        super().__init__(profile, link, **kw)  # type: ignore[arg-type]
        self.layout = compile_layout(profile)
        self.framer = FrameSplitter(self.layout.start_byte, self.layout.max_length)
        self.replies: deque[Frame] = deque()
        self.garbled = 0
        self._awaiting = False
        self._last_byte_s = time.monotonic()
        packer = self.layout.pulse_packer
        self._unpack_pulse = packer.unpack if packer is not None else None
        self._pulse_bytes = packer.size if packer is not None else -1
        self._build_pulse = (pulse_builder(self.layout.pulse_fields, profile.pulses.fields)
                             if packer is not None else None)

    # -- reading --------------------------------------------------------------------------
    def pump(self, timeout_s: float) -> None:
        data = self.link.read_available(timeout_s)
        if data:
            self._last_byte_s = time.monotonic()
            self.feed(data)
        elif self.framer.holding:
            # A console that pauses inside a frame finishes it later: its start is abandoned
            # only when a whole frame waits behind it (so it was a stray start byte), or after
            # the line stayed silent ABANDON_AFTER_S (nothing more is coming).
            silent_s = time.monotonic() - self._last_byte_s
            if silent_s >= self.layout.frame_timeout_s and (
                    silent_s >= max(ABANDON_AFTER_S, self.layout.frame_timeout_s)
                    or self.framer.frame_behind_first()):
                self.abandon_partial_frame()

    def abandon_partial_frame(self) -> None:
        """Drop an incomplete frame, as after frame_timeout_ms of silence; keep what follows."""
        self._classify(self.framer.expire())

    def feed(self, data: bytes) -> None:
        """Classify each complete frame: pulse, fault, reply to the pending request, or garbage."""
        self._classify(self.framer.feed(data))

    def _classify(self, frames: list[Frame]) -> None:
        now = self.clock()
        pending = self.pending
        pulse_op, fault_op = self.layout.pulse, self.layout.fault
        build, unpack = self._build_pulse, self._unpack_pulse
        for opcode, payload in frames:
            if opcode == pulse_op:
                if len(payload) == self._pulse_bytes:
                    pending.append(build(now, unpack(payload)))  # type: ignore[misc]
                    continue
                self._garbled(now, f"pulse frame of {len(payload)} bytes, expected "
                              f"{self._pulse_bytes}", opcode, payload)
            elif opcode == fault_op:
                if len(payload) == self.layout.fault_packer.size:
                    code = self.layout.fault_packer.unpack(payload)[0]
                    fault = self.profile.status.faults.get(code)
                    pending.append(StatusReading(now, code, bool(fault and fault.interlock)))
                    continue
                self._garbled(now, "fault frame of the wrong length", opcode, payload)
            elif self._awaiting:
                self.replies.append((opcode, payload))
            else:
                self._garbled(now, f"unexpected frame with opcode 0x{opcode:02X}", opcode, payload)
        if self.framer.garbage:
            for reason, raw in self.framer.garbage:
                self.garbled += 1
                pending.append(LinkEvent(now, "garbled", reason, raw))
            self.framer.garbage.clear()

    def _garbled(self, now: float, detail: str, opcode: int, payload: bytes) -> None:
        self.garbled += 1
        self.pending.append(LinkEvent(now, "garbled", detail,
                                      bytes((opcode,)) + payload[:MAX_REPORTED_BYTES]))

    def exchange(self, opcode: int, payload: bytes, reply_opcode: int, reply_prefix: bytes,
                 what: str) -> bytes:
        """Send one request and return the payload of its reply after `reply_prefix`.

        Raises ProtocolError when the console refuses the request or does not answer in time.
        """
        layout = self.layout
        timeout_s = self.profile.transport.timeout_s
        self.replies.clear()
        self._awaiting = True
        try:
            self.link.write(layout.frame(opcode, payload))
            deadline = time.monotonic() + timeout_s
            while True:
                while self.replies:
                    got_op, body = self.replies.popleft()
                    if got_op == reply_opcode and body.startswith(reply_prefix):
                        return body[len(reply_prefix):]
                    if got_op == layout.error and body[:1] == bytes((opcode,)):
                        code = body[1] if len(body) > 1 else None
                        raise ProtocolError(f"console on {self.link.url} refused {what}: "
                                            f"{layout.refusal(code)}")
                    self._garbled(self.clock(), f"unexpected reply to {what}", got_op, body)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProtocolError(f"no reply to {what} within {timeout_s:g} s "
                                        f"on {self.link.url}")
                self.pump(min(left, 0.05))
        finally:
            self._awaiting = False

    # -- requests -------------------------------------------------------------------------
    def query_identity(self) -> DeviceIdentity:
        op = self.layout.identify
        body = self.exchange(op, b"", op, b"", "identify")
        parts = body.split(b"\0")
        if len(parts) != 3:
            raise ProtocolError(f"console on {self.link.url} sent a malformed identity "
                                f"{body!r}; expected model, serial and firmware separated by NUL")
        model, serial, firmware = (p.decode("latin-1") for p in parts)
        return DeviceIdentity(model, serial, firmware)

    def get(self, name: str) -> float:
        codec = self.layout.params[name]
        op = self.layout.get
        ident = bytes((codec.code,))
        body = self.exchange(op, ident, op, ident, f"get {name}")
        if len(body) != codec.packer.size:
            raise ProtocolError(f"console on {self.link.url} answered get {name} with "
                                f"{len(body)} value bytes, expected {codec.packer.size}")
        return codec.decode(body)

    def set(self, name: str, value: float) -> float:
        layout = self.layout
        codec = layout.params[name]
        param = self.profile.parameters[name]
        if name not in layout.writable:
            raise ProtocolError(f"{name} cannot be set on {self.profile.name} "
                                f"(not in {self.profile.protocol}.writable)")
        if not param.in_range(value):
            raise ProtocolError(f"{name} {value:g} {param.conversion.quantity} is outside the "
                                f"profile's range {param.min:g}..{param.max:g}")
        if not _emitted(self.profile, name, value):
            raise ProtocolError(f"wavelength {value:g} nm is not one this console emits "
                                f"({', '.join(f'{w:g}' for w in self.profile.wavelengths_nm)} nm)")
        ident = bytes((codec.code,))
        body = self.exchange(layout.set, ident + codec.encode(value), layout.ack,
                             bytes((layout.set,)) + ident, f"set {name} {value:g}")
        if len(body) != codec.packer.size:
            raise ProtocolError(f"console on {self.link.url} acknowledged set {name} with "
                                f"{len(body)} value bytes, expected {codec.packer.size}")
        taken = codec.decode(body)
        self.settings[name] = taken
        return taken

    def command(self, name: str) -> None:
        op = self.layout.commands[name]
        self.exchange(op, b"", self.layout.ack, bytes((op,)), f"command {name}")

    def read_status(self) -> StatusReading | None:
        op = self.layout.status
        if op is None:
            return None
        packer = self.layout.status_packer
        body = self.exchange(op, b"", op, b"", "status")
        if len(body) != packer.size:
            raise ProtocolError(f"console on {self.link.url} sent a status of {len(body)} "
                                f"bytes, expected {packer.size}")
        code, interlock, firing = packer.unpack(body)
        return StatusReading(self.clock(), code, bool(interlock), bool(firing))


def _emitted(profile: Profile, name: str, value: float) -> bool:
    """Tell whether a wavelength setting is one the console lists (other settings pass)."""
    if name != "wavelength" or not profile.wavelengths_nm:
        return True
    return any(abs(value - w) < 0.5 for w in profile.wavelengths_nm)


class Device:
    """Console side of the binary framed protocol, answering from a simulated console's state."""

    def __init__(self, profile: Profile, console: ConsoleState) -> None:
        self.profile = profile
        self.console = console
        self.layout = compile_layout(profile)
        self.framer = FrameSplitter(self.layout.start_byte, self.layout.max_length)
        self._pulse_values = self._values_builder()

    def _values_builder(self) -> Callable[[SimPulse], tuple[float | int, ...]]:
        """Return a function giving a pulse's wire values, generated once per profile.

        The simulator runs it once a pulse when it floods a port: generated like the
        driver's pulse builder, it costs a quarter of a generic loop over the fields.
        """
        spec = self.profile.pulses
        constants: dict[str, object] = {"_min": min, "_max": max, "_round": round}
        exprs = []
        for name, bounds in zip(self.layout.pulse_fields, self.layout.pulse_bounds, strict=True):
            index = FIELD_INDEX[name]
            expr = f"p[{index}]"
            conversion = spec.fields.get(name)
            if conversion is not None:
                constants[f"o{index}"], constants[f"s{index}"] = conversion.offset, conversion.scale
                expr = f"({expr} - o{index}) / s{index}"
            if bounds is not None:
                expr = f"_min(_max(_round({expr}), {bounds[0]}), {bounds[1]})"
            exprs.append(expr)
        source = f"def values(p):\n    return ({', '.join(exprs)},)\n"
        exec(compile(source, "<pulse frame values>", "exec"), constants)
        return constants["values"]  # type: ignore[return-value]

    def receive(self, data: bytes) -> bytes:
        """Return the console's answer to what the host sent (garbage gets no answer)."""
        replies = b"".join(self.answer(op, payload) for op, payload in self.framer.feed(data))
        self.framer.garbage.clear()
        return replies

    def error(self, opcode: int, code: int) -> bytes:
        """Return an error frame refusing a request."""
        return self.layout.frame(self.layout.error, bytes((opcode, code)))

    def answer(self, opcode: int, payload: bytes) -> bytes:
        """Return the frame answering one request."""
        layout, c = self.layout, self.console
        if opcode == layout.identify:
            text = f"{self.profile.identity.model}\0{c.serial}\0{c.firmware}"
            return layout.frame(opcode, text.encode("latin-1"))
        if opcode == layout.status:
            return layout.frame(opcode, layout.status_packer.pack(
                c.fault_code, int(c.interlock_open), int(c.firing)))
        if opcode == layout.get:
            codec = layout.params_by_code.get(payload[0]) if len(payload) == 1 else None
            if codec is None:
                return self.error(opcode, ERR_SYNTAX)
            return layout.frame(opcode, payload + codec.encode(c.value(codec.name)))
        if opcode == layout.set:
            codec = layout.params_by_code.get(payload[0]) if payload else None
            if codec is None or len(payload) != 1 + codec.packer.size:
                return self.error(opcode, ERR_SYNTAX)
            if codec.name not in layout.writable:
                return self.error(opcode, ERR_READ_ONLY)
            value = codec.decode(payload[1:])
            if not _emitted(self.profile, codec.name, value):
                return self.error(opcode, ERR_RANGE)
            refused = c.set(codec.name, value)
            if refused:
                return self.error(opcode, refused)
            return layout.frame(layout.ack, bytes((opcode,)) + payload[:1]
                                + codec.encode(c.value(codec.name)))
        for name, code in layout.commands.items():
            if opcode == code:
                refused = c.run(name)
                if refused:
                    return self.error(opcode, refused)
                return layout.frame(layout.ack, bytes((opcode,)))
        return self.error(opcode, ERR_SYNTAX)

    def pulse(self, pulse: SimPulse) -> bytes:
        """Return the pushed frame announcing a pulse."""
        packer, op = self.layout.pulse_packer, self.layout.pulse
        if packer is None or op is None:
            return b""
        return self.layout.frame(op, packer.pack(*self._pulse_values(pulse)))

    def fault(self, code: int) -> bytes:
        """Return the pushed frame announcing a fault (or nothing if the console pushes none)."""
        op = self.layout.fault
        if op is None:
            return b""
        return self.layout.frame(op, self.layout.fault_packer.pack(code))
