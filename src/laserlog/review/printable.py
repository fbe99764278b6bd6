"""The printable session record: one HTML document, A4, that prints (and renders to PDF) with
the session's header and "page N of M" on every page.

What the officer signs for must be on paper: clinic, who, where, the checklist as ticked,
the console and its calibration, times in UTC and the site's local time, what was delivered
per setting, the skin-type envelope in force and the pulses beyond it, the out-of-limit,
unknown-dose and fault events, corrections and signatures.
Each session's reactions follow its events: the standing assessment, the adverse events with
every update and retraction, and the outcomes of the course it belongs to.
Each session is a named page (`@page s<id>`), so its margin boxes carry its own header and a
record of several sessions starts each on a new page. Nothing is drawn with colour or
background alone: printers drop backgrounds and grey text fades.
"""

from __future__ import annotations

import html
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, tzinfo
from typing import IO, Any

from laserlog.config.siteconfig import SiteConfig
from laserlog.domain.localtime import local, zone_name
from laserlog.review import corrections
from laserlog.review.precision import as_text
from laserlog.review.reaction_history import (
    SessionReactions,
    course_outcomes,
    findings_text,
    session_reactions,
    state_text,
)
from laserlog.storage.store import EVENT_LOG, PULSE_LOG, utc_now

#: Pulse-table rows fetched per query: a long session is streamed, never held whole.
PAGE = 5000
#: Events that are faults or alarms besides the kinds named here: any event of severity alarm.
FAULT_KINDS = ("fault", "interlock_open", "invalid_reading")
OUT_OF_LIMIT = "out_of_limit"
UNKNOWN_DOSE = ("energy_unknown", "invalid_reading")
#: The envelope in force and the pulses that passed it: printed in a section of their own.
ENVELOPE_KINDS = ("envelope", "out_of_envelope")

_CSS = """
@page { size: A4; margin: 24mm 14mm 18mm 14mm;
  @top-right { content: "laserlog treatment record"; font: 8pt Arial, sans-serif; }
  @bottom-left { content: PRINTED; font: 8pt Arial, sans-serif; }
  @bottom-right { content: "page " counter(page) " of " counter(pages);
                  font: bold 9pt Arial, sans-serif; }
}
NAMED_PAGES
html { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 9.5pt; color: #000;
       line-height: 1.3; }
body { margin: 0; }
h1 { font-size: 15pt; margin: 0 0 1mm; }
h3 { font-size: 10pt; margin: 3mm 0 1mm; break-after: avoid; page-break-after: avoid; }
h2 { font-size: 11pt; margin: 5mm 0 1.5mm; padding-bottom: .5mm; border-bottom: 1.5pt solid #000;
     break-after: avoid; page-break-after: avoid; }
p { margin: 1mm 0; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0; }
th, td { border: .6pt solid #444; padding: 1pt 4pt; text-align: left; vertical-align: top; }
th { font-weight: bold; border-bottom: 1.2pt solid #000; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead { display: table-header-group; }
tr, .keep { break-inside: avoid; page-break-inside: avoid; }
table.meta td:first-child { width: 30%; font-weight: bold; }
.time { white-space: nowrap; }
table.pulses, table.events, table.envelope { font-size: 8pt; } table.pulses td, table.pulses th { padding: 0 3pt; }
.flag { font-weight: bold; border: 1.2pt solid #000; padding: 0 3pt; white-space: nowrap; }
.lead { margin-bottom: 3mm; }
.sign-line { display: inline-block; width: 60mm; border-bottom: .8pt solid #000; height: 9mm; }
section.session + section.session { break-before: page; }
"""


def css_string(text: str) -> str:
    """Return text as a quoted CSS string: only letters, digits and plain punctuation pass;
    everything else (quotes, backslashes, `</style>`) becomes a CSS escape."""
    safe = " .,:;-_/()#+'@"
    return '"' + "".join(c if (c.isalnum() and c.isprintable()) or c in safe
                         else f"\\{ord(c):06x} " for c in text) + '"'


