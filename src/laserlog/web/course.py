"""The course page: one course on a time axis, its windows, its dose and its test spots.

It draws what `laserlog course show` prints (laserlog.review.coursepage): each session on
the site's calendar with the window the previous full session opened (shaded from its
minimum to its maximum day), the dose per session (energy, mean and highest fluence) and
the course's cumulative energy, test spots with their read-outs, overrides and late
starts, each session's passes, its reactions (assessment, adverse events with their updates,
a retracted one struck and labelled) and the outcomes recorded after it; then the course's
photos, by reference only (never the image, never a link to the file).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import tzinfo
from typing import Any

from laserlog.recording import courses, photos
from laserlog.review import coursepage, outcomes
from laserlog.web import reactions

#: Where a course's page is served, `/-/laserlog/courses/1`.
COURSE_ROUTE = "/-/laserlog/courses/{id}"

_KIND = {"course": "full session", "test_spot": "test spot", "one_off": "one-off"}


class NoCourse(LookupError):
    """Raise when a course page names no course of the database."""


def course_url(course_id: int) -> str:
    """Return the path of a course's page."""
    return COURSE_ROUTE.format(id=course_id)


def page_context(conn: sqlite3.Connection, course_id: int, zone: tzinfo | None) -> dict[str, Any]:
    """Return what the course page template shows, or raise NoCourse."""
    course = courses.find(conn, course_id)
    if course is None:
        raise NoCourse(f"no course {course_id} in this database")
    entries = coursepage.timeline(conn, course, zone)
    full = [e for e in entries if e["full"]]
    for e in entries:
        e["label"] = (f"#{e['number']}" if e["full"] else
                      _KIND.get(e["kind"], e["kind"]) if e["pulses"] else "no pulses")
    reactions.attach(conn, entries)
    upcoming = coursepage.next_window(course, entries)
    followed = outcomes.for_course(conn, course)
    return {"course": course, "entries": entries,
            "delivered": full[-1]["number"] if full else 0,
            "energy_j": full[-1]["cumulative_energy_j"] if full else 0.0,
            "test_spots": [e for e in entries if e["kind"] == "test_spot"],
            "overrides": [e for e in entries if e["override_by"]],
            "late": [e for e in entries if e["late"] or e["status"] == "late"],
            "next_window": upcoming,
            "outcomes_before": [o for o in followed if o["after_session"] is None],
            "has_outcomes": bool(followed),
            "charts": json.dumps({**charts(entries, upcoming), **outcome_charts(followed)}
                                 ).replace("<", "\\u003c"),
            "photos": photo_rows(photos.listed(conn, course.id))}


def photo_rows(rows: list[photos.Photo]) -> list[dict[str, Any]]:
    """Return a course's photos as the page lists them: what the row recorded, the file by
    its path in the site's photo folder and the first 12 hex digits of its SHA-256. The page
    never shows or links the image: the files stay in the photo folder, off the web."""
    return [{"id": p.id, "kind": p.kind, "view": p.view, "area": p.area,
             "session": p.session_id, "relative_path": p.relative_path,
             "sha256_12": p.sha256[:12], "size_bytes": p.size_bytes,
             "consent_version": p.consent_sha256[:12] if p.consent_sha256 else None,
             "added_by": p.added_by, "added_utc": p.added_utc} for p in rows]


