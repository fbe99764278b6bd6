"""Energy: delivered energy per day or week, by device or by operator, as a bar chart.

Days and ISO 8601 weeks are the site's (`timezone` in the site file), as in the reports and
the web view. Bars are drawn from the sessions table's running totals (one small GROUP BY, no pulse scan),
at most `limit` bars, and redrawn at most twice a second while the screen is shown.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from laserlog.domain.localtime import zone_name
from laserlog.errors import LaserlogError
from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.queries import EnergyBar, energy_by_period
from laserlog.tui.top_bar import TopBar

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost

REDRAW_S = 0.5
MAX_BARS = 60
_BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(value: float, top: float, width: int) -> str:
    """Return a horizontal bar of `width` cells scaled so `top` fills it (eighths of a cell)."""
    if top <= 0 or width <= 0:
        return ""
    eighths = round(max(0.0, value) / top * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (_BLOCKS[part] if part else "")).ljust(width)


def energy_chart(bars: list[EnergyBar], period: str, group: str, width: int) -> str:
    """Return the chart as text: oldest period first, one bar per period and group."""
    if not bars:
        return "No sessions recorded yet: energy appears here once a session has pulses."
    ordered = sorted(bars, key=lambda b: (b.period, b.key))
    key_width = min(22, max(len(b.key) for b in ordered))
    period_width = max(len(b.period) for b in ordered)
    bar_width = max(8, width - period_width - key_width - 26)
    top = max(b.energy_j for b in ordered)
    lines = [f"{'period':<{period_width}}  {group:<{key_width}}  {'':<{bar_width}} "
             f"{'energy J':>10} {'cumul. J':>10}"]
    cumulative = 0.0
    previous = None
    for b in ordered:
        cumulative += b.energy_j
        label = b.period if b.period != previous else ""
        previous = b.period
        lines.append(f"{label:<{period_width}}  {b.key[:key_width]:<{key_width}}  "
                     f"{bar(b.energy_j, top, bar_width)} {b.energy_j:>10.3f} {cumulative:>10.3f}")
    return "\n".join(lines)


class EnergyScreen(Screen):
    """Cumulative delivered energy: d/w switch day and week, g switches device/operator."""

    BINDINGS = [
        Binding("d", "period('day')", "Per day", id="energy.day"),
        Binding("w", "period('week')", "Per week", id="energy.week"),
        Binding("g", "group", "Device/operator", id="energy.group"),
        Binding("escape", "app.pop_screen", "Back", id="energy.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.period = "day"
        self.group = "device"
        self._drawn: str | None = None
        self.zone: tzinfo | None = None
        self.zone_note = ""

    def compose(self) -> ComposeResult:
        yield TopBar("energy", id="top")
        yield AlarmBar(id="alarm")
        yield Static(id="energy-title", markup=False)
        with VerticalScroll(id="energy-body"):
            yield Static(id="energy-chart", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        from laserlog.config.siteconfig import site_for

        app = cast("SessionHost", self.app)
        try:
            self.zone = site_for(app.reader.path).zone
        except LaserlogError as exc:  # a session start refuses the file, saying why
            self.zone_note = f"  (site file unreadable, machine time: {exc})"
        self.redraw()
        self.set_interval(REDRAW_S, self.redraw)

    def on_resize(self) -> None:
        self._drawn = None
        self.redraw()

    def redraw(self) -> None:
        """Query and draw the chart, when shown and changed."""
        if not self.is_current:
            return
        app = cast("SessionHost", self.app)
        bars = energy_by_period(app.reader, self.period, self.group, MAX_BARS, self.zone)
        width = self.query_one("#energy-body").size.width or 80
        text = energy_chart(bars, self.period, self.group, width - 1)
        weeks = "ISO 8601 weeks, " if self.period == "week" else ""
        self.query_one("#energy-title", Static).update(
            f"Energy per {self.period} by {self.group} ({weeks}{zone_name(self.zone)}) · d day  "
            f"w week  g device/operator{self.zone_note}")
        if text != self._drawn:
            self._drawn = text
            self.query_one("#energy-chart", Static).update(text)

    def action_period(self, period: str) -> None:
        self.period = period
        self.redraw()

    def action_group(self) -> None:
        self.group = "operator" if self.group == "device" else "device"
        self.redraw()