def _e(value: Any, column: str = "") -> str:
    """Return a value as escaped text, a float at its column's clinical precision."""
    if value is None or value == "":
        return "-"
    value = as_text(column, value)
    if isinstance(value, float):
        return html.escape(f"{value:.5g}")
    return html.escape(str(value))


def _table(head: list[tuple[str, str]], rows: list[list[Any]], cls: str = "") -> str:
    """Return a table; `head` is (title, column) pairs, a column naming its unit's precision
    (a column starting with '#' is a right-aligned count)."""
    def numeric(column: str) -> bool:
        return column.startswith("#") or as_text(column, 1.5) != 1.5

    cells = "".join(f'<th class="num">{html.escape(t)}</th>' if numeric(c) else
                    f"<th>{html.escape(t)}</th>" for t, c in head)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_e(v, c)}</td>' if numeric(c) else f"<td>{v}</td>"
        if c == "html" else f"<td>{_e(v, c)}</td>"
        for (_, c), v in zip(head, row, strict=True)) + "</tr>" for row in rows)
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def when(moment: str | None, where: tzinfo | None) -> str:
    """Return a stored UTC time as 'local time (zone) / UTC', to the second."""
    if not moment:
        return "-"
    try:
        here = local(moment, where)
        utc = local(moment, UTC)
    except (ValueError, OverflowError, OSError):
        return html.escape(str(moment))
    return (f"{here:%Y-%m-%d %H:%M:%S} {html.escape(here.tzname() or '')} "
            f"&middot; {utc:%Y-%m-%d %H:%M:%S} UTC")


def day(moment: str | None, where: tzinfo | None) -> str:
    """Return the site-local day of a stored UTC time, kept on one line."""
    try:
        return f'<span class="time">{local(str(moment), where):%Y-%m-%d}</span>'
    except (ValueError, OverflowError, OSError):
        return html.escape(str(moment))


def clock(moment: str | None, where: tzinfo | None) -> str:
    """Return a stored UTC time of day as 'local zone · UTC', for rows under a dated header."""
    try:
        here = local(str(moment), where)
        utc = local(str(moment), UTC)
    except (ValueError, OverflowError, OSError):
        return html.escape(str(moment))
    return (f'<span class="time">{here:%H:%M:%S} {html.escape(here.tzname() or "")} &middot; '
            f"{utc:%H:%M:%S} UTC</span>")


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, tuple(r), strict=True)) for r in cur.fetchall()]


def setting_summary(conn: sqlite3.Connection, session_id: int) -> list[dict[str, Any]]:
    """Return what was delivered per distinct setting combination (regime, handpiece,
    wavelength, spot, rate at clinical precision), in order of first use.

    The pulse duration is measured per pulse (it jitters by a few ps), so it is a mean per
    setting, not part of one.
    """
    rows = _dicts(conn.execute(
        "SELECT regime, handpiece, wavelength_nm, spot_mm, rep_rate_hz,"
        " min(id) AS first_id, count(*) AS pulses, sum(energy_j) AS energy_j,"
        " sum(pulse_duration_ps) AS sum_duration_ps,"
        " count(fluence_j_cm2) AS n_fluence, sum(fluence_j_cm2) AS sum_fluence_j_cm2,"
        " min(fluence_j_cm2) AS min_fluence_j_cm2, max(fluence_j_cm2) AS max_fluence_j_cm2"
        " FROM pulses WHERE session_id = ? GROUP BY regime, handpiece, wavelength_nm, spot_mm,"
        " rep_rate_hz", (session_id,)))
    merged: dict[tuple, dict[str, Any]] = {}
    keys = ("regime", "handpiece", "wavelength_nm", "spot_mm", "rep_rate_hz")
    for r in sorted(rows, key=lambda r: r["first_id"]):
        key = tuple(as_text(k, r[k]) for k in keys)
        into = merged.get(key)
        if into is None:
            merged[key] = dict(r)
            continue
        into["pulses"] += r["pulses"]
        into["n_fluence"] += r["n_fluence"]
        for total in ("energy_j", "sum_fluence_j_cm2", "sum_duration_ps"):
            if r[total] is not None:
                into[total] = (into[total] or 0.0) + r[total]
        for pick, column in ((min, "min_fluence_j_cm2"), (max, "max_fluence_j_cm2")):
            found = [v for v in (into[column], r[column]) if v is not None]
            into[column] = pick(found) if found else None
    for r in merged.values():
        r["mean_fluence_j_cm2"] = (r["sum_fluence_j_cm2"] / r["n_fluence"]
                                   if r["n_fluence"] else None)
        r["mean_duration_ps"] = r["sum_duration_ps"] / r["pulses"]
    return list(merged.values())


