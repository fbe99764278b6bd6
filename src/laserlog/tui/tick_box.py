"""A checkbox that reads without colour (NO_COLOR, eyewear): `> [x]` focused and ticked."""

from __future__ import annotations

from textual import events
from textual.content import Content
from textual.widgets import Checkbox


class TickBox(Checkbox):
    """A Checkbox drawn as [x] or [ ], with > before it while it has the focus."""

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble("> " if self.has_focus else "  ", "[",
                                ("x" if self.value else " ", style), "]")

    async def _on_key(self, event: events.Key) -> None:
        # Ticked here, by the box the key was typed to: as a binding the key would reach
        # whichever box has the focus by the time it bubbles up, after a fast Down or Tab.
        if event.key in ("space", "enter"):
            event.stop()
            event.prevent_default()
            self.toggle()
