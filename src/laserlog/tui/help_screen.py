"""Help: every key, by screen. F1 or ? opens it anywhere."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from laserlog.tui.alarm_bar import AlarmBar

HELP = """\
laserlog keys (every action has one; ctrl+p searches them all)

Anywhere
  F1 or ?     this help                 ctrl+p   command palette
  F2          live screen               F3       history
  F4          energy chart              F5       profiles
  a or F8     acknowledge alarms (asks who; recorded with the time)
  ctrl+q      quit (a recording session is ended and committed first)

Live screen
  s           start a session: operator, client, area, skin type, course,
              checklist
  x           end the session: its summary, and a short assessment over
              it (Esc skips it; e on the summary opens it again)
  n           add a note            m    add a numbered marker
  p           start pass N on a sub-area ("2 forehead"): the summary
              totals each pass
  space       pause the tail: PAUSED +N counts what it holds back;
              recording goes on
  /           filter the tail; Esc clears the filter
  Tab         move between widgets; arrows scroll the tail

Start form
  Tab, Enter or Down  next field    Shift+Tab or Up  previous field
  space ticks a checklist item; a scanner or a paste may type
  several fields at once, separated by Tab or Enter
  ctrl+s      start the session        Esc cancels

History
  /  filter    o  sort column    r  reverse    Enter  open a session
Session
  ]  next page of pulses   [  previous page
  u  pulses    v  events    t  settings
Energy
  d  per day   w  per week   g  by device or by operator
Esc goes back everywhere.

Alarms (interlock, console fault, out-of-range value, pulse gap, link lost)
show on every screen as !! and a WORD, ring the bell, and stay until
acknowledged. Recording never depends on the screen: totals come from the
recorder, and the database holds every pulse."""


class HelpScreen(ModalScreen[None]):
    """The key reference."""

    BINDINGS = [Binding("escape,f1,question_mark,q", "app.pop_screen", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        yield AlarmBar(id="alarm")
        with VerticalScroll(id="help-body"):
            yield Static(HELP, id="help", markup=False)
        yield Footer(compact=True)
