"""Profiles: bundled and user profiles, with their ranges and handpieces."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from laserlog.config.catalog import profile_files
from laserlog.config.profile import load_profile
from laserlog.errors import LaserlogError
from laserlog.review.summary import format_profile
from laserlog.tui.alarm_bar import AlarmBar
from laserlog.tui.top_bar import TopBar

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost


class ProfilesScreen(Screen):
    """Every profile found (first match wins); the highlighted one's details below."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="profiles.back")]

    def __init__(self) -> None:
        super().__init__()
        self.details: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield TopBar("profiles", id="top")
        yield AlarmBar(id="alarm")
        table: DataTable = DataTable(id="profile-table", cursor_type="row")
        table.add_columns("name", "kind", "protocol", "nm", "origin", "title")
        yield table
        with VerticalScroll(id="profile-body"):
            yield Static(id="profile-detail", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        app = cast("SessionHost", self.app)
        table = self.query_one("#profile-table", DataTable)
        for entry in profile_files(app.profile_dirs):
            try:
                p = load_profile(entry.path)
            except LaserlogError as exc:
                self.details[entry.name] = f"INVALID {exc}"
                table.add_row(entry.name, "INVALID", "", "", entry.origin, str(exc)[:40],
                              key=entry.name)
                continue
            # Name the folder by its origin: the same profile reads the same on every machine.
            self.details[entry.name] = format_profile(p).replace(
                str(entry.path), f"{entry.name}.toml ({entry.origin} profiles folder)")
            table.add_row(entry.name, p.kind, p.protocol,
                          "/".join(f"{w:g}" for w in p.wavelengths_nm), entry.origin, p.name,
                          key=entry.name)
        current = app.controller.profile.id
        if current in self.details:
            table.move_cursor(row=list(self.details).index(current))
            self.query_one("#profile-detail", Static).update(self.details[current])
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value or ""
        self.query_one("#profile-detail", Static).update(self.details.get(name, ""))