def charts(entries: list[dict[str, Any]], upcoming: tuple[str, str] | None) -> dict[str, Any]:
    """Return the page's Vega-Lite charts on one date axis: a lane per session with the
    window it had to fall in, the dose, and the fluence from mean to highest."""
    points = [{"session": e["session"], "date": e["date"], "lane": _lane(e),
               "kind": _KIND.get(e["kind"], e["kind"]),
               "mark": ("override" if e["override_by"] else e["status"] or
                        _KIND.get(e["kind"], e["kind"])),
               "energy_j": e["energy_j"], "cumulative_energy_j": e["cumulative_energy_j"],
               "mean_fluence_j_cm2": e["mean_fluence_j_cm2"],
               "max_fluence_j_cm2": e["max_fluence_j_cm2"]} for e in entries]
    windows = [{"from": e["window_from"], "to": e["window_to"], "lane": _lane(e)}
               for e in entries if e["window_from"]]
    if upcoming:
        windows.append({"from": upcoming[0], "to": upcoming[1], "lane": "next session"})
    lanes = [p["lane"] for p in points] + (["next session"] if upcoming else [])
    days = sorted([p["date"] for p in points] + [d for w in windows for d in (w["from"],
                                                                               w["to"])])
    domain = ([_shift(days[0], -3), _shift(days[-1], 3)] if days else None)
    x = {"field": "date", "type": "temporal", "title": "date (site's time zone)",
         "axis": {"format": "%Y-%m-%d", "labelAngle": -20},
         **({"scale": {"domain": domain}} if domain else {})}
    tooltip = [{"field": "session"}, {"field": "lane", "title": "session"},
               {"field": "date", "type": "temporal", "format": "%Y-%m-%d"},
               {"field": "energy_j", "title": "energy (J)", "format": ".4f"},
               {"field": "mean_fluence_j_cm2", "title": "mean fluence (J/cm²)", "format": ".3f"},
               {"field": "max_fluence_j_cm2", "title": "max fluence (J/cm²)", "format": ".3f"}]
    base = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "width": "container"}
    marks = {"domain": ["in window", "early", "late", "override", "full session", "test spot",
                        "one-off"],
             "range": ["#4c78a8", "#d62728", "#e45756", "#9467bd", "#4c78a8", "#f58518",
                       "#999999"]}
    lane = {"field": "lane", "type": "nominal", "title": "", "sort": lanes,
            "scale": {"type": "band", "paddingInner": 0.25}}
    fluence = {"type": "quantitative", "scale": {"zero": False}}
    return {
        "timeline": {**base, "height": 26 * max(len(lanes), 2), "layer": [
            {"data": {"values": windows},
             "mark": {"type": "bar", "color": "#54a24b", "opacity": 0.3},
             "encoding": {"x": {**x, "field": "from"}, "x2": {"field": "to"}, "y": lane,
                          "tooltip": [{"field": "lane", "title": "window of"},
                                      {"field": "from", "type": "temporal",
                                       "format": "%Y-%m-%d"},
                                      {"field": "to", "type": "temporal",
                                       "format": "%Y-%m-%d"}]}},
            {"data": {"values": points},
             "mark": {"type": "point", "filled": True, "size": 140, "opacity": 1},
             "encoding": {"x": x, "y": lane,
                          "shape": {"field": "kind", "type": "nominal", "legend": None},
                          "color": {"field": "mark", "type": "nominal", "title": "",
                                    "scale": marks},
                          "tooltip": tooltip}}]},
        "dose": {**base, "height": 170, "data": {"values": points},
                 "encoding": {"x": x}, "layer": [
                     {"mark": {"type": "bar", "opacity": 0.6, "width": 10},
                      "encoding": {"y": {"field": "energy_j", "type": "quantitative",
                                         "title": "energy per session (J)"},
                                   "color": {"field": "kind", "type": "nominal",
                                             "title": ""},
                                   "tooltip": tooltip}},
                     {"mark": {"type": "line", "point": True, "color": "#333"},
                      "transform": [{"filter": "datum.cumulative_energy_j != null"}],
                      "encoding": {"y": {"field": "cumulative_energy_j",
                                         "type": "quantitative",
                                         "title": "cumulative, full sessions (J)"}}}],
                 "resolve": {"scale": {"y": "independent"}}},
        "fluence": {**base, "height": 150, "data": {"values": points},
                    "encoding": {"x": x}, "layer": [
                        {"mark": {"type": "rule", "strokeWidth": 3},
                         "encoding": {"y": {**fluence, "field": "mean_fluence_j_cm2",
                                            "title": "fluence (J/cm²): mean to highest"},
                                      "y2": {"field": "max_fluence_j_cm2"},
                                      "color": {"field": "kind", "type": "nominal",
                                                "title": ""}}},
                        {"mark": {"type": "point", "filled": True, "size": 60},
                         "encoding": {"y": {**fluence, "field": "max_fluence_j_cm2"},
                                      "color": {"field": "kind", "type": "nominal"},
                                      "tooltip": tooltip}},
                        {"mark": {"type": "tick", "thickness": 2},
                         "encoding": {"y": {**fluence, "field": "mean_fluence_j_cm2"},
                                      "color": {"field": "kind", "type": "nominal"}}}]},
    }


def outcome_charts(followed: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the course's outcomes drawn against time and against the cumulative energy of
    the full sessions delivered by their date (none without outcomes): one line per scale
    or skin-analysis metric."""
    if not followed:
        return {}
    values = [{"date": o["date"], "metric": o["metric"], "value": o["value"],
               "cumulative_energy_j": o["energy_j"], "sessions": o["sessions"],
               "days": o["days"]} for o in followed]
    tooltip = [{"field": "metric"}, {"field": "value", "title": "score or value"},
               {"field": "date", "type": "temporal", "format": "%Y-%m-%d"},
               {"field": "sessions", "title": "full sessions by then"},
               {"field": "cumulative_energy_j", "title": "cumulative energy (J)",
                "format": ".3f"}]
    y = {"field": "value", "type": "quantitative", "title": "score or value",
         "scale": {"zero": False}}
    color = {"field": "metric", "type": "nominal", "title": ""}
    base = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "width": "container", "height": 150, "data": {"values": values},
            "mark": {"type": "line", "point": {"filled": True, "size": 60}}}
    return {
        "outcome-time": {**base, "encoding": {
            "x": {"field": "date", "type": "temporal", "title": "date (site's time zone)",
                  "axis": {"format": "%Y-%m-%d", "labelAngle": -20}},
            "y": y, "color": color, "tooltip": tooltip}},
        "outcome-dose": {**base, "encoding": {
            "x": {"field": "cumulative_energy_j", "type": "quantitative",
                  "title": "cumulative energy of the full sessions by then (J)"},
            "y": y, "color": color, "tooltip": tooltip}},
    }


def _lane(entry: dict[str, Any]) -> str:
    """Return the timeline lane a session is drawn on: its number, or its kind and id."""
    if entry["full"]:
        return f"session {entry['label']}"
    return f"{_KIND.get(entry['kind'], entry['kind'])} {entry['session']}"


def _shift(day: str, days: int) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()
