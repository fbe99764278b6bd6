"""The summary shown when a session ends: who, which console, totals, events.

Reached by ending a session (`x`), it first offers the short assessment form
(tui.assess_form): Esc skips it; `e` opens it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from laserlog.review.summary import format_session
from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.text import hanging
from laserlog.tui.top_bar import TopBar

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost


class SummaryScreen(Screen):
    """One session's summary, as `laserlog sessions show` prints it."""

    BINDINGS = [
        Binding("escape,enter", "app.pop_screen", "Back", id="summary.back"),
        Binding("h", "app.show('history')", "History", id="summary.history"),
        Binding("e", "assess", "Assess", id="summary.assess"),
    ]

    def __init__(self, session_id: int, *, assess: bool = False) -> None:
        super().__init__()
        self.session_id = session_id
        #: Offer the assessment form over the summary once it shows (the end of a session).
        self.assess_first = assess
        #: How many of the last events the screen has room for; None until it is laid out.
        self.events_shown: int | None = None

    def compose(self) -> ComposeResult:
        yield TopBar(f"session {self.session_id} summary", id="top")
        yield AlarmBar(id="alarm")
        with VerticalScroll(id="summary-body"):
            yield Static(self._text(), id="summary", markup=False)
        yield Footer(compact=True)

    def _text(self, events_shown: int = 12, width: int = 0) -> str:
        text = format_session(cast("SessionHost", self.app).reader, self.session_id,
                              events_shown)
        return hanging(text, width) if width else text

    def on_mount(self) -> None:
        self.call_after_refresh(self.fit_events)
        if self.assess_first:
            self.assess_first = False
            self.action_assess()

    def action_assess(self) -> None:
        """Open the short assessment form; a recorded one is said and shown in the summary."""
        from laserlog.tui.assess_form import AssessmentForm

        self.app.push_screen(AssessmentForm(self.session_id), self._assessed)

    def _assessed(self, row: Any) -> None:
        from laserlog.review.reactions import recorded_text

        if row is None:
            return
        self.notify(recorded_text(row), timeout=4)
        self.fit_events()

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self.fit_events)

    def fit_events(self) -> None:
        """Show as many of the last events as the screen has lines for (the rest counted)."""
        body = self.query_one("#summary-body", VerticalScroll)
        summary = self.query_one("#summary", Static)
        width, height = body.scrollable_content_region.size
        if width <= 0 or height <= 0:
            return
        def fits(shown: int) -> bool:
            return Content(self._text(shown, width)).get_height({}, width) <= height

        # The most events that fit (more events, more lines): a search, not one try each.
        low, high = 0, len(cast("SessionHost", self.app).reader.events(self.session_id))
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) else (low, middle - 1)
        self.events_shown = low
        summary.update(self._text(low, width))
