"""Replay a transcript against the profile's driver and against its simulator; report differences.

Each command in the transcript is recognised as what the driver would send for one request
(identify, get NAME, set NAME VALUE, command NAME, status). Then:

- **driver**: a driver reads the recorded replies (through a `TranscriptLink`), so a reply the
  profile cannot read, a request it would word differently, or a line it takes for garbage
  shows up as a difference;
- **simulator**: the same requests go to a fresh simulated console built from the profile,
  and its answers are read by the same driver; an answer of another kind (accepted here,
  refused there, or missing) is a difference, another value is a note.

Only the driver/`Device` interface of the driver module is used, so a third-party protocol
is replayed the same way as the bundled ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from laserlog.config.drivers_registry import driver_module
from laserlog.domain.model import LinkEvent, PulseReading
from laserlog.errors import LaserlogError, PortError, ProtocolError
from laserlog.proving.transcript import TranscriptLink, TranscriptMismatch
from laserlog.sim.console import Console

if TYPE_CHECKING:
    from laserlog.config.profile import Profile
    from laserlog.link.driver import Driver
    from laserlog.link.transcript_file import Transcript

#: How long a replayed exchange waits for a reply that is not in the transcript.
REPLAY_TIMEOUT_S = 0.02


@dataclass(frozen=True, slots=True)
class Operation:
    """What a command in a transcript asks: identify, get, set, command, status or unknown."""

    kind: str
    name: str = ""
    value: float | None = None
    #: One command of a multi-command action (0 = the first), None for the whole action.
    step: int | None = None

    def __str__(self) -> str:
        if self.kind == "command" and self.step is not None:
            return f"command {self.name} ({self.step + 1})"
        if self.kind in ("get", "command"):
            return f"{self.kind} {self.name}"
        if self.kind == "set":
            return f"set {self.name} {self.value:g}"
        return self.kind


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a driver made of one exchange."""

    kind: str  # "ok" | "refused" | "no reply" | "mismatch" | "not replayed"
    value: Any = None
    detail: str = ""

    def __str__(self) -> str:
        if self.kind != "ok":
            return f"{self.kind}: {self.detail}" if self.detail else self.kind
        return _show(self.value)


@dataclass(slots=True)
class Step:
    """One command of the transcript and what each side made of it."""

    index: int
    t_s: float
    sent: bytes
    received: bytes
    operation: Operation
    console: Outcome = Outcome("not replayed")
    simulator: Outcome = Outcome("not replayed")
    pulses: int = 0
    garbled: list[bytes] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ReplayReport:
    """Every step of a replay, with what differed."""

    profile: Profile
    source: str
    steps: list[Step]
    pushed_pulses: int = 0

    @property
    def differences(self) -> list[tuple[Step, str]]:
        return [(step, d) for step in self.steps for d in step.differences]

    @property
    def ok(self) -> bool:
        return not self.differences

    def format(self, every_step: bool = False) -> str:
        """Return the report as text: the differing steps (or all), then a summary."""
        lines = [f"replay of {self.source} against profile {self.profile.id} "
                 f"({self.profile.protocol} driver and simulator)"]
        shown = [s for s in self.steps if every_step or s.differences or s.notes]
        if shown:
            lines.append(f"{'#':>4} {'t s':>9}  {'request':<28} {'console (recorded)':<26} "
                         f"{'simulator':<26} verdict")
        for step in shown:
            verdict = "DIFFERS" if step.differences else ("note" if step.notes else "same")
            console = _cut(self._shown(step, step.console), 26)
            simulator = _cut(self._shown(step, step.simulator), 26)
            request = _cut(self._request(step.operation), 28)
            lines.append(f"{step.index:>4} {step.t_s:>9.3f}  {request:<28} "
                         f"{console:<26} {simulator:<26} {verdict}")
            lines.extend(f"{'':>16}- {text}" for text in step.differences + step.notes)
        differing = len({id(s) for s, _ in self.differences})
        lines.append(f"{len(self.steps)} commands replayed, {differing} differ, "
                     f"{sum(1 for s in self.steps if s.notes)} with notes; "
                     f"{self.pushed_pulses} pushed pulse(s) read")
        return "\n".join(lines)


    def _request(self, op: Operation) -> str:
        param = self.profile.parameters.get(op.name)
        if op.kind != "set" or param is None or op.value is None:
            return str(op)
        return f"set {op.name} {param.shown(op.value)}"

    def _shown(self, step: Step, outcome: Outcome) -> str:
        """Return an outcome as text, a parameter's value in the console's own unit."""
        param = self.profile.parameters.get(step.operation.name)
        if outcome.kind != "ok" or param is None or not isinstance(outcome.value, float):
            return str(outcome)
        return param.shown(outcome.value)




