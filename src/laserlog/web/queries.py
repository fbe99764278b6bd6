"""The canned queries: the officer's reports (laserlog.review.reports) as plain SQL for Datasette.

Each query answers the same question as a `laserlog report` and gives the same figures:
corrected session details (latest correction wins), per-session totals from `sessions`
(so they stay fast on millions of pulses), devices named `profile/serial`. Dates are UTC:
a date alone in `from` means the start of that day, in `to` the end of that day. Days, ISO
8601 weeks and months are the site's time zone's, through `laserlog_period(time, period)`
(laserlog.web.serve adds it to every connection). Every filter is a named parameter; an
empty one is no filter. SQL functions come from the laserlog Datasette plugin:
`laserlog_signature_valid(signoff_id)`, `_status` and `_reason` (signature validity needs the
hash chain), and the limits report's own words, `laserlog_limit_named(kind, message)` and
`laserlog_envelope_text(message, raw)`, so the web and the report name limits alike.
"""

from __future__ import annotations

from typing import Any

from laserlog.domain import localtime
from laserlog.review.reports import FAULT_KINDS, LIMIT_KINDS

#: Where a session's printable HTML report is served (see laserlog.web.plugin).
REPORT_ROUTE = "/-/laserlog/sessions/{id}/report"
#: Where one client's page is served, `?client=C-1042&area=...&last=6` (laserlog.web.client).
CLIENT_ROUTE = "/-/laserlog/client"


def _latest_correction(column: str) -> str:
    """Return SQL for a session column with its latest correction applied (NULL included).

    It reads the `latest_corrections` join that SESSIONS_CTE makes for the column: joining
    the few corrections once costs a third less than two correlated lookups per session
    over 50 k sessions (measured).
    """
    alias = f"c_{column}"
    return f"CASE WHEN {alias}.row_id IS NOT NULL THEN {alias}.new_value ELSE s.{column} END"


_LATEST_CORRECTIONS = """latest_corrections AS MATERIALIZED (
  SELECT row_id, column_name, new_value FROM corrections WHERE id IN (
    SELECT max(id) FROM corrections WHERE table_name = 'sessions' GROUP BY row_id, column_name)
)"""


def _correction_join(column: str) -> str:
    alias = f"c_{column}"
    return (f" LEFT JOIN latest_corrections {alias} ON {alias}.row_id = s.id"
            f" AND {alias}.column_name = '{column}'")


def _start(param: str) -> str:
    """Return SQL for the ISO text a `from` parameter means (start of a day, or the time)."""
    return f"strftime('%Y-%m-%dT%H:%M:%fZ', :{param})"


def _end(param: str) -> str:
    """Return SQL for the ISO text a `to` parameter means (a date alone includes its day)."""
    return (f"CASE WHEN length(:{param}) = 10 THEN strftime('%Y-%m-%dT%H:%M:%fZ', :{param},"
            f" '+1 day') ELSE strftime('%Y-%m-%dT%H:%M:%fZ', :{param}) END")


def _unix(iso_sql: str) -> str:
    """Return SQL for the Unix time (to the millisecond) of an ISO text expression."""
    return (f"(CAST(strftime('%s', {iso_sql}) AS REAL) + strftime('%f', {iso_sql})"
            f" - CAST(strftime('%S', {iso_sql}) AS INTEGER))")


#: Which of a session's details a correction replaced ('' when none), e.g. 'area'.
_CORRECTED = ("trim(CASE WHEN c_client_ref.row_id IS NOT NULL THEN 'client ' ELSE '' END"
              " || CASE WHEN c_area.row_id IS NOT NULL THEN 'area' ELSE '' END)")

