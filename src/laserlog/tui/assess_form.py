"""The short assessment offered when a session ends: erythema, oedema, pain, blister, purpura.

It records through the function `laserlog assess` uses (review.reactions.assess, carried out
by the controller's recording thread), so the rules are the same: each grade held to its
scale, an assessment within 24 h of the end the immediate one. It is optional: Esc skips it
and the summary stays; `e` on the summary opens it again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from laserlog.domain.reactions import GRADES
from laserlog.errors import LaserlogError
from laserlog.tui.tick_box import TickBox

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost

#: The graded fields: widget id -> (label, scale key, what the hint says).
_GRADED = {"erythema": ("Erythema", "erythema", "0 none - 3 marked"),
           "oedema": ("Oedema", "oedema", "0 none - 3 marked"),
           "pain": ("Pain", "pain_nrs", "0-10, as the client rates it")}


class AssessmentForm(ModalScreen[Any]):
    """Record a session's immediate endpoints; gives the recorded row, or None (skipped)."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Record", id="assess.record"),
        Binding("escape", "skip", "Skip", id="assess.skip"),
        # Priority: the focus moves the moment the key is read, so what is typed after it
        # in one burst (a fast typist, keys sent together) goes to the next field.
        Binding("tab,down", "move_focus(1)", "Next field", show=False, priority=True,
                id="assess.next"),
        Binding("shift+tab,up", "move_focus(-1)", "Previous field", show=False, priority=True,
                id="assess.previous"),
        Binding("enter", "next_or_record", "Next field", show=False, priority=True,
                id="assess.enter"),
    ]
    #: The app holds keys typed while the form opens, and hands them over once it is ready.
    keys_ready = False

    def __init__(self, session_id: int) -> None:
        super().__init__()
        self.session_id = session_id
        self._busy = False

    @property
    def laserlog(self) -> SessionHost:
        return cast("SessionHost", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="assess"):
            yield Static(f"Assess session {self.session_id} (optional)", classes="dialog-title",
                         markup=False)
            with Grid(id="assess-fields"):
                for name, (label, scale, hint) in _GRADED.items():
                    low, high = GRADES[scale]
                    yield Label(label, classes="field-label")
                    yield Input("", placeholder=f"{low}-{high}", id=name, compact=True,
                                restrict=r"[0-9]{0,2}", max_length=2)
                    yield Static(hint, id=f"{name}-error", classes="dialog-hint", markup=False)
            with Horizontal(classes="assess-ticks"):
                yield TickBox("Blister", id="blister")
                yield TickBox("Purpura", id="purpura")
            with Horizontal(id="assess-note-row"):
                yield Label("Note", classes="field-label")
                yield Input("", placeholder="optional, e.g. marked redness at the jaw line",
                            id="assess-note", compact=True, max_length=500)
            yield Static("", id="assess-error", classes="error", markup=False)
            yield Static("ctrl+s: record   Esc: skip   Tab: next field", classes="dialog-hint",
                         markup=False)

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#erythema", Input))
        self.keys_ready = True
        self.laserlog.release_keys()

    # -- keys ----------------------------------------------------------------------------------
    def action_move_focus(self, step: int) -> None:
        """Move to the next (1) or previous (-1) field or tick box."""
        if step > 0:
            self.focus_next()
        else:
            self.focus_previous()

    def action_next_or_record(self) -> None:
        """Enter in a field moves to the next one; in the note, records."""
        focused = self.focused
        if not isinstance(focused, Input):
            raise SkipAction()  # a tick box ticks itself on Enter
        if focused.id == "assess-note":
            # The characters typed before Enter may still wait in the field's queue: record
            # after them.
            focused.call_later(self.action_submit)
        else:
            self.focus_next()

    def action_skip(self) -> None:
        if not self._busy:
            self.dismiss(None)

    # -- recording -------------------------------------------------------------------------------
    def _grades(self) -> dict[str, int] | None:
        """Return the three grades, or None after showing beside each field what is wrong."""
        grades: dict[str, int] = {}
        first_bad: Input | None = None
        for name, (_, scale, hint) in _GRADED.items():
            box = self.query_one(f"#{name}", Input)
            shown = self.query_one(f"#{name}-error", Static)
            low, high = GRADES[scale]
            text = box.value.strip()
            problem = ""
            if not text:
                problem = f"required: {low}-{high}"
            elif not low <= int(text) <= high:
                problem = f"{text} is outside its scale: {low}-{high}"
            shown.update(problem or hint)
            shown.set_class(bool(problem), "error")
            shown.set_class(not problem, "dialog-hint")
            if problem:
                first_bad = first_bad or box
            else:
                grades[name] = int(text)
        if first_bad is not None:
            first_bad.focus()
            return None
        return grades

    def action_submit(self) -> None:
        if self._busy:
            return
        grades = self._grades()
        if grades is None:
            return
        self._busy = True
        self.run_worker(self._record(grades), group="assess", exclusive=True)

    async def _record(self, grades: dict[str, int]) -> None:
        app = self.laserlog
        session = app.reader.session(self.session_id)
        operator = session["operator_id"] if session is not None else None
        note = self.query_one("#assess-note", Input).value
        future = app.controller.assess(
            self.session_id, erythema=grades["erythema"], oedema=grades["oedema"],
            pain_nrs=grades["pain"], blister=self.query_one("#blister", TickBox).value,
            purpura=self.query_one("#purpura", TickBox).value, note=note or None,
            user_id=operator)
        try:
            row = await asyncio.wrap_future(future)
        except LaserlogError as exc:
            self._busy = False
            self.query_one("#assess-error", Static).update(f"not recorded: {exc}")
            return
        self.dismiss(row)

