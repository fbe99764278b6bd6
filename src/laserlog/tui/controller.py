"""Run the recorder in its own thread for a front end, and keep what the screen shows.

The screen never calls the recorder. It reads this controller's state (link, settings, the
core's Totals, active alarms), drains a bounded deque of pulse rows at its own pace (when it
falls behind, display lines are dropped, never counts), and asks for actions (start, end,
note, acknowledge, assess) that the recording thread carries out between two reads of the
console. No Textual here: the benchmark and the tests drive it directly.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import tzinfo
from pathlib import Path
from typing import Any

from laserlog.config.documents import Document
from laserlog.config.profile import Profile
from laserlog.domain.model import DeviceIdentity
from laserlog.errors import ConsoleNotReady, LaserlogError, PortError, ProtocolError, SessionError
from laserlog.recording.completion import PulseCompleter
from laserlog.recording.contract import Contract, CourseRequest, SessionInfo, console_trouble
from laserlog.recording.course_plan import CoursePlan
from laserlog.recording.recorder import Recorder, Totals
from laserlog.recording.shipping import Shipper
from laserlog.storage import chain
from laserlog.storage.rows import EventRow, PulseAt
from laserlog.storage.store import INSERT_EVENT, Store
from laserlog.tui.alarms import CLEARS, Alarm, alarm_word, by_severity, same_trouble

#: Pulse rows kept for the screen; at 1 kHz this is 20 s of backlog before lines are dropped.
FEED_MAX = 20_000
EVENT_FEED_MAX = 2_000
#: How long one read of the console may wait: the longest an action waits for its turn.
STEP_TIMEOUT_S = 0.02
#: Between sessions the console's settings and status are read this often (at most 2 s old).
IDLE_SETTINGS_POLL_S = 1.0
#: A console status older than this is shown as stale.
STATUS_STALE_S = 5.0
RECONNECT_S = 1.0

# Pulse row columns checked against the profile's ranges, by their profile names.
_RANGE_COLUMNS = {PulseAt.PULSE_DURATION_PS: "pulse_duration", PulseAt.ENERGY_J: "energy",
                  PulseAt.FLUENCE_J_CM2: "fluence", PulseAt.SPOT_MM: "spot",
                  PulseAt.WAVELENGTH_NM: "wavelength"}


@dataclass(frozen=True, slots=True)
class ConsoleStatus:
    """The console's interlock and fault as it last reported them, and when."""

    interlock_open: bool
    fault_code: int
    read_unix_s: float

    def age_s(self, now_unix_s: float) -> float:
        """Return how old the reading is, in seconds."""
        return max(0.0, now_unix_s - self.read_unix_s)

    def stale(self, now_unix_s: float) -> bool:
        """Return whether the reading is too old to be taken as the console's state now."""
        return self.age_s(now_unix_s) > STATUS_STALE_S


@dataclass(frozen=True, slots=True)
class LiveSession:
    """The session being recorded now."""

    session_id: int
    info: SessionInfo
    started_unix_s: float
    #: A test spot ends by itself after the site's limit of pulses.
    max_pulses: int | None = None
    #: The aftercare text the client is given at the end (read before the start).
    aftercare: Document | None = None


@dataclass(frozen=True, slots=True)
class NewCourse:
    """A course planned on the form, recorded when its first session starts: its plan and,
    where the site keeps a consent text, the consent agreed before a registered witness."""

    plan: CoursePlan
    consent: Document | None = None
    witness: str = ""
    witness_passphrase: str = ""


