"""The conformance suite behind `laserlog profiles test`: does a console behave as its profile says?

By default the console is the profile's own simulator on a pseudo-terminal, so a new profile
can be proved before any hardware is near. With a port it is the real console, and then only
read-only queries are sent unless the caller allows firing (which also allows sets).

Checks, in order: identity; every get (a finite value inside the profile's range); every set
(a value inside the range is taken and read back, then the original restored; a value
outside the range is refused by the console or kept out); status and the fault table (each
fault raised in the simulator is reported with its code; an interlock fault refuses fire);
pulses (pushed or polled, each one completed into a storable row); reconnect (the port goes
away and comes back, and the same console identifies again).
"""

from __future__ import annotations

import math
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from laserlog.config.drivers_registry import driver_module
from laserlog.domain.model import Observation, PulseReading, StatusReading
from laserlog.errors import LaserlogError, PortError, ProtocolError
from laserlog.link.transport import Link

if TYPE_CHECKING:
    from laserlog.config.profile import Parameter, Profile
    from laserlog.link.driver import Driver
    from laserlog.sim.engine import Simulator

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
FIRE_COMMANDS = ("fire", "fire_on", "start")
STOP_COMMANDS = ("stop", "fire_off", "standby")
#: The simulator fires at least this fast during the suite, so pulses come quickly.
SIM_RATE_HZ = 20.0


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the conformance table."""

    group: str
    name: str
    status: str
    detail: str = ""


@dataclass(slots=True)
class Report:
    """Every check of one run, and what it ran against."""

    profile: Profile
    target: str
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def add(self, group: str, name: str, status: str, detail: str = "") -> Check:
        check = Check(group, name, status, detail)
        self.checks.append(check)
        return check

    def format(self) -> str:
        """Return the table of checks and a summary line."""
        width = max((len(f"{c.group} {c.name}".strip()) for c in self.checks), default=10)
        lines = [f"profiles test {self.profile.id} ({self.profile.name}) against {self.target}"]
        for c in self.checks:
            label = f"{c.group} {c.name}".strip()
            lines.append(f"  {c.status}  {label:<{width}}  {c.detail}".rstrip())
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in (PASS, SKIP, FAIL)}
        lines.append(f"{len(self.checks)} checks: {counts[PASS]} passed, {counts[SKIP]} skipped, "
                     f"{counts[FAIL]} failed")
        return "\n".join(lines)




def _step(param: Parameter) -> float:
    """Return the resolution of a parameter on the wire, in its canonical unit."""
    steps: list[float] = []
    for template, scale in ((param.reply, param.wire_scale),
                            (param.set, param.wire_scale * param.set_scale)):
        if template is None or "value" not in template.fields:
            continue
        if "value" in template.integer_fields:
            steps.append(1.0 / scale)
            continue
        spec = _spec_of(template.text)
        if spec and spec[-1] in "fF" and "." in spec:
            digits = spec.rsplit(".", 1)[1][:-1]
            if digits.isdigit():
                steps.append(10.0 ** -int(digits) / scale)
    if param.encoding is not None and param.encoding in "bBhHiIqQ":
        steps.append(1.0 / param.wire_scale)
    return max(steps, default=0.0) * abs(param.conversion.scale)


def _spec_of(text: str) -> str:
    import string

    for _, name, spec, _ in string.Formatter().parse(text):
        if name == "value":
            return spec or ""
    return ""


def _close(a: float, b: float, param: Parameter) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=_step(param) * 0.51 + 1e-12)


class Suite:
    """Run the checks against one console, simulated or real."""

    def __init__(self, profile: Profile, *, port: str | None = None, allow_fire: bool = False,
                 seed: int = 0, pulses: int = 5, log: Callable[[str], None] | None = None,
                 workdir: Path | None = None) -> None:
        self.profile = profile
        self.port = port
        self.simulated = port is None
        self.may_write = self.simulated or allow_fire
        self.seed = seed
        self.pulse_target = pulses
        self.log = log
        self.workdir = workdir
        target = f"port {port}" if port else "its simulator"
        if port and not allow_fire:
            target += " (read-only; --allow-fire also sets and fires)"
        self.report = Report(profile, target)
        self.sim: Simulator | None = None
        self.link: Link | None = None
        self.driver: Driver | None = None
        self.module = driver_module(profile)
        self.values: dict[str, float] = {}  # what each get read, canonical units
        #: Settings changed on the console and not yet put back: name -> (original, now).
        self.changed: dict[str, tuple[float, float]] = {}

    # -- plumbing --------------------------------------------------------------------------
    def _add(self, group: str, name: str, status: str, detail: str = "") -> None:
        check = self.report.add(group, name, status, detail)
        if self.log is not None:
            self.log(f"  {check.status}  {f'{group} {name}'.strip()}  {detail}".rstrip())

    def _start_sim(self, path: Path) -> None:
        from laserlog.sim.engine import Simulator

        rate = max(SIM_RATE_HZ, _console_rate(self.profile))
        self.sim = Simulator(self.profile, path, seed=self.seed, rate_hz=rate).start()

    def _open(self, url: str) -> Driver:
        self.link = Link(url, self.profile.transport).open()
        self.link.discard_input()
        self.driver = self.module.Driver(self.profile, self.link)
        return self.driver

    def _drain(self, seconds: float = 0.0) -> list[Observation]:
        assert self.driver is not None
        out: list[Observation] = []
        deadline = time.monotonic() + seconds
        while True:
            out.extend(self.driver.poll(0.02))
            if time.monotonic() >= deadline:
                return out

    @contextmanager
    def _target(self) -> Iterator[str]:
        if not self.simulated:
            assert self.port is not None
            yield self.port
            return
        with tempfile.TemporaryDirectory(prefix="laserlog-test-", dir=self.workdir) as tmp:
            path = Path(tmp) / "console"
            self._start_sim(path)
            try:
                yield str(path)
            finally:
                if self.link is not None:
                    self.link.close()
                if self.sim is not None:
                    self.sim.stop()

    # -- the suite -------------------------------------------------------------------------
    def plan(self) -> list[str]:
        """Return what the run will send, in order, before it sends anything."""
        profile = self.profile
        readable = [n for n, p in profile.parameters.items()
                    if p.readable and (p.get is not None or p.code is not None)]
        settable = [n for n in profile.parameters if _writable(profile, n)]
        lines = ["plan: identify the console; read " + (", ".join(readable) or "no setting")]
        if not self.may_write:
            lines.append("plan: no set and no fire (read-only; --allow-fire also sets and "
                         "fires)")
            return lines
        if settable:
            lines.append("plan: set " + ", ".join(settable) + " each to a value inside its "
                         "range, read it back where the console can, and restore it")
        if self.simulated:
            lines.append("plan: send values outside the range to the simulator only, to see "
                         "them refused")
        else:
            lines.append("plan: never send a value outside the profile's range; settings the "
                         "console cannot report are not changed (they could not be restored)")
        fire = next((c for c in FIRE_COMMANDS if c in profile.commands), None)
        if fire is not None and profile.kind != "meter":
            stop = next((c for c in STOP_COMMANDS if c in profile.commands), None)
            lines.append(f"plan: fire with {profile.commands[fire].send!r} until "
                         f"{self.pulse_target} pulses arrive"
                         + (f", then stop with {profile.commands[stop].send!r}" if stop else ""))
        return lines

    def run(self) -> Report:
        """Run every check; return the report (a failed check never stops the others)."""
        if self.log is not None:
            for line in self.plan():
                self.log(line)
        with self._target() as url:
            try:
                driver = self._open(url)
            except PortError as exc:
                self._add("open", "", FAIL, str(exc))
                return self.report
            try:
                if self._guarded("identity", lambda: self._identity(driver)):
                    self._guarded("get", lambda: self._gets(driver))
                    try:
                        self._guarded("set", lambda: self._sets(driver))
                    finally:
                        self._restore_all(driver)
                    self._guarded("status", lambda: self._status(driver))
                    self._guarded("fault", lambda: self._faults(driver))
                    self._guarded("pulses", lambda: self._pulses(driver))
                    self._guarded("reconnect", lambda: self._reconnect(url))
            finally:
                if self.link is not None:
                    self.link.close()
        return self.report

    def _restore_all(self, driver: Driver) -> None:
        """Put back every setting still changed; say loudly which could not be."""
        for name, (original, now) in list(self.changed.items()):
            param = self.profile.parameters[name]
            try:
                driver.set(name, original)
            except (LaserlogError, OSError) as exc:
                self._add("restore", name, FAIL, f"!! {name} LEFT AT {param.shown(now)}: could "
                          f"not restore {param.shown(original)} ({exc}); set it on the "
                          "console's panel")
            else:
                del self.changed[name]

    def _guarded(self, group: str, check: Callable[[], object]) -> object:
        """Run one group of checks; an exception from the driver fails it, not the suite."""
        try:
            return check()
        except Exception as exc:  # a driver bug is a finding to report, not a crash
            self._add(group, "", FAIL, f"the driver raised {type(exc).__name__}: {exc}")
            return None

    def _identity(self, driver: Driver) -> bool:
        ident = self.profile.identity
        try:
            identity = driver.identify()
        except LaserlogError as exc:
            self._add("identity", "", FAIL, str(exc))
            return False
        if ident.get is None and ident.reply is None and ident.code is None:
            self._add("identity", "", SKIP, f"no identity query in the profile; taken as model "
                      f"{identity.model} (a swapped console cannot be refused)")
            return True
        detail = f"model {identity.model}, serial {identity.serial or '-'}, firmware " \
                 f"{identity.firmware or '-'}"
        if self.simulated and identity.serial != self.profile.simulator.serial:
            self._add("identity", "", FAIL, f"{detail}; expected serial "
                      f"{self.profile.simulator.serial} (simulator.serial)")
            return True
        self._add("identity", "", PASS, detail)
        return True

    def _gets(self, driver: Driver) -> None:
        for name in driver.gettable():
            param = self.profile.parameters[name]
            try:
                value = driver.get(name)
            except ProtocolError as exc:
                self._add("get", name, FAIL, str(exc))
                continue
            except (ValueError, KeyError, ArithmeticError) as exc:
                self._add("get", name, FAIL, f"the driver raised {type(exc).__name__}: {exc}")
                continue
            self.values[name] = value
            shown = param.shown(value)
            if not math.isfinite(value):
                self._add("get", name, FAIL, f"{shown} is not a finite number")
            elif not param.in_range(value) and not _near_range(param, value):
                self._add("get", name, FAIL, f"{shown} is outside the profile's range "
                          f"{_range(param)}")
            else:
                self._add("get", name, PASS, shown)
        if not driver.gettable():
            self._add("get", "", SKIP, "the profile has no readable parameter")

    def _sets(self, driver: Driver) -> None:
        settable = [n for n, p in self.profile.parameters.items() if _writable(self.profile, n)]
        if not settable:
            self._add("set", "", SKIP, "the profile has no settable parameter")
            return
        if not self.may_write:
            for name in settable:
                self._add("set", name, SKIP, "read-only run on a real console (--allow-fire "
                          "also sets)")
            return
        assert self.link is not None
        unchecked = self.module.Driver(self.profile.without_ranges(), self.link)
        for name in settable:
            self._set_one(driver, unchecked, name)

    def _set_one(self, driver: Driver, unchecked: Driver, name: str) -> None:
        param = self.profile.parameters[name]
        readable = name in driver.gettable()
        original = self.values.get(name)
        if original is None and not self.simulated:
            # Its value now is unknown, so a change could not be undone on the console.
            self._add("set", name, SKIP, "the console cannot report it, so its current value "
                      "could not be restored: not changed on a real console")
            self._refusal(driver, unchecked, name)
            return
        if original is None:
            original = param.initial if param.initial is not None else param.min
        target = _inside(param, original)
        if original is not None and not _close(original, target, param):
            self.changed[name] = (original, target)  # from before sending: a lost reply counts
        try:
            taken = driver.set(name, target)
            back = driver.get(name) if readable else taken
        except ProtocolError as exc:
            self._add("set", name, FAIL, f"{param.shown(target)}: {exc}")
            return
        if not _close(back, target, param):
            self._add("set", name, FAIL, f"set {param.shown(target)}, read back "
                      f"{param.shown(back)}")
        else:
            restored = ""
            if name in self.changed and original is not None:
                try:
                    driver.set(name, original)
                except ProtocolError as exc:
                    restored = f"; could not restore {param.shown(original)}: {exc}"
                else:
                    del self.changed[name]
                    restored = f"; restored {param.shown(original)}"
            how = "read back" if readable else "acknowledged (the console cannot report it)"
            self._add("set", name, PASS, f"{param.shown(target)} {how}{restored}")
        self._refusal(driver, unchecked, name)

    def _refusal(self, driver: Driver, unchecked: Driver, name: str) -> None:
        param = self.profile.parameters[name]
        outside = _outside(param)
        if not outside:
            self._add("refuse", name, SKIP, "no range in the profile")
            return
        sent_before = self._sent_bytes()
        try:
            driver.set(name, outside[0])
        except ProtocolError:
            pass
        else:
            self._add("refuse", name, FAIL, f"the driver sent {param.shown(outside[0])}, "
                      f"outside {_range(param)}")
            return
        if self._sent_bytes() != sent_before:
            self._add("refuse", name, FAIL, f"the driver refused {param.shown(outside[0])} "
                      "only after sending something")
            return
        if not self.simulated or not param.range_checked:
            why = ("the console's own refusal is proven against the simulator only" if not
                   self.simulated else "the console does not range-check it (range_checked "
                   "= false): laserlog's check is the only guard")
            self._add("refuse", name, PASS, f"the driver refuses {param.shown(outside[0])} "
                      f"before sending; {why}")
            return
        original = self.values.get(name)
        for value in outside:
            try:
                unchecked.set(name, value)
            except ProtocolError as exc:
                how = "no reply, taken as refused" if str(exc).startswith("no reply") else "refused"
                kept = ""
                if name in driver.gettable():
                    back = driver.get(name)
                    if not param.in_range(back):
                        self._add("refuse", name, FAIL, f"{param.shown(value)} {how}, yet "
                                  f"the console now reads {param.shown(back)}")
                        return
                    kept = f"; still {param.shown(back)}"
                self._add("refuse", name, PASS, f"{param.shown(value)} {how}: {exc}{kept}")
                return
            except (ValueError, OverflowError, ArithmeticError, struct.error):
                continue  # cannot be written on the wire at all: try the other side
            if name not in driver.gettable():
                self._add("refuse", name, FAIL, f"{param.shown(value)} accepted without "
                          "an error, and it cannot be read back")
                return
            back = driver.get(name)
            if param.in_range(back):
                self._add("refuse", name, PASS, f"{param.shown(value)} not taken (no error "
                          f"reply; the console kept {param.shown(back)})")
            else:
                self._add("refuse", name, FAIL, f"{param.shown(value)} taken: the console "
                          f"now reads {param.shown(back)}, outside {_range(param)}")
                if original is not None:
                    driver.set(name, original)
            return
        self._add("refuse", name, SKIP, "values outside the range cannot be written on the wire")

    def _sent_bytes(self) -> int:
        """Return how many bytes went to the console so far (-1 when the link cannot say)."""
        return getattr(self.link, "bytes_sent", -1)

    def _status(self, driver: Driver) -> None:
        st = self.profile.status
        if not status_queried(self.profile):
            self._add("status", "", SKIP, "the profile has no status query")
            return
        try:
            status = driver.read_status()
        except ProtocolError as exc:
            self._add("status", "", FAIL, str(exc))
            return
        if status is None:
            self._add("status", "", FAIL, "the driver read no status although the profile "
                      "has a status query")
            return
        detail = (f"fault {status.fault_code}, interlock "
                  f"{'open' if status.interlock_open else 'closed'}, firing "
                  f"{'-' if status.firing is None else 'yes' if status.firing else 'no'}")
        if status.fault_code and status.fault_code not in st.faults:
            self._add("status", "", FAIL, f"{detail}: code {status.fault_code} is not in "
                      "[[status.faults]]")
        else:
            self._add("status", "", PASS, detail)

    def _faults(self, driver: Driver) -> None:
        faults = self.profile.status.faults
        if not faults:
            self._add("fault", "", SKIP, "the profile has no fault table")
            return
        if self.sim is None:
            self._add("fault", "", SKIP, f"{len(faults)} codes in the table; raising them "
                      "needs the simulator")
            return
        st = self.profile.status
        pushed = st.fault_line is not None or st.fault_code is not None
        queried = status_queried(self.profile)
        for code, fault in faults.items():
            if not code:
                continue
            if not pushed and not queried:
                self._add("fault", f"{code}", SKIP, "the console neither pushes nor reports "
                          "faults")
                continue
            self._drain()
            self.sim.inject_fault(code)
            seen = self._fault_seen(driver, code, pushed)
            refused = ""
            if fault.interlock and seen:
                refused = self._fire_refused(driver)
            with self.sim._lock:
                self.sim.console.clear_fault()
            self._drain(0.05)
            if not seen:
                self._add("fault", f"{code}", FAIL, f"{fault.name}: raised in the simulator, "
                          "not reported by the driver")
            elif refused.startswith("FAIL"):
                self._add("fault", f"{code}", FAIL, f"{fault.name}: {refused[5:]}")
            else:
                self._add("fault", f"{code}", PASS, f"{fault.name} ({fault.severity})"
                          + (f"; {refused}" if refused else ""))

    def _fault_seen(self, driver: Driver, code: int, pushed: bool) -> bool:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if pushed:
                for obs in driver.poll(0.05):
                    if isinstance(obs, StatusReading) and obs.fault_code == code:
                        return True
            else:
                try:
                    status = driver.read_status()
                except ProtocolError:
                    return False
                return status is not None and status.fault_code == code
        return False

    def _fire_refused(self, driver: Driver) -> str:
        fire = next((c for c in FIRE_COMMANDS if c in self.profile.commands), None)
        if fire is None:
            return ""
        try:
            driver.command(fire)
        except ProtocolError as exc:
            return f"{fire} refused while open ({exc})"
        stop = next((c for c in STOP_COMMANDS if c in self.profile.commands), None)
        if stop is not None:
            driver.command(stop)
        if self.sim is not None and not self.sim.console.firing:
            return f"{fire} took no effect while open"
        return f"FAIL {fire} accepted while the interlock is open"

    def _pulses(self, driver: Driver) -> None:
        profile = self.profile
        if profile.kind == "meter":
            self._add("pulses", "", SKIP, "an energy meter: it measures pulses, it does not "
                      "emit them")
            return
        if not self.may_write:
            self._add("pulses", "", SKIP, "firing a real console needs --allow-fire")
            return
        fire = next((c for c in FIRE_COMMANDS if c in profile.commands), None)
        stop = next((c for c in STOP_COMMANDS if c in profile.commands), None)
        try:
            driver.start()
            if fire is not None:
                driver.command(fire)
            elif self.sim is not None:
                self.sim.console.firing = True  # fired from the console's own panel
            else:
                self._add("pulses", "", SKIP, "no fire command in the profile: fire from the "
                          "console and watch `laserlog record`")
                return
        except ProtocolError as exc:
            self._add("pulses", "", FAIL, f"could not start firing: {exc}")
            return
        readings: list[PulseReading] = []
        rate = _console_rate(profile) if self.sim is None else max(SIM_RATE_HZ,
                                                                    _console_rate(profile))
        deadline = time.monotonic() + self.pulse_target / rate + 3.0
        while len(readings) < self.pulse_target and time.monotonic() < deadline:
            readings.extend(o for o in driver.poll(0.05) if isinstance(o, PulseReading))
        try:
            if stop is not None:
                driver.command(stop)
            elif self.sim is not None:
                self.sim.console.firing = False
            driver.stop()
        except ProtocolError as exc:
            self._add("pulses", "stop", FAIL, str(exc))
        self._judge_pulses(driver, readings)

    def _judge_pulses(self, driver: Driver, readings: list[PulseReading]) -> None:
        from laserlog.domain.model import SettingReading
        from laserlog.recording.completion import PulseCompleter
        from laserlog.storage.rows import EventRow

        mode = self.profile.pulses.mode
        if len(readings) < self.pulse_target:
            self._add("pulses", mode, FAIL, f"{len(readings)} of {self.pulse_target} pulses "
                      "arrived")
            return
        completer = PulseCompleter(self.profile, 0)
        for name, value in driver.settings.items():
            completer.setting(SettingReading(0.0, name, value))
        events: list[EventRow] = []
        rows = [completer.pulse(r, events) for r in readings]
        bad = [e for e in events if e.kind in ("invalid_pulse", "disagreement", "gap",
                                               "counter_implausible")]
        if any(row is None for row in rows) or bad:
            self._add("pulses", mode, FAIL, "; ".join(e.message for e in bad[:3]) or
                      "a pulse could not be completed into a row")
            return
        first = rows[0]
        assert first is not None
        seqs = [r.seq for r in readings]
        energy, fluence, duration, regime = first[5], first[6], first[3], first[4]
        detail = (f"{len(rows)} pulses, seq {seqs[0]}..{seqs[-1]}; first: "
                  f"{_num(energy, 'J')}, {_num(fluence, 'J/cm2')}, {duration:.4g} ps ({regime})")
        unset = completer.unset_energy_source()
        if energy is None and unset:
            self._add("pulses", mode, PASS, detail + f": no energy yet, as it comes from "
                      f"setting {unset}, which the console cannot report and this run did "
                      "not set; a session knows it once laserlog sets it")
        elif energy is None:
            self._add("pulses", mode, FAIL, detail + ": no energy (give pulses.units.energy, "
                      "an energy parameter or [pulses.energy_transfer])")
        else:
            self._add("pulses", mode, PASS, detail)

    def _reconnect(self, url: str) -> None:
        assert self.link is not None and self.driver is not None
        before = self.driver.identity
        if self.sim is not None:
            # Unplug: the pty vanishes under the open port, then a fresh one appears.
            path = self.sim.path
            self.sim.stop()
            lost = False
            try:
                for _ in range(5):
                    self.link.read_available(0.02)
            except PortError:
                lost = True
            self.link.close()
            self._start_sim(path)
            if not lost:
                self._add("reconnect", "", FAIL, "the port kept working after the console's "
                          "pty was unplugged")
                return
        self.link.close()
        try:
            driver = self._open(url)
            identity = driver.identify(before.serial if before and before.serial else None)
        except LaserlogError as exc:
            self._add("reconnect", "", FAIL, str(exc))
            return
        self._add("reconnect", "", PASS, f"port reopened, {identity.model} "
                  f"{identity.serial or ''} identified again".replace("  ", " "))


def status_queried(profile: Profile) -> bool:
    """Tell whether the console's status can be asked: a status query, or a status line
    closing every query's reply ([line.status_line])."""
    st = profile.status
    return st.get is not None or st.code is not None or "status_line" in profile.protocol_options