def fluence_stats(conn: sqlite3.Connection, session_id: int) -> tuple[Any, Any, Any]:
    """Return (min, mean, max) fluence in J/cm² over a session's pulses (None: no fluence)."""
    row = conn.execute("SELECT min(fluence_j_cm2), avg(fluence_j_cm2), max(fluence_j_cm2)"
                       " FROM pulses WHERE session_id = ?", (session_id,)).fetchone()
    return row[0], row[1], row[2]


def checklist_rows(s: dict[str, Any]) -> list[list[Any]]:
    """Return each checklist item as ticked at the start: [item, answer]."""
    try:
        items = json.loads(s["checklist_json"]) if s.get("checklist_json") else {}
    except (TypeError, ValueError):
        return [["(stored checklist unreadable)", html.escape(str(s["checklist_json"]))]]
    if not isinstance(items, dict):
        items = {}

    def answer(ticked: object) -> str:
        return "ticked" if ticked is True else '<span class="flag">NOT TICKED</span>'

    rows = [[html.escape(str(k).replace("_", " ")), answer(v)] for k, v in sorted(items.items())]
    if "eyewear" not in items:  # sessions from before checklists, or without the item
        rows.insert(0, ["eyewear (session column)", answer(bool(s["eyewear_checked"]))])
    return rows


def write_records(conn: sqlite3.Connection, sessions: list[dict[str, Any]], stream: IO[str], *,
                  site: SiteConfig | None, database: str, pulses: bool,
                  counted: Callable[[int], None]) -> None:
    """Write the printable record of `sessions` as one HTML document to `stream`."""
    from laserlog.review.signoff import signatures

    where = site.zone if site is not None else None
    clinic = site.clinic_name if site is not None and site.clinic_name else None
    sigs = signatures(conn, [s["id"] for s in sessions])
    reactions = session_reactions(conn, [int(s["id"]) for s in sessions])
    followed = course_outcomes(conn, [int(s["id"]) for s in sessions])
    title = (f"Treatment record, session {sessions[0]['id']}" if len(sessions) == 1
             else f"Treatment records, sessions {sessions[0]['id']}-{sessions[-1]['id']}")
    printed = local(utc_now(), where)
    named = "\n".join(
        f"@page s{int(s['id'])} {{ @top-left {{ content: {css_string(_running_head(s, clinic, where))};"
        " font: bold 9pt Arial, sans-serif; white-space: pre; } }"
        f"\nsection#s{int(s['id'])} {{ page: s{int(s['id'])}; }}" for s in sessions)
    footer = css_string(f"printed {printed:%Y-%m-%d %H:%M} {printed.tzname() or ''} from "
                        f"{database}"[:110])
    css = _CSS.replace("PRINTED", footer).replace("NAMED_PAGES", named)
    stream.write("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                 "style-src 'unsafe-inline'\">"
                 f"<title>{html.escape(title)}</title><style>{css}</style></head><body>\n")
    for s in sessions:
        for part in _session(conn, s, sigs.get(s["id"], []), site, clinic, where, database,
                             pulses, reactions[int(s["id"])], followed.get(int(s["id"]))):
            stream.write(part)
        counted(s["pulse_count"] if not pulses else 0)
        if pulses:
            stream.write(f'<h2 class="keep">Pulses of session {int(s["id"])}</h2>')
            for page, rows in _pulse_tables(conn, s["id"], where):
                stream.write(rows)
                counted(page)
        stream.write("</section>\n")
    stream.write("</body></html>\n")


