"""A client's record as a FHIR R5 Bundle (type collection), built as plain JSON.

What goes in (docs/reactions.md, "FHIR R5 export", says what maps where):

- Patient: the pseudonym as its only identifier, never a name;
- Device per console the sessions used (model, serial, firmware) and a DeviceMetric for its
  output energy, whose calibration state is read from the calibrations table now:
  calibrated, not-calibrated (never checked) or calibration-required (overdue by the site's
  interval, or failed);
- Procedure per session: completed, stopped (interrupted) or in-progress, the client, the
  period, the area as body site, the console it used, the operator as performer, the
  course's CarePlan it is based on, and its adverse events as complications;
- Observations: the session's dose (pulses, total energy, mean and highest fluence, mean
  pulse duration, spot and repetition rate, wavelength, pulses missing in gaps) in UCUM
  units, coded in laserlog's CodeSystem of laser quantities; each immediate assessment; each
  outcome score of the courses;
- AdverseEvent per event: kind, onset, seriousness, outcome from its latest update; a
  retracted one is kept as entered-in-error (and is no procedure's complication);
- CarePlan per course: planned sessions and interval window (in the description and as
  extensions), the sessions delivered as its activity;
- DocumentReference per photo of the courses (of the session, in a session's export), by
  reference: the file's path relative to the site's photo folder as a relative URL, its
  SHA-256 as an identifier (Attachment.hash is SHA-1, which laserlog does not keep), its
  kind and view coded in laserlog's CodeSystem of photos; never the image's bytes;
- the three CodeSystems the codes come from.

Resource ids are UUIDs derived from the session UUIDs and the pseudonym, so the same record
exported twice has the same ids; entries are addressed as `urn:uuid:`. No FHIR library is
imported here: the tests validate the output with one.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from laserlog import __version__
from laserlog.config.siteconfig import SiteConfig
from laserlog.domain.reactions import ADVERSE_KINDS, SCALES
from laserlog.errors import LaserlogError
from laserlog.recording import courses, photos
from laserlog.recording.calstatus import status as calibration_status
from laserlog.review import corrections
from laserlog.storage.store import utc_now

BASE = "https://laserlog.example/fhir"
#: The CodeSystem of the laser quantities a session's dose is given in.
QUANTITIES_URL = f"{BASE}/CodeSystem/laser-quantities"
#: The CodeSystem of what follows a session: endpoints, adverse-event kinds, outcome scales.
REACTIONS_URL = f"{BASE}/CodeSystem/reactions"
#: The CodeSystem of a photo's kind (baseline, before, after, follow-up) and view.
PHOTOS_URL = f"{BASE}/CodeSystem/photos"
PSEUDONYM_SYSTEM = f"{BASE}/NamingSystem/client-pseudonym"
#: A photo's SHA-256 (64 lower-case hex digits) as recorded when it was added.
PHOTO_SHA256_SYSTEM = f"{BASE}/NamingSystem/photo-sha256"
PHOTO_SYSTEM = f"{BASE}/NamingSystem/photo-id"
OPERATOR_SYSTEM = f"{BASE}/NamingSystem/user-id"
SESSION_SYSTEM = f"{BASE}/NamingSystem/session-id"
COURSE_SYSTEM = f"{BASE}/NamingSystem/course-id"
DEVICE_SYSTEM = f"{BASE}/NamingSystem/console"
EXT_ADVERSE_EVENT = f"{BASE}/StructureDefinition/complication-adverse-event"
EXT_PLANNED_SESSIONS = f"{BASE}/StructureDefinition/planned-sessions"
EXT_INTERVAL_WINDOW = f"{BASE}/StructureDefinition/interval-window"
EXT_TARGET_INTERVAL = f"{BASE}/StructureDefinition/target-interval"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SERIOUSNESS_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
OUTCOME_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, BASE)

#: The laser quantities: code -> (display, definition, UCUM code, unit shown).
QUANTITIES: dict[str, tuple[str, str, str, str]] = {
    "pulse-count": ("Pulses delivered", "Number of pulses recorded in the session",
                    "{pulses}", "pulses"),
    "missing-pulses": ("Pulses missing in gaps", "Pulses the console counted that the "
                       "recorder never received (gaps)", "{pulses}", "pulses"),
    "total-energy": ("Total energy delivered", "Sum of the energy of the session's pulses",
                     "J", "J"),
    "fluence-mean": ("Mean fluence", "Mean fluence over the session's pulses", "J/cm2",
                     "J/cm2"),
    "fluence-max": ("Highest fluence", "Highest fluence of any of the session's pulses",
                    "J/cm2", "J/cm2"),
    "pulse-duration-mean": ("Mean pulse duration", "Mean duration of the session's pulses",
                            "ps", "ps"),
    "spot-size-mean": ("Mean spot size", "Mean spot diameter of the session's pulses", "mm",
                       "mm"),
    "repetition-rate-mean": ("Mean repetition rate", "Mean repetition rate over the "
                             "session's pulses", "Hz", "Hz"),
    "wavelength": ("Wavelength", "The wavelength most of the session's pulses had", "nm",
                   "nm"),
    "pulse-energy": ("Output energy per pulse", "The energy per pulse a console delivers, "
                     "checked against an energy meter (the DeviceMetric)", "J", "J"),
}
#: The dose Observations of a session, in order: code -> the aggregate column below.
DOSE_CODES = ("pulse-count", "total-energy", "fluence-mean", "fluence-max",
              "pulse-duration-mean", "spot-size-mean", "repetition-rate-mean", "wavelength",
              "missing-pulses")
_DOSE_SQL = ("SELECT count(*), sum(energy_j), avg(fluence_j_cm2), max(fluence_j_cm2),"
             " avg(pulse_duration_ps), avg(spot_mm), avg(rep_rate_hz) FROM pulses"
             " WHERE session_id = ?")
_WAVELENGTH_SQL = ("SELECT wavelength_nm FROM pulses WHERE session_id = ? AND wavelength_nm"
                   " IS NOT NULL GROUP BY wavelength_nm ORDER BY count(*) DESC, wavelength_nm"
                   " LIMIT 1")

_KIND_NAMES = {"pih": "post-inflammatory hyperpigmentation",
               "hypopigmentation": "hypopigmentation", "blister": "blistering",
               "burn": "burn", "scarring": "scarring", "infection": "infection",
               "hsv": "herpes simplex reactivation", "other": "other adverse event"}
#: What follows a session: code -> (display, definition).
REACTIONS: dict[str, tuple[str, str]] = {
    "assessment": ("Immediate endpoints", "A session's immediate endpoints, assessed after "
                   "it (within 24 h; later a correction)"),
    "erythema": ("Erythema grade", "Erythema graded 0 (none) to 3 (marked)"),
    "oedema": ("Oedema grade", "Oedema graded 0 (none) to 3 (marked)"),
    "pain-nrs": ("Pain (numeric rating scale)", "Pain reported on the numeric rating scale "
                 "0-10"),
    "purpura": ("Purpura", "Purpura seen (yes or no)"),
    **{kind: (_KIND_NAMES[kind].capitalize(), f"Adverse event or finding: {_KIND_NAMES[kind]}")
       for kind in ADVERSE_KINDS},
    "gais": ("GAIS", "Global Aesthetic Improvement Scale, 1-5"),
    "pore": ("Pore score", "An investigator's pore score, 0-4"),
    "satisfaction": ("Satisfaction", "The client's satisfaction, 1-5"),
}
#: A photo's kind and view: code -> (display, definition).
PHOTO_CODES: dict[str, tuple[str, str]] = {
    "baseline": ("Baseline photo", "A photo of the area before the course's first session"),
    "before": ("Before photo", "A photo of the area just before a session"),
    "after": ("After photo", "A photo of the area just after a session"),
    "follow-up": ("Follow-up photo", "A photo of the area at a later visit"),
    "front": ("Front view", "The area photographed from the front"),
    "left": ("Left view", "The area photographed from the client's left"),
    "right": ("Right view", "The area photographed from the client's right"),
    "other": ("Other view", "The area photographed from another angle"),
}
#: The media types of the photo file suffixes laserlog knows; any other is left out.
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                 ".tif": "image/tiff", ".tiff": "image/tiff", ".heic": "image/heic",
                 ".heif": "image/heif", ".webp": "image/webp", ".gif": "image/gif",
                 ".bmp": "image/bmp"}
_OUTCOMES = {"resolved": "resolved", "resolving": "recovering", "not-resolved": "ongoing",
             "sequelae": "resolvedWithSequelae"}
_OUTCOME_DISPLAY = {"resolved": "Resolved", "recovering": "Recovering", "ongoing": "Ongoing",
                    "resolvedWithSequelae": "Resolved with Sequelae"}
_PROCEDURE_STATUS = {"ended": "completed", "interrupted": "stopped", "recording": "in-progress"}


class FhirError(LaserlogError):
    """Raise when a FHIR export's selection names nothing to export; nothing is written."""


