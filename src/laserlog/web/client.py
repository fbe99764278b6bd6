"""The per-client page: one client's sessions per area, energy, fluence against the limits.

It answers the officer's question ("how much energy did C-1042 receive on the left cheek
over the last six sessions, and were any out of limits?") on one page: the answer first,
then each session with its corrected details, its energy and the running total per area,
its highest fluence beside the console's fluence limit, its out-of-limit pulses, its
sign-off state (VALID, INVALID, LEGACY or unsigned) and its reactions (assessment, adverse
events, the course outcomes that followed it), then the charts and the SQL.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from laserlog.web.queries import SESSIONS_CTE, report_link

#: Filters the page reads from its URL, as the canned queries name them.
PARAMS = ("client", "area", "last", "from", "to", "device", "operator")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.]+Z?)?$")

_SIGNOFF = """coalesce((SELECT group_concat(state, ', ') FROM (
    SELECT g.meaning || ' ' || laserlog_signature_status(g.id) AS state
    FROM signoffs g WHERE g.session_id = selected.id ORDER BY g.id)), 'unsigned')"""

CLIENT_SESSIONS = f"""{SESSIONS_CTE}SELECT id AS session, started_utc, ended_utc, status,
  device, profile_id, operator_id AS operator, client_ref AS client,
  coalesce(area, '-') AS area, corrected, area_as_recorded, client_as_recorded,
  pulse_count AS pulses, total_energy_j AS energy_j,
  sum(total_energy_j) OVER (PARTITION BY coalesce(area, '-') ORDER BY started_utc, id)
    AS cumulative_energy_j,
  max_fluence_j_cm2, out_of_limit AS out_of_limit_pulses,
  (SELECT group_concat(DISTINCT e.raw) FROM events e WHERE e.session_id = selected.id
     AND e.kind = 'out_of_limit') AS limits_passed,
  {_SIGNOFF} AS signoff, {report_link('id')} AS printable_report, kind, course_id
FROM selected ORDER BY started_utc, id"""

#: The test spots `last` leaves out, listed apart: those after the full session before
#: the last N (every test spot when the N are all of them).
TEST_SPOTS_APART = f"""{SESSIONS_CTE}SELECT id AS session, started_utc, coalesce(area, '-') AS
  area, pulse_count AS pulses, total_energy_j AS energy_j, max_fluence_j_cm2, course_id
FROM filtered WHERE :last != '' AND kind = 'test_spot' AND started_utc > coalesce((
  SELECT started_utc FROM filtered WHERE kind != 'test_spot'
    AND newest = CAST(:last AS INTEGER) + 1), '')
ORDER BY started_utc, id"""

#: The client's courses, newest first, with how many full sessions each holds now.
CLIENT_COURSES = """SELECT c.id, c.area, c.indication, c.planned_sessions,
  c.min_interval_days, c.max_interval_days,
  (SELECT count(*) FROM session_kind k JOIN sessions s ON s.id = k.session_id
    WHERE k.course_id = c.id AND k.kind = 'course' AND s.pulse_count > 0) AS sessions,
  (SELECT min(closed_utc) FROM course_closures x WHERE x.course_id = c.id) AS closed_utc
FROM courses c WHERE upper(c.client_ref) = upper(trim(:client)) ORDER BY c.id DESC"""


class FilterError(ValueError):
    """Raise when a filter on the client page is not what it should be: which, what expected."""


@dataclass(slots=True)
class Answer:
    """The figures the page leads with, over the sessions the filters selected."""

    sessions: int
    pulses: int
    energy_j: float
    out_of_limit: list[dict[str, Any]]
    areas: list[dict[str, Any]] = field(default_factory=list)


def read_filters(args: dict[str, str]) -> dict[str, str]:
    """Return every filter as text ('' for none), or raise FilterError naming a bad one."""
    out = {name: (args.get(name) or "").strip() for name in PARAMS}
    if out["last"] and not (out["last"].isdigit() and 0 < int(out["last"]) <= 100_000):
        raise FilterError(f"last sessions {out['last']!r}: expected a whole number from 1, "
                          "e.g. 6")
    for name in ("from", "to"):
        if out[name] and not _DATE.match(out[name]):
            raise FilterError(f"{name} {out[name]!r}: expected a date such as 2026-05-01")
    return out


def answer(rows: list[dict[str, Any]]) -> Answer:
    """Return the totals and the out-of-limit sessions of the selected sessions, per area too."""
    areas: dict[str, dict[str, Any]] = {}
    for row in rows:
        area = areas.setdefault(row["area"], {"area": row["area"], "sessions": 0, "pulses": 0,
                                              "energy_j": 0.0, "out_of_limit_sessions": 0,
                                              "first_utc": row["started_utc"]})
        area["sessions"] += 1
        area["pulses"] += row["pulses"] or 0
        area["energy_j"] += row["energy_j"] or 0.0
        area["out_of_limit_sessions"] += int(bool(row["out_of_limit_pulses"]))
        area["last_utc"] = row["started_utc"]
    return Answer(len(rows), sum(r["pulses"] or 0 for r in rows),
                  math.fsum(r["energy_j"] or 0.0 for r in rows),
                  [r for r in rows if r["out_of_limit_pulses"]], sorted(
                      areas.values(), key=lambda a: str(a["area"])))


def fluence_limits(profile_ids: set[str], site: Any) -> dict[str, tuple[float, str]]:
    """Return each console profile's highest allowed fluence (J/cm²) and whose limit it is."""
    from laserlog.config.profile import open_profile
    from laserlog.errors import LaserlogError
    from laserlog.recording.limits import compile_limits

    out = {}
    for profile_id in profile_ids:
        try:
            limits = compile_limits(open_profile(profile_id), site).limits
        except (LaserlogError, OSError, ValueError):
            continue  # a profile this machine no longer has: no limit drawn
        highs = [(lim.high, lim.source) for lim in limits
                 if lim.column == "fluence_j_cm2" and math.isfinite(lim.high)]
        if highs:
            out[profile_id] = min(highs)
    return out


