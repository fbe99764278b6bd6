"""Small modal questions: confirm yes/no, end a session with its aftercare, one line of text.

They cover the middle of the screen only: the alarm bar of the screen below stays in view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost


class ConfirmDialog(ModalScreen[bool]):
    """Ask a yes/no question; y confirms, n or Esc declines."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, hint: str = "y: yes   n: no") -> None:
        super().__init__()
        self.question = question
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-title", markup=False)
            yield Static(self.hint, classes="dialog-hint", markup=False)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class EndDialog(ModalScreen[str]):
    """Ask whether to end a session whose client is given aftercare: y ends it with the
    aftercare given, w ends it without, n or Esc keeps recording ("given", "without",
    "keep")."""

    BINDINGS = [
        Binding("y", "answer('given')", "End, given", id="end.given"),
        Binding("w", "answer('without')", "End without", id="end.without"),
        Binding("n,escape", "answer('keep')", "Keep recording", id="end.keep"),
    ]

    def __init__(self, question: str, aftercare: str) -> None:
        super().__init__()
        self.question = question
        self.aftercare = aftercare

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="dialog-title", markup=False)
            yield Static(f"Aftercare {self.aftercare}: given to the client?",
                         classes="dialog-body", markup=False)
            yield Static("y: end, given   w: end, not given   n: keep recording",
                         classes="dialog-hint", markup=False)

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)


class TextDialog(ModalScreen[str | None]):
    """Ask for one line of text; Enter gives it, Esc cancels."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="text.cancel"),
        # Priority: the text is taken the moment Enter is read, so a key typed after it goes
        # to the screen below (`n`, text, Enter, `m`: a note, then a marker).
        Binding("enter", "submit", "Record", id="text.submit", priority=True, show=False),
    ]
    #: The app holds keys typed while the dialog opens, and hands them over once it is ready.
    keys_ready = False

    def __init__(self, title: str, hint: str, value: str = "", body: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.value = value
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.body:
                yield Static(self.body, id="dialog-body", classes="dialog-body", markup=False)
            # A suggested start ("2 " for the next pass) is kept and typed after, not
            # selected and typed over.
            yield Input(self.value, placeholder=self.hint, id="text", compact=True,
                        select_on_focus=not self.value)
            yield Static(self.hint, classes="dialog-hint", markup=False)

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#text", Input))  # now, before the keys held for it
        self.keys_ready = True
        cast("SessionHost", self.app).release_keys()

    def action_submit(self) -> None:
        # The characters typed before Enter may still wait in the field's queue: take the
        # text after them, and hold what was typed after Enter for the screen below.
        self.keys_ready = False
        box = self.query_one("#text", Input)
        box.call_later(self._give, box)

    def _give(self, box: Input) -> None:
        self.dismiss(box.value)
        cast("SessionHost", self.app).release_keys()

    def action_cancel(self) -> None:
        self.dismiss(None)