@dataclass
class Selection:
    """What one export holds: one client's sessions, courses and outcomes."""

    client_ref: str
    what: str  # "client C-1042", "session 12", "course 3"
    sessions: list[dict[str, Any]]
    courses: list[courses.Course]
    outcome_sql: tuple[str, tuple[Any, ...]] | None
    counts: Counter = field(default_factory=Counter)
    #: The one session a session's export holds: its course's photos of it only.
    only_session: int | None = None


# -- selection ------------------------------------------------------------------------------
_SESSIONS = ("SELECT s.*, d.model, d.serial, d.firmware FROM sessions s LEFT JOIN devices d"
             " ON d.id = s.device_id")


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, tuple(r), strict=True)) for r in cur.fetchall()]


def select(conn: sqlite3.Connection, *, client: str | None = None, session: int | None = None,
           course: int | None = None) -> Selection:
    """Return what an export of one client, session or course holds, or raise naming what
    is missing (a client without sessions, an unknown session or course)."""
    given = [name for name, value in (("--client", client), ("--session", session),
                                      ("--course", course)) if value is not None]
    if len(given) != 1:
        raise FhirError("--format fhir exports one client's record: give exactly one of "
                        "--client REF, --session ID or --course ID"
                        + (f" (got {' and '.join(given)})" if given else ""))
    if client is not None:
        rows = _dicts(conn.execute(
            _SESSIONS + " WHERE s.client_ref = ? OR s.id IN (SELECT row_id FROM corrections"
            " WHERE table_name = 'sessions' AND column_name = 'client_ref')"
            " ORDER BY s.started_utc, s.id", (client,)))
        mine = [s for s in corrections.apply(conn, rows) if s["client_ref"] == client]
        if not mine:
            raise FhirError(f"client {client!r} has no sessions in this database; nothing was "
                            "written (see `laserlog sessions list`)")
        plan_ids = {int(c.id) for c in courses.listed(conn, client)}
        plan_ids |= {cid for s in mine if (cid := courses.kind_of(conn, int(s["id"]))[1])}
        chosen = [c for c in (courses.find(conn, i) for i in sorted(plan_ids)) if c is not None]
        return Selection(client, f"client {client}", mine, chosen,
                         ("client_ref = ?", (client,)))
    if session is not None:
        rows = corrections.apply(conn, _dicts(conn.execute(_SESSIONS + " WHERE s.id = ?",
                                                           (session,))))
        if not rows:
            raise FhirError(f"no session {session} in this database; nothing was written "
                            "(see `laserlog sessions list`)")
        course_id = courses.kind_of(conn, session)[1]
        found = courses.find(conn, course_id) if course_id is not None else None
        return Selection(rows[0]["client_ref"], f"session {session}", rows,
                         [found] if found is not None else [], None, only_session=session)
    assert course is not None
    plan = courses.find(conn, course)
    if plan is None:
        raise FhirError(f"no course {course} in this database; nothing was written "
                        "(see `laserlog course list`)")
    held = [int(s["id"]) for s in courses.course_sessions(conn, course)]
    rows = _dicts(conn.execute(
        _SESSIONS + f" WHERE s.id IN ({', '.join('?' * len(held))}) ORDER BY s.started_utc, s.id",
        held)) if held else []
    return Selection(plan.client_ref, f"course {course}", corrections.apply(conn, rows), [plan],
                     ("course_id = ?", (course,)))


