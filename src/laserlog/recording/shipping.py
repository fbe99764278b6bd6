"""Ship a recording console's database in the background, never in the recorder's way.

The shipping runs in a child process at a lower CPU priority: the central front end's
`python -m laserlog.central.shipper`, started here by name across a process boundary, so
neither the recorder nor the session screen imports central (or psycopg), and the child
never takes the recorder's interpreter lock. Every few seconds the child runs the same
chunked `sync` as `laserlog sync` on its own SQLite read connection. While the recorder
is saturated (the file grows by more than `busy_rows_per_s`) it defers, for at most
`max_defer_s`, and catches up afterwards; when the server is down it waits longer each
time (up to a minute) and tries again. What was not shipped stays in the file until it is.

The child reads its settings as one JSON line on stdin (so no password shows in the
process list), then "stop" when the session has ended: it ships once more and exits. It
leaves at once when its stdin closes without a "stop" (the recorder died; the server
rolls back a chunk in flight). It reports its state as JSON lines on stdout, which
`Shipper` keeps for the front ends (`Shipper.status()`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from laserlog.errors import LaserlogError
from laserlog.storage.location import is_url

INTERVAL_S = 3.0
MAX_BACKOFF_S = 60.0
#: How often the child looks at how fast the file grows.
POLL_S = 0.5
#: Above this many new pulse and event rows a second the recorder is taken as saturated.
BUSY_ROWS_PER_S = 20_000.0
#: The longest shipping waits for a saturated recorder before it ships anyway: one small
#: chunk, so the server hears from the console while the recorder keeps the processor.
MAX_DEFER_S = 60.0
DEFERRED_CHUNK_ROWS = 10_000
#: How much nicer than the recorder the child runs (os.nice increment).
NICE = 10
#: The longest `stop` waits for the last shipment before it gives up on it.
STOP_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ShipperStatus:
    """What the background shipping has done so far, for display."""

    #: "starting", "ok", "deferred" (recorder saturated), "retrying", "stopped" or "failed".
    state: str = "starting"
    syncs: int = 0
    failures: int = 0
    last_success_unix_s: float | None = None
    last_error: str | None = None
    shipped_pulses: int = 0
    #: How many times shipping waited for a saturated recorder.
    deferrals: int = 0
    #: When the next attempt is due (retrying), wall clock.
    retry_unix_s: float | None = None

    def text(self, now_unix_s: float | None = None) -> str:
        """Return one line for a status bar: state, when or why, shipped count (80 columns).

        The reason of a failure comes last: a narrow screen cuts it, never the state.
        """
        shipped = f" | {self.shipped_pulses:,} pulses shipped"
        when = (time.strftime("%H:%M:%S UTC", time.gmtime(self.last_success_unix_s))
                if self.last_success_unix_s is not None else None)
        if self.state == "retrying":
            now = time.time() if now_unix_s is None else now_unix_s
            wait = (f" in {max(0, round(self.retry_unix_s - now))} s"
                    if self.retry_unix_s is not None else "")
            return f"sync retrying{wait}{shipped} | {_short(self.last_error)}"
        if self.state == "failed":
            return f"sync stopped{shipped} | {_short(self.last_error)}"
        if self.state == "deferred":
            return "sync deferred while the recorder is busy" + (
                f" | last ok {when}" if when else "") + shipped
        if self.state == "starting":
            return "sync starting"
        word = "ok" if self.state == "ok" else self.state
        return f"sync {word}" + (f" {when}" if when else "") + shipped


def _short(error: str | None) -> str:
    """Return the gist of a sync error: what went wrong, without the address or the advice."""
    if not error:
        return "unknown error"
    gist = error.split(" (", 1)[0].split("; ", 1)[0]
    if gist.startswith("cannot reach the central server"):
        return "unreachable: " + gist.rsplit(": ", 1)[-1]
    if "refused the login" in gist:
        return "login refused: wrong user name or password"
    return gist


class Shipper:
    """The background sync of one database to one server, in a child process."""

    def __init__(self, db_path: str | Path, url: str, *, interval_s: float = INTERVAL_S,
                 site: str | None = None, busy_rows_per_s: float = BUSY_ROWS_PER_S,
                 max_defer_s: float = MAX_DEFER_S, chunk_rows: int | None = None) -> None:
        if not is_url(url):
            raise LaserlogError(f"--sync {url!r}: expected postgresql://user:password@host/database")
        if importlib.util.find_spec("psycopg") is None:
            raise LaserlogError("--sync needs psycopg: pip install 'laserlog[central]'")
        self.db_path = Path(db_path)
        self.url = url
        self.interval_s = interval_s
        self.site = site
        self._settings = {"db": str(self.db_path.resolve()), "url": url, "site": site,
                          "interval_s": interval_s, "busy_rows_per_s": busy_rows_per_s,
                          "max_defer_s": max_defer_s, "chunk_rows": chunk_rows}
        self._status = ShipperStatus()
        self._lock = threading.Lock()
        self._final = threading.Event()
        self._final_ok = False
        self._stopped: bool | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    # -- what the front ends read ----------------------------------------------------------
    def status(self) -> ShipperStatus:
        """Return the latest state the child reported."""
        with self._lock:
            return self._status

    @property
    def pid(self) -> int | None:
        """Return the child process's id, None before `start`."""
        return self._proc.pid if self._proc is not None else None

    @property
    def syncs(self) -> int:
        return self.status().syncs

    @property
    def failures(self) -> int:
        return self.status().failures

    @property
    def last_error(self) -> str | None:
        return self.status().last_error

    @property
    def shipped_pulses(self) -> int:
        return self.status().shipped_pulses

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> Shipper:
        """Start the child process; it ships at once, then every `interval_s`."""
        import laserlog

        env = dict(os.environ)
        # The child imports this same laserlog, wherever the recorder found it.
        source = str(Path(laserlog.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
        # Its own session: a Ctrl-C or hang-up meant for the recorder reaches it only
        # through the recorder ("stop", or its stdin closing).
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "laserlog.central.shipper"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
            start_new_session=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(self._settings) + "\n")
        self._proc.stdin.flush()
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,),
                                        name="laserlog-shipper-status", daemon=True)
        self._reader.start()
        return self

    def _read(self, out: IO[str]) -> None:
        for line in out:
            try:
                report = json.loads(line)
            except ValueError:
                continue
            final = report.pop("final", None)
            with self._lock:
                self._status = ShipperStatus(**report)
            if final is not None:
                self._final_ok = bool(final)
                self._final.set()
        if not self._final.is_set():
            code = self._proc.wait() if self._proc is not None else None
            with self._lock:
                if self._stopped is None:  # nobody asked it to go
                    self._status = replace(self._status, state="failed", last_error=(
                        self._status.last_error or f"the background shipping stopped "
                        f"(exit status {code}); `laserlog sync --to URL` ships the rest"))
            self._final.set()

    def stop(self, *, final: bool = True, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the child; with `final`, it ships once more what the session committed last.

        Return True when that last shipment went through within `timeout_s`.
        """
        if self._stopped is not None:
            return self._stopped
        proc = self._proc
        if proc is None:
            self._stopped = False
            return False
        self._stopped = False
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            if final:
                proc.stdin.write("stop\n")
                proc.stdin.flush()
            else:
                proc.stdin.close()
        if final:
            self._final.wait(max(0.0, deadline - time.monotonic()))
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()  # the server rolls back the chunk in flight
            proc.wait()
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.close()
        if self._reader is not None:
            self._reader.join(5)
        ok = final and self._final_ok
        with self._lock:
            error = self._status.last_error
            if final and not ok and error is None:
                error = (f"the last shipment did not finish within {timeout_s:g} s (the chunks "
                         "it committed stay)")
            self._status = replace(self._status, state="stopped" if ok or not final else "failed",
                                   last_error=error)
        self._stopped = ok
        return ok
