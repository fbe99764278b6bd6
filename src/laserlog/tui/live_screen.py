"""The live screen: what the laser is doing and what the session has delivered, at a glance."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Log, Sparkline, Static

from laserlog.errors import LaserlogError
from laserlog.storage.rows import EventRow, PulseAt
from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.tail_log import TailLog
from laserlog.tui.text import (
    clock_text,
    console_state_text,
    current_settings,
    energy_text,
    event_line,
    pulse_line,
)
from laserlog.tui.top_bar import TopBar

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost

#: Lines the tail keeps; older ones scroll away (the database keeps every pulse).
TAIL_LINES = 1000
#: Lines remembered to redraw the tail when a filter changes or a pause ends.
RECENT_LINES = 2000
#: Pulses the trend sparklines show, and how often they are redrawn.
SPARK_POINTS = 120
SPARK_REDRAW_S = 0.25


class LiveScreen(Screen):
    """Settings, session header, shot counter and energy, trends, tail, link and alarms."""

    BINDINGS = [
        # Priority (s, n): the form or the note opens the moment the key is read, so what is
        # typed after it (a scanner, a fast typist) waits for it instead of going elsewhere.
        Binding("s", "start_session", "Start", id="live.start", priority=True),
        Binding("x", "end_session", "End", id="live.end"),
        Binding("n", "note", "Note", id="live.note", priority=True),
        Binding("m", "marker", "Marker", id="live.marker"),
        # Kept off the footer (it is full at 80 columns): F1 lists it.
        Binding("p", "mark_pass", "Pass", show=False, id="live.pass"),
        Binding("space", "pause", "Pause", id="live.pause", show=False),
        Binding("slash", "filter", "Filter", id="live.filter", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="live.clear_filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        #: Why the tail is paused: "key" (space) or "scrolled" (the view was scrolled up).
        self.paused_by = ""
        self.paused_lines = 0
        # Lines that arrived during a pause: resuming appends them rather than redrawing
        # the whole tail (a redraw of 1000 lines made a key press wait ~60 ms at 1 kHz).
        self._held: deque[str] = deque(maxlen=TAIL_LINES)
        self.skipped_lines = 0
        self.filter_text = ""
        self.last_pulse: tuple | None = None
        self._recent: deque[str] = deque(maxlen=RECENT_LINES)
        self._fluence: deque[float] = deque(maxlen=SPARK_POINTS)
        self._energy: deque[float] = deque(maxlen=SPARK_POINTS)
        self._spark_dirty = False
        self._next_spark = 0.0
        self._shown: dict[str, str] = {}
        self._recording: int | None = None
        self._started_unix_s = 0.0

    @property
    def laserlog(self) -> SessionHost:
        return cast("SessionHost", self.app)

    def compose(self) -> ComposeResult:
        yield TopBar("live", id="top")
        yield AlarmBar(id="alarm")
        yield Static(id="session-header", markup=False)
        yield Static(id="calibration", markup=False)
        with Horizontal(id="panel"):
            yield Static(id="settings", markup=False)
            yield Static(id="counters", markup=False)
        with Horizontal(id="trends"):
            yield Label("fluence", classes="spark-label")
            yield Sparkline([], id="fluence-spark")
            yield Label("energy", classes="spark-label")
            yield Sparkline([], id="energy-spark")
        yield TailLog(max_lines=TAIL_LINES, id="tail", on_scroll_away=self._scrolled_away,
                      on_follow=self._follow_from_scroll)
        yield Static(id="tail-status", markup=False)
        yield Static(id="sync-status", markup=False)
        yield Input(placeholder="filter the tail: Enter keeps it, Esc clears it", id="filter",
                    compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#sync-status", Static).display = self.laserlog.controller.shipper is not None
        self.show([], [])

    # -- fed by the app's timer, inside one batch_update -----------------------------------
    def show(self, rows: Sequence[tuple], events: Sequence[EventRow]) -> None:
        """Take the pulses and events drained since the last tick and redraw what changed."""
        controller = self.laserlog.controller
        session = controller.session
        if session is not None and session.session_id != self._recording:
            self._new_session(session.session_id)
        started = session.started_unix_s if session is not None else self._started_unix_s
        if rows:
            self.last_pulse = rows[-1]
            shown = rows[-TAIL_LINES:]
            self.skipped_lines += len(rows) - len(shown)
            for row in rows[-SPARK_POINTS:]:
                if row[PulseAt.FLUENCE_J_CM2] is not None:
                    self._fluence.append(row[PulseAt.FLUENCE_J_CM2])
                if row[PulseAt.ENERGY_J] is not None:
                    self._energy.append(row[PulseAt.ENERGY_J])
            self._spark_dirty = True
        else:
            shown = rows
        if shown or events:
            pulse_lines = ((row[PulseAt.RECEIVED_UNIX_S], pulse_line(row, started))
                           for row in shown)
            event_lines = ((e.received_unix_s, event_line(e, started)) for e in events)
            lines = [text for _, text in heapq.merge(pulse_lines, event_lines,
                                                       key=lambda item: item[0])]
            self._recent.extend(lines)
            if self.filter_text:
                lines = [line for line in lines if self.filter_text in line.lower()]
            if self.paused:
                self.paused_lines += len(lines)
                self._held.extend(lines)
            elif lines:
                # Not paused means following: the view goes to the newest line even when it
                # was left elsewhere (the Log alone follows only from its last line).
                self.query_one("#tail", Log).write_lines(lines, scroll_end=True)
        self._show_text()

    def _new_session(self, session_id: int) -> None:
        session = self.laserlog.controller.session
        assert session is not None
        self._recording = session_id
        self._started_unix_s = session.started_unix_s
        self._recent.clear()
        self._fluence.clear()
        self._energy.clear()
        self._spark_dirty = True
        self.last_pulse = None
        self.skipped_lines = 0
        self.paused_lines = 0
        self._held.clear()
        self.query_one("#tail", Log).clear()
        self.refresh_bindings()

    def _set(self, widget_id: str, text: str) -> None:
        if self._shown.get(widget_id) != text:
            self._shown[widget_id] = text
            self.query_one(f"#{widget_id}", Static).update(text)

    def _show_text(self) -> None:
        app = self.laserlog
        controller = app.controller
        live = controller.session
        if live is not None:
            info = live.info
            header = (f"Session {live.session_id}  {clock_text(app.clock() - live.started_unix_s)}"
                      f" | op {info.operator_id} | client {info.client_ref} | "
                      f"{info.area or 'no area'} | skin {info.skin_type or '-'}")
        elif controller.last_session_id is not None:
            if self._recording is not None:
                self._recording = None
                self.refresh_bindings()
            header = (f"Session {controller.last_session_id} ended.  s: start a session   "
                      "F3: history")
            self._ask_aftercare()
        elif controller.link_state == "down":
            header = f"No session. {controller.link_problem()}"
        else:
            header = "No session recording.  Press s to start one; F1 for help."
        self._set("session-header", header)
        calibration = controller.calibration_warning if live is not None else ""
        self._set("calibration", f"! CALIBRATION  {calibration}" if calibration else "")
        self.query_one("#calibration", Static).display = bool(calibration)
        s = current_settings(controller.profile, controller.settings, self.last_pulse)
        self._set("settings",
                  f"{s['wavelength']:<9} {s['duration']:<21} rate {s['rate']}\n"
                  f"fluence {s['fluence']:<15} energy {s['energy']}\n"
                  f"spot {s['spot']:<8} handpiece {s['handpiece']}")
        totals = controller.totals
        console, now = controller.status, app.clock()
        # Only what the console reported, with its age: never a state it has not read.
        state = console_state_text(
            console.interlock_open if console is not None else None,
            console.fault_code if console is not None else 0,
            console.age_s(now) if console is not None else None,
            console is not None and console.stale(now))
        self._set("counters",
                  f"SHOTS  {totals.pulses:>14,}\n"
                  f"ENERGY {energy_text(totals.energy_j):>14}\n"
                  f"missing {totals.missing_pulses:>13,}\n"
                  f"{state}")
        if self.paused_by == "scrolled":
            status = f"PAUSED +{self.paused_lines}  (scrolled up; End or space follows)"
        elif self.paused:
            status = f"PAUSED +{self.paused_lines}  (space resumes)"
        else:
            status = "following the tail"
        status += f"  | events {totals.events}"
        if self.filter_text:
            status += f"  | filter: {self.filter_text}"
        if self.skipped_lines:
            status += f"  | {self.skipped_lines} lines not shown (display fell behind)"
        self._set("tail-status", status)
        shipper = controller.shipper
        if shipper is not None:
            shipping = shipper.status()
            self._set("sync-status", shipping.text(app.clock()))
            self.query_one("#sync-status", Static).set_class(
                shipping.state in ("retrying", "failed"), "-trouble")
        now = time.monotonic()
        if self._spark_dirty and now >= self._next_spark:
            # Trends redraw a few times a second: enough to read, and the tail keeps the CPU.
            self._next_spark = now + SPARK_REDRAW_S
            self._spark_dirty = False
            self.query_one("#fluence-spark", Sparkline).data = list(self._fluence)
            self.query_one("#energy-spark", Sparkline).data = list(self._energy)
        self.query_one("#top", TopBar).show_state()

    def _redraw_tail(self) -> None:
        log = self.query_one("#tail", Log)
        log.clear()
        self._held.clear()  # the redraw shows them already
        lines = list(self._recent)
        if self.filter_text:
            lines = [line for line in lines if self.filter_text in line.lower()]
        log.write_lines(lines[-TAIL_LINES:], scroll_end=True)

    # -- actions ---------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        recording = self.laserlog.controller.session is not None
        if action == "start_session":
            return None if recording else True
        if action in ("end_session", "note", "marker"):
            return True if recording else None
        return True

    def action_start_session(self) -> None:
        from laserlog.tui.session_form import SessionForm

        if isinstance(self.focused, Input):
            raise SkipAction()  # typing an `s` into the tail filter
        if self.laserlog.controller.session is None:
            self.app.push_screen(SessionForm())

    def action_end_session(self) -> None:
        from laserlog.tui.dialogs import ConfirmDialog, EndDialog

        session = self.laserlog.controller.session
        if session is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._end(), group="session", exclusive=True)

        def answered(answer: str | None) -> None:
            if answer in ("given", "without"):
                self.run_worker(self._end(answer == "given"), group="session", exclusive=True)

        question = f"End session {session.session_id} now?"
        document = session.aftercare
        if document is not None:
            self.app.push_screen(EndDialog(question, f"{document.version} "
                                                     f"({document.path.name})"), answered)
            return
        self.app.push_screen(ConfirmDialog(question,
                                           "y: end it and show the summary   n: keep recording"),
                             confirmed)

    def _ask_aftercare(self) -> None:
        """Ask once whether the client of a session that ended by itself (a test spot at its
        limit) was given the aftercare, as the end dialog asks when a person ends one."""
        from laserlog.tui.dialogs import ConfirmDialog

        controller = self.laserlog.controller
        unasked = controller.aftercare_unasked
        if unasked is None or self.app.screen is not self:
            return
        controller.aftercare_unasked = None
        session_id, document = unasked

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._record(
                    controller.record_aftercare_given(session_id, document), "aftercare"))

        self.app.push_screen(ConfirmDialog(
            f"Session {session_id} ended by itself. Aftercare {document.version} "
            f"({document.path.name}): given to the client?",
            f"y: given   n: not given (later: laserlog aftercare {session_id})"),
            answered)

    async def _end(self, aftercare_given: bool = False) -> None:
        from laserlog.tui.summary_screen import SummaryScreen

        try:
            session_id = await asyncio.wrap_future(
                self.laserlog.controller.end_session(aftercare_given=aftercare_given))
        except LaserlogError as exc:
            self.notify(str(exc), title="session not ended", severity="error", markup=False)
            return
        self.laserlog.drain()
        self.refresh_bindings()
        self.app.push_screen(SummaryScreen(session_id, assess=True))

    def action_note(self) -> None:
        from laserlog.tui.dialogs import TextDialog

        if isinstance(self.focused, Input):
            raise SkipAction()  # typing an `n` into the tail filter
        if self.laserlog.controller.session is None:
            return
        # The note is about this moment, not the moment its typing ends.
        at_unix_s = time.time()

        def save(text: str | None) -> None:
            if text and text.strip():
                self.run_worker(self._record(
                    self.laserlog.controller.add_note(text, at_unix_s), "note"))

        self.app.push_screen(TextDialog("Note", "what happened (Enter records it, Esc cancels)"),
                             save)

    def action_marker(self) -> None:
        if self.laserlog.controller.session is not None:
            self.run_worker(self._record(self.laserlog.controller.add_marker(), "marker"))

    def action_mark_pass(self) -> None:
        """Ask for the pass starting now (number, then a sub-area if any) and record it."""
        from laserlog.tui.dialogs import TextDialog

        controller = self.laserlog.controller
        if controller.session is None:
            return
        at_unix_s = time.time()
        current = controller.current_pass()
        suggested = f"{current[0] + 1 if current else 1} "

        def save(text: str | None) -> None:
            if text and text.strip():
                self.run_worker(self._record(controller.add_pass(text, at_unix_s), "pass"))

        self.app.push_screen(TextDialog("Pass", "N [SUB-AREA], e.g. 2 forehead (Enter records "
                                        "it, Esc cancels)", value=suggested), save)

    async def _record(self, future: object, what: str) -> None:
        try:
            await asyncio.wrap_future(future)  # type: ignore[arg-type]
        except LaserlogError as exc:
            # Not markup: a message's own brackets (a site file key, "[envelope.IV.755]") show.
            self.notify(str(exc), title=f"{what} not recorded", severity="error",
                        markup=False)

    def action_pause(self) -> None:
        if self.paused:
            self._follow()
        else:
            self.paused, self.paused_by = True, "key"
        self._show_text()

    def _follow(self) -> None:
        """End a pause: show what it held back and follow the newest line again."""
        self.paused, self.paused_by = False, ""
        log = self.query_one("#tail", Log)
        if self.paused_lines > len(self._held):
            self._redraw_tail()  # more arrived than the tail holds: start it afresh
        elif self._held:
            log.write_lines(list(self._held), scroll_end=True)
        self._held.clear()
        self.paused_lines = 0
        log.scroll_end(animate=False, immediate=True, x_axis=False)

    def _scrolled_away(self) -> None:
        """Pause before the view moves up: a following tail would pull it back at once."""
        self.paused, self.paused_by = True, "scrolled"
        self._show_text()

    def _follow_from_scroll(self) -> None:
        if self.paused:
            self._follow()
            self._show_text()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display or self.filter_text:
            box.value = ""
            box.display = False
            self.filter_text = ""
            self._redraw_tail()
            self._show_text()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip().lower()
            self._redraw_tail()
            self._show_text()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = False
            self.query_one("#tail", Log).focus()