# -- building blocks ------------------------------------------------------------------------
def _id(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def _ref(resource: dict[str, Any], display: str | None = None) -> dict[str, Any]:
    out = {"reference": f"urn:uuid:{resource['id']}", "type": resource["resourceType"]}
    if display:
        out["display"] = display
    return out


def _user(user_id: str | None) -> dict[str, Any] | None:
    """Return a logical reference to a laserlog user (an operator, an assessor)."""
    if not user_id:
        return None
    return {"type": "Practitioner", "identifier": {"system": OPERATOR_SYSTEM, "value": user_id},
            "display": user_id}


def _quantity(value: float, code: str) -> dict[str, Any]:
    _, _, ucum, unit = QUANTITIES[code]
    number: float | int = int(value) if ucum == "{pulses}" else float(value)
    return {"value": number, "unit": unit, "system": UCUM, "code": ucum}


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)], "text": text or display}


def _category(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [_coding(OBSERVATION_CATEGORY, code, display)]}]


def _pruned(value: Any) -> Any:
    """Return the value without None, empty strings, lists or objects (FHIR allows none)."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        items = [_pruned(v) for v in value]
        return [v for v in items if v not in (None, "", [], {})]
    if isinstance(value, str):
        return value.strip()
    return value


def _day(utc_text: str | None) -> str | None:
    return utc_text[:10] if utc_text else None


# -- the resources ----------------------------------------------------------------------------
def _code_system(url: str, name: str, title: str, description: str,
                 concepts: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Return one of laserlog's CodeSystems, complete: code -> (display, definition)."""
    return {"resourceType": "CodeSystem", "id": _id("CodeSystem", url.rsplit("/", 1)[1]),
            "url": url, "version": __version__, "name": name, "title": title,
            "status": "active", "experimental": False, "publisher": "laserlog",
            "caseSensitive": True, "content": "complete", "description": description,
            "concept": [{"code": code, "display": display, "definition": definition}
                        for code, (display, definition) in concepts.items()]}