def _running_head(s: dict[str, Any], clinic: str | None, where: tzinfo | None) -> str:
    """Return the header every page of a session carries."""
    try:
        day = f"{local(s['started_utc'], where):%Y-%m-%d}"
    except (ValueError, OverflowError, OSError):
        day = str(s["started_utc"])[:10]
    head = f"Session {s['id']} · client {s['client_ref']} · {day}"
    return f"{clinic} · {head}" if clinic else head


def _session(conn: sqlite3.Connection, s: dict[str, Any], sigs: list[Any],
             site: SiteConfig | None, clinic: str | None, where: tzinfo | None,
             database: str, pulses: bool, reactions: SessionReactions,
             followed: tuple[int, list[dict[str, Any]]] | None) -> Iterator[str]:
    """Yield the record of one session, up to (not including) its pulse table."""
    from laserlog.recording.calstatus import status
    from laserlog.review.reports import _unix
    from laserlog.review.summary import (
        REGIME_NAMES,
        pass_totals,
        session_duration,
        unknown_dose_shots,
    )
    from laserlog.storage.verify import check_sessions

    sid = int(s["id"])
    fixes = corrections.corrections_for(conn, sid)
    corrected = {c["column_name"] for c in fixes}

    def detail(column: str) -> str:
        mark = ' <span class="flag">corrected</span>' if column in corrected else ""
        return _e(s[column]) + mark

    yield f'<section class="session" id="s{sid}">'
    yield (f"<h1>Treatment record &middot; session {sid}</h1>"
           f'<p class="lead">record {_e(s["uuid"])}</p>')
    events = _dicts(conn.execute(
        f"SELECT * FROM ({EVENT_LOG}) AS event_log WHERE session_id = ? ORDER BY id", (sid,)))
    # The calibration state at the start and what the recorder flagged then say the same
    # thing most of the time: print each different message once, in one place.
    flagged = [e for e in events if str(e["kind"]).startswith("calibration_")]
    events = [e for e in events if e not in flagged]
    messages = [str(e["message"]) for e in flagged]
    calibration = ""
    if site is not None:
        st = status(conn, s["device_id"], site, _unix(s["started_utc"]))
        calibration = f'<span class="flag">{_e(st.state.upper())}</span> {_e(st.message)}'
        messages = [m for m in messages if m != st.message]
    if messages:
        calibration += ("; " if calibration else "") + "flagged at the start: " + "; ".join(
            _e(m) for m in dict.fromkeys(messages))
    calibration = calibration or "no calibration flag recorded"
    duration = session_duration(s["started_utc"], s["ended_utc"])
    meta = [
        ("Clinic", html.escape(clinic) if clinic else "- (set [clinic] name in the site file)"),
        ("Session", f"{sid} &middot; {_e(s['status'])}"
                    + (f" ({_e(s['end_reason'])})" if s["end_reason"] else "")),
        ("Client (pseudonym)", detail("client_ref")),
        ("Operator", _e(s["operator_id"])),
        ("Kind", _kind(conn, sid)),
        ("Treatment area", detail("area")),
        ("Skin type (Fitzpatrick)", detail("skin_type")),
        ("Started", when(s["started_utc"], where)),
        ("Ended", when(s["ended_utc"], where)),
        ("Duration", f"{duration} ({'h:mm:ss' if duration.count(':') == 2 else 'm:ss'})"
                     if duration else "-"),
        ("Times shown in", html.escape(zone_name(where)) + " and UTC"),
        ("Console", f"{_e(s['profile_id'])} &middot; model {_e(s['model'])} &middot; serial "
                    f"{_e(s['serial'])} &middot; firmware {_e(s['firmware'])} &middot; "
                    f"port {_e(s['port'])}"),
        ("Calibration at start", calibration),
    ]
    yield ('<table class="meta keep">' + "".join(f"<tr><td>{k}</td><td>{v}</td></tr>"
                                                 for k, v in meta) + "</table>")
    yield '<div class="keep"><h2>Pre-treatment checklist</h2>'
    yield _table([("item", "text"), ("answer", "html")], checklist_rows(s)) + "</div>"

    low, mean, high = fluence_stats(conn, sid)
    unknown = unknown_dose_shots(conn, sid, events)
    regimes = ", ".join(REGIME_NAMES.get(r, r) for r in str(s["regimes"] or "").split(",") if r)
    yield '<div class="keep"><h2>Delivered</h2>'
    yield _table([("pulses", "#"), ("energy (J)", "total_energy_j"),
                  ("fluence min (J/cm²)", "min_fluence_j_cm2"),
                  ("fluence mean (J/cm²)", "mean_fluence_j_cm2"),
                  ("fluence max (J/cm²)", "max_fluence_j_cm2"), ("regimes", "text"),
                  ("missing pulses", "#"), ("unknown-dose shots", "#")],
                 [[s["pulse_count"], s["total_energy_j"], low, mean, high, regimes or "-",
                   s["missing_pulses"], unknown]]) + "</div>"
    summary = setting_summary(conn, sid)
    yield '<div class="keep"><h2>Per setting</h2>'
    yield (_table([("regime", "text"), ("handpiece", "#"), ("λ (nm)", "wavelength_nm"),
                   ("spot (mm)", "spot_mm"), ("rate (Hz)", "rep_rate_hz"),
                   ("mean duration (ps)", "mean_duration_ps"), ("pulses", "#"),
                   ("energy (J)", "energy_j"),
                   ("fluence min", "min_fluence_j_cm2"), ("mean", "mean_fluence_j_cm2"),
                   ("max (J/cm²)", "max_fluence_j_cm2")],
                  [[r["regime"], r["handpiece"], r["wavelength_nm"], r["spot_mm"],
                    r["rep_rate_hz"], r["mean_duration_ps"], r["pulses"], r["energy_j"],
                    r["min_fluence_j_cm2"], r["mean_fluence_j_cm2"], r["max_fluence_j_cm2"]]
                   for r in summary]) if summary else "<p>No pulse recorded.</p>") + "</div>"
    passes = pass_totals(conn, sid)
    if passes:  # the technician marked passes: the dose per pass, as the summary gives it
        yield '<div class="keep"><h2>Per pass</h2>'
        yield _table([("pass", "text"), ("sub-area", "text"), ("pulses", "#"),
                      ("energy (J)", "energy_j"), ("fluence mean", "mean_fluence_j_cm2"),
                      ("max (J/cm²)", "max_fluence_j_cm2")],
                     [[str(p["pass_number"]) if p["pass_number"] is not None
                       else "before pass 1", p["sub_area"] or "-", p["pulses"], p["energy_j"],
                       p["mean_fluence_j_cm2"], p["max_fluence_j_cm2"]] for p in passes])
        yield "</div>"

    yield _envelope(conn, s, {r["wavelength_nm"] for r in summary}, events, where)
    events = [e for e in events if e["kind"] not in ENVELOPE_KINDS]
    groups = [
        ("Out-of-limit events", [e for e in events if e["kind"] == OUT_OF_LIMIT]),
        ("Unknown-dose events", [e for e in events if e["kind"] in UNKNOWN_DOSE]),
        ("Faults and alarms", [e for e in events if e["kind"] not in (OUT_OF_LIMIT, *UNKNOWN_DOSE)
                               and (e["kind"] in FAULT_KINDS or e["severity"] == "alarm")]),
    ]
    shown = {id(e) for _, group in groups for e in group}
    groups.append(("Other events", [e for e in events if id(e) not in shown]))
    for heading, group in groups:
        yield _events(heading, group, where)

    yield from _reactions(reactions, followed, where)
    if fixes:
        yield '<div class="keep"><h2>Corrections</h2>'
        yield _table([("corrected", "html"), ("field", "text"), ("old value", "text"),
                      ("new value", "text"), ("by", "text"), ("reason", "text")],
                     [[when(c["corrected_utc"], where), c["column_name"], c["old_value"],
                       c["new_value"], c["user_id"], c["reason"]] for c in fixes]) + "</div>"
    yield _signature_block(sigs, where)
    seal = check_sessions(conn, [sid])[sid]
    if seal.seal_link is None:
        integrity = f"Not sealed: {_e(seal.reason)}."
    elif seal.intact:
        integrity = (f"Sealed at chain link {seal.seal_link} ({_e((seal.seal_hash or '')[:16])}…): "
                     "the stored data matches the seal.")
    else:
        integrity = f'<span class="flag">DOES NOT MATCH ITS SEAL</span> {_e(seal.reason)}'
    yield f'<div class="keep"><h2>Record integrity</h2><p>{integrity}</p>'
    if not pulses:
        yield (f"<p>The {int(s['pulse_count'])} pulse(s) are summarised above; the full pulse "
               "table is printed with <code>laserlog export --pulses</code>.</p>")
    yield "</div>"


