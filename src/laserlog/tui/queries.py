"""Read-only questions the screens ask the database: past sessions, a client's course, energy.

Every query is parameterised; the only SQL fragments chosen at run time come from the
fixed tables below, never from what the user typed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from laserlog.domain import localtime
from laserlog.storage.store import Store

#: Sort keys for the session list -> ORDER BY expression.
SESSION_SORTS = {
    "started": "s.id",
    "client": "s.client_ref",
    "operator": "s.operator_id",
    "area": "s.area",
    "pulses": "s.pulse_count",
    "energy": "s.total_energy_j",
}
#: Energy chart buckets (the site's local days and ISO 8601 weeks) and groups -> SQL.
PERIODS = {period: f"{localtime.SQL_FUNCTION}(s.started_utc, '{period}')"
           for period in ("day", "week")}
GROUPS = {
    "device": "coalesce(d.model || ' ' || d.serial, s.profile_id)",
    "operator": "s.operator_id",
}
# Pulse columns that stand for a setting when a console reports no read-back.
_PULSE_SETTINGS = (("energy_j", "energy", "J"), ("fluence_j_cm2", "fluence", "J/cm^2"),
                   ("spot_mm", "spot", "mm"), ("pulse_duration_ps", "pulse_duration", "ps"),
                   ("rep_rate_hz", "rep_rate", "Hz"), ("handpiece", "handpiece", ""))


def find_sessions(store: Store, text: str = "", sort: str = "started", descending: bool = True,
                  limit: int = 500) -> list[dict[str, Any]]:
    """Return sessions matching every word of `text` in client, operator, area, profile or status.

    `C-1042 left cheek` finds that client's left-cheek sessions: the words narrow, in any field.
    """
    order = SESSION_SORTS[sort]
    params = dict[str, Any](limit=limit)
    terms = []
    # Control characters (a stray NUL from a paste) are no text: SQLite's LIKE stops at a NUL.
    words = ["".join(c for c in word if c.isprintable()) for word in text.split()]
    for number, word in enumerate(w for w in words if w):
        params[f"q{number}"] = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_") + "%"
        terms.append("(" + " OR ".join(
            f"{column} LIKE :q{number} ESCAPE '\\'" for column in (
                "s.client_ref", "s.operator_id", "coalesce(s.area, '')", "s.profile_id",
                "s.status")) + ")")
    where = ("WHERE " + " AND ".join(terms)) if terms else ""
    direction = "DESC" if descending else "ASC"
    return store.query(
        "SELECT s.*, d.model, d.serial FROM sessions s LEFT JOIN devices d ON d.id = s.device_id "
        f"{where} ORDER BY {order} {direction}, s.id {direction} LIMIT :limit", params)


@dataclass(slots=True)
class AreaHistory:
    """What one area of a client has received so far."""

    area: str
    sessions: int
    energy_j: float
    pulses: int
    last_session_id: int
    last_started_utc: str
    last_profile_id: str
    last_settings: dict[str, tuple[float, str]] = field(default_factory=dict)


@dataclass(slots=True)
class ClientHistory:
    """A returning client's earlier sessions, per treatment area."""

    client_ref: str
    sessions: int
    energy_j: float
    areas: dict[str, AreaHistory]

    def course_number(self, area: str | None) -> int:
        """Return which session of the course the next one is (for that area, when known)."""
        if area and area.strip():
            known = self.areas.get(area.strip().lower())
            return (known.sessions if known is not None else 0) + 1
        return self.sessions + 1


def client_history(store: Store, client_ref: str) -> ClientHistory:
    """Return a client's finished sessions, grouped by area (case-insensitive)."""
    rows = store.query(
        "SELECT id, area, profile_id, started_utc, pulse_count, total_energy_j FROM sessions"
        " WHERE client_ref = ? AND status != 'recording' ORDER BY id", (client_ref.strip(),))
    areas: dict[str, AreaHistory] = {}
    for r in rows:
        key = (r["area"] or "").strip().lower()
        a = areas.get(key)
        if a is None:
            a = areas[key] = AreaHistory(r["area"] or "(no area)", 0, 0.0, 0, r["id"],
                                         r["started_utc"], r["profile_id"])
        a.sessions += 1
        a.energy_j += r["total_energy_j"] or 0.0
        a.pulses += r["pulse_count"] or 0
        a.last_session_id, a.last_started_utc = r["id"], r["started_utc"]
        a.last_profile_id = r["profile_id"]
    for a in areas.values():
        a.last_settings = last_settings(store, a.last_session_id)
    return ClientHistory(client_ref.strip(), len(rows),
                         sum(r["total_energy_j"] or 0.0 for r in rows), areas)


def last_settings(store: Store, session_id: int) -> dict[str, tuple[float, str]]:
    """Return a session's last value of each setting (from its last pulse where none was read)."""
    out: dict[str, tuple[float, str]] = {}
    pulse = store.query("SELECT * FROM pulses WHERE session_id = ? ORDER BY id DESC LIMIT 1",
                        (session_id,))
    if pulse:
        for column, name, unit in _PULSE_SETTINGS:
            if pulse[0][column] is not None:
                out[name] = (float(pulse[0][column]), unit)
    for r in store.query(
            "SELECT name, value, unit FROM settings WHERE id IN"
            " (SELECT max(id) FROM settings WHERE session_id = ? GROUP BY name)", (session_id,)):
        out[r["name"]] = (float(r["value"]), r["unit"])
    return out


@dataclass(frozen=True, slots=True)
class EnergyBar:
    """Energy delivered in one period by one device or operator."""

    period: str
    key: str
    energy_j: float
    pulses: int
    sessions: int


def energy_by_period(store: Store, period: str = "day", group: str = "device",
                     limit: int = 60, zone: tzinfo | None = None) -> list[EnergyBar]:
    """Return energy per period and group, most recent periods first (at most `limit` bars).

    Days and ISO 8601 weeks are counted in `zone`, the site's (None: the machine's zone).
    """
    localtime.register(store.conn, zone)
    rows = store.query(
        f"SELECT {PERIODS[period]} AS period, {GROUPS[group]} AS key,"
        " sum(s.total_energy_j) AS energy_j, sum(s.pulse_count) AS pulses, count(*) AS sessions"
        " FROM sessions s LEFT JOIN devices d ON d.id = s.device_id"
        " GROUP BY period, key ORDER BY period DESC, key LIMIT ?", (limit,))
    return [EnergyBar(r["period"], r["key"], r["energy_j"] or 0.0, r["pulses"] or 0,
                      r["sessions"]) for r in rows]
