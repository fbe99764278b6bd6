"""The officer's dashboard (datasette-dashboards, Vega-Lite charts): energy, pulses, fluence.

Energy and pulse counts come from the per-session totals, so the page stays fast on a
clinic's years of pulses; the fluence histogram reads the most recent pulses only.
"""

from __future__ import annotations

from typing import Any

from laserlog.web.queries import LOCAL_DAY, LOCAL_WEEK

SLUG = "review"
#: The fluence histogram reads this many of the most recent pulses (a rowid range: fast).
FLUENCE_SAMPLE = 200_000
#: At most this many bins, however wide the range: the chart stays readable.
FLUENCE_MAX_BINS = 60

_DEVICE = ("CASE WHEN d.serial IS NOT NULL AND d.serial != '' THEN s.profile_id || '/' ||"
           " d.serial ELSE s.profile_id END")
_PERIOD = ("[[ AND s.started_utc >= strftime('%Y-%m-%dT%H:%M:%fZ', :date_from) ]]"
           " [[ AND s.started_utc < strftime('%Y-%m-%dT%H:%M:%fZ', :date_to, '+1 day') ]]")


#: The fluence histogram: bins as wide as Freedman and Diaconis advise (2 IQR / n^(1/3)) over
#: the fluences actually seen, so a clinic's 0.02-0.09 J/cm² does not fall into one bar.
FLUENCE_BINS_SQL = f"""WITH sample AS (
  SELECT p.regime, p.fluence_j_cm2 AS f FROM pulses p
  WHERE p.id > (SELECT coalesce(max(id), 0) FROM pulses) - {FLUENCE_SAMPLE}
    AND p.fluence_j_cm2 IS NOT NULL
    [[ AND p.received_unix_s >= CAST(strftime('%s', :date_from) AS REAL) ]]
    [[ AND p.received_unix_s < CAST(strftime('%s', :date_to, '+1 day') AS REAL) ]]
),
quartiles AS (SELECT f, ntile(4) OVER (ORDER BY f) AS q FROM sample),
stats AS (
  SELECT min(f) AS lo, max(f) AS hi, count(*) AS n,
    (SELECT max(f) FROM quartiles WHERE q = 3) - (SELECT max(f) FROM quartiles WHERE q = 1)
      AS iqr
  FROM sample
),
width AS (
  SELECT lo, hi, CASE WHEN hi <= lo THEN 1.0 ELSE max((hi - lo) / {FLUENCE_MAX_BINS}.0,
    CASE WHEN iqr > 0 THEN 2 * iqr / pow(n, 1.0 / 3) ELSE (hi - lo) / 20.0 END) END AS w
  FROM stats
),
binned AS (
  SELECT regime, min(CAST((f - lo) / w AS INTEGER),
                     max(CAST(ceil((hi - lo) / w) AS INTEGER) - 1, 0)) AS b
  FROM sample, width
)
SELECT binned.regime, lo + w * b AS bin_from_j_cm2, lo + w * (b + 1) AS bin_to_j_cm2,
  count(*) AS pulses
FROM binned, width GROUP BY binned.regime, b ORDER BY binned.regime, b"""


def _chart(db: str, title: str, query: str, display: dict[str, Any]) -> dict[str, Any]:
    return {"title": title, "db": db, "query": " ".join(query.split()), "library": "vega-lite",
            "display": display}


def _metric(db: str, title: str, query: str, field: str, suffix: str = "") -> dict[str, Any]:
    return {"title": title, "db": db, "query": " ".join(query.split()), "library": "metric",
            "display": {"field": field, "prefix": "", "suffix": suffix}}


def dashboards(db: str) -> dict[str, Any]:
    """Return the datasette-dashboards configuration for the database named `db`."""
    week = LOCAL_WEEK.replace("started_utc", "s.started_utc")
    day = LOCAL_DAY.replace("started_utc", "s.started_utc")
    charts = {
        "sessions": _metric(db, "Sessions", f"SELECT count(*) AS n FROM sessions s WHERE 1"
                            f" {_PERIOD}", "n"),
        "pulses": _metric(db, "Pulses", f"SELECT coalesce(sum(s.pulse_count), 0) AS n FROM"
                          f" sessions s WHERE 1 {_PERIOD}", "n"),
        "energy": _metric(db, "Energy delivered", f"SELECT printf('%.1f', coalesce("
                          f"sum(s.total_energy_j), 0)) AS j FROM sessions s WHERE 1 {_PERIOD}",
                          "j", " J"),
        "energy-per-week": _chart(
            db, "Energy per week per console (J)",
            f"SELECT {week} AS week, {_DEVICE} AS device, sum(s.total_energy_j) AS energy_j,"
            f" sum(s.pulse_count) AS pulses FROM sessions s LEFT JOIN devices d ON"
            f" d.id = s.device_id WHERE 1 {_PERIOD} GROUP BY week, device ORDER BY week, device",
            {"mark": {"type": "bar", "tooltip": True},
             "encoding": {
                 "x": {"field": "week", "type": "ordinal", "title": "ISO week (site time zone)"},
                 "y": {"field": "energy_j", "type": "quantitative", "title": "energy (J)"},
                 "color": {"field": "device", "type": "nominal", "title": "console"}}}),
        "pulses-per-day": _chart(
            db, "Pulses per day",
            f"SELECT {day} AS day, sum(s.pulse_count) AS pulses,"
            f" count(*) AS sessions FROM sessions s WHERE 1 {_PERIOD} GROUP BY day ORDER BY day",
            {"mark": {"type": "bar", "tooltip": True},
             "encoding": {
                 "x": {"field": "day", "type": "temporal", "title": "day (site time zone)"},
                 "y": {"field": "pulses", "type": "quantitative", "title": "pulses"}}}),
        "fluence-per-regime": _chart(
            db, f"Fluence distribution per regime (J/cm², last {FLUENCE_SAMPLE:,} pulses)",
            FLUENCE_BINS_SQL,
            {"mark": {"type": "bar", "tooltip": True},
             "encoding": {
                 "x": {"field": "bin_from_j_cm2", "type": "quantitative",
                       "title": "fluence (J/cm², Freedman–Diaconis bins over the range seen)"},
                 "x2": {"field": "bin_to_j_cm2"},
                 "y": {"field": "pulses", "type": "quantitative", "title": "pulses"},
                 "color": {"field": "regime", "type": "nominal", "title": "regime"}}}),
    }
    return {SLUG: {
        "title": "Laser safety review",
        "description": ("Energy delivered per week and console, pulses per day and the fluence "
                        "distribution per regime (ps below 1 ns, ns to 1 µs, long). Weeks "
                        "(ISO 8601) and days are the site's time zone's; narrow the period "
                        "with the dates (UTC)."),
        "settings": {"allow_fullscreen": True},
        "layout": [["sessions", "pulses", "energy"],
                   ["energy-per-week", "energy-per-week", "energy-per-week"],
                   ["pulses-per-day", "pulses-per-day", "fluence-per-regime"]],
        "filters": {"date_from": {"name": "From (UTC)", "type": "date"},
                    "date_to": {"name": "To (UTC, inclusive)", "type": "date"}},
        "charts": charts,
    }}
