"""One past session: its totals, its pulses paged from SQLite (keyset), events, settings and
reactions (the standing assessment, adverse events with every update and retraction)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from laserlog.domain.units import display_unit
from laserlog.review.reaction_history import (
    SessionReactions,
    findings_text,
    session_reactions,
    state_text,
)
from laserlog.review.summary import REGIME_NAMES
from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.text import num
from laserlog.tui.top_bar import TopBar

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost

#: Pulses per page: one keyset query each, as fast on page 10 000 as on page 1.
PAGE_SIZE = 100
PULSE_COLUMNS = ("seq", "received (UTC)", "duration ps", "regime", "energy mJ", "F J/cm2",
                 "spot mm", "nm", "HP")


def session_head(s: dict[str, Any], reactions: SessionReactions | None = None) -> str:
    """Return a session's identity and totals in four lines, a fifth on its reactions."""
    regimes = ", ".join(REGIME_NAMES.get(r, r) for r in s["regimes"].split(",") if r) or "-"
    return (
        f"Session {s['id']} [{s['status']}]  {s['profile_id']} {s['model'] or ''} "
        f"serial {s['serial'] or '-'}\n"
        f"operator {s['operator_id']}  client {s['client_ref']}  area {s['area'] or '-'}  "
        f"skin {s['skin_type'] or '-'}  eyewear {'yes' if s['eyewear_checked'] else 'NO'}\n"
        f"{s['started_utc']} .. {s['ended_utc'] or 'recording'}"
        + (f"  ({s['end_reason']})" if s["end_reason"] else "") + "\n"
        f"pulses {s['pulse_count']:,}  energy {s['total_energy_j']:.4f} J  fluence "
        f"{num(s['min_fluence_j_cm2'], '.3f')}..{num(s['max_fluence_j_cm2'], '.3f')} J/cm2  "
        f"regimes {regimes}  missing {s['missing_pulses']} pulse(s)  events {s['event_count']}"
        + (f"\n{reactions_line(reactions)}" if reactions else ""))


def reactions_line(r: SessionReactions) -> str:
    """Return a session's reactions in one line: assessed (corrected), events and retractions."""
    parts = []
    if r.assessments:
        parts.append("assessed" + (" (corrected)" if any(a.corrected for a in r.assessments)
                                   else ""))
    standing = [e for e in r.adverse if not e.retracted]
    if standing:
        parts.append("adverse: " + ", ".join(f"{e.kind} {e.outcome or 'open'}" for e in standing))
    if len(standing) < len(r.adverse):
        parts.append(f"{len(r.adverse) - len(standing)} retracted")
    return "reactions: " + "; ".join(parts)


def reactions_text(r: SessionReactions) -> Text:
    """Return a session's reactions in full; a retracted event is struck and says RETRACTED."""
    out = Text()
    out.append("Immediate assessment\n", style="bold")
    if not r.assessments:
        out.append("  none recorded (laserlog assess)\n")
    for c in r.assessments:
        a = c.latest
        of = f"pass {a.pass_number}: " if a.pass_number is not None else ""
        out.append(f"  {of}{findings_text(a)}")
        if c.corrected:
            out.append("  CORRECTED", style="bold")
        out.append(f"\n    by {a.user_id or '-'} {a.assessed_utc[:16].replace('T', ' ')} UTC"
                   + (f"  note: {a.note}" if a.note else "") + "\n")
    out.append(f"\nAdverse events ({len(r.adverse)})\n", style="bold")
    if not r.adverse:
        out.append("  none reported (laserlog adverse add)\n")
    for e in r.adverse:
        where = f"  {e.area}" if e.area else ""
        out.append("  ")
        out.append(f"#{e.id} {e.kind}  onset {e.onset_date}  {e.seriousness}{where}",
                   style="strike" if e.retracted else "")
        gone = e.retraction
        out.append(f"\n    {state_text(e)}" + (f" ({gone.by_user_id} {gone.recorded_utc[:10]})"
                                                if gone else "") + "\n",
                   style="bold" if e.retracted else "")
        for ch in e.changes:
            if ch.change == "update":
                out.append(f"    {ch.outcome_date} {ch.outcome} ({ch.by_user_id})\n")
    return out


