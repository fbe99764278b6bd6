"""The laserlog Textual app: one live screen, pushed screens for everything else.

Pulses reach the screen through the controller's bounded deque, drained 20 times a second in
one batch_update (one UI call per pulse stalls Textual at 1 kHz, see DESIGN.md). Alarms skip
the batching: the recording thread posts them at once, and the bell rings.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import time
from collections.abc import Callable, Iterable, Sequence

from textual import events
from textual.actions import SkipAction
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.keys import _character_to_key
from textual.message import Message
from textual.screen import Screen

from laserlog.errors import LaserlogError
from laserlog.storage.rows import EventRow
from laserlog.storage.store import Store
from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.alarms import Alarm
from laserlog.tui.controller import LiveController
from laserlog.tui.live_screen import LiveScreen
from laserlog.tui.top_bar import TopBar

#: How often the screen takes what the recorder produced: 20 Hz.
DRAIN_S = 0.05


def alarm_list(alarms: Sequence[Alarm], count: Callable[[Alarm], int]) -> str:
    """Return alarms one a line, as given: word, times raised, kind and message."""
    lines = []
    for alarm in alarms:
        times = f" x{count(alarm)}" if count(alarm) > 1 else ""
        cleared = " cleared" if alarm.cleared else ""
        lines.append(f"{alarm.word}{times} ({alarm.kind}){cleared}: {alarm.message}")
    return "\n".join(lines)


def keys_of(text: str) -> list[events.Key]:
    """Return pasted text as the keys that type it: a tab moves on, a line break is Enter."""
    keys = []
    for char in text.replace("\r\n", "\n").replace("\r", "\n"):
        name = {"\t": "tab", "\n": "enter"}.get(char) or (
            char if char.isalnum() else _character_to_key(char))
        keys.append(events.Key(name, "\r" if char == "\n" else char))
    return keys


class KeysReleased(Message):
    """A screen that was opening is ready for the keys typed meanwhile."""


class AlarmRaised(Message):
    """A new alarm, posted from the recording thread."""

    def __init__(self, alarm: Alarm) -> None:
        super().__init__()
        self.alarm = alarm


class LaserlogApp(App[None]):
    """The live session TUI technicians use at the machine."""

    CSS_PATH = "laserlog.tcss"
    TITLE = "laserlog"
    BINDINGS = [
        # The footer shows only what a technician needs at the machine, so it fits 80
        # columns; F1 and ctrl+p list every key.
        Binding("f1,question_mark", "help", "Help", id="app.help"),
        Binding("a,f8", "acknowledge", "Ack", id="app.acknowledge", priority=True),
        Binding("f2", "show('live')", "Live", id="app.live", show=False),
        Binding("f3", "show('history')", "History", id="app.history", show=False),
        Binding("f4", "show('energy')", "Energy", id="app.energy", show=False),
        Binding("f5", "show('profiles')", "Profiles", id="app.profiles", show=False),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True, show=False),
    ]

    def __init__(self, controller: LiveController, *,
                 clock: Callable[[], float] = time.time,
                 profile_dirs: list[str] | None = None,
                 start_controller: bool = True,
                 probe: Callable[[list[tuple]], None] | None = None) -> None:
        super().__init__()
        self.controller = controller
        self.reader = Store(controller.db_path, readonly=True)
        #: The site's checklist, as the start-of-session contract holds the form to it.
        self.checklist = controller.contract.items
        self.clock = clock
        self.profile_dirs = profile_dirs or []
        self.last_operator = ""
        #: Called after each drain with the pulse rows it took (the latency benchmark's hook).
        self.probe = probe
        self.live = LiveScreen()
        self._start_controller = start_controller
        #: Keys typed while a screen was opening (a scanner, a paste): it gets them once ready.
        self._held_keys: list[events.Key] = []

    def get_default_screen(self) -> Screen:
        return self.live

    def on_mount(self) -> None:
        def raised(alarm: Alarm) -> None:
            self.post_message(AlarmRaised(alarm))  # thread-safe, and skips the 20 Hz batching

        self.controller.on_alarm = raised
        if self._start_controller:
            self.controller.start()
        self.set_interval(DRAIN_S, self.drain)

    # -- typed-ahead keys ---------------------------------------------------------------------
    async def on_event(self, event: events.Event) -> None:
        """Hold keys for a screen still opening; type a multi-field paste as keys."""
        if isinstance(event, events.Key) and not event.is_forwarded:
            if not getattr(self.screen, "keys_ready", True):
                # Before its fields exist the keys would go to no field, or to the app's own
                # keys (`a` would open the acknowledge dialog over the form).
                self._held_keys.append(event)
                return
            await self._type_held_keys()
        elif isinstance(event, events.Paste) and not event.is_forwarded and getattr(
                self.screen, "paste_as_keys", False) and any(c in event.text for c in "\t\r\n"):
            for key in keys_of(event.text):
                await self.on_event(key)
            return
        await super().on_event(event)

    def release_keys(self) -> None:
        """Hand the keys held while a screen opened to it, in the order they were typed."""
        self.post_message(KeysReleased())

    async def on_keys_released(self, message: KeysReleased) -> None:
        if getattr(self.screen, "keys_ready", True):
            await self._type_held_keys()

    async def _type_held_keys(self) -> None:
        held, self._held_keys = self._held_keys, []
        for key in held:  # one at a time, as typed: a Tab among them moves the focus first
            await super().on_event(key)

    def on_unmount(self) -> None:
        self.controller.on_alarm = None
        self.reader.close()

    # -- the 20 Hz drain ---------------------------------------------------------------------
    def drain(self) -> None:
        """Take every pulse and event the recorder produced since the last tick; redraw once."""
        if self._closing or not self.live.is_attached:
            return  # shutting down: the controller still ends the session and commits
        feed, events = self.controller.feed, self.controller.events
        rows = [feed.popleft() for _ in range(len(feed))]
        new_events: list[EventRow] = [events.popleft() for _ in range(len(events))]
        with self.batch_update():
            try:
                self.live.show(rows, new_events)
            except NoMatches:
                return  # the screen is being taken down
            screen = self.screen
            if screen is not self.live:
                for top in screen.query(TopBar):
                    top.show_state()
            # Every tick, not only on a new alarm: the bar also says how fresh its state is.
            self.show_alarms()
        if self.probe is not None and rows:
            self.probe(rows)

    def show_alarms(self) -> None:
        """Redraw the alarm bar on every screen in the stack."""
        for screen in self.screen_stack:
            for alarm_bar in screen.query(AlarmBar):
                alarm_bar.show_alarms()

    def on_alarm_raised(self, message: AlarmRaised) -> None:
        self.bell()
        self.show_alarms()

    # -- actions -----------------------------------------------------------------------------
    def action_show(self, name: str) -> None:
        """Show a screen by name over the live screen (the live screen itself for 'live')."""
        from laserlog.tui.energy_screen import EnergyScreen
        from laserlog.tui.history_screen import HistoryScreen
        from laserlog.tui.profiles_screen import ProfilesScreen

        screens: dict[str, type[Screen]] = {
            "history": HistoryScreen, "energy": EnergyScreen, "profiles": ProfilesScreen}
        target = screens.get(name)
        if target is not None and isinstance(self.screen, target):
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if target is not None:
            self.push_screen(target())

    def action_help(self) -> None:
        from laserlog.tui.help_screen import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def default_who(self) -> str:
        """Return who is acknowledging by default: the session's operator, else the last one."""
        session = self.controller.session
        if session is not None:
            return session.info.operator_id
        if self.last_operator:
            return self.last_operator
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return ""

    def action_acknowledge(self) -> None:
        from textual.widgets import Input

        from laserlog.tui.dialogs import TextDialog

        if isinstance(self.focused, Input):
            raise SkipAction()  # an `a` typed into a field is text
        alarms = self.controller.unacknowledged
        if not alarms:
            still = len(self.controller.alarms)
            self.notify(f"nothing to acknowledge; {still} condition(s) still true stay on the "
                        "bar until they clear" if still else "no active alarms", timeout=2)
            return
        # Exactly these are acknowledged: one raised while the dialog is open is not.
        numbers = [alarm.number for alarm in alarms]

        def answered(who: str | None) -> None:
            if who is not None and who.strip():
                self.run_worker(self._acknowledge(who.strip(), numbers), group="acknowledge")

        self.push_screen(TextDialog(f"Acknowledge {len(alarms)} alarm(s) as",
                                    "your operator ID (Enter records it, Esc cancels)",
                                    self.default_who(), body=alarm_list(alarms, self.controller.alarm_count)), answered)

    async def _acknowledge(self, who: str, numbers: list[int]) -> None:
        try:
            count = await asyncio.wrap_future(self.controller.acknowledge(who, numbers))
        except LaserlogError as exc:
            self.notify(str(exc), title="not acknowledged", severity="error", markup=False)
            return
        self.show_alarms()
        self.notify(f"{count} alarm(s) acknowledged by {who}", timeout=3)

    async def action_quit(self) -> None:
        from laserlog.tui.dialogs import ConfirmDialog

        session = self.controller.session
        if session is None:
            self.exit()
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._end_and_quit(), group="quit", exclusive=True)

        self.push_screen(ConfirmDialog(f"Session {session.session_id} is recording. "
                                       "End it and quit?",
                                       "y: end the session (everything is committed) and quit"
                                       "   n: keep recording"), confirmed)

    async def _end_and_quit(self) -> None:
        # If this fails, shutdown ends the session anyway, committing what was recorded.
        with contextlib.suppress(LaserlogError):
            await asyncio.wrap_future(self.controller.end_session("ended on quit"))
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        live = self.live
        yield SystemCommand("Start session", "Open the session form (s)",
                            live.action_start_session)
        yield SystemCommand("End session", "End the session and show its summary (x)",
                            live.action_end_session)
        yield SystemCommand("Add note", "Record a note in the session (n)", live.action_note)
        yield SystemCommand("Add marker", "Record a numbered marker (m)", live.action_marker)
        yield SystemCommand("Pause tail", "Pause or resume the live tail (space)",
                            live.action_pause)
        yield SystemCommand("Acknowledge alarms", "Record who acknowledged them (a)",
                            self.action_acknowledge)
        yield SystemCommand("Live", "The live screen (F2)", lambda: self.action_show("live"))
        yield SystemCommand("History", "Past sessions (F3)", lambda: self.action_show("history"))
        yield SystemCommand("Energy", "Energy per day or week (F4)",
                            lambda: self.action_show("energy"))
        yield SystemCommand("Profiles", "Console profiles (F5)",
                            lambda: self.action_show("profiles"))
        yield SystemCommand("Help", "Every key (F1)", self.action_help)
