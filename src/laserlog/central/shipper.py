"""Ship a console's database to the central server as the recorder's child process.

`laserlog.recording.shipping.Shipper` starts this module (`python -m laserlog.central.shipper`)
beside a recording session: its settings come as one JSON line on stdin, "stop" ends it,
and it reports its state as JSON lines on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from laserlog.errors import LaserlogError
from laserlog.recording.shipping import (
    BUSY_ROWS_PER_S,
    CONNECT_TIMEOUT_S,
    DEFERRED_CHUNK_ROWS,
    INTERVAL_S,
    MAX_BACKOFF_S,
    MAX_DEFER_S,
    NICE,
    POLL_S,
    ShipperStatus,
)


class _Shipping:
    """The child's loop: ship when due, defer while the recorder is saturated, back off."""

    def __init__(self, settings: dict[str, Any], emit: Any) -> None:
        self.db_path = Path(settings["db"])
        self.url = settings["url"]
        self.site = settings.get("site")
        self.interval_s = float(settings.get("interval_s") or INTERVAL_S)
        self.busy_rows_per_s = float(settings.get("busy_rows_per_s") or BUSY_ROWS_PER_S)
        self.max_defer_s = float(settings.get("max_defer_s") or MAX_DEFER_S)
        self.chunk_rows = settings.get("chunk_rows")
        self.emit = emit
        self.status = ShipperStatus()
        self._conn: Any = None
        self._rows: int | None = None
        self._rows_at = 0.0
        self._rate = 0.0

    def _report(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)
        self.emit(asdict(self.status))

    def growth_rows_per_s(self) -> float:
        """Return how fast pulses and events were committed since the last look."""
        from laserlog.storage.store import connect

        try:
            if self._conn is None:
                if not self.db_path.exists():
                    return 0.0
                self._conn = connect(self.db_path, readonly=True)
            rows = sum(self._conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
                       for t in ("pulses", "events"))
        except Exception:  # a file still being created, or busy: look again next time
            return 0.0
        now = time.monotonic()
        if self._rows is not None and now - self._rows_at < POLL_S / 2:
            return self._rate  # too soon to tell: commits come in batches
        previous, previous_at = self._rows, self._rows_at
        self._rows, self._rows_at = rows, now
        self._rate = 0.0 if previous is None else (rows - previous) / (now - previous_at)
        return self._rate

    def once(self, *, small: bool = False) -> bool:
        """Sync chunk by chunk (`small`: one small chunk); report how it went.

        Between chunks it stops when the recorder has become saturated: the rest waits.
        """
        from laserlog.central.sync import CHUNK_ROWS, sync

        if not self.db_path.exists():
            return True  # nothing recorded yet
        chunk_rows = int(self.chunk_rows or CHUNK_ROWS)
        if small:
            chunk_rows = min(chunk_rows, DEFERRED_CHUNK_ROWS)
        try:
            while True:
                result = sync(self.db_path, self.url, site=self.site,
                              connect_timeout_s=CONNECT_TIMEOUT_S, chunk_rows=chunk_rows,
                              max_chunks=1)
                self.status = replace(self.status, shipped_pulses=(
                    self.status.shipped_pulses + result.rows.get("pulses", 0)))
                if result.complete or small or (
                        self.growth_rows_per_s() >= self.busy_rows_per_s):
                    break
        except LaserlogError as exc:
            error = str(exc)
        except Exception as exc:  # the shipping must outlive any surprise, and say it
            error = f"{type(exc).__name__}: {exc}"
        else:
            self._report(state="ok", syncs=self.status.syncs + 1, last_error=None,
                         last_success_unix_s=time.time(), retry_unix_s=None)
            return True
        self.status = replace(self.status, failures=self.status.failures + 1, last_error=error)
        return False

    def run(self, stop: threading.Event) -> bool:
        """Ship until `stop` is set, then once more; return whether that last one went."""
        self._report()
        wait_s = self.interval_s
        due = time.monotonic()  # the first sync at once: a server that is away shows early
        deferred_since: float | None = None
        while not stop.wait(min(POLL_S, max(0.0, due - time.monotonic()))):
            busy = self.growth_rows_per_s() >= self.busy_rows_per_s
            now = time.monotonic()
            if now < due:
                continue
            if busy and (deferred_since is None or now - deferred_since < self.max_defer_s):
                if deferred_since is None:
                    deferred_since = now
                    self._report(state="deferred", deferrals=self.status.deferrals + 1)
                due = now + POLL_S  # look again at the next poll
                continue
            forced = busy  # deferred for max_defer_s already
            deferred_since = None
            if self.once(small=forced):
                wait_s = self.interval_s
            else:
                wait_s = min(MAX_BACKOFF_S, max(wait_s, 1.0) * 2)
                self._report(state="retrying", retry_unix_s=time.time() + wait_s)
            due = time.monotonic() + wait_s
        ok = self.once()
        if not ok:
            self._report(state="retrying", retry_unix_s=None)
        return ok


def main() -> int:
    """Run as the recorder's child: settings on stdin, state on stdout."""
    import signal

    with contextlib.suppress(OSError):
        os.nice(NICE)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the recorder says when to stop
    first = sys.stdin.readline()
    if not first:
        return 0
    settings = json.loads(first)
    stop = threading.Event()
    out_lock = threading.Lock()

    def emit(report: dict[str, Any]) -> None:
        with out_lock:
            try:
                sys.stdout.write(json.dumps(report) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the recorder is gone

    def watch_recorder() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                stop.set()
        os._exit(0)  # stdin closed: the recorder is gone (or gave up waiting)

    threading.Thread(target=watch_recorder, name="laserlog-recorder-watch", daemon=True).start()
    shipping = _Shipping(settings, emit)
    ok = shipping.run(stop)
    emit({**asdict(shipping.status), "final": ok})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
