"""Ship a recording console's database in the background, never in the recorder's way.

A daemon thread runs the same `sync` as `laserlog sync` every few seconds on its own
SQLite read connection. When the server is down it waits longer each time (up to a
minute) and tries again; what was not shipped simply stays in the file until it is.
Recording never waits for it: the thread shares nothing with the recorder but the file.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from laserlog.errors import LaserlogError

INTERVAL_S = 3.0
MAX_BACKOFF_S = 60.0


class Shipper:
    """The background sync of one database to one server."""

    def __init__(self, db_path: str | Path, url: str, *, interval_s: float = INTERVAL_S,
                 site: str | None = None) -> None:
        from laserlog.central import is_url

        if not is_url(url):
            raise LaserlogError(f"--sync {url!r}: expected postgresql://user:password@host/database")
        self.db_path = Path(db_path)
        self.url = url
        self.interval_s = interval_s
        self.site = site
        self.syncs = 0
        self.failures = 0
        self.last_error: str | None = None
        self.shipped_pulses = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="laserlog-shipper", daemon=True)

    def start(self) -> Shipper:
        self._thread.start()
        return self

    def _once(self) -> bool:
        from laserlog.central.sync import sync

        if not self.db_path.exists():
            return True  # nothing recorded yet
        try:
            result = sync(self.db_path, self.url, site=self.site, connect_timeout_s=5)
        except LaserlogError as exc:
            self.failures += 1
            self.last_error = str(exc)
            return False
        except Exception as exc:  # the recorder must outlive any surprise here
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        self.syncs += 1
        self.shipped_pulses += result.rows.get("pulses", 0)
        self.last_error = None
        return True

    def _run(self) -> None:
        wait_s = self.interval_s
        while not self._stop.wait(wait_s):
            ok = self._once()
            wait_s = self.interval_s if ok else min(MAX_BACKOFF_S, max(wait_s, 1.0) * 2)

    def stop(self, *, final: bool = True, timeout_s: float = 30.0) -> bool:
        """Stop the thread; with `final`, ship once more what the session committed last."""
        self._stop.set()
        self._thread.join(timeout_s)
        if final:
            started = time.monotonic()
            ok = self._once()
            return ok and time.monotonic() - started < timeout_s
        return True
