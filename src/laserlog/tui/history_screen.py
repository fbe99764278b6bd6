"""History: past sessions in a table to filter and sort; Enter opens one."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.queries import SESSION_SORTS, find_sessions
from laserlog.tui.text import num
from laserlog.tui.top_bar import TopBar

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost

COLUMNS = ("id", "started (UTC)", "status", "operator", "client", "area", "skin", "pulses",
           "energy J", "max F J/cm2", "profile")


class HistoryScreen(Screen):
    """Every recorded session, newest first; / filters, o changes the sort, r reverses it."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", id="history.filter"),
        Binding("o", "sort", "Sort", id="history.sort"),
        Binding("r", "reverse", "Reverse", id="history.reverse"),
        Binding("escape", "leave", "Back", id="history.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort = "started"
        self.descending = True
        self.filter_text = ""
        self.rows = 0

    def compose(self) -> ComposeResult:
        yield TopBar("history", id="top")
        yield AlarmBar(id="alarm")
        yield Input(placeholder="/ filter: every word must match, e.g. C-1042 left cheek",
                    id="filter", compact=True)
        yield Static(id="history-status", markup=False)
        table: DataTable = DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#sessions", DataTable).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Query the sessions again with the current filter and sort."""
        app = cast("SessionHost", self.app)
        table = self.query_one("#sessions", DataTable)
        rows = find_sessions(app.reader, self.filter_text, self.sort, self.descending)
        keep = table.cursor_row
        table.clear()
        for r in rows:
            table.add_row(
                str(r["id"]), r["started_utc"][:16].replace("T", " "), r["status"],
                r["operator_id"], r["client_ref"], r["area"] or "-", r["skin_type"] or "-",
                f"{r['pulse_count']:,}", f"{r['total_energy_j']:.3f}",
                num(r["max_fluence_j_cm2"], ".3f"), r["profile_id"], key=str(r["id"]))
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        self.rows = len(rows)
        order = "newest first" if self.sort == "started" and self.descending else (
            f"by {self.sort} {'descending' if self.descending else 'ascending'}")
        shown = f"{len(rows)} session(s)" + (f" matching '{self.filter_text}'"
                                             if self.filter_text else "")
        self.query_one("#history-status", Static).update(
            f"{shown}, {order}.  Enter opens one  o: sort  r: reverse  /: filter")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#sessions", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from laserlog.tui.session_screen import SessionScreen

        if event.row_key.value is not None:
            self.app.push_screen(SessionScreen(int(event.row_key.value)))

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_sort(self) -> None:
        keys = list(SESSION_SORTS)
        self.sort = keys[(keys.index(self.sort) + 1) % len(keys)]
        self.reload()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self.reload()

    def action_leave(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus and box.value:
            box.value = ""
            self.query_one("#sessions", DataTable).focus()
        else:
            self.app.pop_screen()