def _code_systems() -> list[dict[str, Any]]:
    return [
        _code_system(QUANTITIES_URL, "LaserlogLaserQuantities", "laserlog laser quantities",
                     "The quantities laserlog records of a laser treatment session and its "
                     "console, each in the UCUM unit named in its definition.",
                     {code: (display, f"{definition} (UCUM {ucum})")
                      for code, (display, definition, ucum, _) in QUANTITIES.items()}),
        _code_system(REACTIONS_URL, "LaserlogReactions", "laserlog reactions and outcomes",
                     "What laserlog records after a session: its immediate endpoints, the "
                     "kinds of adverse event, and the outcome scales of a course.", REACTIONS),
        _code_system(PHOTOS_URL, "LaserlogPhotos", "laserlog photo kinds and views",
                     "When a course's photo was taken (its kind) and from where (its view).",
                     PHOTO_CODES)]


def _patient(client_ref: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": _id("Patient", client_ref),
            "identifier": [{"use": "secondary", "system": PSEUDONYM_SYSTEM,
                            "value": client_ref}],
            "active": True}


def _device(s: dict[str, Any]) -> dict[str, Any]:
    serial = s.get("serial") or ""
    model = s.get("model") or s["profile_id"]
    return {"resourceType": "Device", "id": _id("Device", s["profile_id"], serial),
            "identifier": [{"system": DEVICE_SYSTEM, "value": f"{s['profile_id']}/{serial or '-'}"}],
            "displayName": model,
            "name": [{"value": model, "type": "registered-name"}],
            "modelNumber": model, "serialNumber": serial,
            "version": [{"value": s.get("firmware")}] if s.get("firmware") else [],
            "note": [{"text": f"laserlog profile {s['profile_id']}"}]}