#: Sessions with corrected details, their console named as the reports name it, their kind
#: (course, one_off, test_spot) and course, and their out-of-limit pulse count; filtered by
#: the optional `from` / `to` parameters. `last` keeps the newest N full sessions: test
#: spots never count among them (the client page lists them apart).
SESSIONS_CTE = f"""
WITH {_LATEST_CORRECTIONS},
corrected AS (
  SELECT s.id, s.uuid, s.started_utc, s.ended_utc, s.status, s.profile_id, s.operator_id,
         d.serial, d.model,
         CASE WHEN d.serial IS NOT NULL AND d.serial != '' THEN s.profile_id || '/' || d.serial
              ELSE s.profile_id END AS device,
         {_latest_correction('client_ref')} AS client_ref,
         {_latest_correction('area')} AS area,
         s.pulse_count, s.total_energy_j, s.max_fluence_j_cm2, s.regimes,
         s.client_ref AS client_as_recorded, s.area AS area_as_recorded,
         {_CORRECTED} AS corrected,
         coalesce(k.kind, 'one_off') AS kind, k.course_id
  FROM sessions s LEFT JOIN devices d ON d.id = s.device_id
  LEFT JOIN session_kinds k ON k.id = (SELECT max(id) FROM session_kinds
                                      WHERE session_id = s.id)
  {_correction_join('client_ref')}{_correction_join('area')}
  WHERE (:from = '' OR s.started_utc >= {_start('from')})
    AND (:to = '' OR s.started_utc < {_end('to')})
),
limit_counts AS (
  SELECT session_id, sum(count) AS n FROM events WHERE kind = 'out_of_limit'
  GROUP BY session_id
),
filtered AS (
  SELECT corrected.*, coalesce(limit_counts.n, 0) AS out_of_limit,
         row_number() OVER (PARTITION BY corrected.kind = 'test_spot'
                            ORDER BY corrected.started_utc DESC, corrected.id DESC) AS newest
  FROM corrected LEFT JOIN limit_counts ON limit_counts.session_id = corrected.id
  WHERE (:client = '' OR upper(client_ref) = upper(trim(:client)))
    AND (:area = '' OR lower(area) = lower(trim(:area)))
    AND (:device = '' OR profile_id = :device OR serial = :device OR device = :device)
    AND (:operator = '' OR operator_id = :operator)
),
selected AS (
  SELECT * FROM filtered
  WHERE :last = '' OR (kind != 'test_spot' AND newest <= CAST(:last AS INTEGER))
)
"""


def _regimes(column: str, aggregate: bool) -> str:
    """Return SQL for the sorted union of comma-separated regime lists ('-' when none)."""
    parts = []
    for regime in ("long", "ns", "ps"):  # sorted, as reports._regimes sorts them
        test = f"instr(',' || {column} || ',', ',{regime},')"
        if aggregate:
            test = f"max({test})"
        parts.append(f"CASE WHEN {test} > 0 THEN '{regime},' ELSE '' END")
    return f"coalesce(nullif(rtrim({' || '.join(parts)}, ','), ''), '-')"


_GROUP_TOTALS = f"""count(*) AS sessions, min(started_utc) AS first_utc,
  max(started_utc) AS last_utc, sum(pulse_count) AS pulses, sum(total_energy_j) AS energy_j,
  max(max_fluence_j_cm2) AS max_fluence_j_cm2, {_regimes('regimes', True)} AS regimes,
  sum(out_of_limit) AS out_of_limit"""

#: A session's local day, ISO 8601 week and month in the site's time zone.
LOCAL_DAY = f"{localtime.SQL_FUNCTION}(started_utc, 'day')"
LOCAL_WEEK = f"{localtime.SQL_FUNCTION}(started_utc, 'week')"
LOCAL_MONTH = f"{localtime.SQL_FUNCTION}(started_utc, 'month')"


def _energy_grouped(keys: list[tuple[str, str]]) -> str:
    select = ", ".join(f"{expr} AS {name}" for name, expr in keys)
    names = ", ".join(name for name, _ in keys)
    return (f"{SESSIONS_CTE}SELECT {select}, {_GROUP_TOTALS}\nFROM selected"
            f" GROUP BY {names} ORDER BY {names}")


def report_link(id_sql: str) -> str:
    """Return SQL for the path of a session's printable report."""
    route = REPORT_ROUTE.replace("{id}", "' || " + id_sql + " || '")
    return f"'{route}'"


_SIGNATURES = """coalesce((SELECT group_concat(mark, ' ') FROM (
    SELECT g.meaning || ':' || g.user_id
           || CASE WHEN laserlog_signature_valid(g.id) THEN ''
                   ELSE '(' || laserlog_signature_status(g.id) || ')' END AS mark
    FROM signoffs g WHERE g.session_id = selected.id ORDER BY g.id)), '-')"""