def charts(rows: list[dict[str, Any]], limits: dict[str, tuple[float, str]]) -> dict[str, Any]:
    """Return the page's Vega-Lite charts with the sessions inline: time axis, energy, fluence."""
    values = [{"session": r["session"], "started": r["started_utc"], "area": r["area"],
               "energy_j": r["energy_j"], "cumulative_energy_j": r["cumulative_energy_j"],
               "max_fluence_j_cm2": r["max_fluence_j_cm2"],
               "out_of_limit": "out of limits" if r["out_of_limit_pulses"] else "within limits",
               "limit_j_cm2": limits.get(r["profile_id"], (None, ""))[0]} for r in rows]
    time_x = {"field": "started", "type": "temporal", "title": "session start (UTC)",
              "axis": {"format": "%Y-%m-%d %H:%M", "labelAngle": -20}}
    area = {"field": "area", "type": "nominal", "title": "area"}
    tooltip = [{"field": "session"}, {"field": "area"}, {"field": "started", "type": "temporal",
               "format": "%Y-%m-%d %H:%M"}, {"field": "energy_j", "format": ".4f"},
               {"field": "max_fluence_j_cm2", "format": ".3f"}, {"field": "out_of_limit"}]
    base = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "data": {"values": values}, "width": "container", "height": 160}
    return {
        "timeline": {**base, "mark": {"type": "point", "filled": True, "size": 90},
                     "encoding": {"x": time_x, "y": area, "tooltip": tooltip,
                                  "color": {"field": "out_of_limit", "title": "",
                                            "scale": {"domain": ["within limits",
                                                                 "out of limits"],
                                                      "range": ["#4c78a8", "#d62728"]}}}},
        "energy": {**base, "encoding": {"x": time_x, "color": area},
                   "layer": [
                       {"mark": {"type": "bar", "opacity": 0.6, "width": 6},
                        "encoding": {"y": {"field": "energy_j", "type": "quantitative",
                                           "title": "energy per session (J)"},
                                     "tooltip": tooltip}},
                       {"mark": {"type": "line", "point": True},
                        "encoding": {"y": {"field": "cumulative_energy_j",
                                           "type": "quantitative",
                                           "title": "cumulative per area (J)"}}}],
                   "resolve": {"scale": {"y": "independent"}}},
        "fluence": {**base, "encoding": {"x": time_x},
                    "layer": [
                        {"mark": {"type": "point", "filled": True, "size": 70},
                         "encoding": {"y": {"field": "max_fluence_j_cm2", "type": "quantitative",
                                            "title": "highest fluence (J/cm², log scale)",
                                            "scale": {"type": "log"}},
                                      "color": area, "tooltip": tooltip}},
                        {"mark": {"type": "tick", "color": "#d62728", "thickness": 2},
                         "encoding": {"y": {"field": "limit_j_cm2", "type": "quantitative",
                                            "scale": {"type": "log"}}}}]},
    }


def page_context(rows: list[dict[str, Any]], filters: dict[str, str],
                 all_rows: list[dict[str, Any]], site: Any, sql: str) -> dict[str, Any]:
    """Return what the client page template shows."""
    limits = fluence_limits({r["profile_id"] for r in rows}, site)
    for row in rows:
        limit = limits.get(row["profile_id"])
        row["fluence_limit"] = (f"{limit[0]:.3f} J/cm² ({limit[1]})" if limit else "-")
    return {"filters": filters, "rows": rows, "answer": answer(rows),
            "all_areas": sorted({str(r["area"]) for r in all_rows}),
            "all_sessions": len(all_rows),
            "charts": json.dumps(charts(rows, limits)).replace("<", "\\u003c"), "sql": sql}