def _kind(conn: sqlite3.Connection, session_id: int) -> str:
    """Return what the session was: a one-off, a test spot, or a full session of a course
    (with its plan, and an officer's early start where one authorised it)."""
    row = conn.execute("SELECT k.kind, k.course_id, k.override_by, k.override_reason,"
                       " c.indication, c.planned_sessions, c.min_interval_days, c.max_interval_days"
                       " FROM session_kind k LEFT JOIN courses c ON c.id = k.course_id"
                       " WHERE k.session_id = ?", (session_id,)).fetchone()
    if row is None or row[0] == "one_off":
        return "one-off (no course)"
    kind, course_id, override_by, reason, indication, planned, low, high = row
    text = "test spot" if kind == "test_spot" else "full session"
    if course_id is not None:
        text += (f" of course {course_id} ({_e(indication)}, {planned} planned, window "
                 f"{low}&ndash;{high} days)")
    if override_by:
        text += (f' &middot; <span class="flag">EARLY</span> authorised by {_e(override_by)}:'
                 f" {_e(reason)}")
    return text


def _envelope(conn: sqlite3.Connection, s: dict[str, Any], delivered_nm: set[float | None],
              events: list[dict[str, Any]], where: tzinfo | None) -> str:
    """Return the skin-type envelope the session was held to, as its record kept it, for
    the wavelengths delivered (every cell when none was), and the pulses that passed it."""
    from laserlog.review.envelopes import held_envelopes

    held = held_envelopes(conn, [int(s["id"])]).get(int(s["id"]))
    skin = _e(s["skin_type"])
    title = f"<h2>Skin-type envelope (type {skin})</h2>"
    if held is None or not (held.cells or held.line):
        why = ("no skin type was recorded" if not s["skin_type"] else
               "neither the console's profile nor the site file declared one for it")
        body = f"<p>None in force: {why}.</p>"
    elif not held.cells:  # recorded before the cells were kept: the line the form showed
        body = f"<p>{_e(held.line)}</p>"
    else:
        used = [c for c in held.cells if c.wavelength_nm is None or any(
            w is not None and abs(w - c.wavelength_nm) < 0.5 for w in delivered_nm)]
        body = _table([("λ (nm)", "wavelength_nm"), ("for", "text"),
                       ("recommended (J/cm²)", "recommended_fluence_j_cm2"),
                       ("maximum (J/cm²)", "max_fluence_j_cm2"), ("avoid", "text"),
                       ("rule that won", "html")],
                      [[c.wavelength_nm, c.scope or "every handpiece and spot",
                        c.recommended_fluence_j_cm2, c.max_fluence_j_cm2,
                        "NOT TO BE USED" if c.avoid_source else "-", _sources(c)]
                       for c in used or held.cells], "envelope")
        body += "<p>In force at the start, as the session's record holds it.</p>"
    passed = [e for e in events if e["kind"] == "out_of_envelope"]
    if held is None and not passed:  # nothing to hold against: one line, no empty table
        return f'<div class="keep">{title}{body}</div>'
    return (f'<div class="keep">{title}{body}</div>'
            + _events("Out-of-envelope events", passed, where))