ENERGY_BY_SESSION = f"""{SESSIONS_CTE}SELECT id AS session, started_utc, status, device,
  operator_id AS operator, client_ref AS client, coalesce(area, '-') AS area,
  pulse_count AS pulses, total_energy_j AS energy_j, max_fluence_j_cm2,
  {_regimes('regimes', False)} AS regimes, out_of_limit, {_SIGNATURES} AS signatures,
  corrected, {report_link('id')} AS printable_report
FROM selected ORDER BY started_utc, id"""

UNSIGNED_SESSIONS = f"""{SESSIONS_CTE}SELECT id AS session, started_utc, status, device,
  operator_id AS operator, client_ref AS client, {_SIGNATURES} AS signatures,
  {report_link('id')} AS printable_report
FROM selected
WHERE status != 'recording' AND NOT EXISTS (
  SELECT 1 FROM signoffs g WHERE g.session_id = selected.id AND g.meaning = 'approved'
  AND laserlog_signature_valid(g.id))
ORDER BY started_utc, id"""

SIGNOFFS = f"""{SESSIONS_CTE}SELECT selected.id AS session, selected.started_utc,
  selected.operator_id AS operator, selected.client_ref AS client, g.meaning,
  g.printed_name AS signer, g.role, g.user_id AS user, g.signed_utc,
  laserlog_signature_status(g.id) AS status,
  laserlog_signature_reason(g.id) AS reason, {report_link('selected.id')} AS printable_report
FROM selected JOIN signoffs g ON g.session_id = selected.id
WHERE (:user = '' OR g.user_id = :user)
ORDER BY selected.started_utc, selected.id, g.id"""

_KINDS = ", ".join(f"'{k}'" for k in FAULT_KINDS)
_EVENTS = f"""WITH {_LATEST_CORRECTIONS},
devices_named AS (
  SELECT s.id, s.operator_id, s.profile_id, d.serial,
         CASE WHEN d.serial IS NOT NULL AND d.serial != '' THEN s.profile_id || '/' || d.serial
              ELSE s.profile_id END AS device,
         {_latest_correction('client_ref')} AS client_ref, {_latest_correction('area')} AS area
  FROM sessions s LEFT JOIN devices d ON d.id = s.device_id{_correction_join('client_ref')}
  {_correction_join('area')}
),
selected AS (
  SELECT e.id, e.session_id,
         strftime('%Y-%m-%dT%H:%M:%fZ', e.received_unix_s, 'unixepoch') AS received_utc,
         e.received_unix_s, e.kind, e.severity, e.count, e.missing_pulses, e.message, e.raw,
         coalesce(n.device, '-') AS device, coalesce(n.operator_id, '-') AS operator,
         coalesce(n.client_ref, '-') AS client
  FROM events e LEFT JOIN devices_named n ON n.id = e.session_id
  WHERE e.kind IN ({{kinds}})
    AND (:from = '' OR e.received_unix_s >= {_unix(_start('from'))})
    AND (:to = '' OR e.received_unix_s < {_unix(_end('to'))})
    AND (:device = '' OR n.profile_id = :device OR n.serial = :device OR n.device = :device)
    AND (:client = '' OR upper(n.client_ref) = upper(trim(:client)))
    AND (:area = '' OR lower(n.area) = lower(trim(:area)))
    AND (:operator = '' OR n.operator_id = :operator)
)
"""

FAULTS_IN_PERIOD = _EVENTS.replace("{kinds}", _KINDS).replace(
    "AND (:device", "AND (:kind = '' OR e.kind = :kind)\n    AND (:device") + """SELECT
  received_utc, session_id AS session, device, kind, severity, count, missing_pulses, message
FROM selected ORDER BY received_unix_s, id"""

FAULT_COUNTS_IN_PERIOD = _EVENTS.replace("{kinds}", _KINDS) + """SELECT kind, count(*) AS events,
  sum(count) AS count, sum(coalesce(missing_pulses, 0)) AS missing_pulses,
  sum(severity = 'alarm') AS alarms, min(received_utc) AS first_utc, max(received_utc) AS last_utc
FROM selected GROUP BY kind ORDER BY kind"""

