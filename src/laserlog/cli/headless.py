"""A headless session at a terminal or a pipe: one live progress line, and control lines.

The progress line (standard error, when it is a terminal) is redrawn twice a second: pulses,
energy, the last fluence, elapsed time, the link, and the console's fault or open interlock
first when it reports one. Control lines (`recording.contract.CONTROLS`) are read from
standard input when it is a pipe or a terminal: `note TEXT`, `marker [TEXT]`,
`pass N [SUB-AREA]`, `end`. Each is
timed when its line arrives, and answered on standard error.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import shutil
import stat
import sys
import threading
import time
from typing import IO

from laserlog.errors import LaserlogError
from laserlog.recording.contract import parse_control
from laserlog.recording.recorder import Recorder

PROGRESS_EVERY_S = 0.5
#: A control line longer than this is not one (it is cut and refused).
LINE_MAX_BYTES = 4096


def stdin_steers(fd: int = 0) -> bool:
    """Return whether standard input is a pipe or a terminal (not a file, not /dev/null)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or os.isatty(fd)


class ControlReader:
    """Read control lines from a file descriptor in a thread, each timed on arrival.

    It reads the descriptor itself (never Python's buffered stdin), polling so that it
    stops within 0.2 s of `close`.
    """

    def __init__(self, fd: int = 0) -> None:
        self.fd = fd
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="laserlog-controls",
                                        daemon=True)

    def start(self) -> ControlReader:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._thread.join(1.0)

    def _read(self) -> None:
        pending = b""
        overlong = False  # the line being read passed LINE_MAX_BYTES: its rest is dropped
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if not ready:
                    continue
                chunk = os.read(self.fd, 4096)
            except (OSError, ValueError):
                return
            if not chunk:  # end of input: the session goes on until it is ended otherwise
                if pending.strip() and not overlong:
                    self.lines.put((time.time(), pending.decode("utf-8", "replace")))
                return
            pending += chunk
            *complete, pending = pending.split(b"\n")
            now = time.time()
            for line in complete:
                if not overlong:
                    self.lines.put((now, line[:LINE_MAX_BYTES].decode("utf-8", "replace")))
                overlong = False
            if len(pending) > LINE_MAX_BYTES and not overlong:
                self.lines.put((now, pending[:LINE_MAX_BYTES].decode("utf-8", "replace")))
                overlong = True
            if overlong:
                pending = b""


class Steering:
    """Called by the recorder between steps: applies control lines, redraws the progress."""

    def __init__(self, recorder: Recorder, stop: threading.Event, *,
                 controls: ControlReader | None, progress: IO[str] | None) -> None:
        self.recorder = recorder
        self.stop = stop
        self.controls = controls
        self.progress = progress
        self.ended_by_control = False
        self.started = time.monotonic()
        self._next_draw = 0.0
        self._drawn = False

    def __call__(self) -> None:
        if self.controls is not None:
            self._apply()
        if self.progress is not None and time.monotonic() >= self._next_draw:
            self._next_draw = time.monotonic() + PROGRESS_EVERY_S
            self._draw()

    def _apply(self) -> None:
        assert self.controls is not None
        while True:
            try:
                at, line = self.controls.lines.get_nowait()
            except queue.Empty:
                return
            if not line.strip():
                continue
            try:
                command, text = parse_control(line)
                if command == "end":
                    self.ended_by_control = True
                    self.stop.set()
                    self.say("ending the session (control line 'end')")
                    return
                recorded = self.recorder.annotate(at, command, text)
            except LaserlogError as exc:
                self.say(f"not recorded: {exc}")
            else:
                self.say(f"{command} recorded: {recorded}")

    def say(self, message: str) -> None:
        """Print a message on standard error above the progress line."""
        self.clear()
        print(f"laserlog: {message}", file=sys.stderr, flush=True)

    def line(self) -> str:
        """Return the progress line's text, most important first (a narrow terminal cuts the
        end): the console's trouble, the dose, the time, the link, then the rest."""
        totals = self.recorder.totals
        elapsed = int(time.monotonic() - self.started)
        parts = []
        if totals.interlock_open:
            parts.append("!! INTERLOCK OPEN")
        if totals.fault_code:
            parts.append(f"!! FAULT {totals.fault_code}")
        parts.append(f"{totals.pulses} pulses {totals.energy_j:.3f} J")
        parts.append(f"{elapsed // 60}:{elapsed % 60:02d}")
        parts.append("link up" if self.recorder.link_up else "!! LINK LOST")
        if totals.missing_pulses:
            parts.append(f"{totals.missing_pulses} missing")
        if totals.max_fluence_j_cm2 is not None:
            parts.append(f"max {totals.max_fluence_j_cm2:.3f} J/cm²")
        parts.append(f"session {self.recorder.session_id}")
        return " | ".join(parts)

    def _draw(self) -> None:
        assert self.progress is not None
        # One line, never wrapped: a wrapped line could not be redrawn in place.
        width = shutil.get_terminal_size((80, 24)).columns
        with contextlib.suppress(OSError, ValueError, AttributeError):
            width = os.get_terminal_size(self.progress.fileno()).columns or width
        self.progress.write("\r\x1b[K" + self.line()[:max(width - 1, 20)])
        self.progress.flush()
        self._drawn = True

    def clear(self) -> None:
        """Take the progress line off the terminal (before a message or the summary)."""
        if self.progress is not None and self._drawn:
            self.progress.write("\r\x1b[K")
            self.progress.flush()
            self._drawn = False
            self._next_draw = 0.0