def _sources(cell: Any) -> str:
    """Return which rule won each value of an envelope cell, one line per rule."""
    named: dict[str, list[str]] = {}
    for what, source in (("recommended", cell.recommended_source),
                         ("maximum", cell.max_source), ("avoid", cell.avoid_source)):
        if source:
            named.setdefault(source, []).append(what)
    return "<br>".join(f"{' and '.join(whats)}: {_e(source)}" for source, whats in named.items())


def _reactions(r: SessionReactions, followed: tuple[int, list[dict[str, Any]]] | None,
               where: tzinfo | None) -> Iterator[str]:
    """Yield the reactions: the standing assessment, adverse events with their history, and
    the outcomes of the session's course."""
    if not r and followed is None:
        yield ('<div class="keep"><h2>Reactions</h2><p>No assessment recorded; no adverse '
               "event reported.</p></div>")
        return
    yield '<div class="keep"><h2>Reactions</h2><h3>Immediate assessment</h3>'
    yield (_table([("of", "text"), ("findings", "text"), ("note", "text"), ("state", "html"),
                   ("assessed", "html"), ("by", "html")],
                  [["session" if c.latest.pass_number is None else f"pass {c.latest.pass_number}",
                    findings_text(c.latest), c.latest.note,
                    '<span class="flag">CORRECTED</span> latest row shown' if c.corrected
                    else "as recorded", when(c.latest.assessed_utc, where),
                    f'<span class="time">{html.escape(c.latest.user_id or "-")}</span>']
                   for c in r.assessments])
           if r.assessments else "<p>No assessment recorded.</p>") + "</div>"
    rows = []
    for e in r.adverse:
        kind = html.escape(f"#{e.id} {e.kind}")
        state = html.escape(state_text(e))
        if e.retracted:
            kind = f"<s>{kind}</s>"
            state = f'<span class="flag">RETRACTED</span>{state[len("RETRACTED"):]}'
        history = "<br>".join(
            html.escape(f"{ch.outcome_date}: {ch.outcome}" if ch.change == "update"
                        else f"retracted: {ch.reason}")
            + f" <small>(recorded {day(ch.recorded_utc, where)} by "
              f"{html.escape(ch.by_user_id)})</small>" for ch in e.changes)
        rows.append([kind, f'<span class="time">{html.escape(e.onset_date)}</span>',
                     e.seriousness, e.area, state, history or "-",
                     f"{html.escape(e.by_user_id)} {day(e.recorded_utc, where)}"])
    yield f'<div class="keep"><h3>Adverse events ({len(r.adverse)})</h3>'
    yield (_table([("event", "html"), ("onset", "html"), ("seriousness", "text"),
                   ("area", "text"), ("state", "html"), ("updates and retraction", "html"),
                   ("reported", "html")], rows, "events")
           if rows else "<p>No adverse event reported.</p>") + "</div>"
    if followed is not None:
        course_id, scores = followed
        yield f'<div class="keep"><h3>Outcomes of course {course_id}</h3>'
        yield (_table([("date", "text"), ("scale", "text"), ("score", "#"),
                       ("after session", "text"), ("by", "text")],
                      [[o["date"], o["metric"], f"{o['value']:g}",
                        o["after_session"] if o["after_session"] is not None else "-",
                        o["user_id"] or (f"import {o['source_file']}" if o["source_file"]
                                         else None)] for o in scores])
               if scores else "<p>No outcome recorded.</p>") + "</div>"