# The first out-of-limit pulse by its number within the session (1..N), as
# reports._numbered names it; the console's counter stays in brackets.
_PULSE_NUMBER = ("(SELECT count(*) FROM pulses p WHERE p.session_id = grouped.session_id AND"
                 " p.id <= (SELECT min(q.id) FROM pulses q WHERE q.session_id ="
                 " grouped.session_id AND q.received_unix_s = grouped.received_unix_s"
                 " AND coalesce(CAST(q.seq AS TEXT), '?') ="
                 " substr(message, 7, instr(message, ': ') - 7)))")
_NUMBERED = (f"CASE WHEN message LIKE 'pulse %' AND instr(message, ': ') > 0"
             f" AND {_PULSE_NUMBER} > 0 THEN 'pulse ' || {_PULSE_NUMBER} || ': ' ||"
             " substr(message, instr(message, ': ') + 2) || ' (console counter ' ||"
             " substr(message, 7, instr(message, ': ') - 7) || ')' ELSE message END")
_LIMIT_KINDS = ", ".join(f"'{k}'" for k in LIMIT_KINDS)
#: The envelope the session's record says was in force: its newest `envelope` event.
_ENVELOPE = ("coalesce((SELECT laserlog_envelope_text(v.message, v.raw) FROM events v"
             " WHERE v.session_id = grouped.session_id AND v.kind = 'envelope'"
             " ORDER BY v.id DESC LIMIT 1), '-')")
LIMITS_IN_PERIOD = _EVENTS.replace("{kinds}", _LIMIT_KINDS) + f""",
named AS (
  SELECT selected.*, coalesce(raw, '?') AS quantity,
    laserlog_limit_named(kind, message) AS limit_source
  FROM selected WHERE session_id IS NOT NULL
),
grouped AS (
  SELECT named.*,
    row_number() OVER (PARTITION BY session_id, kind, quantity, limit_source
                       ORDER BY received_unix_s, id) AS nth,
    sum(count) OVER (PARTITION BY session_id, kind, quantity, limit_source) AS pulses
  FROM named
)
SELECT grouped.session_id AS session, s.started_utc, device, operator, client,
  {_latest_correction('skin_type')} AS skin_type, kind, quantity,
  limit_source AS "limit", severity, pulses, {_NUMBERED} AS first, {_ENVELOPE} AS envelope,
  {report_link('grouped.session_id')} AS printable_report
FROM grouped JOIN sessions s ON s.id = grouped.session_id{_correction_join('skin_type')}
WHERE nth = 1
ORDER BY grouped.session_id, kind, quantity, limit_source"""


def calibration_status_sql(interval_days: float) -> str:
    """Return the calibration-status query for the site's check interval (in days)."""
    interval = repr(float(interval_days))
    return f"""WITH last AS (
  SELECT d.id AS device_id, (SELECT c.id FROM calibrations c WHERE c.device_id = d.id
    AND c.ended_utc <= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+1 seconds')
    ORDER BY c.id DESC LIMIT 1) AS calibration_id
  FROM devices d
)
SELECT d.profile_id || '/' || coalesce(nullif(d.serial, ''), '-') AS device, d.model,
  CASE WHEN c.id IS NULL THEN 'MISSING' WHEN c.result = 'fail' THEN 'FAILED'
       WHEN julianday('now') > julianday(c.ended_utc) + {interval} THEN 'OVERDUE'
       WHEN c.result = 'warn' THEN 'WARN' ELSE 'OK' END AS state,
  coalesce(c.started_utc, '-') AS last_check_utc, coalesce(upper(c.result), '-') AS result,
  CASE WHEN c.id IS NULL THEN '-' ELSE printf('%+.1f%%', c.deviation * 100) END AS deviation,
  coalesce(strftime('%Y-%m-%dT%H:%M:%SZ', julianday(c.ended_utc) + {interval}), '-')
    AS next_due_utc,
  c.id AS calibration_check, c.meter_model || '/' || c.meter_serial AS meter,
  c.user_id AS checked_by
FROM devices d JOIN last ON last.device_id = d.id
LEFT JOIN calibrations c ON c.id = last.calibration_id
WHERE (:device = '' OR d.profile_id = :device OR d.serial = :device)
  AND (EXISTS (SELECT 1 FROM sessions WHERE device_id = d.id)
       OR EXISTS (SELECT 1 FROM calibrations WHERE device_id = d.id))
ORDER BY d.profile_id, d.serial"""