def _metric(conn: sqlite3.Connection, device: dict[str, Any], device_id: int | None,
            site: SiteConfig) -> dict[str, Any]:
    st = calibration_status(conn, device_id, site)
    state = {"ok": "calibrated", "warn": "calibrated", "missing": "not-calibrated",
             "overdue": "calibration-required", "failed": "calibration-required"}[st.state]
    checked = None
    if st.calibration_id is not None:
        checked = conn.execute("SELECT ended_utc FROM calibrations WHERE id = ?",
                               (st.calibration_id,)).fetchone()[0]
    return {"resourceType": "DeviceMetric", "id": _id("DeviceMetric", device["id"]),
            "device": _ref(device), "category": "measurement",
            "type": _concept(QUANTITIES_URL, "pulse-energy", QUANTITIES["pulse-energy"][0]),
            "unit": {"coding": [_coding(UCUM, "J", "joule")], "text": "J"},
            "calibration": [{"type": "unspecified", "state": state, "time": checked}]}


def _procedure(s: dict[str, Any], patient: dict[str, Any], device: dict[str, Any],
               plan: dict[str, Any] | None, kind: str,
               events: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    status = _PROCEDURE_STATUS.get(s["status"], "unknown")
    notes = [f"Fitzpatrick skin type {s['skin_type']}" if s.get("skin_type") else None,
             f"{s['missing_pulses']} pulse(s) missing in gaps" if s.get("missing_pulses")
             else None]
    return {
        "resourceType": "Procedure", "id": _id("Procedure", s["uuid"]),
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{s['uuid']}"},
                       {"system": SESSION_SYSTEM, "value": str(s["id"])}],
        "basedOn": [_ref(plan)] if plan is not None else [],
        "status": status,
        "statusReason": {"text": s["end_reason"]} if status == "stopped" and s.get(
            "end_reason") else None,
        "code": {"text": "laser test spot" if kind == "test_spot" else "laser treatment"},
        "subject": _ref(patient),
        "occurrencePeriod": {"start": s["started_utc"], "end": s.get("ended_utc")},
        "performer": [{"actor": _user(s["operator_id"])}],
        "bodySite": [{"text": s["area"]}] if s.get("area") else [],
        "used": [{"reference": _ref(device, device.get("displayName"))}],
        "complication": [
            {"extension": [{"url": EXT_ADVERSE_EVENT, "valueReference": _ref(resource)}],
             "concept": _concept(REACTIONS_URL, event["kind"], REACTIONS[event["kind"]][0])}
            for event, resource in events if not event["retracted"]],
        "note": [{"text": n} for n in notes if n],
    }


def _dose(conn: sqlite3.Connection, s: dict[str, Any], patient: dict[str, Any],
          device: dict[str, Any], procedure: dict[str, Any]) -> list[dict[str, Any]]:
    count, energy, f_mean, f_max, duration, spot, rate = conn.execute(
        _DOSE_SQL, (s["id"],)).fetchone()
    wavelength = conn.execute(_WAVELENGTH_SQL, (s["id"],)).fetchone()
    values = {"pulse-count": count, "total-energy": energy or 0.0, "fluence-mean": f_mean,
              "fluence-max": f_max, "pulse-duration-mean": duration, "spot-size-mean": spot,
              "repetition-rate-mean": rate, "wavelength": wavelength[0] if wavelength else None,
              "missing-pulses": s.get("missing_pulses") or 0}
    out = []
    for code in DOSE_CODES:
        value = values[code]
        if value is None:
            continue  # no pulse carried it: absent, not zero
        out.append({
            "resourceType": "Observation", "id": _id("Observation", s["uuid"], code),
            "partOf": [_ref(procedure)],
            "status": "final" if s["status"] != "recording" else "preliminary",
            "category": _category("procedure", "Procedure"),
            "code": _concept(QUANTITIES_URL, code, QUANTITIES[code][0]),
            "subject": _ref(patient),
            "effectivePeriod": {"start": s["started_utc"], "end": s.get("ended_utc")},
            "valueQuantity": _quantity(value, code),
            "bodySite": {"text": s["area"]} if s.get("area") else None,
            "device": _ref(device)})
    return out


