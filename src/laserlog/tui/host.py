"""Name what the screens use of the app, so they depend on this and the app on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from laserlog.config.checklist import CheckItem
    from laserlog.storage.store import Store
    from laserlog.tui.controller import LiveController


class SessionHost(Protocol):
    """The running session app, as its screens and widgets see it."""

    controller: LiveController
    reader: Store
    checklist: tuple[CheckItem, ...]
    profile_dirs: list[str]
    last_operator: str
    clock: Callable[[], float]

    def release_keys(self) -> None:
        """Hand the keys held while a screen opened to it, in the order they were typed."""
        ...

    def drain(self) -> None:
        """Take what the recorder produced since the last tick and redraw once."""
        ...