def canned_queries(interval_days: float) -> dict[str, dict[str, Any]]:
    """Return Datasette's canned queries: name -> title, description and SQL."""
    period = " Dates are UTC: `from` a date or ISO time, `to` a date (whole day) or time; "\
             "leave either empty for no bound."
    energy = (" Totals come from each session's stored totals; corrected client and area "
              "are used. energy_j in joules (J), max_fluence_j_cm2 in J/cm².")
    queries: dict[str, tuple[str, str, str]] = {
        "energy_by_client_area": (
            "Energy per client and area, across sessions",
            "What each client (a pseudonym, never a name) received on each treatment area, "
            "summed across sessions: `laserlog report energy --by client`.",
            _energy_grouped([("client", "client_ref"), ("area", "coalesce(area, '-')")])),
        "energy_by_device": (
            "Energy per console", "`laserlog report energy --by device`.",
            _energy_grouped([("device", "device")])),
        "energy_by_operator": (
            "Energy per operator", "`laserlog report energy --by operator`.",
            _energy_grouped([("operator", "operator_id")])),
        "energy_by_day": (
            "Energy per day (site time zone)", "`laserlog report energy --by day`.",
            _energy_grouped([("day", LOCAL_DAY)])),
        "energy_by_week": (
            "Energy per ISO 8601 week (site time zone)", "`laserlog report energy --by week`.",
            _energy_grouped([("week", LOCAL_WEEK)])),
        "energy_by_month": (
            "Energy per month (site time zone)", "`laserlog report energy --by month`.",
            _energy_grouped([("month", LOCAL_MONTH)])),
        "energy_by_device_operator_month": (
            "Energy per console, operator and month",
            "One row per console, operator and month (site time zone).",
            _energy_grouped([("device", "device"), ("operator", "operator_id"),
                             ("month", LOCAL_MONTH)])),
        "energy_by_session": (
            "Energy per session, with signatures and the printable report",
            "`laserlog report energy`: one row per session.", ENERGY_BY_SESSION),
        "faults_in_period": (
            "Faults, interlocks, gaps and out-of-limit pulses in a period",
            "`laserlog report faults`: console faults and interlocks, link losses, gaps "
            "(missing_pulses), counter resets, disagreements, out-of-limit pulses and "
            "calibration flags. `kind` narrows to one kind (e.g. fault, interlock_open, gap, "
            "out_of_limit); `device` to a profile name or serial.", FAULTS_IN_PERIOD),
        "fault_counts_in_period": (
            "Faults counted per kind in a period", "`laserlog report faults --by kind`.",
            FAULT_COUNTS_IN_PERIOD),
        "limits_in_period": (
            "Sessions outside their limits in a period",
            "`laserlog report limits`: which quantity passed a profile's or the site's limit "
            "or the skin type's envelope, how many pulses, and the envelope the session's "
            "record says was in force (fluence in J/cm²).",
            LIMITS_IN_PERIOD),
        "calibration_status": (
            "Calibration status per console",
            f"`laserlog report calibration`: the last meter check of each console, its result "
            f"(PASS within ±10 %, WARN to ±20 %, FAIL beyond, from the site file) and whether "
            f"it is overdue (checks are due every {interval_days:g} days).",
            calibration_status_sql(interval_days)),
        "unsigned_sessions": (
            "Sessions not yet signed off",
            "`laserlog report signoffs --unsigned`: ended sessions without a VALID approval.",
            UNSIGNED_SESSIONS),
        "signoffs": (
            "Sign-offs: who signed what, VALID or INVALID",
            "`laserlog report signoffs`; `user` narrows to one signer.", SIGNOFFS),
    }
    narrow = (" `client` (a pseudonym such as C-1042), `area`, `device` (profile or serial) and "
              "`operator` narrow the sessions; leave them empty for all.")
    last = " `last` keeps only the newest N of the sessions so narrowed (e.g. 6)."
    out = {}
    for name, (title, description, sql) in queries.items():
        if ":from" in sql:
            description += period
        if ":client" in sql:
            description += narrow
        if ":last" in sql:
            description += last
        if name.startswith("energy_"):
            description += energy
        out[name] = {"title": title, "description": description, "sql": sql.strip()}
    return out
