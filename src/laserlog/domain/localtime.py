"""Turn stored UTC times into the site's local days, ISO 8601 weeks and months.

Times are stored in UTC. Reports, the terminal screen and the web view group them in the
site's time zone (`timezone` in the site file), so a session at 23:30 UTC on 2 December
counts on 3 December in Auckland. A zone of None is the machine's own zone.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

#: The calendar periods a report, chart or query may group by.
PERIODS = ("day", "week", "month")
#: The SQLite function `register` adds: laserlog_period(utc_text_or_unix_s, period).
SQL_FUNCTION = "laserlog_period"
#: A calendar day as people type it: YYYY-MM-DD in ASCII digits, nothing else.
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def calendar_day(text: str) -> date:
    """Return the day YYYY-MM-DD names; raise ValueError for anything else (an ISO week date,
    other scripts' digits, 29 February of a common year)."""
    if not _DAY.fullmatch(text.strip()):
        raise ValueError(f"{text!r} is not YYYY-MM-DD")
    return date.fromisoformat(text.strip())


def zone(name: str | None) -> ZoneInfo | None:
    """Return the IANA zone `name` (None: the machine's zone); ValueError names near misses."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        from difflib import get_close_matches

        near = get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise ValueError(f"{name!r} is not an IANA time zone{hint}") from None


def zone_name(where: tzinfo | None) -> str:
    """Return how a zone is named on screen and in reports."""
    if where is None:
        return f"machine time, {datetime.now().astimezone().tzname()}"
    return str(where)


def local(moment: str | float, where: tzinfo | None) -> datetime:
    """Return a stored time (ISO text in UTC, or Unix seconds) in the zone `where`."""
    if isinstance(moment, str):
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
    else:
        parsed = datetime.fromtimestamp(float(moment), UTC)
    return parsed.astimezone(where)


def period_key(moment: str | float, period: str, where: tzinfo | None) -> str:
    """Return the local day (2026-12-03), ISO week (2026-W49) or month (2026-12) of a time."""
    day = local(moment, where)
    if period == "day":
        return day.date().isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    raise ValueError(f"period {period!r} is unknown; expected one of {', '.join(PERIODS)}")


def register(conn: sqlite3.Connection, where: tzinfo | None) -> None:
    """Add laserlog_period(time, period) to a connection, grouping in the zone `where`."""

    def sql_period(moment: str | float | None, period: str) -> str | None:
        if moment is None:
            return None
        try:
            return period_key(moment, period, where)
        except (ValueError, OverflowError, OSError):
            return str(moment)  # shown as stored, rather than failing the whole query

    conn.create_function(SQL_FUNCTION, 2, sql_period, deterministic=True)