def _assessments(conn: sqlite3.Connection, s: dict[str, Any], patient: dict[str, Any],
                 procedure: dict[str, Any]) -> list[dict[str, Any]]:
    from laserlog.review.reactions import assessments

    out = []
    for a in assessments(conn, int(s["id"])):
        def part(code: str, value: Any, kind: str = "valueInteger") -> dict[str, Any]:
            return {"code": _concept(REACTIONS_URL, code, REACTIONS[code][0]), kind: value}
        notes = [f"pass {a.pass_number}" if a.pass_number is not None else None,
                 f"a correction, {a.hours_after_end:.0f} h after the session's end"
                 if a.correction and a.hours_after_end is not None else None, a.note]
        out.append({
            "resourceType": "Observation", "id": _id("Observation", s["uuid"], "assessment", a.id),
            "partOf": [_ref(procedure)],
            "status": "corrected" if a.correction else "final",
            "category": _category("exam", "Exam"),
            "code": _concept(REACTIONS_URL, "assessment", REACTIONS["assessment"][0]),
            "subject": _ref(patient), "effectiveDateTime": a.assessed_utc,
            "performer": [_user(a.user_id)],
            "bodySite": {"text": s["area"]} if s.get("area") else None,
            "component": [part("erythema", a.erythema), part("oedema", a.oedema),
                          part("pain-nrs", a.pain_nrs),
                          part("blister", a.blister, "valueBoolean"),
                          part("purpura", a.purpura, "valueBoolean")],
            "note": [{"text": n} for n in notes if n]})
    return out


def _adverse_event(e: dict[str, Any], s: dict[str, Any], patient: dict[str, Any],
                   procedure_id: str) -> dict[str, Any]:
    outcome = _OUTCOMES.get(e["outcome"]) if e["outcome"] else None
    if e["retracted"]:
        status = "entered-in-error"
    elif outcome in ("resolved", "resolvedWithSequelae"):
        status = "completed"
    else:
        status = "in-progress"
    notes = [f"area: {e['area']}" if e.get("area") else None,
             f"pass {e['pass_number']}" if e.get("pass_number") is not None else None,
             f"outcome {e['outcome']} on {e['outcome_date']}" if e["outcome"] else None,
             e.get("note"), "retracted: entered in error" if e["retracted"] else None]
    return {
        "resourceType": "AdverseEvent", "id": _id("AdverseEvent", s["uuid"], e["id"]),
        "identifier": [{"system": f"{BASE}/NamingSystem/adverse-event-id",
                        "value": f"{s['uuid']}/{e['id']}"}],
        "status": status, "actuality": "actual",
        "code": _concept(REACTIONS_URL, e["kind"], REACTIONS[e["kind"]][0]),
        "subject": _ref(patient),
        "occurrenceDateTime": e["onset_date"],
        "recordedDate": e["recorded_utc"],
        "recorder": _user(e["by_user_id"]),
        "seriousness": _concept(SERIOUSNESS_SYSTEM, e["seriousness"],
                                "Serious" if e["seriousness"] == "serious" else "Non-serious"),
        "outcome": [_concept(OUTCOME_SYSTEM, outcome, _OUTCOME_DISPLAY[outcome],
                             f"{e['outcome']} ({e['outcome_date']})")] if outcome else [],
        "suspectEntity": [{"instanceReference": {"reference": f"urn:uuid:{procedure_id}",
                                                 "type": "Procedure"}}],
        "note": [{"text": n} for n in notes if n]}