class LiveController:
    """Own the console link and the recorder for one front end, in one background thread."""

    def __init__(self, db_path: str | Path, profile: Profile, port: str, *,
                 expect_serial: str | None = None,
                 on_session_start: Callable[[], None] | None = None,
                 on_session_end: Callable[[], None] | None = None,
                 sync_url: str | None = None,
                 profile_dirs: list[str] | None = None,
                 contract: Contract | None = None) -> None:
        self.db_path = Path(db_path)
        #: What every start is held to: the site's checklist and pseudonym rule.
        self.contract = contract if contract is not None else Contract.for_database(db_path)
        self.profile_dirs = profile_dirs
        self.profile = profile
        self.port = port
        self.expect_serial = expect_serial
        self.on_session_start = on_session_start
        self.on_session_end = on_session_end
        #: Called in the recording thread when a new kind of alarm is raised.
        self.on_alarm: Callable[[Alarm], None] | None = None
        #: Ships committed rows to a central server in its own process (`--sync URL`).
        self.shipper: Shipper | None = None
        if sync_url is not None:
            self.shipper = Shipper(self.db_path, sync_url)  # refuses a bad URL before anything
        self.store = Store(self.db_path)
        self.feed: deque[tuple] = deque(maxlen=FEED_MAX)
        self.events: deque[EventRow] = deque(maxlen=EVENT_FEED_MAX)
        self.link_state = "connecting"  # "up" | "down" | "connecting"
        self.link_detail = ""
        self.identity: DeviceIdentity | None = None
        self.session: LiveSession | None = None
        self.last_session_id: int | None = None
        #: A session that ended by itself with aftercare to give, not yet asked about on screen.
        self.aftercare_unasked: tuple[int, Document] | None = None
        #: What the session's start said of the console's calibration (missing, overdue,
        #: failed); the screen keeps it in view while the session runs. Empty when checked.
        self.calibration_warning = ""
        self.alarm_version = 0
        self._alarms: list[Alarm] = []
        self._alarm_counts: dict[int, int] = {}
        self._alarm_number = 0
        self._lock = threading.Lock()
        self._recorder: Recorder | None = None
        self._idle_settings: dict[str, float] = {}
        self._idle_status: ConsoleStatus | None = None
        # Turns status readings between sessions into the same events a session records.
        self._idle_watch = PulseCompleter(profile, 0)
        self._last_totals = Totals()
        self._calls: queue.Queue[tuple[Callable[..., Any], tuple, Future]] = queue.Queue()
        self._pending: list[EventRow] = []
        self._latched: set[str] = set()
        self._next_connect = 0.0
        self._next_settings = 0.0
        self._stop = threading.Event()
        # Shutting down cuts short a wait for a database another program keeps locked.
        self.store.interrupted = self._stop.is_set
        self._thread: threading.Thread | None = None
        self._checks = []
        for index, name in _RANGE_COLUMNS.items():
            param = profile.parameters.get(name)
            if param is not None and (param.min is not None or param.max is not None):
                lo = param.min if param.min is not None else float("-inf")
                hi = param.max if param.max is not None else float("inf")
                # Bounds compiled through a unit factor carry float noise: allow for it.
                self._checks.append((index, name, lo - 1e-9 * abs(lo), hi + 1e-9 * abs(hi)))

    # -- what the screen reads -------------------------------------------------------------
    @property
    def totals(self) -> Totals:
        """Return the recorder's totals for the current (or last) session."""
        return self._recorder.totals if self._recorder is not None and self.session else (
            self._last_totals)

    @property
    def settings(self) -> dict[str, float]:
        """Return the console's settings as last read back (canonical units)."""
        recorder = self._recorder
        if self.session is not None and recorder is not None and recorder.driver is not None:
            return dict(recorder.driver.settings)
        return dict(self._idle_settings)

    @property
    def status(self) -> ConsoleStatus | None:
        """Return the console's interlock and fault as last reported; None until read."""
        if self.session is not None and self._recorder is not None:
            totals = self._recorder.totals
            if totals.status_unix_s is not None:
                return ConsoleStatus(totals.interlock_open, totals.fault_code,
                                     totals.status_unix_s)
        # Before the session's first reading: the one its start was judged on.
        return self._idle_status

    @property
    def status_readable(self) -> bool:
        """Return whether the profile says how to ask the console for its status."""
        return self.profile.status.get is not None or self.profile.status.code is not None

    def link_problem(self) -> str:
        """Return why the console cannot be reached, in the words the start would refuse with."""
        if self.link_state != "down":
            return ""
        return f"console not reachable on {self.port}: {self.link_detail}"

    @property
    def alarms(self) -> list[Alarm]:
        """Return the alarms on the bar, most severe first (`alarms.by_severity`).

        Those waiting to be acknowledged, and the conditions acknowledged but still true.
        """
        with self._lock:
            return by_severity(self._alarms)

    @property
    def unacknowledged(self) -> list[Alarm]:
        """Return the alarms waiting to be acknowledged, most severe first."""
        return [alarm for alarm in self.alarms if not alarm.acknowledged]

    def alarm_count(self, alarm: Alarm) -> int:
        """Return how many times an active alarm's kind fired since it was raised."""
        with self._lock:
            return self._alarm_counts.get(alarm.number, 1)

    # -- actions (any thread) ----------------------------------------------------------------
    def start_session(self, info: SessionInfo, apply_settings: dict[str, float] | None = None,
                      passphrase: str | None = None, *,
                      override_reason: str | None = None, course: CourseRequest | None = None,
                      officer_passphrase: str = "", new_course: NewCourse | None = None,
                      aftercare: Document | None = None) -> Future[int]:
        """Start a session (after setting the console, when asked); the future gives its id.

        `passphrase`: the operator's, where the site requires registered operators.
        `override_reason`: why to start although the console reports a fault or an open
        interlock; without one such a start fails with ConsoleNotReady. The session records it.
        `course`: the course and an officer's override of its window, whose passphrase
        (`officer_passphrase`) is checked before the start.
        `new_course`: a course to record (with its consent) for this session, once every
        check before the start has passed; a start refused before then writes nothing.
        `aftercare`: the aftercare text the end records as given when the operator says so.
        """
        info = self.contract.check(info, self.profile.wavelengths_nm, profile=self.profile)
        return self._submit(self._start, info, dict(apply_settings or {}),
                            passphrase, (override_reason or "").strip(),
                            course or CourseRequest(), officer_passphrase, new_course, aftercare)

    def contract_zone(self) -> tzinfo | None:
        """Return the site's time zone the course rules count days in."""
        from laserlog.domain.localtime import zone

        return zone(self.contract.timezone)

    def site_document_file(self, kind: str) -> Path | None:
        """Return the site's consent or aftercare file (None: the site names none)."""
        from laserlog.config.siteconfig import site_for

        try:
            site = site_for(self.store.path)
        except LaserlogError:  # a broken site file: the start itself refuses, saying why
            return None
        return site.consent_file if kind == "consent" else site.aftercare_file

    def operators_registered(self) -> bool:
        """Return whether this site requires operators to give their passphrase at the start."""
        from laserlog.config.siteconfig import site_for

        try:
            return site_for(self.store.path).operators_registered
        except LaserlogError:  # a broken site file: the start itself refuses, saying why
            return False

    def end_session(self, reason: str = "ended by operator", *,
                    aftercare_given: bool = False) -> Future[int]:
        """End the session, committing everything; the future gives its id.

        `aftercare_given`: record the session's aftercare text as given at its end.
        """
        return self._submit(self._end, reason, aftercare_given)

    def add_note(self, text: str, at_unix_s: float | None = None) -> Future[None]:
        """Record a note in the session, timed when it was asked for (default now)."""
        at = time.time() if at_unix_s is None else at_unix_s
        return self._submit(self._note, at, "note", text.strip())

    def add_marker(self, label: str = "") -> Future[None]:
        """Record a numbered marker in the session, timed now."""
        return self._submit(self._note, time.time(), "marker", label.strip())

    def add_pass(self, text: str, at_unix_s: float | None = None) -> Future[None]:
        """Record the start of a pass, "N [SUB-AREA]" as the headless `pass` control line
        takes it (parse_control's rules), timed when it was asked for (default now)."""
        from laserlog.recording.contract import MAX_PASS, parse_control

        at = time.time() if at_unix_s is None else at_unix_s
        future: Future[None] = Future()
        try:
            _, parsed = parse_control(f"pass {text.strip()}")
        except LaserlogError:
            # In the screen's words: nobody typed a control line here.
            future.set_exception(SessionError(
                f"pass {text.strip()[:60]!r}: expected the pass number (1 to {MAX_PASS}), "
                "then a sub-area if any, e.g. 2 forehead"))
            return future
        return self._submit(self._note, at, "pass", parsed)

    def current_pass(self) -> tuple[int, str] | None:
        """Return the pass marked last in the session (number, sub-area), None before one."""
        recorder = self._recorder
        return recorder.current_pass if recorder is not None and self.session else None

    def acknowledge(self, who: str, numbers: list[int] | None = None) -> Future[int]:
        """Acknowledge alarms (by number: those shown; default all), recorded with who and when.

        The future gives how many were acknowledged. A condition still true stays on the bar.
        """
        return self._submit(self._acknowledge, time.time(), who.strip() or "unknown", numbers)

    def assess(self, session_id: int, *, erythema: int, oedema: int, pain_nrs: int,
               blister: bool = False, purpura: bool = False, note: str | None = None,
               user_id: str | None = None) -> Future[Any]:
        """Record an ended session's immediate endpoints as `laserlog assess` does
        (review.reactions.assess, in the recording thread); the future gives the row."""
        from laserlog.review.reactions import assess

        return self._submit(lambda: assess(
            self.store, session_id, erythema=erythema, oedema=oedema, pain_nrs=pain_nrs,
            blister=blister, purpura=purpura, note=note, user_id=user_id))

    def start(self) -> LiveController:
        """Run the recording thread (and the background shipping, with a sync URL)."""
        if self.shipper is not None:
            self.shipper.start()
        self._thread = threading.Thread(target=self.run, name="laserlog-live", daemon=True)
        self._thread.start()
        return self

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the thread; a session still recording is ended with everything committed.

        The background shipping then ships what was committed last (bounded in time).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        else:
            self._close()
        if self.shipper is not None:
            self.shipper.stop()

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        if self._stop.is_set():
            future.set_exception(LaserlogError("the recorder has stopped"))
        else:
            self._calls.put((fn, args, future))
        return future

    # -- the recording thread ------------------------------------------------------------
    def run(self) -> None:
        """Serve actions and record until shut down."""
        try:
            while not self._stop.is_set():
                self._run_calls(0.0)
                if self.session is not None:
                    self._step()
                elif self.link_state != "up":
                    if time.monotonic() >= self._next_connect:
                        self._connect()
                    else:
                        self._run_calls(min(0.05, self._next_connect - time.monotonic()))
                else:
                    self._idle()
        except KeyboardInterrupt:
            pass  # shut down while waiting for another program's lock: nothing was written
        finally:
            self._close()

    def _run_calls(self, wait_s: float) -> None:
        try:
            item = self._calls.get(timeout=wait_s) if wait_s > 0 else self._calls.get_nowait()
        except queue.Empty:
            return
        while True:
            fn, args, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to whoever waits on the future
                    future.set_exception(exc)
            try:
                item = self._calls.get_nowait()
            except queue.Empty:
                return

    def _step(self) -> None:
        recorder = self._recorder
        assert recorder is not None
        try:
            recorder.step(STEP_TIMEOUT_S)
            self._flush_pending()
            limit = self.session.max_pulses if self.session is not None else None
            if limit is not None and recorder.totals.pulses >= limit:
                self._finish(f"test spot: the site's limit of {limit} pulses reached", "ended")
                return
        except Exception as exc:
            # Any failure of the recorder's own: say so loudly, keep every row (the recovery
            # file holds what could not be committed) and end the session; never pretend to
            # record, and never let the screen's recording thread die with it.
            failure = recorder.fail(exc)
            self._raise(EventRow(time.time(), "recorder_error", "alarm", None, str(failure)))
            self._end_failed()

    def _new_recorder(self) -> Recorder:
        return Recorder(self.store, self.profile, self.port, expect_serial=self.expect_serial,
                        on_event=self._on_event, on_pulse=self._on_pulse,
                        profile_dirs=self.profile_dirs)

    def _connect(self) -> None:
        recorder = self._recorder or self._new_recorder()
        self._recorder = recorder
        self.link_state = "connecting"
        try:
            self.identity = recorder.connect()
        except LaserlogError as exc:
            self.link_state, self.link_detail = "down", str(exc)
            self._next_connect = time.monotonic() + RECONNECT_S
            return
        self.link_state, self.link_detail = "up", ""
        self._next_settings = 0.0
        if self.session is None and any(alarm.kind == "link_lost" and not alarm.cleared
                                        for alarm in self.alarms):
            self._on_event(EventRow(time.time(), "link_restored", "info", None,
                                    f"console on {self.port} answers again"
                                    + (f" ({self.identity.serial})" if self.identity else "")))

    def _idle(self) -> None:
        """Between sessions: keep the settings on screen fresh and notice a lost link."""
        recorder = self._recorder
        assert recorder is not None and recorder.driver is not None and recorder.link is not None
        if time.monotonic() >= self._next_settings:
            self._next_settings = time.monotonic() + IDLE_SETTINGS_POLL_S
            driver = recorder.driver
            try:
                recorder.link.discard_input()  # what a console pushes before a session is not
                self._idle_settings = driver.read_settings()  # part of any session
                self._read_idle_status(driver)
            except (PortError, ProtocolError, OSError) as exc:
                self._idle_link_down(str(exc))
                return
            except Exception as exc:
                # Never let the recording thread die between sessions: the screen would
                # show the last state for ever and no session could start.
                self._idle_link_down(f"reading the console failed: {type(exc).__name__}: {exc}")
                return
            finally:
                # The session start reads every setting again and records it.
                driver.settings = {}
                driver.pending.clear()
        self._run_calls(0.05)

    def _idle_link_down(self, detail: str) -> None:
        recorder = self._recorder
        # An alarm, as in a session: no session can start, and the state shown is getting old.
        said = detail if self.port in detail else f"console on {self.port}: {detail}"
        self._on_event(EventRow(time.time(), "link_lost", "alarm", None,
                                f"between sessions, {said}"))
        self.link_state, self.link_detail = "down", detail
        if recorder is not None and recorder.link is not None:
            recorder.link.close()
        self._next_connect = time.monotonic() + RECONNECT_S

    def console_trouble(self) -> str:
        """Return what the console last reported that should stop a start (fault, interlock)."""
        status = self._idle_status
        if status is None:
            return ""
        return console_trouble(self.profile, status.interlock_open, status.fault_code)

    def _read_idle_status(self, driver: Any) -> None:
        """Read the console's status between sessions; raise its alarms as a session would."""
        if not self.status_readable:
            return  # the console reports no status on request: it stays unknown
        reading = driver.read_status()
        if reading is None:
            return
        for event in self._idle_watch.status(reading):
            self._on_event(event)
        self._idle_status = ConsoleStatus(reading.interlock_open, reading.fault_code,
                                          reading.received_unix_s)

    def _start(self, info: SessionInfo, apply: dict[str, float],
               passphrase: str | None = None, override_reason: str = "",
               course: CourseRequest | None = None, officer_passphrase: str = "",
               new_course: NewCourse | None = None, aftercare: Document | None = None) -> int:
        if self.session is not None:
            raise LaserlogError(f"session {self.session.session_id} is still recording; "
                                "end it first")
        if self.operators_registered():
            from laserlog.review.users import require_operator

            require_operator(self.store, info.operator_id, passphrase or "")
        course = course or CourseRequest()
        if course.override_by:
            from laserlog.review.users import authorise_override

            officer = authorise_override(self.store, course.override_by, officer_passphrase)
            course = replace(course, override_by=officer.user_id, override_role=officer.role)
        witness = self._new_course_checked(info, course, new_course)
        if new_course is None:
            # The course rules refuse before the console is touched (the recorder holds
            # them too).
            self.contract.course_start(self.store.conn, course,
                                       {"client": info.client_ref, "area": info.area,
                                        "skin": info.skin_type}, self.profile.id)
        if self.link_state != "up":
            self._connect()
            if self.link_state != "up":
                raise PortError(self.link_problem())
        recorder = self._recorder
        assert recorder is not None and recorder.driver is not None
        # The state the start is judged on is read now, never taken from an older reading.
        self._read_idle_status(recorder.driver)
        trouble = self.console_trouble()
        if trouble and not override_reason:
            raise ConsoleNotReady(f"{trouble}; to start anyway, give the reason")
        if trouble:
            from laserlog.review.users import authorise_start_over

            authorise_start_over(self.store, info.operator_id, passphrase or "")
        applied: list[str] = []
        refused: list[str] = []
        for name, value in apply.items():
            param = self.profile.parameters.get(name)
            if param is None or not param.settable or not param.in_range(value):
                refused.append(name)
                continue
            try:
                took = recorder.driver.set(name, value)
            except ProtocolError as exc:
                refused.append(f"{name} ({exc})")
            else:
                applied.append(f"{name} {took:g}")
        recorder.driver.settings = {}
        self._latched.clear()
        self.calibration_warning = ""
        if new_course is not None:
            # The course is written only once the console's settings let the start go ahead
            # (its wavelength, and the fluence the client's test spots tested where the site
            # refuses above it); the recorder reads them once more before the session's row.
            from laserlog.recording.contract import new_course_start

            first = new_course_start(self.contract, self.store.conn, info.client_ref,
                                     info.skin_type, self.profile.id, course.test_spot)
            refusal = self.contract.console_refusal(first, recorder.driver.read_settings(),
                                                    self.profile, info.skin_type)
            if refusal:
                raise SessionError(f"the session was not started: {refusal}")
            course = replace(course, course=str(self._create_course(new_course, witness)))
        try:
            session_id = recorder.start(info, contract=self.contract,
                                        start_over=override_reason, course=course)
        except LaserlogError as exc:
            if recorder.session_id is not None:  # the row exists: close it, never leave it open
                recorder.end(f"could not start: {exc}", "interrupted")
            else:  # refused before its row: let go of the port, or the next start finds it held
                recorder.close()
            self._recorder = None
            self.link_state, self.link_detail = "down", str(exc)
            self._next_connect = time.monotonic() + RECONNECT_S
            raise
        self.session = LiveSession(
            session_id, info, time.time(),
            self.contract.courses.test_spot_max_pulses if course.test_spot else None, aftercare)
        self.last_session_id = session_id
        if applied or refused:
            message = "started from the last settings: " + (", ".join(applied) or "none applied")
            if refused:
                message += "; not applied: " + ", ".join(refused)
            recorder.add_event(EventRow(time.time(), "settings_applied", "info", None, message))
        if self.on_session_start is not None:
            self.on_session_start()
        return session_id

    def _new_course_checked(self, info: SessionInfo, course: CourseRequest,
                            new_course: NewCourse | None) -> Any:
        """Hold a course planned on the form to the rules before anything is written; return
        its consent's witness, unlocked (None without a consent)."""
        if new_course is None:
            return None
        from laserlog.recording.contract import new_course_refusal
        from laserlog.review.documents import unlock_witness

        refusal = new_course_refusal(self.contract, self.store.conn, info.client_ref,
                                     info.skin_type, self.profile.id, course.test_spot)
        if refusal:
            raise SessionError(refusal)
        if new_course.consent is None:
            return None
        return unlock_witness(self.store, new_course.witness, new_course.witness_passphrase,
                              "witness")

    def _create_course(self, new_course: NewCourse, witness: Any) -> int:
        """Record the course planned on the form (on this console), and its consent."""
        from laserlog.recording.course_plan import create
        from laserlog.review.documents import consent_writer

        also = (consent_writer(new_course.consent, witness) if new_course.consent is not None
                else None)
        return create(self.store, replace(new_course.plan, profile_id=self.profile.id), also)

    def record_aftercare_given(self, session_id: int, document: Document) -> Future[int]:
        """Record that an ended session's client was given this aftercare, as at its end."""
        return self._submit(self._aftercare_given, session_id, document)

    def _aftercare_given(self, session_id: int, document: Document) -> int:
        from laserlog.review.documents import record_aftercare

        return record_aftercare(self.store, session_id, document, "end")

    def _end(self, reason: str, aftercare_given: bool = False) -> int:
        if self.session is None:
            raise LaserlogError("no session is recording")
        return self._finish(reason, "ended", aftercare_given)

    def _finish(self, reason: str, status: str, aftercare_given: bool = False) -> int:
        session, recorder = self.session, self._recorder
        assert session is not None and recorder is not None
        if self.on_session_end is not None:
            self.on_session_end()
        self._flush_pending()
        try:
            recorder.end(reason, status)
            if aftercare_given and session.aftercare is not None:
                from laserlog.review.documents import record_aftercare

                record_aftercare(self.store, session.session_id, session.aftercare, "end")
            elif status == "ended" and session.aftercare is not None:
                # Ended without the end dialog (a test spot at its limit): the screen asks.
                self.aftercare_unasked = (session.session_id, session.aftercare)
        finally:
            self._keep_status()
            self._last_totals = recorder.totals
            self.session = None
            self._recorder = None
            self.link_state = "connecting"
            self._next_connect = time.monotonic() + 0.05
        return session.session_id

    def _end_failed(self) -> None:
        """Forget a session its recorder ended after a failure (`Recorder.fail` closed it)."""
        if self.on_session_end is not None:
            self.on_session_end()
        if self._recorder is not None:
            self._keep_status()
            self._last_totals = self._recorder.totals
        self.session = None
        self._recorder = None
        self.link_state = "connecting"
        self._next_connect = time.monotonic() + 0.05

    def _keep_status(self) -> None:
        """Carry the session's last status reading (and its age) past the session's end."""
        status = self.status
        if status is not None:
            self._idle_status = status
            self._idle_watch = PulseCompleter(self.profile, 0)
            self._idle_watch.fault_code = status.fault_code
            self._idle_watch.interlock_open = status.interlock_open

    def _note(self, at_unix_s: float, kind: str, text: str) -> None:
        if self.session is None or self._recorder is None:
            raise LaserlogError(f"no session is recording: the {kind} was not recorded")
        self._recorder.annotate(at_unix_s, kind, text)

    def _acknowledge(self, at_unix_s: float, who: str,
                     numbers: list[int] | None = None) -> int:
        with self._lock:
            acked = [alarm for alarm in by_severity(self._alarms) if not alarm.acknowledged
                     and (numbers is None or alarm.number in numbers)]
            done = {alarm.number for alarm in acked}
            # Silenced, never hidden: a condition still true stays until it clears.
            self._alarms = [replace(alarm, acknowledged=True)
                            if alarm.number in done and alarm.is_condition and not alarm.cleared
                            else alarm for alarm in self._alarms
                            if alarm.number not in done or (alarm.is_condition
                                                            and not alarm.cleared)]
            counts = {n: self._alarm_counts.get(n, 1) for n in done}
            for number in done:
                if not any(alarm.number == number for alarm in self._alarms):
                    self._alarm_counts.pop(number, None)
            self.alarm_version += 1
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at_unix_s))
        by_session: dict[int | None, list[Alarm]] = {}
        for alarm in acked:
            by_session.setdefault(alarm.session_id, []).append(alarm)
        for session_id, alarms in by_session.items():
            # One record per acknowledgement: who, when, and every alarm it covered.
            listed = "; ".join(
                f"{alarm.word}" + (f" x{counts[alarm.number]}" if counts[alarm.number] > 1
                                   else "") + f" ({alarm.kind}): {alarm.message}"
                for alarm in alarms)
            event = EventRow(at_unix_s, "alarm_ack", "info", None,
                             f"{len(alarms)} alarm(s) acknowledged by {who} at {when}: {listed}")
            if self.session is not None and self._recorder is not None and (
                    session_id in (None, self.session.session_id)):
                self._recorder.add_event(event)
            else:
                # Outside a session (or after it ended): straight into the log table.
                with self.store.conn:
                    self.store.conn.execute(INSERT_EVENT, (
                        session_id, event.received_unix_s, event.kind, event.severity,
                        None, event.message, None, event.count, None))
                    head = chain.append_batch(self.store.conn, session_id, {"events": 1})
                chain.write_anchor(self.store.path, head)  # tamper evidence (laserlog.storage.chain)
                if session_id is not None:
                    self.store.recount(session_id)
        self._latched.clear()  # acknowledged: the next excursion alarms again
        return len(acked)

    def _close(self) -> None:
        try:
            if self.session is not None:
                self._finish("front end closed while recording", "ended")
            elif self._recorder is not None and self._recorder.link is not None:
                self._recorder.link.close()
        finally:
            self.store.close()
            while not self._calls.empty():
                _, _, future = self._calls.get_nowait()
                if future.set_running_or_notify_cancel():
                    future.set_exception(LaserlogError("the recorder has stopped"))

    # -- callbacks from the recorder (recording thread) ----------------------------------
    def _on_pulse(self, row: tuple) -> None:
        self.feed.append(row)
        for index, name, lo, hi in self._checks:
            value = row[index]
            if value is not None and not lo <= value <= hi and name not in self._latched:
                self._latched.add(name)
                self._pending.append(EventRow(
                    row[PulseAt.RECEIVED_UNIX_S], "out_of_range", "alarm", None,
                    f"{name} {value:.4g} outside the console's range {lo:.4g}..{hi:.4g} "
                    f"(pulse {row[PulseAt.SEQ]})"))

    def _flush_pending(self) -> None:
        if self._pending and self._recorder is not None:
            pending, self._pending = self._pending, []
            for event in pending:
                self._recorder.add_event(event)

    def _on_event(self, event: EventRow) -> None:
        self.events.append(event)
        if event.kind.startswith("calibration_"):
            self.calibration_warning = event.message
        if event.kind == "link_lost":
            self.link_state, self.link_detail = "down", event.message
        elif event.kind == "link_restored":
            self.link_state, self.link_detail = "up", ""
        self._raise(event)

    def _raise(self, event: EventRow) -> None:
        ended = CLEARS.get(event.kind)
        if ended is not None:
            self._clear(ended)
            return
        if event.kind == "fault":
            with self._lock:
                # The console reports one fault at a time: a new code (an alarm or only a
                # warning) means the one it reported before has ended.
                self._end_conditions("fault", but_code=event.code)
                self.alarm_version += 1
        word = alarm_word(event)
        if word is None:
            return
        session_id = self.session.session_id if self.session is not None else None
        with self._lock:
            self.alarm_version += 1
            for alarm in self._alarms:
                if alarm.word == word and same_trouble(alarm, event):
                    if alarm.is_condition and alarm.message == event.message:
                        return  # the same condition, restated (a session starts over a fault)
                    # The same trouble again: count it, do not ring again.
                    self._alarm_counts[alarm.number] = self._alarm_counts.get(alarm.number, 1) + 1
                    return
            self._alarm_number += 1
            alarm = Alarm(self._alarm_number, event.kind, word, event.message,
                          event.received_unix_s, session_id, code=event.code)
            self._alarms.append(alarm)
        if self.on_alarm is not None:
            self.on_alarm(alarm)

    def _clear(self, kind: str) -> None:
        """End a condition: an acknowledged one leaves the bar, another waits, marked cleared."""
        with self._lock:
            self._end_conditions(kind)
            self.alarm_version += 1

    def _end_conditions(self, kind: str, *, but_code: int | None = None) -> None:
        """Mark the alarms of a condition that ended cleared (the lock is held).

        `but_code`: a fault code still reported, whose alarm stands.
        """
        kept: list[Alarm] = []
        for alarm in self._alarms:
            if alarm.kind != kind or alarm.cleared or (
                    but_code is not None and alarm.code == but_code):
                kept.append(alarm)
            elif not alarm.acknowledged:
                kept.append(replace(alarm, cleared=True))
            else:
                self._alarm_counts.pop(alarm.number, None)
        self._alarms = kept
