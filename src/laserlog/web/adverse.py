"""The officer's dose-safety chart: the share of sessions with an adverse event per skin type
and fluence band, drawn on the server as inline SVG.

The figures are the report `laserlog report adverse --by skin-type,fluence-band [--kind K]`
prints (laserlog.review.adverse_report), so the page and the command cannot disagree. The
SVG is laid out here in user units: one row per skin type and band stacked downwards, so no
label meets another at any page width; the bars are hatched and outlined, and every bar
carries its n/N and share as text, so nothing is said by colour alone.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from laserlog.domain.reactions import ADVERSE_KINDS
from laserlog.review.adverse_report import adverse_report, check_kind
from laserlog.review.reports import ReportError
from laserlog.web.cells import number_text

#: Where the chart is served, `/-/laserlog/adverse?kind=pih`.
ADVERSE_ROUTE = "/-/laserlog/adverse"
BY = ("skin-type", "fluence-band")

WIDTH = 760  # the SVG's natural width; it shrinks with a narrower page, never grows
CHAR_W = 7.4  # the widest a 13-unit sans-serif character runs
ROW_H = 26
BAR_H = 16
HEAD_H = 30
TOP = 8
COLUMNS_H = 20  # the column headings above the bars
AXIS_H = 40
VALUE_W = 130  # right of the longest bar: "123/456 (100.0%)"
MIN_BARS_W = 220
BAND_HEADING = "fluence band (J/cm²)"


class BadKind(ValueError):
    """Raise when the page is asked for a kind that is not an adverse-event kind."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: a group's sessions with an event out of its sessions, and where it is drawn."""

    skin_type: str
    band: str
    with_adverse: int
    sessions: int
    share: float
    y: float  # the top of the bar, in SVG units
    length: float  # the bar's length at its share of the bar area
    total: bool = False

    @property
    def label(self) -> str:
        return f"{self.with_adverse}/{self.sessions} ({share_text(self.share)})"


@dataclass(frozen=True, slots=True)
class Chart:
    """The SVG's layout: its size, the bar area, the skin-type headings, bars and ticks."""

    width: float
    height: float
    bars_x: float
    bars_w: float
    plot_top: float
    plot_bottom: float
    heads: list[tuple[str, float]]  # (heading, text baseline)
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, label)


def share_text(share: float | None) -> str:
    """Return a share as a percentage with one decimal, as the page prints it."""
    return "-" if share is None else f"{share * 100:.1f}%"


def read_kind(value: str | None) -> str | None:
    """Return the kind the page was asked for (None: every kind), or raise BadKind."""
    kind = (value or "").strip() or None
    try:
        check_kind(kind)
    except ReportError as exc:
        raise BadKind(str(exc).removeprefix("--")) from None
    return kind


def page_context(conn: sqlite3.Connection, kind: str | None,
                 edges: tuple[float, ...]) -> dict[str, Any]:
    """Return what the chart page shows for one kind (None: all) and the site's band edges."""
    report = adverse_report(conn, BY, kind=kind, edges=edges)
    total = report.total or {}
    return {"report": report, "total": total,
            "table_rows": [*report.rows, {**total, "skin_type": "all",
                                          "fluence_band": "all sessions"}],
            "notes": [(n.strip(), n.startswith(" ")) for n in report.notes],
            "kind": kind, "kinds": ADVERSE_KINDS, "band_heading": BAND_HEADING,
            "share_text": share_text,
            "dose_text": lambda v: "-" if v is None else number_text("dose_mean_j_cm2", v),
            "chart": layout(report.rows, total) if report.rows else None}


def layout(rows: list[dict[str, Any]], total: dict[str, Any]) -> Chart:
    """Return the chart's layout: a heading per skin type, a bar per band, then all sessions."""
    longest = max([len(str(r["fluence_band"])) for r in rows] + [len(BAND_HEADING)])
    bars_x = max(110.0, longest * CHAR_W + 24)
    width = max(WIDTH, bars_x + MIN_BARS_W + VALUE_W)
    bars_w = width - bars_x - VALUE_W
    heads: list[tuple[str, float]] = []
    bars: list[Bar] = []
    y = TOP + COLUMNS_H
    skin = None
    for r in rows:
        if r["skin_type"] != skin:
            skin = r["skin_type"]
            heads.append((f"Skin type {skin}", y + HEAD_H - 9))
            y += HEAD_H
        bars.append(_bar(r, r["skin_type"], r["fluence_band"], y, bars_w))
        y += ROW_H
    y += 8  # a gap and a rule before the total
    bars.append(_bar(total, "all", "all sessions", y, bars_w, total=True))
    y += ROW_H
    ticks = [(bars_x + bars_w * p / 100, f"{p}%") for p in (0, 25, 50, 75, 100)]
    return Chart(width, y + AXIS_H, bars_x, bars_w, TOP + COLUMNS_H, y, heads, bars, ticks)


def _bar(row: dict[str, Any], skin: str, band: str, y: float, bars_w: float, *,
         total: bool = False) -> Bar:
    share = float(row["share"] or 0.0)
    return Bar(skin, str(band), int(row["with_adverse"]), int(row["sessions"]), share,
               y + (ROW_H - BAR_H) / 2, bars_w * share, total)
