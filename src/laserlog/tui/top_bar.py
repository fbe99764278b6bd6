"""The top line of every screen: where you are, which console, the link and recording state."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.widgets import Static

if TYPE_CHECKING:
    from laserlog.tui.host import SessionHost

#: Link states as symbol and word, readable without colour.
LINK_TEXT = {"up": "= LINK UP", "down": "x LINK DOWN", "connecting": "~ CONNECTING"}


class TopBar(Static):
    """One line: screen title, console and serial, link state, recording state."""

    def __init__(self, title: str, **kw: object) -> None:
        super().__init__(markup=False, **kw)  # type: ignore[arg-type]
        self.title = title

    def on_mount(self) -> None:
        self.show_state()

    def show_state(self) -> None:
        """Redraw from the controller's state."""
        controller = cast("SessionHost", self.app).controller
        identity = controller.identity
        console = controller.profile.id + (f" {identity.serial}" if identity else "")
        session = controller.session
        rec = f"* REC session {session.session_id}" if session else "o not recording"
        text = f"laserlog {self.title} | {console} | {LINK_TEXT[controller.link_state]} | {rec}"
        self.set_class(controller.link_state == "down", "-down")
        self.set_class(session is not None, "-recording")
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text)
