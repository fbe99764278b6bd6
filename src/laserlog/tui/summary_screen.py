"""The summary shown when a session ends: who, which console, totals, events."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from laserlog.review.summary import format_session
from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.top_bar import TopBar

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost


class SummaryScreen(Screen):
    """One session's summary, as `laserlog sessions show` prints it."""

    BINDINGS = [
        Binding("escape,enter", "app.pop_screen", "Back", id="summary.back"),
        Binding("h", "app.show('history')", "History", id="summary.history"),
    ]

    def __init__(self, session_id: int) -> None:
        super().__init__()
        self.session_id = session_id

    def compose(self) -> ComposeResult:
        app = cast("SessionHost", self.app)
        yield TopBar(f"session {self.session_id} summary", id="top")
        yield AlarmBar(id="alarm")
        with VerticalScroll(id="summary-body"):
            yield Static(format_session(app.reader, self.session_id), id="summary",
                         markup=False)
        yield Footer(compact=True)
