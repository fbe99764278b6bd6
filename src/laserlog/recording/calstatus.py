"""Whether a console's output was verified with a meter recently enough, and passed.

Read at session start (a session on an unchecked, overdue or failed console is flagged
with an event) and by the reports.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime

from laserlog.config.siteconfig import SiteConfig
from laserlog.storage.rows import EventRow


@dataclass(frozen=True, slots=True)
class CalibrationStatus:
    """A console's calibration state at some moment."""

    state: str  # "ok" | "warn" | "missing" | "overdue" | "failed"
    calibration_id: int | None
    checked_utc: str | None
    result: str | None
    deviation: float | None
    due_utc: str | None
    message: str


def _unix(utc_text: str) -> float:
    return datetime.fromisoformat(utc_text.replace("Z", "+00:00")).timestamp()


def _utc(unix_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def status(conn: sqlite3.Connection, device_id: int | None, site: SiteConfig,
           at_unix_s: float | None = None) -> CalibrationStatus:
    """Return a console's calibration status at a moment (now by default)."""
    at = time.time() if at_unix_s is None else at_unix_s
    row = None
    if device_id is not None:
        row = conn.execute(
            "SELECT id, started_utc, ended_utc, result, deviation FROM calibrations"
            " WHERE device_id = ? AND ended_utc <= ? ORDER BY id DESC LIMIT 1",
            (device_id, _utc(at + 1))).fetchone()
    if row is None:
        return CalibrationStatus("missing", None, None, None, None, None,
                                 "no calibration check recorded for this console: check its "
                                 "output with `laserlog calibrate`")
    cal_id, started, ended, result, deviation = row[0], row[1], row[2], row[3], row[4]
    due_unix = _unix(ended) + site.calibration_interval_days * 86400.0
    due = _utc(due_unix)
    if result == "fail":
        return CalibrationStatus("failed", cal_id, started, result, deviation, due,
                                 f"the last calibration check ({started[:10]}, check "
                                 f"{cal_id}) FAILED: output deviated {deviation:+.1%} from the "
                                 "set energy")
    if at > due_unix:
        return CalibrationStatus("overdue", cal_id, started, result, deviation, due,
                                 f"calibration overdue: last check {started[:10]} (check "
                                 f"{cal_id}), due every {site.calibration_interval_days:g} "
                                 f"days, was due {due[:10]}")
    state = "warn" if result == "warn" else "ok"
    return CalibrationStatus(state, cal_id, started, result, deviation, due,
                             f"last check {started[:10]} (check {cal_id}): {result.upper()} "
                             f"{deviation:+.1%}, next due {due[:10]}")


def start_events(conn: sqlite3.Connection, device_id: int | None, site: SiteConfig,
                 at_unix_s: float) -> list[EventRow]:
    """Return the events that flag a session started on an unchecked console."""
    current = status(conn, device_id, site, at_unix_s)
    kind = {"missing": "calibration_missing", "overdue": "calibration_overdue",
            "failed": "calibration_failed"}.get(current.state)
    if kind is None:
        return []
    severity = "alarm" if current.state == "failed" else "warning"
    return [EventRow(at_unix_s, kind, severity, current.calibration_id, current.message)]
