"""The live tail's log: scrolling up from the newest line pauses it, End follows again."""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.widgets import Log


class TailLog(Log):
    """A `Log` that tells its screen when the technician scrolls away from, or back to, the end.

    The screen is told before the scroll starts, so no line written in between can pull the
    view back to the end while it moves up.
    """

    def __init__(self, *, on_scroll_away: Callable[[], None],
                 on_follow: Callable[[], None], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.on_scroll_away = on_scroll_away
        self.on_follow = on_follow

    def action_scroll_up(self) -> None:
        self.on_scroll_away()
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.on_scroll_away()
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.on_scroll_away()
        super().action_scroll_home()

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.on_scroll_away()
        super()._on_mouse_scroll_up(event)

    def action_scroll_end(self) -> None:
        self.on_follow()
        super().action_scroll_end()