def _events(heading: str, group: list[dict[str, Any]], where: tzinfo | None) -> str:
    """Return a heading and its events' table (or 'none'), kept together when short."""
    title = f"<h2>{heading} ({len(group)})</h2>"
    if not group:
        return f'<div class="keep">{title}<p>None.</p></div>'
    table = _table([("time", "html"), ("severity", "text"), ("kind", "text"), ("count", "#"),
                    ("message", "text")],
                   [[clock(e["received_utc"], where), str(e["severity"]).upper(), e["kind"],
                     e["count"], e["message"]] for e in group], "events")
    return f'<div class="keep">{title}{table}</div>' if len(group) <= 12 else title + table


def _signature_block(sigs: list[Any], where: tzinfo | None) -> str:
    """Return the signatures (VALID, INVALID with the reason, LEGACY) or an unsigned block."""
    parts = ['<div class="keep"><h2>Signatures</h2>']
    if not sigs:
        parts.append('<p><span class="flag">UNSIGNED</span> No one has signed this record in '
                     "laserlog. Reviewed by (name, role): <span class=\"sign-line\"></span> "
                     "Signature and date: <span class=\"sign-line\"></span></p>")
    for g in sigs:
        state = g.status
        reason = f" &mdash; {_e(g.reason)}" if g.reason else ""
        parts.append(
            f'<p class="keep"><span class="flag">{_e(state)}</span> <b>{_e(g.meaning)}</b> by '
            f"{_e(g.printed_name)} ({_e(g.role)}, {_e(g.user_id)}) on "
            f"{when(g.signed_utc, where)}"
            + (f" (signed on the {_e(g.signed_on)})" if g.signed_on else "")
            + f"; bound to seal link {g.chain_id} ({_e(g.chain_hash[:16])}…){reason}</p>")
    return "".join(parts) + "</div>"