def _num(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.4g} {unit}"


def _range(param: Parameter) -> str:
    low = "" if param.min is None else param.shown(param.min)
    high = "" if param.max is None else param.shown(param.max)
    return f"{low}..{high}"


def _near_range(param: Parameter, value: float) -> bool:
    """Tell whether a value is outside the range by less than the wire's resolution."""
    step = _step(param) * 0.51
    return ((param.min is None or value >= param.min - step)
            and (param.max is None or value <= param.max + step))


def _writable(profile: Profile, name: str) -> bool:
    param = profile.parameters[name]
    if param.set is not None:
        return True
    writable = profile.protocol_options.get("writable")
    return param.code is not None and isinstance(writable, list) and name in writable


def _inside(param: Parameter, original: float | None) -> float:
    """Return a value inside the range, other than `original` when the range allows."""
    bounds = [b for b in (param.min, param.max) if b is not None]
    for bound in bounds:
        if original is None or not _close(bound, original, param):
            return bound
    if original is not None:
        return original
    return 0.0


def _outside(param: Parameter) -> list[float]:
    """Return values just outside the range: above max, then below min."""
    out: list[float] = []
    span = (param.max - param.min) if param.min is not None and param.max is not None else 0.0
    if param.max is not None:
        step = max(span * 0.5, abs(param.max) * 0.1, _step(param) * 2, 1e-9)
        out.append(param.max + step)
    if param.min is not None:
        step = max(span * 0.5, abs(param.min) * 0.1, _step(param) * 2, 1e-9)
        out.append(param.min - step)
    return out


def _console_rate(profile: Profile) -> float:
    param = profile.parameters.get("rep_rate")
    if param is not None and param.initial is not None:
        return param.initial
    return profile.simulator.rep_rate_hz or profile.pulses.fixed.get("rep_rate", 1.0)


def run_suite(profile: Profile, **kw: object) -> Report:
    """Run the conformance suite (see Suite for the options) and return its report."""
    return Suite(profile, **kw).run()  # type: ignore[arg-type]