class SessionScreen(Screen):
    """A recorded session: ] and [ page through its pulses, tabs show events and settings."""

    BINDINGS = [
        Binding("right_square_bracket", "page(1)", "Next page", id="session.next"),
        Binding("left_square_bracket", "page(-1)", "Prev page", id="session.prev"),
        Binding("u", "tab('pulses')", "Pulses", id="session.pulses"),
        Binding("v", "tab('events')", "Events", id="session.events"),
        Binding("t", "tab('settings')", "Settings", id="session.settings"),
        Binding("c", "tab('reactions')", "Reactions", id="session.reactions"),
        Binding("escape", "app.pop_screen", "Back", id="session.back"),
    ]

    def __init__(self, session_id: int, page_size: int = PAGE_SIZE) -> None:
        super().__init__()
        self.session_id = session_id
        self.page_size = page_size
        self.page_starts = [0]  # after_id of each page seen so far
        self.page_ids: list[int] = []

    @property
    def laserlog(self) -> SessionHost:
        return cast("SessionHost", self.app)

    def compose(self) -> ComposeResult:
        store = self.laserlog.reader
        s = store.session(self.session_id)
        self.total = int(s["pulse_count"]) if s is not None else 0
        reactions = session_reactions(store.conn, [self.session_id])[self.session_id]
        yield TopBar(f"session {self.session_id}", id="top")
        yield AlarmBar(id="alarm")
        yield Static(session_head(s, reactions) if s is not None
                     else f"no session {self.session_id}", id="session-head", markup=False)
        # Panes mount after this screen does: keep the widgets, do not query for them.
        self.page_status = Static(id="page-status", markup=False)
        self.pulse_table: DataTable = DataTable(id="pulse-table", zebra_stripes=True)
        self.pulse_table.add_columns(*PULSE_COLUMNS)
        events: DataTable = DataTable(id="event-table", zebra_stripes=True)
        events.add_columns("received (UTC)", "severity", "kind", "message")
        for e in store.events(self.session_id):
            mark = {"alarm": "!! ", "warning": "!  "}.get(e["severity"], "   ")
            events.add_row(e["received_utc"][11:23], mark + e["severity"].upper(), e["kind"],
                           e["message"])
        settings: DataTable = DataTable(id="setting-table", zebra_stripes=True)
        settings.add_columns("received (UTC)", "name", "value", "unit")
        for r in store.settings(self.session_id):
            settings.add_row(r["received_utc"][11:23], r["name"], f"{r['value']:g}",
                             display_unit(r["unit"]))
        with TabbedContent(id="session-tabs"):
            with TabPane("Pulses", id="pulses"):
                yield self.page_status
                yield self.pulse_table
            with TabPane("Events", id="events"):
                yield events
            with TabPane("Settings", id="settings"):
                yield settings
            with TabPane("Reactions", id="reactions"), VerticalScroll():
                yield Static(reactions_text(reactions), id="reactions-text")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._load_page()
        self.pulse_table.focus()

    def _load_page(self) -> None:
        after = self.page_starts[-1]
        page = self.laserlog.reader.pulses(self.session_id, after_id=after, limit=self.page_size)
        table = self.pulse_table
        table.clear()
        for p in page:
            table.add_row(num(p["seq"], "d"), p["received_utc"][11:23],
                          f"{p['pulse_duration_ps']:.1f}", p["regime"],
                          num(p["energy_j"], ".2f", 1000), num(p["fluence_j_cm2"], ".3f"),
                          num(p["spot_mm"], ".1f"), num(p["wavelength_nm"], ".0f"),
                          num(p["handpiece"], "d"))
        self.page_ids = [p["id"] for p in page]
        number = len(self.page_starts)
        first = (number - 1) * self.page_size + 1
        shown = f"pulses {first:,}-{first + len(page) - 1:,}" if page else "no pulses"
        self.page_status.update(
            f"page {number}: {shown} of {self.total:,}   ]: next page  [: previous")

    def action_page(self, step: int) -> None:
        if step > 0:
            if len(self.page_ids) < self.page_size:
                self.notify("last page", timeout=1.5)
                return
            self.page_starts.append(self.page_ids[-1])
        else:
            if len(self.page_starts) == 1:
                self.notify("first page", timeout=1.5)
                return
            self.page_starts.pop()
        self._load_page()

    def action_tab(self, tab: str) -> None:
        self.query_one("#session-tabs", TabbedContent).active = tab