_PULSES = (f"SELECT * FROM ({PULSE_LOG}) AS pulse_log WHERE session_id = ? AND id > ?"
           " ORDER BY id LIMIT ?")
_PULSE_HEAD = [("seq", "#"), ("time (local)", "text"), ("regime", "text"), ("hp", "#"),
               ("λ (nm)", "wavelength_nm"), ("spot (mm)", "spot_mm"),
               ("duration (ps)", "pulse_duration_ps"), ("rate (Hz)", "rep_rate_hz"),
               ("energy (J)", "energy_j"), ("fluence (J/cm²)", "fluence_j_cm2")]


def _pulse_tables(conn: sqlite3.Connection, session_id: int,
                  where: tzinfo | None) -> Iterator[tuple[int, str]]:
    """Yield (pulses, HTML) for the pulse table, one database page at a time."""
    after = 0
    while True:
        page = _dicts(conn.execute(_PULSES, (session_id, after, PAGE)))
        if not page:
            return
        rows = []
        for p in page:
            try:
                moment = f"{local(p['received_utc'], where):%H:%M:%S.%f}"[:-3]
            except (ValueError, OverflowError, OSError, TypeError):
                moment = str(p["received_utc"])
            rows.append([p["seq"], moment, p["regime"], p["handpiece"], p["wavelength_nm"],
                         p["spot_mm"], p["pulse_duration_ps"], p["rep_rate_hz"], p["energy_j"],
                         p["fluence_j_cm2"]])
        yield len(page), _table(_PULSE_HEAD, rows, "pulses")
        after = page[-1]["id"]

