"""A pseudo-terminal behind a stable symlink, so a simulated console looks like a serial port.

The pty is raw at once (no echo, no CR rewriting). Swapping the symlink to a fresh pty
simulates unplugging and replugging the USB adapter.
"""

from __future__ import annotations

import os
import tty
from pathlib import Path


class PtyLink:
    """The console's end of a pty; `path` is what a driver opens with pyserial."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.master_fd = -1
        self._slave_fd = -1
        self.plug()

    def plug(self) -> None:
        """Create a fresh pty and point the symlink at it."""
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self.master_fd, self._slave_fd = master, slave
        target = os.ttyname(slave)
        tmp = self.path.with_name(self.path.name + ".new")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target)
        os.replace(tmp, self.path)  # atomic: a reader never sees the link missing

    def unplug(self) -> None:
        """Close the pty: the device vanishes and an open port starts failing."""
        for fd in (self.master_fd, self._slave_fd):
            if fd >= 0:
                os.close(fd)
        self.master_fd = self._slave_fd = -1
        if self.path.is_symlink():
            self.path.unlink()

    def read(self) -> bytes:
        """Return what the host sent, or b"" when nothing is waiting."""
        try:
            return os.read(self.master_fd, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        """Send bytes to the host; drop what the pty cannot take (as a UART overrun would)."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master_fd, view)
            except BlockingIOError:
                import select

                select.select([], [self.master_fd], [], 0.05)
                continue
            except OSError:
                return
            view = view[written:]

    def close(self) -> None:
        self.unplug()