def _care_plan(conn: sqlite3.Connection, c: courses.Course, patient: dict[str, Any]
               ) -> dict[str, Any]:
    window = c.window
    delivered = sum(1 for s in courses.course_sessions(conn, c.id)
                    if s["kind"] == "course" and s["pulse_count"] > 0
                    and s["resumes_session_id"] is None)
    if c.is_open:
        status = "active"
    else:
        status = "completed" if delivered >= c.planned_sessions else "revoked"
    description = (f"{c.planned_sessions} session(s) of laser treatment for {c.indication} on "
                   f"{c.area}, every {window.min_days}-{window.max_days} days"
                   + (f" (target {window.target_days})" if window.target_days is not None
                      else "")
                   + (f", on {c.profile_id}" if c.profile_id else "")
                   + f"; {delivered} delivered")

    def days(value: int) -> dict[str, Any]:
        return {"value": value, "unit": "days", "system": UCUM, "code": "d"}

    extensions = [{"url": EXT_PLANNED_SESSIONS, "valueInteger": c.planned_sessions},
                  {"url": EXT_INTERVAL_WINDOW,
                   "valueRange": {"low": days(window.min_days), "high": days(window.max_days)}}]
    if window.target_days is not None:
        extensions.append({"url": EXT_TARGET_INTERVAL, "valueQuantity": days(window.target_days)})
    return {
        "resourceType": "CarePlan", "id": _id("CarePlan", c.client_ref, c.id, c.created_utc),
        "extension": extensions,
        "identifier": [{"system": COURSE_SYSTEM, "value": str(c.id)}],
        "status": status, "intent": "plan",
        "title": f"{c.indication}, {c.area}", "description": description,
        "subject": _ref(patient),
        "period": {"start": c.created_utc, "end": c.closed_utc},
        "created": c.created_utc,
        "addresses": [{"concept": {"text": c.indication}}],
        "note": [{"text": n} for n in (c.note, f"closed: {c.close_reason}" if c.closed_utc
                                       else None) if n]}


def _outcome(o: dict[str, Any], patient: dict[str, Any], plan: dict[str, Any] | None
             ) -> dict[str, Any]:
    metric = o["metric"]
    if metric in SCALES and float(o["value"]).is_integer():
        code = _concept(REACTIONS_URL, metric, REACTIONS[metric][0])
        value: dict[str, Any] = {"valueInteger": int(o["value"])}
        category = _category("survey", "Survey") if metric == "satisfaction" else \
            _category("exam", "Exam")
    else:
        code = {"text": metric}
        value = {"valueQuantity": {"value": float(o["value"])}}
        category = _category("imaging", "Imaging")
    source = ("entered" if o["source"] == "entered" else
              f"imported from {o['source_file']} (sha256 {o['source_sha256']})")
    return {
        "resourceType": "Observation", "id": _id("Observation", "outcome", o["client_ref"],
                                                 o["id"], o["recorded_utc"]),
        "basedOn": [_ref(plan)] if plan is not None else [],
        "status": "final", "category": category, "code": code,
        "subject": _ref(patient), "effectiveDateTime": o["assessed_date"],
        "performer": [_user(o["user_id"])],
        "bodySite": {"text": o["area"]} if o.get("area") else None,
        **value, "note": [{"text": source}]}


def _photo(p: photos.Photo, patient: dict[str, Any], procedure: dict[str, Any] | None,
           plan: dict[str, Any] | None) -> dict[str, Any]:
    """Return a photo as a DocumentReference that names its file and never holds it."""
    consent = (f"consent version {p.consent_sha256[:12]}" if p.consent_sha256
               else "no consent recorded")
    return {
        "resourceType": "DocumentReference", "id": _id("DocumentReference", p.sha256),
        "identifier": [{"system": PHOTO_SHA256_SYSTEM, "value": p.sha256},
                       {"system": PHOTO_SYSTEM, "value": str(p.id)}],
        "basedOn": [_ref(plan)] if plan is not None else [],
        "status": "current",
        "type": _concept(PHOTOS_URL, p.view, PHOTO_CODES[p.view][0]),
        "category": [_concept(PHOTOS_URL, p.kind, PHOTO_CODES[p.kind][0])],
        "subject": _ref(patient),
        "event": [{"reference": _ref(procedure)}] if procedure is not None else [],
        "bodySite": [{"concept": {"text": p.area}}] if p.area else [],
        "date": p.added_utc,
        "author": [_user(p.added_by)],
        "description": f"{p.kind} photo, {p.view} view; {consent}",
        "content": [{"attachment": {
            # A relative reference: it resolves against the site's photo folder only.
            "url": quote(p.relative_path, safe="/"),
            "contentType": CONTENT_TYPES.get(PurePosixPath(p.relative_path).suffix.lower()),
            "size": str(p.size_bytes),  # integer64: a JSON string in R5
            "title": PurePosixPath(p.relative_path).name}}]}


