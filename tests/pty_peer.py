"""A device's end of a real pty, behind a stable symlink: what the tests' emulators share.

An emulator says how it answers the lines it is sent (`answer_lines`) and what its clock
does (`tick`, e.g. fire a pulse); both run under `lock`, so a test may change the device's
state safely. Nothing here knows laserlog's profiles or simulator.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from pathlib import Path


class PtyPeer:
    """Serve a device on a pty at `link` from a thread, until the `with` block ends."""

    #: The byte that ends each command the host sends.
    line_end = b"\r"

    def __init__(self, link: Path) -> None:
        self.link = link
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self._slave = slave
        os.symlink(os.ttyname(slave), link)
        self._stop = threading.Event()
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> PtyPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.link.unlink()
        os.close(self._master)
        os.close(self._slave)

    def answer_lines(self, lines: list[str]) -> str:
        """Return what the device sends back to these command lines (under `lock`)."""
        raise NotImplementedError

    def tick(self, now_s: float) -> None:
        """Advance the device's own clock to `now_s` (monotonic; under `lock`)."""

    def _serve(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.01)
            if ready:
                buffer += os.read(self._master, 4096)
                *lines, buffer = buffer.split(self.line_end)
                with self.lock:
                    out = self.answer_lines([line.decode("ascii", "replace") for line in lines])
                if out:
                    os.write(self._master, out.encode("ascii"))
            with self.lock:
                self.tick(time.monotonic())
