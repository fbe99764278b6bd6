"""A device's end of a real pty, behind a stable symlink: what the tests' emulators share.

An emulator says how it answers the lines it is sent (`answer_lines`) and what its clock
does (`tick`, e.g. fire a pulse); both run under `lock`, so a test may change the device's
state safely. The emulators know nothing of laserlog's profiles or simulator;
`record_panel_shots` runs the real `laserlog record` against one.
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


def record_panel_shots(emulator: PtyPeer, profile: str, shots: int, poll: str, db: Path,
                       transcript: Path) -> tuple[int, str, str]:
    """Run `laserlog record` on the emulator's port for `shots` pulses, fired from the
    laser's own panel once the recorder polls its counter (`poll`) a second time; return
    the exit status, standard output and standard error."""
    import subprocess
    import sys

    from conftest import START, wait_until

    record = subprocess.Popen(
        [sys.executable, "-m", "laserlog", "record", "--profile", profile, "--port",
         str(emulator.link), "--operator", "tech-01", "--client", "C-1042", *START,
         "--pulses", str(shots), "--db", str(db), "--transcript", str(transcript)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The baseline is read, then the settings poll starts: the technician fires.
        wait_until(lambda: emulator.laser.heard.count(poll) >= 2, 30,  # type: ignore[attr-defined]
                   "counter polls")
        emulator.fire_from_panel(shots)  # type: ignore[attr-defined]
        out, err = record.communicate(timeout=60)
    finally:
        record.kill()
    return record.returncode, out, err
