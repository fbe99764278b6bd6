"""Record one treatment session: identify the console, log every pulse, end with totals.

The recorder owns the link and supervises it: when the port fails it records the loss,
reopens with back-off, re-identifies (refusing another serial number), restarts pulses
and records the restoration. Totals are counted here, from what is committed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import Profile
from laserlog.domain.model import (
    DeviceIdentity,
    LinkEvent,
    Observation,
    PulseReading,
    SettingReading,
    StatusReading,
)
from laserlog.domain.units import CANONICAL
from laserlog.errors import (
    ConsoleNotReady,
    IdentityMismatch,
    LaserlogError,
    PortError,
    ProtocolError,
    RecorderError,
    SessionError,
    StoreError,
)
from laserlog.link.driver import Driver
from laserlog.link.portlock import PortLock
from laserlog.link.transport import Link
from laserlog.recording import courses
from laserlog.recording.completion import PulseCompleter
from laserlog.recording.contract import (
    Contract,
    CourseRequest,
    CourseStart,
    SessionInfo,
    console_trouble,
)
from laserlog.recording.envelopes import EnvelopeCheck, cells_json, session_envelope
from laserlog.recording.sessionreview import session_review
from laserlog.storage.rows import EventRow, PulseAt, SessionEnd
from laserlog.storage.store import Store, locked, utc_now
from laserlog.storage.writer import (
    FLUSH_INTERVAL_S,
    FLUSH_ROWS,
    Batch,
    BatchWriter,
    LockPatience,
    spill,
)

RECONNECT_BACKOFF_S = (0.1, 0.2, 0.3, 0.5)


@dataclass(slots=True)
class Totals:
    """What the session has delivered so far, as the recorder counts it."""

    pulses: int = 0
    energy_j: float = 0.0
    min_fluence_j_cm2: float | None = None
    max_fluence_j_cm2: float | None = None
    regimes: set[str] = field(default_factory=set)
    missing_pulses: int = 0
    #: Shots fired whose reading could not be physical: never pulses, never in energy_j.
    unknown_dose: int = 0
    events: int = 0
    garbled: int = 0
    link_losses: int = 0
    interlock_open: bool = False
    fault_code: int = 0
    #: When the console last reported its status (Unix seconds); None: not yet this session.
    status_unix_s: float | None = None


class Recorder:
    """Record one session from one console into one database."""

    def __init__(self, store: Store, profile: Profile, port: str, *,
                 expect_serial: str | None = None,
                 on_event: Callable[[EventRow], None] | None = None,
                 on_pulse: Callable[[tuple], None] | None = None,
                 wrap_link: Callable[[Link], Link] | None = None,
                 profile_dirs: list[str] | None = None) -> None:
        self.store = store
        # Searched before the usual profile folders for the profiles the site file names.
        self.profile_dirs = profile_dirs
        # Wraps each link the recorder opens, e.g. a transcript spy (laserlog.link.transcript_file).
        self.wrap_link = wrap_link
        self.profile = profile
        self.port = port
        self.expect_serial = expect_serial
        self.on_event = on_event
        # Called in the recording thread with each stored pulse row (storage.rows.PULSE_COLUMNS
        # order); a front end passes a bounded deque's append, so the screen never slows this.
        self.on_pulse = on_pulse
        self.totals = Totals()
        self.identity: DeviceIdentity | None = None
        self.session_id: int | None = None
        self.link: Link | None = None
        self.driver: Driver | None = None
        self.writer: BatchWriter | None = None
        self.completer: PulseCompleter | None = None
        self._batch = Batch()
        self._last_flush = time.monotonic()
        self._link_up = False
        self._port_lock = PortLock(port)
        self._disk_full = False
        self._db_locked = False
        self._spills_seen = 0
        self._db_file: tuple[int, int] | None = None  # (device, inode) the session writes to
        self.interrupted_sessions: list[int] = []
        self._markers = 0  # numbered markers of this session
        #: The pass marked last (number, sub-area); None before the first.
        self.current_pass: tuple[int, str] | None = None
        #: What the course rules made of the start (kind, course, plan).
        self.course = CourseStart()
        #: What the start found that does not stop the session (a second anchor that cannot
        #: be written): the front end shows it; the session holds it as an event too.
        self.warnings: list[str] = []
        #: A test spot's pulse limit (the site's test_spot_max_pulses); None: no limit.
        self.pulse_limit: int | None = None
        #: Whether the limit was reached: the session then ends (`run` returns).
        self.at_limit = False
        #: Whether a pulse above the tested fluence stops emission (site: "refuse").
        self.stop_above_tested = False
        self._stop_sent = False

    @property
    def link_up(self) -> bool:
        """Whether the console answers (False from a loss until it is reconnected)."""
        return self._link_up

    # -- lifecycle -------------------------------------------------------------------------
    def connect(self) -> DeviceIdentity:
        """Open the port and identify the console (before any session exists)."""
        if not self._port_lock.held:
            self.store.check_complete()
            self._port_lock.acquire()
            # Holding the port's lock, any session still 'recording' on it lost its recorder.
            self.interrupted_sessions = self.store.mark_interrupted(self.port)
        self.link = Link(self.port, self.profile.transport).open()
        if self.wrap_link is not None:
            self.link = self.wrap_link(self.link)
        try:
            self.driver = driver_module(self.profile).Driver(self.profile, self.link)
            self.link.discard_input()
            identity = self.driver.identify(self.expect_serial or (
                self.identity.serial if self.identity else None))
        except BaseException:
            self.link.close()
            raise
        self.identity = identity
        self._link_up = True
        return identity

    def start(self, info: SessionInfo, *, resumes: int | None = None,
              contract: Contract | None = None, start_over: str = "",
              course: CourseRequest | None = None) -> int:
        """Start the session: validate its details, connect, record the start and settings.

        `contract`: the site's start-of-session contract the details must meet (a person's
        start always has one; without it only the stored floor, `SessionInfo.validated`).
        With a contract the console's status is read now: a fault or an open interlock
        refuses the start (ConsoleNotReady) unless `start_over` gives the operator's reason
        (whose authority the front end has checked), which the session records.
        `resumes` names an interrupted session this one continues: the first pulse's
        sequence number then reveals how many pulses the interruption lost (and its kind
        and course). `course`: the course rules' request (contract.Contract.course_start).
        """
        info = (contract.check(info, self.profile.wavelengths_nm, profile=self.profile)
                if contract is not None else info.validated())
        if contract is not None:
            plan = contract.course_start(self.store.conn, course or CourseRequest(),
                                         {"client": info.client_ref, "area": info.area,
                                          "skin": info.skin_type}, self.profile.id)
        else:
            kind, course_id = (courses.kind_of(self.store.conn, resumes) if resumes is not None
                               else ("one_off", None))
            plan = CourseStart(kind, course_id)
        self.course = plan
        identity = self.connect() if self.driver is None else self.identity
        assert identity is not None and self.driver is not None
        device_id = self.store.device_id(self.profile.id, identity.model, identity.serial,
                                         identity.firmware)
        # The officer's limits and calibration policy (site file), the anchor files; refuses
        # a broken site file and an anchor that cannot be written.
        review = session_review(self.store, self.profile, device_id, self.profile_dirs)
        self.warnings = review.warnings
        # The console answers every read of the start (settings, counter, streaming) before
        # the session exists: a console that cannot (another profile's console, a broken
        # link) leaves no session behind to count in reports or to offer to --resume.
        trouble = self._trouble_now() if contract is not None else ""
        if trouble and not start_over.strip():
            raise ConsoleNotReady(f"{trouble}; to start anyway, give the reason")
        # The settings the start is judged on are read now, never taken from older readings,
        # and before the console is asked for pulses: a refused start leaves it as it was.
        refusal = ""
        if contract is not None:
            settings = self.driver.read_settings()
            refusal = contract.console_refusal(plan, settings, self.profile, info.skin_type)
        if refusal:
            raise SessionError(f"the session was not started: {refusal}")
        counter_read_unix_s = time.time()  # at the latest: a later time would believe less
        self.driver.start(settings_read=contract is not None)
        if contract is not None:
            if plan.kind == "test_spot":
                self.pulse_limit = contract.courses.test_spot_max_pulses
            self.stop_above_tested = contract.courses.above_test_spot == "refuse"
        self.session_id = self.store.create_session(
            device_id=device_id, profile_id=self.profile.id, port=self.port,
            operator_id=info.operator_id, client_ref=info.client_ref, area=info.area,
            skin_type=info.skin_type, eyewear_checked=info.eyewear_checked,
            checklist_json=json.dumps(info.checklist, sort_keys=True) if info.checklist else None,
            resumes_session_id=resumes,
            kind=(plan.kind, plan.course_id, plan.override_by, plan.override_role,
                  plan.override_reason),
            # The course rules' clock: the interval to the next session counts from here.
            started_utc=courses.utc_text(courses.now()))
        self.completer = PulseCompleter(self.profile, self.session_id, limits=review.limits)
        if plan.kind == "course" and plan.tested is not None:
            self.completer.tested = courses.SpotFluenceCheck(plan.tested)
        envelope = session_envelope(self.profile, review.envelopes, info.skin_type)
        if envelope is not None:
            self.completer.envelope = EnvelopeCheck(envelope)
        if resumes is not None:
            last = self.store.last_pulse(resumes)
            if last is not None:
                self.completer.last_seq, self.completer.last_unix_s = last
            self.completer.blind = True
        self.writer = BatchWriter(self.store.path, self.session_id)
        db_file = os.stat(self.store.path)
        self._db_file = (db_file.st_dev, db_file.st_ino)
        now = time.time()
        if not info.eyewear_checked:
            self._event(EventRow(now, "checklist", "warning", None,
                                 "eyewear check not confirmed at session start"))
        for event in review.events:  # calibration missing, overdue or failed; an anchor away
            self._event(event)
        if envelope is not None:  # the envelope in force, as the session holds it
            self._event(EventRow(now, "envelope", "info", None, envelope.line(),
                                 raw=cells_json(envelope.cells())))
        avoid = (contract.wavelength_warning(self.profile, info.skin_type, self.driver.settings)
                 if contract is not None else "")
        if avoid:
            self._event(EventRow(now, "envelope_avoid", "warning", None, avoid))
            self.warnings.append(avoid)
        for warning in plan.warnings:
            early = plan.override_by is not None and warning.startswith("started ")
            self._event(EventRow(now, "interval_override" if early else "interval_late",
                                 "warning", None, warning))
            self.warnings.append(warning)
        if trouble:
            self._event(EventRow(now, "start_over_fault", "warning", self.totals.fault_code or None,
                                 f"started by {info.operator_id} although the {trouble}; "
                                 f"reason: {' '.join(start_over.split())[:500]}"))
        if resumes is None:
            self.completer.baseline_seq = self.driver.counter_at_start
            self.completer.baseline_unix_s = counter_read_unix_s
        self.ingest(self.driver.poll(0.0))
        self.flush()
        return self.session_id

    def _trouble_now(self) -> str:
        """Read the console's status now (when its profile says how); return its trouble."""
        status = self.profile.status
        if self.driver is None or (status.get is None and status.code is None):
            return ""
        reading = self.driver.read_status()
        if reading is None:
            return ""
        self.totals.interlock_open = reading.interlock_open
        self.totals.fault_code = reading.fault_code
        return console_trouble(self.profile, reading.interlock_open, reading.fault_code)

    def end(self, reason: str = "ended by operator", status: str = "ended") -> Totals:
        """Stop pulses, commit everything and close the session with its totals.

        A database another program keeps locked gets time (writer.LockPatience: up to the
        minute rows may wait, a second once a signal asks to stop); what it still cannot
        take, rows and the session's end, goes to a recovery file that the StoreError
        raised names: `laserlog recover` imports the rows and ends the session.
        """
        if self.driver is not None and self._link_up:
            try:
                self.driver.stop()
                last = self.driver.poll(0.0)
                if self.completer is not None:  # None: the start failed before the session
                    self.ingest(last)
            except (PortError, ProtocolError):
                pass
        self._over_limit()
        ending = (SessionEnd(self.session_id, utc_now(), status, reason)
                  if self.session_id is not None else None)
        rows_kept: StoreError | None = None
        try:
            writer = self.writer
            patience = LockPatience(writer.locked_since if writer is not None else None,
                                    self.store.interrupted)
            try:
                self.flush()
                if writer is not None:
                    writer.drain()
                    self._watch_writer()  # its last word on the disk goes in with the last rows
                    self.flush()
                    writer.close(end=ending, give_up=patience)
            except LaserlogError as exc:
                if writer is not None and writer.error is not None:
                    raise self.fail(writer.error) from None  # it failed on the last rows
                if ending is None or not isinstance(exc, StoreError):
                    raise  # the database file deleted or replaced under the session
                rows_kept = exc  # a full disk or a locked database: it names the recovery file
            if ending is not None:
                end_kept = self._close_session(ending, patience,
                                               in_file=rows_kept is not None)
                if end_kept is not None:
                    raise StoreError(end_kept)
            if rows_kept is not None:
                raise rows_kept
        finally:
            self.close()
        return self.totals

    def _close_session(self, ending: SessionEnd, patience: LockPatience, *,
                       in_file: bool) -> str | None:
        """Write the session's totals and end. When the database cannot take them, keep the
        end in a recovery file (unless `in_file`: the rows' file already holds it) and
        return what to tell; None when the end is in the database."""
        try:
            self.store.recount(ending.session_id, give_up=patience)
            self.store.end_session(ending.session_id, ending.status, ending.end_reason,
                                   ended_utc=ending.ended_utc, give_up=patience)
            return None
        except sqlite3.Error as exc:
            if in_file:
                return None
            path = self.store.path
            kept = spill(path, ending.session_id, [], ending)
            earlier = [str(file) for file, _ in self.writer.spilled] if self.writer else []
            also = (f" (rows it could not commit earlier are in {', '.join(earlier)}: recover "
                    "those too)" if earlier else "")
            why = ("it stayed locked by another program" if locked(exc) else str(exc))
            return (f"session {ending.session_id} could not be ended in {path} ({why}): its "
                    f"end is kept in {kept}{also}; run `laserlog recover {kept} --db {path}` "
                    "when the database is free, which ends the session")

    def close(self) -> None:
        """Let go of the console link and the port (end and fail do it themselves; call it
        after a start that failed)."""
        if self.link is not None:
            self.link.close()
        self._port_lock.release()

    def fail(self, error: BaseException) -> RecorderError:
        """End the session after a failure of the recorder's own: record why, keep every row
        not committed (in the recovery file when the writer cannot), let go of the port.

        The session is marked interrupted (`record --resume` continues it). Return the error
        to report: what failed, and the recovery file written, if any.
        """
        message = f"the recorder stopped: {type(error).__name__}: {error}"[:500]
        spilled: Path | None = None
        end_kept: str | None = None
        ending = (SessionEnd(self.session_id, utc_now(), "interrupted", message)
                  if self.session_id is not None else None)
        if self.session_id is not None:
            self._event(EventRow(time.time(), "recorder_error", "alarm", None, message))
        try:
            writer = self.writer
            patience = LockPatience(writer.locked_since if writer is not None else None,
                                    self.store.interrupted)
            if writer is not None:
                if writer.error is None:
                    with contextlib.suppress(LaserlogError):
                        self.flush()
                        writer.drain()
                writer.abandon(self._batch)
                self._batch = Batch()
                with contextlib.suppress(StoreError):
                    writer.close(end=ending, give_up=patience)
                spilled = writer.recovery_file  # also when an earlier close wrote it
            if ending is not None:
                end_kept = self._close_session(ending, patience, in_file=spilled is not None)
        finally:
            self.close()
        kept = (f"; rows not committed are in {spilled}: run `laserlog recover {spilled}`"
                if spilled else "")
        return RecorderError(f"session {self.session_id} stopped: {type(error).__name__}: "
                             f"{error}{kept}" + (f"; {end_kept}" if end_kept else ""))

    # -- the loop --------------------------------------------------------------------------
    def step(self, timeout_s: float = 0.05) -> None:
        """Read once from the console (or try to reconnect), then flush when due."""
        if self._link_up:
            assert self.driver is not None
            try:
                self.ingest(self.driver.poll(timeout_s))
            except PortError as exc:
                self._lost(str(exc))
        else:
            self._reconnect()
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S or len(self._batch) >= FLUSH_ROWS:
            self.flush()
            self._watch_writer()

    def run(self, stop: threading.Event, *, duration_s: float | None = None,
            max_pulses: int | None = None,
            between: Callable[[], None] | None = None) -> Totals:
        """Record until `stop` is set, the duration has passed or enough pulses arrived.

        `between` is called in this thread after every step (a front end's notes and
        progress); it may set `stop`.
        """
        deadline = time.monotonic() + duration_s if duration_s is not None else None
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if self.at_limit or max_pulses is not None and self.totals.pulses >= max_pulses:
                break
            self.step(0.05)
            if between is not None:
                between()
        return self.totals

    def _hold_limits(self) -> None:
        """Stop emission once a test spot reaches its pulse limit, or once a pulse passes the
        tested fluence where the site refuses that (checked per read, not per pulse)."""
        limit = self.pulse_limit
        if limit is not None and not self.at_limit and self.totals.pulses >= limit:
            self.at_limit = True
            self._stop_emission(f"the test spot reached the site's limit of {limit} pulses "
                                "(test_spot_max_pulses)")
        tested = self.completer.tested if self.completer is not None else None
        if self.stop_above_tested and tested is not None and tested.above:
            self._stop_emission("a pulse above the fluence the client's test spot tested "
                                "(the site refuses it: [courses] above_test_spot = \"refuse\")")

    def _stop_emission(self, why: str) -> None:
        """Send the console's stop command, once per session, and record that it did.

        Stopping emission is the safe direction; no other command is ever sent for it.
        Recording goes on: every pulse that still arrives is kept.
        """
        if self._stop_sent or self.driver is None:
            return
        self._stop_sent = True
        now = time.time()
        if "stop" not in self.profile.commands:
            self._event(EventRow(now, "emission_stop", "warning", None,
                                 f"{why}; profile {self.profile.id} has no stop command, so "
                                 "emission was not stopped: stop the console by hand"))
            return
        try:
            self.driver.command("stop")
        except (PortError, ProtocolError) as exc:
            self._event(EventRow(now, "emission_stop", "alarm", None,
                                 f"{why}; the stop command failed ({exc}): stop the console "
                                 "by hand"))
            return
        self._event(EventRow(now, "emission_stop", "warning", None,
                             f"sent the console's stop command: {why}"))

    def _over_limit(self) -> None:
        """Record how many pulses a test spot delivered beyond its limit (all of them kept)."""
        limit = self.pulse_limit
        if limit is not None and self.totals.pulses > limit and self.session_id is not None:
            over = self.totals.pulses - limit
            self._event(EventRow(time.time(), "test_spot_over_limit", "warning", None,
                                 f"{self.totals.pulses} pulses arrived, {over} more than the "
                                 f"site's limit of {limit} for a test spot; all are recorded",
                                 count=over))

    # -- observations ----------------------------------------------------------------------
    def ingest(self, observations: list[Observation]) -> None:
        """Turn observations into rows in the current batch, and totals."""
        completer = self.completer
        assert completer is not None
        batch = self._batch
        totals = self.totals
        events: list[EventRow] = []
        garbled: list[LinkEvent] = []
        # A flood hands over thousands of pulses at once: the per-pulse path only completes
        # and appends; the totals are added up once for all of them after the loop.
        first_new = len(batch.pulses)
        complete, append, on_pulse = completer.pulse, batch.pulses.append, self.on_pulse
        for obs in observations:
            if isinstance(obs, PulseReading):
                row = complete(obs, events)
                if row is None:
                    continue
                append(row)
                if on_pulse is not None:
                    on_pulse(row)
            elif isinstance(obs, SettingReading):
                if not math.isfinite(obs.value):  # NaN, infinity: not a setting
                    events.append(EventRow(obs.received_unix_s, "invalid_setting", "warning",
                                           None, f"setting {obs.name} read back as {obs.value!r}"
                                           ": not a value; the last one read is kept"))
                    continue
                completer.setting(obs)
                param = self.profile.parameters.get(obs.name)
                unit = CANONICAL[param.conversion.quantity][0] if param is not None else ""
                batch.settings.append((completer.session_id, obs.received_unix_s, obs.name,
                                       obs.value, unit))
            elif isinstance(obs, StatusReading):
                events.extend(completer.status(obs))
                totals.interlock_open = completer.interlock_open
                totals.fault_code = completer.fault_code
                totals.status_unix_s = obs.received_unix_s
            elif obs.kind == "garbled":
                garbled.append(obs)
            else:
                events.append(completer.link(obs))
        new = batch.pulses[first_new:]
        if new:
            totals.pulses += len(new)
            at_energy, at_fluence = PulseAt.ENERGY_J, PulseAt.FLUENCE_J_CM2
            energy_j = sum([row[at_energy] for row in new if row[at_energy] is not None])
            totals.energy_j += energy_j
            batch.energy_j += energy_j
            fluences = [row[at_fluence] for row in new if row[at_fluence] is not None]
            if fluences:
                low, high = min(fluences), max(fluences)
                if batch.min_fluence_j_cm2 is None or low < batch.min_fluence_j_cm2:
                    batch.min_fluence_j_cm2 = low
                if batch.max_fluence_j_cm2 is None or high > batch.max_fluence_j_cm2:
                    batch.max_fluence_j_cm2 = high
            at_regime = PulseAt.REGIME
            totals.regimes.update({row[at_regime] for row in new})
        if garbled:
            # Noise on the line is counted, with a sample, once per batch rather than per line.
            first = garbled[0]
            totals.garbled += len(garbled)
            events.append(EventRow(first.received_unix_s, "garbled", "warning", None,
                                   f"{len(garbled)} garbled line(s) ignored: {first.detail}",
                                   count=len(garbled), raw=first.raw.decode("latin-1")))
        for event in events:
            self._event(event)
        if totals.pulses:
            mins = [f for f in (totals.min_fluence_j_cm2, batch.min_fluence_j_cm2) if f is not None]
            maxs = [f for f in (totals.max_fluence_j_cm2, batch.max_fluence_j_cm2) if f is not None]
            totals.min_fluence_j_cm2 = min(mins) if mins else None
            totals.max_fluence_j_cm2 = max(maxs) if maxs else None
        # Held after every read, the one at the start included: a fast console may bring a
        # test spot's whole limit with the first read, before the recording loop runs.
        self._hold_limits()

    def add_event(self, event: EventRow) -> None:
        """Record an event (a note, a marker, an acknowledgement) in the current batch.

        Call it from the recording thread, between steps: events stay append-only and
        are committed with the pulses around them.
        """
        self._event(event)

    def annotate(self, at_unix_s: float, kind: str, text: str) -> str:
        """Record a person's note, numbered marker or pass start (`kind` "note", "marker" or
        "pass" with "N [SUB-AREA]"), timed when they asked for it; return the text
        recorded. Call it from the recording thread."""
        if self.session_id is None:
            raise LaserlogError(f"no session is recording: the {kind} was not recorded")
        text = " ".join(text.split())
        if kind == "pass":
            number, _, sub_area = text.partition(" ")
            return self.mark_pass(at_unix_s, int(number), sub_area)
        if kind == "marker":
            self._markers += 1
            text = f"marker {self._markers}" + (f": {text}" if text else "")
        elif not text:
            raise LaserlogError("the note is empty")
        self._event(EventRow(at_unix_s, kind, "info", None, text))
        return text

    def mark_pass(self, at_unix_s: float, number: int, sub_area: str = "") -> str:
        """Record the start of pass `number` (on a sub-area): the pulses from now on are
        its pulses, until the next pass starts. Return the text recorded."""
        if self.session_id is None:
            raise LaserlogError("no session is recording: the pass was not recorded")
        sub_area = " ".join(sub_area.split())[:200]
        text = f"pass {number}" + (f": {sub_area}" if sub_area else "")
        self._event(EventRow(at_unix_s, "pass", "info", number, text, raw=sub_area or None))
        self.current_pass = (number, sub_area)
        return text

    def _event(self, event: EventRow) -> None:
        assert self.session_id is not None
        self._batch.events.append((self.session_id, event.received_unix_s, event.kind,
                                   event.severity, event.code, event.message,
                                   event.missing_pulses, event.count, event.raw))
        self.totals.events += 1
        if event.kind == "invalid_reading":
            self.totals.unknown_dose += 1
        if event.missing_pulses:
            self.totals.missing_pulses += event.missing_pulses
            self._batch.missing_pulses += event.missing_pulses
        if self.on_event is not None:
            self.on_event(event)

    def _watch_writer(self) -> None:
        """Raise an alarm when the disk fills or another program locks the database (rows
        wait in memory), when waiting rows went to a recovery file, and when it is over;
        raise RecorderError when the writer failed."""
        writer = self.writer
        if writer is None:
            return
        self._watch_file()
        if writer.error is not None:
            raise RecorderError(f"writing to {self.store.path} failed: "
                                f"{type(writer.error).__name__}: {writer.error}")
        locked = writer.locked_since is not None
        if locked != self._db_locked:
            self._db_locked = locked
            self._event(EventRow(time.time(), "database_locked", "alarm", None,
                                 f"another program holds the write lock of {self.store.path}: "
                                 "recording goes on, rows wait in memory and are retried")
                        if locked else EventRow(time.time(), "database_unlocked", "info", None,
                                                "the database takes rows again"))
        while len(writer.spilled) > self._spills_seen:
            path, rows = writer.spilled[self._spills_seen]
            self._spills_seen += 1
            self._event(EventRow(time.time(), "rows_spilled", "alarm", None,
                                 f"{rows} row(s) waited too long for the lock and are kept in "
                                 f"{path}: run `laserlog recover {path}` when it is free",
                                 raw=str(path)))
        if writer.disk_full == self._disk_full:
            return
        self._disk_full = writer.disk_full
        if self._disk_full:
            self._event(EventRow(time.time(), "disk_full", "alarm", None,
                                 f"disk full at {self.store.path}: recording goes on, "
                                 f"{writer.waiting_rows} row(s) wait in memory until there is room"))
        else:
            self._event(EventRow(time.time(), "disk_space_restored", "info", None,
                                 "disk has room again: waiting rows written"))

    def _watch_file(self) -> None:
        """Raise RecorderError when the database file was deleted or replaced under the
        session, after saving what it had committed (the open connection still reads it)."""
        if self._db_file is None:
            return
        path = self.store.path
        try:
            info = os.stat(path)
            same = (info.st_dev, info.st_ino) == self._db_file
        except OSError:
            same = False
        if same:
            return
        self._db_file = None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        rescued = path.with_name(f"{path.name}.rescued-{self.session_id}-{stamp}.db")
        try:
            self.store.conn.execute("VACUUM INTO ?", (str(rescued),))
            saved = f"what it had committed is saved in {rescued}"
        except sqlite3.Error as exc:
            saved = f"what it had committed could not be saved ({exc})"
        raise RecorderError(f"the database file {path} was deleted or replaced during the "
                            f"session: {saved}")

    def flush(self) -> None:
        """Hand the current batch to the writer."""
        self._last_flush = time.monotonic()
        envelope = self.completer.envelope if self.completer is not None else None
        if envelope is not None:  # one event per envelope rule passed since the last, counted
            passed: list[EventRow] = []
            envelope.drain(passed)
            for event in passed:
                self._event(event)
        if self.writer is None or not len(self._batch):
            return
        batch, self._batch = self._batch, Batch()
        self.writer.submit(batch)

    # -- link supervision ------------------------------------------------------------------
    def _lost(self, detail: str) -> None:
        self._link_up = False
        if self.completer is not None:
            self.completer.blind = True
        self.totals.link_losses += 1
        self._event(EventRow(time.time(), "link_lost", "alarm", None, detail))
        if self.link is not None:
            self.link.close()
        self._attempt = 0
        self._next_attempt = time.monotonic()
        self.flush()

    def _reconnect(self) -> None:
        if time.monotonic() < self._next_attempt:
            time.sleep(min(0.05, self._next_attempt - time.monotonic()))
            return
        delay = RECONNECT_BACKOFF_S[min(self._attempt, len(RECONNECT_BACKOFF_S) - 1)]
        self._attempt += 1
        self._next_attempt = time.monotonic() + delay
        try:
            self.connect()
        except (PortError, ProtocolError):
            return
        except IdentityMismatch as exc:
            self._link_up = False
            self._event(EventRow(time.time(), "identity_refused", "alarm", None, str(exc)))
            return
        assert self.driver is not None
        self._event(EventRow(time.time(), "link_restored", "info", None,
                             f"reconnected to {self.identity.serial if self.identity else '?'}"))
        if self.completer is not None:
            self.driver.settings = {}
        try:
            self.driver.start()
        except (PortError, ProtocolError) as exc:
            self._lost(str(exc))


