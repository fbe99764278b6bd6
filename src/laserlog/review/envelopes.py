"""The skin-type envelope a session was held to, read from its record, and its cells as rows.

The session's `envelope` event holds the envelope in force at its start: its message the
line the form showed, its `raw` the cells (laserlog.recording.envelopes.EnvelopeCell). Its
`out_of_envelope` events are the pulses that passed it. Nothing here reads today's profile
or site file: the record says what was in force then. A record from before the cells were
kept has its line only.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from laserlog.config.envelopes import EnvelopePolicy, EnvelopeRule
from laserlog.config.profile import SKIN_TYPES, Profile
from laserlog.recording.envelopes import EnvelopeCell, cells_from_json, session_envelope

#: The columns of an envelope table: per cell, each value with the rule that won it.
CELL_COLUMNS = ["skin_type", "wavelength_nm", "for", "recommended_fluence_j_cm2",
                "recommended_by", "max_fluence_j_cm2", "max_by", "avoid_by"]


@dataclass(slots=True)
class HeldEnvelope:
    """What one session's record says of its envelope."""

    line: str = ""  # the envelope event's message ("" when none was in force)
    cells: list[EnvelopeCell] = field(default_factory=list)
    #: The session's out_of_envelope events (received_unix_s, severity, count, message, raw).
    breaches: list[dict[str, Any]] = field(default_factory=list)


def held_envelopes(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, HeldEnvelope]:
    """Return, per session that was held to an envelope or passed one, what its record says."""
    out: dict[int, HeldEnvelope] = {}
    for start in range(0, len(session_ids), 500):
        part = session_ids[start:start + 500]
        cur = conn.execute(
            "SELECT session_id, kind, received_unix_s, severity, count, message, raw FROM events"
            " WHERE kind IN ('envelope', 'out_of_envelope') AND session_id IN"
            f" ({', '.join('?' * len(part))}) ORDER BY id", part)
        for sid, kind, at, severity, count, message, raw in cur.fetchall():
            held = out.setdefault(int(sid), HeldEnvelope())
            if kind == "envelope":
                held.line, held.cells = str(message), cells_from_json(raw)
            else:
                held.breaches.append({"received_unix_s": at, "severity": severity,
                                      "count": int(count), "message": message, "raw": raw})
    return out


def rule_cell(rule: EnvelopeRule) -> EnvelopeCell:
    """Return one declared rule as a cell (the site file's table, before any profile)."""
    return EnvelopeCell(rule.skin_type, rule.wavelength_nm, rule.scope(),
                        rule.recommended_fluence_j_cm2,
                        rule.source if rule.recommended_fluence_j_cm2 is not None else None,
                        rule.max_fluence_j_cm2,
                        rule.source if rule.max_fluence_j_cm2 is not None else None,
                        rule.source if rule.avoid else None)


def cell_row(cell: EnvelopeCell) -> dict[str, Any]:
    """Return a cell as a table row (CELL_COLUMNS): fluences in J/cm², "-" where none."""
    return {"skin_type": cell.skin_type,
            "wavelength_nm": cell.wavelength_nm if cell.wavelength_nm is not None else "every",
            "for": cell.scope or "every handpiece and spot",
            "recommended_fluence_j_cm2": cell.recommended_fluence_j_cm2,
            "recommended_by": cell.recommended_source or "-",
            "max_fluence_j_cm2": cell.max_fluence_j_cm2, "max_by": cell.max_source or "-",
            "avoid_by": cell.avoid_source or "-"}


def cell_text(cell: EnvelopeCell) -> str:
    """Return a cell in a few words: "755 nm: recommended 0.8, max 1.5 J/cm2"."""
    at = f"{cell.wavelength_nm:g} nm" if cell.wavelength_nm is not None else "every wavelength"
    if cell.scope:
        at += f", {cell.scope}"
    if cell.avoid_source:
        return f"{at}: not to be used"
    parts = []
    if cell.recommended_fluence_j_cm2 is not None:
        parts.append(f"recommended {cell.recommended_fluence_j_cm2:g}")
    if cell.max_fluence_j_cm2 is not None:
        parts.append(f"max {cell.max_fluence_j_cm2:g}")
    return f"{at}: {', '.join(parts)} J/cm2"


def held_text(held: HeldEnvelope) -> str:
    """Return the envelope in force in a few words, cell by cell (the recorded line where the
    record kept no cells; "-" where none was in force)."""
    if held.cells:
        return "; ".join(cell_text(c) for c in held.cells)
    return held.line or "-"


def recorded_text(message: str | None, raw: str | None) -> str:
    """Return the envelope an `envelope` event recorded in a few words, as held_text words it
    (its message and `raw` cells as the event holds them; "-" where it holds neither)."""
    return held_text(HeldEnvelope(message or "", cells_from_json(raw)))


def breach_limit(message: str) -> str:
    """Return the rule an out_of_envelope event names ("skin type V maximum 0.5 J/cm2 at
    755 nm", "755 nm not to be used on skin type V"), without the rule's source."""
    body = message.rsplit(" (", 1)[0]
    if " above the " in body:
        return body.rsplit(" above the ", 1)[1]
    at, _, rule = body.rpartition(" at ")[2].partition(", ")
    return f"{at} {rule}" if rule else body



def in_force_rows(profile: Profile, policy: EnvelopePolicy) -> list[dict[str, Any]]:
    """Return the envelope a session of each skin type on this console is held to, as rows:
    the profile's and the site's rules joined, the stricter value winning, each value with
    the rule that won it."""
    rows = []
    for skin in SKIN_TYPES:
        envelope = session_envelope(profile, policy, skin)
        if envelope is not None:
            rows += [cell_row(c) for c in envelope.cells()]
    return rows
