"""Text line protocols: query/set templates, an OK/ERR convention, pushed pulse and fault lines.

Both ends live here: `Driver` talks to a console, `Device` is the console's side for the
simulator. Both read the same templates from the profile, and the same `[line]` options
(`line_options`), which describe how a console wraps its exchange:

- `ok` / `error`: the acknowledgement and the refusal of a set or a command;
- `echo`: the console repeats each command, as a line of its own, before answering;
- `reply_end`: every answer ends with a line carrying a code, 0 when accepted
  (`NAME = value` replies followed by a status line);
- `[line.status_line]` (format 2): every answer to a query ends with a line carrying the
  console's state, a number from a table (`2 = "standby"`, `5 = "firing"`), while sets and
  commands are answered by `ok` / `error` alone;
- `silent_refusal` / `silent_refusal_ms` (format 2): sets and commands are not answered, but
  a refusal comes as a line of its own (`Error: out of range`, `??`) a little later; it is
  blamed on the command that caused it, never on the next one;
- `error_query` / `error_query_reply`: sets and commands are not answered, the host reads the
  console's error queue instead (SCPI's `SYST:ERR?`);
- `[line.address]`: every line is wrapped with its sender and receiver, e.g. `[PC>L1]EN?`;
- `[line.error_codes]`: the codes this console refuses with, for the simulator.

A reply template that contains the read terminator spans that many lines plus one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from laserlog.config.template import Template, compile_template
from laserlog.domain.model import DeviceIdentity, LinkEvent, StatusReading
from laserlog.errors import ProfileError, ProtocolError
from laserlog.link.driver import Driver as BaseDriver
from laserlog.link.driver import pulse_builder
from laserlog.link.wire import ERR_INTERLOCK, ERR_RANGE, ERR_READ_ONLY, ERR_SYNTAX, FIELD_INDEX

if TYPE_CHECKING:
    from collections.abc import Callable

    from laserlog.config.profile import Parameter, Profile
    from laserlog.link.transport import Link
    from laserlog.link.wire import ConsoleState, SimPulse

OPTION_KEYS = {"ok", "error", "echo", "reply_end", "error_query", "error_query_reply",
               "address", "error_codes", "status_line", "silent_refusal", "silent_refusal_ms"}
STATUS_LINE_KEYS = ("reply", "states")
#: How long a silent set waits for a late refusal when the profile does not say.
SILENT_REFUSAL_S = 0.2
ADDRESS_KEYS = ("frame", "host", "console")
#: The simulator's refusals by their names in [line.error_codes], with what they mean.
REFUSALS = {
    "syntax": (ERR_SYNTAX, "command not understood"),
    "range": (ERR_RANGE, "value out of range"),
    "read_only": (ERR_READ_ONLY, "parameter is read-only"),
    "interlock": (ERR_INTERLOCK, "interlock open: emission refused"),
}
#: Fields a text status reply may carry.
STATUS_FIELDS = frozenset({"fault", "interlock", "firing", "word"})
_BODY = "\uffff"  # never in a template: templates are one byte per character


@dataclass(frozen=True, slots=True)
class Address:
    """Addressed framing: every line carries its sender and receiver, e.g. `[PC>L1]body`."""

    frame: Template
    host: str
    console: str
    to_console: tuple[bytes, bytes]  # what the host's lines start and end with
    to_host: tuple[bytes, bytes]  # what the console's lines start and end with

    @classmethod
    def build(cls, frame: Template, host: str, console: str) -> Address:
        def ends(sender: str, receiver: str) -> tuple[bytes, bytes]:
            before, after = frame.render(sender=sender, receiver=receiver, body=_BODY).split(_BODY)
            return before.encode("latin-1"), after.encode("latin-1")

        return cls(frame, host, console, ends(host, console), ends(console, host))

    @staticmethod
    def wrap(body: bytes, ends: tuple[bytes, bytes]) -> bytes:
        return ends[0] + body + ends[1]

    @staticmethod
    def unwrap(line: bytes, ends: tuple[bytes, bytes]) -> bytes | None:
        """Return the body of a line with these ends, or None when it has others."""
        before, after = ends
        if not line.startswith(before) or len(line) < len(before) + len(after):
            return None
        if not after:
            return line[len(before):]
        return line[len(before):-len(after)] if line.endswith(after) else None


@dataclass(frozen=True, slots=True)
class StatusLine:
    """The line closing every query's reply with the console's state, and the state table.

    A state's name is `firing`, `interlock`, the name of a [[status.faults]] entry, or any
    other word (standby, warming_up): a state the console is in, recorded, never an alarm.
    A number outside the table refuses the query (the console answered with an error).
    """

    template: Template
    states: dict[int, str]

    def reading(self, profile: Profile, state: int, now: float) -> StatusReading:
        """Return the status a state number means."""
        name = self.states[state]
        faults = {fault.name: fault for fault in profile.status.faults.values()}
        fault = faults.get(name)
        interlock = name == "interlock" or bool(fault and fault.interlock)
        code = fault.code if fault is not None else (
            next((c for c, f in profile.status.faults.items() if f.interlock), 0)
            if interlock else 0)
        return StatusReading(now, code, interlock, name == "firing", state=(name,))

    def state_of(self, profile: Profile, console: ConsoleState) -> int:
        """Return the state number a console in this condition shows (the simulator's side)."""
        by_name = {name: number for number, name in self.states.items()}
        fault = profile.status.faults.get(console.fault_code)
        for name, when in ((fault.name if fault else "", fault is not None),
                           ("interlock", console.interlock_open),
                           ("firing", console.firing)):
            if when and name in by_name:
                return by_name[name]
        special = {"firing", "interlock"} | {f.name for f in profile.status.faults.values()}
        flags = getattr(console, "flags", ())
        for name in flags:
            if name in by_name:
                return by_name[name]
        return next((n for n, name in self.states.items() if name not in special),
                    next(iter(self.states)))


@dataclass(frozen=True, slots=True)
class LineOptions:
    """The protocol options table ([line] or [fixed_width]), compiled."""

    ok: Template | None = None
    error: Template | None = None
    echo: bool = False
    reply_end: Template | None = None
    error_query: str | None = None
    error_query_reply: Template | None = None
    address: Address | None = None
    #: The simulator's refusal code -> the code this console answers with.
    error_codes: dict[int, int] = field(default_factory=dict)
    status_line: StatusLine | None = None
    #: Lines that refuse a set or command after it went unanswered (format 2).
    silent_refusal: tuple[Template, ...] = ()
    silent_refusal_s: float = SILENT_REFUSAL_S

    def late_refusal(self, frame: bytes) -> str | None:
        """Return the message of a late refusal line, or None when the line is not one."""
        for template in self.silent_refusal:
            found = template.match(frame)
            if found is not None:
                return found.get("message") or found.get("code") or frame.decode("latin-1")
        return None

    def meaning(self, console_code: int) -> str:
        """Return what a console's refusal code means, when [line.error_codes] says."""
        for ours, text in REFUSALS.values():
            if self.error_codes.get(ours) == console_code:
                return text
        return ""


def _fail(profile: Profile, key: str, problem: str, **kw: Any) -> ProfileError:
    return ProfileError(profile.source, f"{profile.protocol}.{key}", problem, **kw)


def _option_template(profile: Profile, options: dict[str, Any], key: str,
                     fields: tuple[set[str], set[str]] | None = None) -> Template | None:
    """Compile a template option; `fields` = (required, allowed) field names."""
    if key not in options:
        return None
    text = options[key]
    if not isinstance(text, str):
        raise _fail(profile, key, "wrong type", value=text, expected="a template (text)")
    try:
        template = compile_template(text)
    except ValueError as exc:
        raise _fail(profile, key, str(exc), value=text) from None
    if fields is not None:
        required, allowed = fields
        missing = sorted(required - set(template.fields))
        if missing:
            raise _fail(profile, key, f"has no {{{missing[0]}}} field", value=text,
                        expected="a template with " + ", ".join(f"{{{f}}}" for f in sorted(required)))
        extra = sorted(set(template.fields) - allowed)
        if extra:
            raise _fail(profile, key, f"unknown field {{{extra[0]}}}", value=text,
                        expected="fields among " + ", ".join(f"{{{f}}}" for f in sorted(allowed)))
    return template


def _address(profile: Profile, table: object) -> Address:
    if not isinstance(table, dict):
        raise _fail(profile, "address", "wrong type", value=table, expected="a table")
    for key in table:
        if key not in ADDRESS_KEYS:
            raise _fail(profile, f"address.{key}", "unknown key",
                        expected="one of " + ", ".join(ADDRESS_KEYS))
    frame = _option_template(profile, {f"address.{k}": v for k, v in table.items()}, "address.frame",
                             ({"sender", "receiver", "body"}, {"sender", "receiver", "body"}))
    if frame is None:
        raise _fail(profile, "address.frame", "missing",
                    expected="a template such as '[{sender}>{receiver}]{body}'")
    if frame.text.count("{body") != 1:
        raise _fail(profile, "address.frame", "must carry {body} exactly once", value=frame.text)
    names: list[str] = []
    for key in ("host", "console"):
        name = table.get(key)
        if not isinstance(name, str) or not name:
            raise _fail(profile, f"address.{key}", "missing" if name is None else "wrong type",
                        value=name, expected="the address as text, e.g. 'PC' or '01'")
        try:
            name.encode("latin-1")
        except UnicodeEncodeError:
            raise _fail(profile, f"address.{key}", "has a character that is not a single byte",
                        value=name) from None
        names.append(name)
    if names[0] == names[1]:
        raise _fail(profile, "address.console", "same as the host's address", value=names[1],
                    expected="an address other than address.host")
    return Address.build(frame, names[0], names[1])


def _error_codes(profile: Profile, table: object) -> dict[int, int]:
    if not isinstance(table, dict):
        raise _fail(profile, "error_codes", "wrong type", value=table, expected="a table")
    codes: dict[int, int] = {}
    for name, code in table.items():
        if name not in REFUSALS:
            raise _fail(profile, f"error_codes.{name}", "unknown key",
                        expected="one of " + ", ".join(REFUSALS))
        if isinstance(code, bool) or not isinstance(code, int):
            raise _fail(profile, f"error_codes.{name}", "wrong type", value=code,
                        expected="a whole number")
        codes[REFUSALS[name][0]] = code
    return codes


def _format_two(profile: Profile, key: str) -> None:
    if profile.format_version < 2:
        raise _fail(profile, key, "needs profile format 2", expected="format = 2 at the top of "
                    "the file (`laserlog profiles upgrade FILE`)")


def _status_line(profile: Profile, table: object) -> StatusLine:
    """Compile [line.status_line]: the closing line's template and its state table."""
    _format_two(profile, "status_line")
    if not isinstance(table, dict):
        raise _fail(profile, "status_line", "wrong type", value=table, expected="a table "
                    "with reply and [line.status_line.states]")
    for key in table:
        if key not in STATUS_LINE_KEYS:
            raise _fail(profile, f"status_line.{key}", "unknown key",
                        expected="one of " + ", ".join(STATUS_LINE_KEYS))
    template = _option_template(profile, {"status_line.reply": table.get("reply")}
                                if "reply" in table else {}, "status_line.reply",
                                ({"state"}, {"state"}))
    if template is None:
        raise _fail(profile, "status_line.reply", "missing",
                    expected="the closing line, e.g. 'STATUS {state:d}'")
    if "state" not in template.integer_fields:
        raise _fail(profile, "status_line.reply", "field {state} is not read as a whole number",
                    value=template.text, expected="{state:d}")
    raw = table.get("states")
    if not isinstance(raw, dict) or not raw:
        raise _fail(profile, "status_line.states", "missing" if raw is None else "wrong type",
                    value=raw, expected='a table of state numbers and names, e.g. 2 = "standby"')
    states: dict[int, str] = {}
    for number, name in raw.items():
        if not number.lstrip("-").isdigit():
            raise _fail(profile, f"status_line.states.{number}", "not a state number",
                        value=number, expected="a whole number as the key, e.g. 2 = \"standby\"")
        if not isinstance(name, str) or not name.isidentifier():
            raise _fail(profile, f"status_line.states.{number}", "not a state name",
                        value=name, expected="a name such as standby, firing, interlock or a "
                        "[[status.faults]] name")
        if name in states.values():
            raise _fail(profile, f"status_line.states.{number}", "state name used twice",
                        value=name, expected="one number per state")
        states[int(number)] = name
    return StatusLine(template, states)


def _silent_refusal(profile: Profile, options: dict[str, Any]) -> tuple[Template, ...]:
    """Compile `silent_refusal`: one template or a list, each with at most {message}/{code}."""
    if "silent_refusal" not in options:
        if "silent_refusal_ms" in options:
            raise _fail(profile, "silent_refusal", "missing", expected="the refusal lines "
                        "whose wait silent_refusal_ms sets")
        return ()
    _format_two(profile, "silent_refusal")
    raw = options["silent_refusal"]
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts:
        raise _fail(profile, "silent_refusal", "wrong type", value=raw,
                    expected="a template or a list, e.g. ['Error: {message}', '??']")
    out = []
    for index, text in enumerate(texts):
        template = _option_template(profile, {f"silent_refusal[{index}]": text},
                                    f"silent_refusal[{index}]", (set(), {"message", "code"}))
        assert template is not None
        if not template.text.strip():
            raise _fail(profile, f"silent_refusal[{index}]", "blank", value=text,
                        expected="the text of a refusal line")
        out.append(template)
    return tuple(out)


def _silent_window(profile: Profile, options: dict[str, Any]) -> float:
    value = options.get("silent_refusal_ms", SILENT_REFUSAL_S * 1000)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 10_000:
        raise _fail(profile, "silent_refusal_ms", "not allowed", value=value,
                    expected="milliseconds above 0, at most 10000")
    return float(value) / 1000.0


def line_options(profile: Profile) -> LineOptions:
    """Return the compiled options table, raising ProfileError naming the key at fault."""
    options = profile.protocol_options
    for key in options:
        if key not in OPTION_KEYS:
            raise _fail(profile, key, "unknown key",
                        expected="one of " + ", ".join(sorted(OPTION_KEYS)))
    echo = options.get("echo", False)
    if not isinstance(echo, bool):
        raise _fail(profile, "echo", "wrong type", value=echo, expected="true or false")
    query = options.get("error_query")
    if query is not None and (not isinstance(query, str) or not query):
        raise _fail(profile, "error_query", "wrong type", value=query,
                    expected="the command that reads the error queue, e.g. 'SYST:ERR?'")
    query_reply = _option_template(profile, options, "error_query_reply",
                                   ({"code"}, {"code", "message"}))
    if query is not None and query_reply is None:
        raise _fail(profile, "error_query_reply", "missing",
                    expected="the error queue's reply, e.g. '{code:d},\"{message}\"'")
    if query is None and query_reply is not None:
        raise _fail(profile, "error_query", "missing", expected="the command whose reply "
                    "error_query_reply describes")
    status_line = (_status_line(profile, options["status_line"])
                   if "status_line" in options else None)
    silent = _silent_refusal(profile, options)
    error_fields = (set(), {"code"}) if profile.format_version >= 2 else ({"code"}, {"code"})
    if "reply_end" in options and status_line is not None:
        raise _fail(profile, "status_line", "with reply_end too", expected="one of them: "
                    "reply_end closes every answer with a code (0 accepted), status_line "
                    "closes a query's answer with a state")
    return LineOptions(
        status_line=status_line,
        silent_refusal=silent,
        silent_refusal_s=_silent_window(profile, options),
        ok=_option_template(profile, options, "ok", (set(), set())),
        error=_option_template(profile, options, "error", error_fields),
        echo=echo,
        reply_end=_option_template(profile, options, "reply_end", ({"code"}, {"code"})),
        error_query=query,
        error_query_reply=query_reply,
        address=_address(profile, options["address"]) if "address" in options else None,
        error_codes=_error_codes(profile, options.get("error_codes", {})),
    )


def check_profile(profile: Profile, status_fields: frozenset[str] = STATUS_FIELDS) -> None:
    """Check the keys this protocol needs: templates for what the driver must ask."""
    options = line_options(profile)
    if profile.transport.reply_width is not None:
        for key, used in (("echo", options.echo), ("reply_end", options.reply_end),
                          ("address", options.address), ("status_line", options.status_line)):
            if used:
                raise _fail(profile, key, "needs replies framed by lines",
                            expected="no transport.reply_width (fixed-width replies)")
    if options.silent_refusal:
        for key, present in (("ok", options.ok is not None),
                             ("reply_end", options.reply_end is not None),
                             ("error_query", options.error_query is not None)):
            if present:
                raise _fail(profile, "silent_refusal", f"with {key} too", expected="sets that "
                            f"go unanswered (no {key}), or no silent_refusal")
    counter = profile.parameters.get(profile.pulses.counter or "")
    if profile.pulses.mode == "polled" and counter is not None and counter.get is None:
        raise ProfileError(profile.source, f"parameters.{counter.name}.get", "missing",
                           expected="a query for the shot counter: a polled console's pulses "
                           "are counted by reading it")
    for name, param in profile.parameters.items():
        if param.get is None and param.set is None:
            raise ProfileError(profile.source, f"parameters.{name}", "neither get nor set",
                               expected="a get template, a set template or both")
        if param.set is not None and "value" not in param.set.fields:
            raise ProfileError(profile.source, f"parameters.{name}.set", "has no {value} field",
                               value=param.set.text, expected="a set command such as "
                               "'EN {value:.1f}'")
    if profile.pulses.mode == "pushed" and profile.pulses.line is None:
        raise ProfileError(profile.source, "pulses.line", "missing",
                           expected="the template of a pushed pulse line")
    ident = profile.identity
    if (ident.get is None) != (ident.reply is None):
        missing = "get" if ident.get is None else "reply"
        raise ProfileError(profile.source, f"identity.{missing}", "missing",
                           expected="identity.get and identity.reply together")
    if ident.reply is not None:
        unknown = sorted(set(ident.reply.fields) - {"model", "serial", "firmware"})
        if unknown:
            raise ProfileError(profile.source, "identity.reply", f"unknown field {{{unknown[0]}}}",
                               value=ident.reply.text,
                               expected="fields among {model}, {serial}, {firmware}")
    status = profile.status.reply
    if status is not None:
        unknown = sorted(set(status.fields) - status_fields)
        if unknown:
            raise ProfileError(profile.source, "status.reply", f"unknown field {{{unknown[0]}}}",
                               value=status.text,
                               expected="fields among " + ", ".join(sorted(status_fields)))
        untyped = sorted(set(status.fields) - status.integer_fields)
        if untyped:  # read as text, "OK" would end the session when taken for a code
            raise ProfileError(profile.source, "status.reply",
                               f"field {{{untyped[0]}}} is not read as a whole number",
                               value=status.text,
                               expected=f"an integer spec such as {{{untyped[0]}:d}} or "
                               "{word:04X}")
    if (profile.status.get is None) != (status is None):
        missing = "get" if profile.status.get is None else "reply"
        raise ProfileError(profile.source, f"status.{missing}", "missing",
                           expected="status.get and status.reply together")
    fault_line = profile.status.fault_line
    if fault_line is not None and "code" not in fault_line.fields:
        raise ProfileError(profile.source, "status.fault_line", "has no {code} field",
                           value=fault_line.text, expected="a pushed fault line such as "
                           "'FAULT {code:d}'")


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
    options = line_options(profile)
    return options.ok, options.error


def _set_reply(param: Parameter, ok: Template | None,
               options: LineOptions | None = None) -> Template | None:
    """Return what answers a set: its set_reply, else ok, else its reply (unless the
    console is asked for errors instead)."""
    if param.set_reply is not None or ok is not None:
        return param.set_reply or ok
    silent = options is not None and (options.error_query or options.silent_refusal)
    return None if silent else param.reply


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _wire_value(param: Parameter, canonical: float, template: Template,
                scale: float = 1.0) -> float | int | str:
    """Return a canonical value as the wire shows it (times set_scale when written by set);
    an enumerated parameter's value is its word."""
    if param.values:
        return param.word(canonical)
    value = param.conversion.from_canonical(canonical) * param.wire_scale * scale
    return int(round(value)) if "value" in template.integer_fields else value


def reply_lines(template: Template | None, terminator: bytes) -> int:
    """Return how many lines a reply template spans (its text may hold the terminator)."""
    if template is None or not terminator:
        return 1
    return template.text.count(terminator.decode("latin-1")) + 1


def status_reading(profile: Profile, template: Template, fields: dict[str, str],
                   now: float) -> StatusReading:
    """Return the status a reply's fields show: explicit fields first, else the status word."""
    st = profile.status
    code, interlock, firing = 0, None, None
    if "word" in fields:
        code, interlock, firing = st.decode_word(template.integer("word", fields["word"]))
    if "fault" in fields:
        code = int(fields["fault"])
    if "interlock" in fields:
        interlock = bool(int(fields["interlock"]))
    if "firing" in fields:
        firing = bool(int(fields["firing"]))
    if interlock is None:
        fault = st.faults.get(code)
        interlock = bool(fault and fault.interlock)
    state = (st.decode_flags(template.integer("word", fields["word"]))
             if st.flags and "word" in fields else None)
    return StatusReading(now, code, interlock, firing, state=state)


class Driver(BaseDriver):
    """Host side of a text line protocol."""

    #: What the messages call the other end ("console refused ..."); a meter says "meter".
    device_word = "console"

    def __init__(self, profile: Profile, link: Link, **kw: object) -> None:
        super().__init__(profile, link, **kw)  # type: ignore[arg-type]
        self.framer = make_framer(profile, incoming=True)
        self.replies: deque[bytes] = deque()
        self._awaiting = False
        self.options = self.compile_options(profile)
        self._ok, self._error = self.options.ok, self.options.error
        pulses = profile.pulses
        self._pulse_regex = pulses.line.regex if pulses.line is not None else None
        self._build_pulse = (pulse_builder(pulses.line.fields, pulses.fields)
                             if pulses.line is not None else None)
        self._fault_regex = profile.status.fault_line.regex if profile.status.fault_line else None
        # Echoes and addresses are peeled off before lines are classified; plain consoles
        # skip that step entirely.
        self._peel = self.options.echo or self.options.address is not None
        self._echoes: deque[bytes] = deque(maxlen=8)  # commands whose echo has not come
        #: The last set or command that went unanswered: a late refusal line is its.
        self._last_silent: str | None = None
        self._state: int | None = None  # the last status-line state read
        self.garbled = 0
        self.foreign = 0  # lines between other parties on an addressed bus

    def compile_options(self, profile: Profile) -> LineOptions:
        """Return the protocol options table compiled; a driver built on this one may differ."""
        return line_options(profile)

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
        frames = self.framer.feed(data)
        if self._peel:
            frames = self._peeled(frames)
        for frame in frames:
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
            elif self.options.silent_refusal and self._late(frame):
                continue
            elif frame.strip():
                self.garbled += 1
                pending.append(LinkEvent(now, "garbled", "unexpected line", frame[:200]))

    def _peeled(self, frames: list[bytes]) -> list[bytes]:
        """Return the frames without the echo of our last command, and without addresses."""
        address = self.options.address
        out: list[bytes] = []
        for frame in frames:
            if self._echoes and frame in self._echoes:
                self._echoes.remove(frame)
                continue
            if address is not None:
                body = address.unwrap(frame, address.to_host)
                if body is None:
                    if address.frame.match(frame) is not None:
                        self.foreign += 1  # addressed to someone else on the bus
                    elif frame.strip():
                        self._garbled("line without the bus address", frame)
                    continue
                frame = body
            out.append(frame)
        return out

    def _late(self, frame: bytes) -> bool:
        """Queue a late refusal line as the refusal of the silent command that caused it."""
        message = self.options.late_refusal(frame)
        if message is None:
            return False
        culprit = repr(self._last_silent) if self._last_silent else "an earlier command"
        self.pending.append(LinkEvent(self.clock(), "error_reply",
                                      f"{self.device_word} refused {culprit} (after it went "
                                      f"unanswered): {message}", frame[:200]))
        return True

    def exchange(self, request: str, expect: Template | None,
                 query: bool = False) -> dict[str, str]:
        """Send one command and wait for the reply matching `expect` (or an error reply).

        `query`: the request reads something (a get, identity, status), so a status line
        closes its reply when the profile has one.
        """
        options = self.options
        self.replies.clear()
        closing = options.status_line is not None and query
        waits = expect is not None or options.reply_end is not None or closing
        silent = not waits and bool(options.silent_refusal)
        self._awaiting = waits or silent
        try:
            raw = request.encode("latin-1")
            if options.address is not None:
                raw = options.address.wrap(raw, options.address.to_console)
            if options.echo:
                self._echoes.append(raw)
            self.link.write(self.wire(raw))
            if silent:
                self._last_silent = request
                self._await_refusal(request)
            fields = self._await_reply(request, expect, closing) if waits else {}
        finally:
            self._awaiting = False
        if expect is None and options.error_query is not None and request != options.error_query:
            self._check_error_queue(request)
        return fields

    def wire(self, request: bytes) -> bytes:
        """Return a request as it goes on the wire; a plugin driver may frame it otherwise."""
        return request + self.profile.transport.write_terminator

    def _await_refusal(self, request: str) -> None:
        """Wait the profile's window for a late refusal of an unanswered command."""
        deadline = time.monotonic() + self.options.silent_refusal_s
        while True:
            while self.replies:
                frame = self.replies.popleft()
                message = self.options.late_refusal(frame)
                if message is not None:
                    raise ProtocolError(f"{self.device_word} refused {request!r}: {message}")
                if frame.strip():
                    self._garbled(f"unexpected reply to {request!r}", frame)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.pump(min(left, 0.05))

    def _await_reply(self, request: str, expect: Template | None,
                     closing: bool = False) -> dict[str, str]:
        """Collect the reply's lines until they match `expect` (or the reply_end line, or
        the status line that closes a query's reply)."""
        t = self.profile.transport
        status_line = self.options.status_line if closing else None
        end = status_line.template if status_line is not None else self.options.reply_end
        need = reply_lines(expect, t.read_terminator)
        lines: list[bytes] = []
        deadline = time.monotonic() + t.timeout_s
        while True:
            while self.replies:
                frame = self.replies.popleft()
                if self.options.silent_refusal and self._late(frame):
                    continue
                if status_line is not None and (ended := status_line.template.match(frame)):
                    return self._stated(request, expect, lines, int(ended["state"]))
                if end is not None and (ended := end.match(frame)) is not None:
                    return self._ended(request, expect, lines, int(ended["code"]))
                lines.append(frame)
                if expect is not None and end is None and len(lines) == need:
                    fields = expect.match(t.read_terminator.join(lines))
                    if fields is not None:
                        return fields
                if self._error is not None and (err := self._error.match(frame)) is not None:
                    self._refused(request, err.get("code", frame.decode("latin-1").strip()))
                if end is None and len(lines) == need:
                    stale = lines.pop(0)
                    if stale.strip():
                        self._garbled(f"unexpected reply to {request!r}", stale)
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError(f"no reply to {request!r} within {t.timeout_s:g} s "
                                    f"on {self.link.url}")
            self.pump(min(left, 0.05))

    def _ended(self, request: str, expect: Template | None, lines: list[bytes],
               code: int) -> dict[str, str]:
        """Return the reply that a reply_end line closed, or raise when its code refuses."""
        if code != 0:
            self._refused(request, str(code))
        if expect is None:
            for line in lines:
                if line.strip():
                    self._garbled(f"unexpected reply to {request!r}", line)
            return {}
        body = self.profile.transport.read_terminator.join(lines)
        fields = expect.match(body)
        if fields is None:
            self._garbled(f"reply to {request!r} not understood", body)
            raise ProtocolError(f"{self.device_word} answered {request!r} with {body!r}, "
                                f"expected {expect.text!r}")
        return fields

    def _stated(self, request: str, expect: Template | None, lines: list[bytes],
                state: int) -> dict[str, str]:
        """Note the state a status line reports, then read the reply it closed."""
        status_line = self.options.status_line
        assert status_line is not None
        if state not in status_line.states:
            self._refused(request, str(state))
        if state != self._state:
            self._state = state
            self.pending.append(status_line.reading(self.profile, state, self.clock()))
        return self._ended(request, expect, lines, 0)

    def _refused(self, request: str, code: str) -> NoReturn:
        numeric = code.lstrip("+-").isdigit()
        meaning = self.options.meaning(int(code)) if numeric else ""
        raise ProtocolError(f"{self.device_word} refused {request!r}: "
                            + (f"error {code}" if numeric else code)
                            + (f", {meaning}" if meaning else ""))

    def _garbled(self, detail: str, raw: bytes) -> None:
        self.garbled += 1
        self.pending.append(LinkEvent(self.clock(), "garbled", detail, raw[:200]))

    def _check_error_queue(self, request: str) -> None:
        """Ask the console's error queue whether the last command was taken (SCPI style)."""
        options = self.options
        assert options.error_query is not None and options.error_query_reply is not None
        fields = self.exchange(options.error_query, options.error_query_reply)
        code = int(fields["code"])
        if code != 0:
            message = fields.get("message") or options.meaning(code)
            raise ProtocolError(f"console refused {request!r}: error {code}"
                                + (f", {message}" if message else ""))

    # -- commands -------------------------------------------------------------------------
    def query_identity(self) -> DeviceIdentity:
        ident = self.profile.identity
        if ident.get is None or ident.reply is None:
            return DeviceIdentity(ident.model, "", "")
        fields = self.exchange(ident.get.render(), ident.reply, query=True)
        return DeviceIdentity(fields.get("model", ident.model), fields.get("serial", ""),
                              fields.get("firmware", ""))

    def get(self, name: str) -> float:
        param = self.profile.parameters[name]
        if param.get is None or param.reply is None:
            raise ProtocolError(f"{self.device_word} parameter {name} cannot be read")
        fields = self.exchange(param.get.render(), param.reply, query=True)
        if param.values:
            word = fields["value"].strip()
            if word not in param.values:
                raise ProtocolError(f"{self.device_word} answered {name} with {word!r}, not "
                                    f"one of {', '.join(param.values)}")
            return float(param.values.index(word))
        return param.conversion.to_canonical(float(fields["value"]) / param.wire_scale)

    def set(self, name: str, value: float) -> float:
        param = self.profile.parameters[name]
        if param.set is None:
            raise ProtocolError(f"{self.device_word} parameter {name} cannot be set")
        if not param.in_range(value):
            raise ProtocolError(f"{name} {value:g} is outside the profile's range "
                                f"{_bound(param.min)}..{_bound(param.max)} "
                                f"(canonical unit of {param.conversion.quantity})")
        request = param.set.render(value=_wire_value(param, value, param.set, param.set_scale))
        self.exchange(request, _set_reply(param, self._ok, self.options))
        self.took(name, value)
        return value

    def command(self, name: str) -> None:
        """Send a named action: each of its commands in turn, each acknowledged first."""
        for index in range(len(self.profile.commands[name].sends)):
            self.command_step(name, index)

    def command_step(self, name: str, index: int) -> None:
        """Send one command of a named action (a transcript replays them one by one)."""
        cmd = self.profile.commands[name]
        self.exchange(cmd.sends[index], cmd.reply or self._ok)

    def read_status(self) -> StatusReading | None:
        st = self.profile.status
        status_line = self.options.status_line
        if st.get is None and status_line is not None and self.gettable():
            # No status query: any query's closing line tells the state.
            self.get(self.gettable()[0])
            assert self._state is not None
            return status_line.reading(self.profile, self._state, self.clock())
        if st.get is None or st.reply is None:
            return None
        fields = self.exchange(st.get.render(), st.reply, query=True)
        return status_reading(self.profile, st.reply, fields, self.clock())


class Device:
    """Console side of a text line protocol, answering from a simulated console's state."""

    def __init__(self, profile: Profile, console: ConsoleState) -> None:
        self.profile = profile
        self.console = console
        self.framer = make_framer(profile, incoming=False)
        self.options = line_options(profile)
        self._ok, self._error = self.options.ok, self.options.error
        #: When each command arrived (monotonic seconds) and its bytes, newest last.
        self.heard: deque[tuple[float, bytes]] = deque(maxlen=1000)
        self._errors: deque[tuple[int, str]] = deque(maxlen=32)  # read by error_query
        self._refusal: int | None = None  # the code of the command being refused
        self._gets: dict[bytes, tuple[str, str]] = {}
        #: Each command of a multi-command action -> (action, its place in the action).
        self._steps: dict[bytes, tuple[str, int]] = {}
        self._sets: list[tuple[Template, Parameter]] = []
        for name, param in profile.parameters.items():
            if param.get is not None:
                self._gets[param.get.render().encode("latin-1")] = ("param", name)
            if param.set is not None:
                self._sets.append((param.set, param))
        for name, cmd in profile.commands.items():
            self._gets[cmd.sends[-1].encode("latin-1")] = ("command", name)
            for index, text in enumerate(cmd.sends[:-1]):
                self._steps[text.encode("latin-1")] = (name, index)
        if profile.identity.get is not None:
            self._gets[profile.identity.get.render().encode("latin-1")] = ("identity", "")
        if profile.status.get is not None:
            self._gets[profile.status.get.render().encode("latin-1")] = ("status", "")
        if self.options.error_query is not None:
            self._gets[self.options.error_query.encode("latin-1")] = ("error_query", "")

    def frame(self, text: str) -> bytes:
        """Return one reply (which may span lines) as the console sends it."""
        t = self.profile.transport
        data = text.encode("latin-1")
        address = self.options.address
        if address is not None:
            lines = data.split(t.read_terminator) if t.read_terminator else [data]
            data = t.read_terminator.join(address.wrap(line, address.to_host) for line in lines)
        return t.reply_prefix + data + t.read_terminator

    def error(self, code: int) -> bytes:
        """Return the refusal of the command being answered (a simulator error code)."""
        options = self.options
        console_code = options.error_codes.get(code, code)
        self._refusal = console_code
        if options.error_query is not None:
            meaning = next((text for ours, text in REFUSALS.values() if ours == code), "")
            self._errors.append((console_code, meaning))
        if options.reply_end is not None or options.error_query is not None:
            return b""  # the reply_end line, or the error queue, tells
        if options.silent_refusal:
            meaning = next((text for ours, text in REFUSALS.values() if ours == code), "refused")
            return self.frame(options.silent_refusal[0].render(code=console_code, message=meaning))
        return self.frame(self._error.render(code=console_code)) if self._error is not None else b""

    def receive(self, data: bytes) -> bytes:
        """Return the console's answer to what the host sent."""
        options = self.options
        t = self.profile.transport
        out: list[bytes] = []
        now = time.monotonic()
        for line in self.framer.feed(data):
            if not line:
                continue
            self.heard.append((now, line))
            if options.echo:
                out.append(line + t.read_terminator)
            if options.address is not None:
                body = options.address.unwrap(line, options.address.to_console)
                if body is None:
                    continue  # for another device on the bus: not ours to answer
                line = body
            self._refusal = None
            query = self._gets.get(line, ("", ""))[0] in ("param", "identity", "status")
            out.append(self.answer(line))
            if options.reply_end is not None:
                out.append(self.frame(options.reply_end.render(code=self._refusal or 0)))
            elif options.status_line is not None and query:
                state = options.status_line.state_of(self.profile, self.console)
                out.append(self.frame(options.status_line.template.render(state=state)))
        return b"".join(out)

    def answer(self, line: bytes) -> bytes:
        c = self.console
        step = self._steps.get(line)
        if step is not None:
            # A leading command of a multi-command action: taken; the action runs on its last.
            cmd = self.profile.commands[step[0]]
            reply = cmd.reply or self._ok
            return self.frame(reply.render()) if reply is not None else b""
        kind_name = self._gets.get(line)
        if kind_name is not None:
            kind, name = kind_name
            if kind == "identity":
                ident = self.profile.identity
                assert ident.reply is not None
                return self.frame(ident.reply.render(model=ident.model, serial=c.serial,
                                                     firmware=c.firmware))
            if kind == "status":
                st = self.profile.status
                assert st.reply is not None
                return self.frame(st.reply.render(
                    fault=c.fault_code, interlock=int(c.interlock_open), firing=int(c.firing),
                    word=st.encode_word(c.fault_code, c.interlock_open, c.firing,
                                        getattr(c, "flags", ()))))
            if kind == "error_query":
                code, message = self._errors.popleft() if self._errors else (0, "no error")
                assert self.options.error_query_reply is not None
                return self.frame(self.options.error_query_reply.render(code=code,
                                                                        message=message))
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
            if param.values:
                word = fields.get("value", "").strip()
                if word not in param.values:
                    return self.error(ERR_RANGE)
                value = float(param.values.index(word))
            else:
                try:
                    raw = float(fields["value"])
                except (KeyError, ValueError):
                    return self.error(ERR_SYNTAX)
                value = param.conversion.to_canonical(raw / (param.wire_scale * param.set_scale))
            error = c.set(param.name, value)
            if error:
                return self.error(error)
            reply = _set_reply(param, self._ok, self.options)
            if reply is None:
                return b""
            return self.frame(reply.render(value=_wire_value(param, c.value(param.name), reply)))
        return self.error(ERR_SYNTAX)

    @cached_property
    def _render_pulse(self) -> Callable[[SimPulse], str]:
        """Return a function rendering a pulse's pushed line, generated once per profile.

        The simulator runs this once a pulse when it floods a port; generated like the
        driver's pulse builder, it costs a third of a generic loop over the fields, so a
        benchmark's console leaves the CPU to the host being measured.
        """
        spec = self.profile.pulses
        assert spec.line is not None
        constants: dict[str, object] = {"_format": spec.line.text.format}
        args = []
        for name in spec.line.fields:
            index = FIELD_INDEX[name]
            expr = f"p[{index}]"
            if name in ("seq", "handpiece"):
                expr = f"int({expr})"
            else:
                conversion = spec.fields[name]
                constants[f"o{index}"], constants[f"s{index}"] = conversion.offset, conversion.scale
                expr = f"({expr} - o{index}) / s{index}"
                if name in spec.line.integer_fields:
                    expr = f"int(round({expr}))"
            args.append(f"{name}={expr}")
        source = f"def render(p):\n    return _format({', '.join(args)})\n"
        exec(compile(source, f"<pulse line {spec.line.text!r}>", "exec"), constants)
        return constants["render"]  # type: ignore[return-value]

    def pulse(self, pulse: SimPulse) -> bytes:
        """Return the pushed line announcing a pulse."""
        spec = self.profile.pulses
        if spec.mode != "pushed" or spec.line is None:
            return b""
        return self.frame(self._render_pulse(pulse))

    def fault(self, code: int) -> bytes:
        """Return the pushed line announcing a fault (or nothing if the console pushes none)."""
        st = self.profile.status
        return self.frame(st.fault_line.render(code=code)) if st.fault_line is not None else b""