def _photos(conn: sqlite3.Connection, selection: Selection) -> list[photos.Photo]:
    """Return the photos an export holds: its courses' (the session's, for one session)."""
    return [p for c in selection.courses for p in photos.listed(conn, c.id)
            if selection.only_session is None or p.session_id == selection.only_session]


# -- the Bundle ------------------------------------------------------------------------------
def bundle(conn: sqlite3.Connection, selection: Selection, site: SiteConfig) -> dict[str, Any]:
    """Return the selection as a FHIR R5 Bundle of type collection (a JSON-ready dict)."""
    from laserlog.review.reactions import adverse_events

    resources: list[dict[str, Any]] = []
    patient = _patient(selection.client_ref)
    resources.append(patient)
    plans = {c.id: _care_plan(conn, c, patient) for c in selection.courses}
    devices: dict[tuple[str, str], dict[str, Any]] = {}
    metrics: list[dict[str, Any]] = []
    procedures: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    ids = [int(s["id"]) for s in selection.sessions]
    events: dict[int, list[dict[str, Any]]] = {}
    for e in adverse_events(conn, ids, retracted=True):
        events.setdefault(int(e["session_id"]), []).append(e)
    performed: dict[int, list[dict[str, Any]]] = {}
    by_session: dict[int, dict[str, Any]] = {}
    for s in selection.sessions:
        key = (s["profile_id"], s.get("serial") or "")
        device = devices.get(key)
        if device is None:
            device = devices[key] = _device(s)
            metrics.append(_metric(conn, device, s.get("device_id"), site))
        kind, course_id = courses.kind_of(conn, int(s["id"]))
        plan = plans.get(course_id) if course_id is not None else None
        procedure_id = _id("Procedure", s["uuid"])
        mine = [(e, _adverse_event(e, s, patient, procedure_id))
                for e in events.get(int(s["id"]), [])]
        procedure = _procedure(s, patient, device, plan, kind, mine)
        procedures.append(procedure)
        by_session[int(s["id"])] = procedure
        if course_id is not None and plan is not None:
            performed.setdefault(course_id, []).append(procedure)
        after += _dose(conn, s, patient, device, procedure)
        after += _assessments(conn, s, patient, procedure)
        after += [resource for _, resource in mine]
    for course_id, plan in plans.items():
        done = performed.get(course_id, [])
        if done:
            plan["activity"] = [{"performedActivity": [{"reference": _ref(p)} for p in done]}]
    if selection.outcome_sql is not None:
        where, params = selection.outcome_sql
        for o in _dicts(conn.execute(f"SELECT * FROM outcomes WHERE {where}"
                                     " ORDER BY assessed_date, id", params)):
            after.append(_outcome(o, patient, plans.get(o["course_id"])))
    after += [_photo(p, patient, by_session.get(p.session_id or 0), plans.get(p.course_id))
              for p in _photos(conn, selection)]
    resources += list(devices.values()) + metrics + list(plans.values()) + procedures + after
    resources += _code_systems()
    entries = []
    for resource in resources:
        clean = _pruned(resource)
        selection.counts[clean["resourceType"]] += 1
        entries.append({"fullUrl": f"urn:uuid:{clean['id']}", "resource": clean})
    return {"resourceType": "Bundle", "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": utc_now()},
            "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
            "type": "collection", "timestamp": utc_now(), "entry": entries}


def counts_line(counts: Counter) -> str:
    """Return what a Bundle holds, e.g. '1 Patient, 4 Procedures, 40 Observations'."""
    order = ("Patient", "Device", "DeviceMetric", "CarePlan", "Procedure", "Observation",
             "AdverseEvent", "DocumentReference", "CodeSystem")
    return ", ".join(f"{counts[name]} {name}{'' if counts[name] == 1 else 's'}"
                     for name in order if counts[name])
