"""The alarm bar every screen shows: symbol and word for each active alarm, never colour alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widgets import Static

from laserlog.tui.alarms import SYMBOL
from laserlog.tui.text import age_text

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost


class AlarmBar(Static):
    """One line: the most severe alarm, how many more, and the key to acknowledge."""

    def __init__(self, **kw: object) -> None:
        super().__init__(markup=False, **kw)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.show_alarms()

    def show_alarms(self) -> None:
        """Redraw from the controller's active alarms."""
        host = cast("SessionHost", self.app)
        controller = host.controller
        alarms = controller.alarms
        status = controller.status
        if not alarms:
            self.set_class(False, "-alarm")
            # "ok" only on a reading: no alarm raised says nothing about a console not read.
            if status is None and not controller.status_readable:
                text = "?? no alarm raised; this console's profile has no status query"
            elif status is None:
                text = "?? no alarm raised; console state not read yet"
            elif status.stale(host.clock()):
                text = (f"?? no alarm raised; console state STALE, last read "
                        f"{age_text(status.age_s(host.clock()))} ago")
            else:
                text = "ok  no active alarms"
        else:
            self.set_class(True, "-alarm")
            first = alarms[0]
            count = controller.alarm_count(first)
            more = f" +{len(alarms) - 1} more" if len(alarms) > 1 else ""
            times = f" x{count}" if count > 1 else ""
            state = " (cleared)" if first.cleared else " (acked, still true)" if (
                first.acknowledged) else ""
            waiting = any(not alarm.acknowledged for alarm in alarms)
            key = "  [a] ack" if waiting else ""
            # Word, count and key first: a narrow screen cuts the message, never those.
            text = f"{SYMBOL} {first.word}{times}{state}{more}{key}  {first.message}"
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text)