def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple):
        return " ".join(_show(v) for v in value)
    return "" if value is None else str(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


class _Captured(Exception):
    """Raised by CaptureLink to stop a driver right after it wrote its request."""


class CaptureLink:
    """A link that records the first request a driver writes, then stops the driver."""

    url = "capture://"

    def __init__(self) -> None:
        self.sent = b""

    @property
    def is_open(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        self.sent = data
        raise _Captured

    def read_available(self, timeout_s: float) -> bytes:
        return b""

    def discard_input(self) -> None:
        pass

    def close(self) -> None:
        pass


class DeviceLink:
    """A link straight to a simulated console's `Device`, with no pty and no clock."""

    def __init__(self, device: Any, url: str = "sim://") -> None:
        self.device = device
        self.url = url
        self.inbox = bytearray()

    @property
    def is_open(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        self.inbox += self.device.receive(data)

    def read_available(self, timeout_s: float) -> bytes:
        data = bytes(self.inbox)
        self.inbox.clear()
        return data

    def discard_input(self) -> None:
        self.inbox.clear()

    def close(self) -> None:
        pass

    def unplug(self) -> None:
        raise PortError(f"{self.url} unplugged")


class _SetSpy(Console):
    """A console that only notes which setting a request would change."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self.seen: list[tuple[str, float]] = []

    def set(self, name: str, value: float) -> int:
        self.seen.append((name, value))
        return 0

    def run(self, command: str) -> int:
        return 0


def replay_profile(profile: Profile) -> Profile:
    """Return the profile as a replaying driver uses it: no ranges, no waiting."""
    transport = replace(profile.transport, timeout_s=REPLAY_TIMEOUT_S, command_gap_s=0.0)
    return replace(profile.without_ranges(), transport=transport)


class Recogniser:
    """Tell which request a command's bytes are, using the profile's own driver and device."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.module = driver_module(profile)
        self.requests: dict[bytes, Operation] = {}
        for op in self._operations():
            sent = self._probe(op)
            if sent:
                self.requests.setdefault(sent, op)
        self._spy = _SetSpy(profile)
        self._device = self.module.Device(profile, self._spy)

    def _operations(self) -> list[Operation]:
        p = self.profile
        ops = [Operation("identity"), Operation("status")]
        ops += [Operation("get", n) for n in p.parameters]
        for name, cmd in p.commands.items():
            steps = cmd.sends
            if len(steps) == 1:
                ops.append(Operation("command", name))
            else:  # a transcript holds each command of the action as a request of its own
                ops += [Operation("command", name, step=i) for i in range(len(steps))]
        return ops

    def _probe(self, op: Operation) -> bytes:
        link = CaptureLink()
        driver = self.module.Driver(replay_profile(self.profile), link)
        try:
            perform(driver, op)
        except _Captured:
            return link.sent
        except (LaserlogError, KeyError, NotImplementedError):
            return b""
        return b""

    def recognise(self, sent: bytes) -> Operation:
        """Return the operation these bytes request."""
        known = self.requests.get(sent)
        if known is not None:
            return known
        self._spy.seen.clear()
        try:
            self._device.receive(sent)
        except Exception:  # a device that chokes on a foreign request recognises nothing
            return Operation("unknown")
        if self._spy.seen:
            name, value = self._spy.seen[0]
            return Operation("set", name, value)
        return Operation("unknown")


def perform(driver: Driver, op: Operation) -> Any:
    """Run one operation on a driver and return what it read."""
    if op.kind == "identity":
        ident = driver.query_identity()
        return (ident.model, ident.serial, ident.firmware)
    if op.kind == "get":
        return driver.get(op.name)
    if op.kind == "set":
        assert op.value is not None
        return driver.set(op.name, op.value)
    if op.kind == "command":
        if op.step is not None:
            driver.command_step(op.name, op.step)  # type: ignore[attr-defined]
        else:
            driver.command(op.name)
        return None
    if op.kind == "status":
        status = driver.read_status()
        if status is None:
            raise ProtocolError("the profile has no status query")
        return (status.fault_code, status.interlock_open, status.firing)
    raise ProtocolError(f"no such operation {op}")


def _outcome(driver: Driver, op: Operation) -> Outcome:
    try:
        return Outcome("ok", perform(driver, op))
    except TranscriptMismatch as exc:
        return Outcome("mismatch", detail=str(exc))
    except ProtocolError as exc:
        text = str(exc)
        return Outcome("no reply" if text.startswith("no reply") else "refused", detail=text)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def replay(profile: Profile, transcript: Transcript, *, seed: int = 0) -> ReplayReport:
    """Replay `transcript` against the profile's driver and its simulator."""
    module = driver_module(profile)
    quick = replay_profile(profile)
    recogniser = Recogniser(profile)
    pairs = transcript.pairs()
    recorded_link = TranscriptLink(pairs, url=f"transcript:{transcript.source}")
    recorded = module.Driver(quick, recorded_link)
    console = Console(profile, seed=seed)
    simulated = module.Driver(quick, DeviceLink(module.Device(profile, console),
                                                url=f"sim:{profile.id}"))
    steps: list[Step] = []
    report = ReplayReport(profile, transcript.source, steps)
    sent_chunks = [c for c in transcript.chunks if c.direction == "tx"]
    first_pushed = 1 if pairs and pairs[0][0] is None else 0
    pairs_sent = zip(sent_chunks, pairs[first_pushed:], strict=True)
    for index, (chunk, (_, received)) in enumerate(pairs_sent, start=1):
        op = recogniser.recognise(chunk.data)
        step = Step(index, chunk.t_s, chunk.data, received or b"", op)
        steps.append(step)
        if op.kind == "unknown":
            step.differences.append(f"request {chunk.data!r} is not one the profile describes")
            recorded_link.write(chunk.data)  # its reply is read (or reported) below
        else:
            step.console = _outcome(recorded, op)
            step.simulator = _outcome(simulated, op)
            _compare(step, profile)
        recorded.pump(0)
        for obs in _drain(recorded):
            if isinstance(obs, PulseReading):
                step.pulses += 1
            elif isinstance(obs, LinkEvent) and obs.kind == "garbled":
                step.garbled.append(obs.raw)
        _drain(simulated)
        report.pushed_pulses += step.pulses
        for raw in step.garbled:
            step.differences.append(f"the driver cannot read {raw!r} from the console")
    return report


def _drain(driver: Driver) -> list[Any]:
    out = list(driver.pending)
    driver.pending.clear()
    return out


def _compare(step: Step, profile: Profile) -> None:
    console, sim = step.console, step.simulator
    if console.kind == "mismatch":
        step.differences.append(f"the driver words it differently: {console.detail}")
        return
    if console.kind != sim.kind:
        step.differences.append(f"console {console.kind}, simulator {sim.kind}"
                                + (f" ({sim.detail})" if sim.detail else ""))
        return
    if console.kind == "ok" and not _same(console.value, sim.value):
        if step.operation.name and step.operation.name == profile.pulses.counter:
            return  # the replayed simulator does not fire, so its shot counter stands still
        if step.operation.kind == "identity" and console.value[0] != sim.value[0]:
            step.differences.append(f"model {console.value[0]!r} vs {sim.value[0]!r}")
        else:
            param = profile.parameters.get(step.operation.name)
            shown = [param.shown(v) if param is not None and isinstance(v, float)
                     else _show(v) for v in (console.value, sim.value)]
            step.notes.append(f"value {shown[0]} recorded, {shown[1]} simulated")
