"""Datasette metadata for a laserlog database: what every table and column means, in units.

Built from laserlog's own words (schema.py, README's "The database"), so an officer browsing
the log reads the same names the reports print. Units are pint strings, as Datasette wants.
"""

from __future__ import annotations

from typing import Any

from laserlog.web.dashboard import dashboards
from laserlog.web.queries import canned_queries

DATABASE = "laserlog"
TITLE = "laserlog: treatment sessions, pulse by pulse"

CLIENT = "client pseudonym (never a name): the reference the clinic keeps for this client"

#: table -> (description, {column: description}); every column of every table and view.
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "devices": ("Consoles seen, one row per profile and serial number.", {
        "id": "device number", "profile_id": "profile the console was driven with",
        "model": "model the console reported", "serial": "serial number the console reported",
        "firmware": "firmware version the console reported",
        "first_seen_utc": "when laserlog first talked to it (UTC)"}),
    "sessions": ("Treatment sessions with their running totals (sealed when ended).", {
        "id": "session number", "uuid": "session's unique ID; links to its printable report",
        "device_id": "console (devices)", "profile_id": "profile the console was driven with",
        "port": "serial port it was recorded from", "operator_id": "technician who operated",
        "client_ref": CLIENT, "area": "treatment area (a correction may replace it)",
        "skin_type": "Fitzpatrick skin type I-VI",
        "eyewear_checked": "1 when eyewear rated for the wavelength was confirmed",
        "checklist_json": "pre-treatment checklist as ticked (JSON)",
        "started_utc": "start (UTC)", "ended_utc": "end (UTC)",
        "status": "recording, ended or interrupted", "end_reason": "why it ended",
        "pulse_count": "pulses recorded", "total_energy_j": "energy delivered, J",
        "min_fluence_j_cm2": "lowest pulse fluence, J/cm²",
        "max_fluence_j_cm2": "highest pulse fluence, J/cm²",
        "regimes": "pulse regimes seen: ps (<1 ns), ns (1 ns-1 µs), long",
        "missing_pulses": "pulses the console counted that never arrived (gaps)",
        "event_count": "events recorded", "resumes_session_id": "interrupted session it continues"}),
    "pulses": ("Every pulse as the console reported it (append-only).", {
        "id": "pulse row", "session_id": "session", "seq": "console's shot counter",
        "received_unix_s": "arrival time, Unix seconds (UTC)",
        "pulse_duration_ps": "pulse duration, ps", "regime": "ps (<1 ns), ns (1 ns-1 µs), long",
        "energy_j": "pulse energy, J", "fluence_j_cm2": "fluence, J/cm²", "spot_mm": "spot size, mm",
        "wavelength_nm": "wavelength, nm", "rep_rate_hz": "repetition rate, Hz",
        "handpiece": "handpiece number", "beamlet_fluence_j_cm2":
        "per-beamlet fluence of a fractional handpiece, J/cm² (never checked against flat-spot "
        "limits)", "derived": "which of energy, fluence, spot laserlog derived from the other two"}),
    "events": ("Faults, interlocks, gaps, link losses, limits, disagreements (append-only).", {
        "id": "event row", "session_id": "session (empty: outside a session)",
        "received_unix_s": "time, Unix seconds (UTC)", "kind": "what happened",
        "severity": "info, warning or alarm", "code": "console's fault code",
        "message": "what it means", "missing_pulses": "pulses lost in a gap",
        "count": "how many times (repeats are folded)", "raw": "raw line or the limited column"}),
    "settings": ("Console settings as they changed during a session (append-only).", {
        "id": "setting row", "session_id": "session", "received_unix_s": "time, Unix seconds",
        "name": "setting", "value": "value in `unit`", "unit": "unit of the value"}),
    "chain": ("SHA-256 hash chain over every commit; `laserlog verify` recomputes it.", {
        "id": "link number", "session_id": "session the commit belongs to",
        "kind": "what was committed (rows, seal, signoff, correction, ...)",
        "committed_unix_s": "commit time, Unix seconds", "ranges": "row ranges covered",
        "snapshot": "session details sealed", "row_crcs": "row checksums",
        "hash": "this link's hash"}),
    "users": ("People who sign off and calibrate (passphrase keys are never shown here).", {
        "id": "user row", "user_id": "user ID", "name": "printed name",
        "role": "technician, officer, engineer or administrator", "kdf": "key derivation (scrypt)",
        "salt_hex": "hidden", "key_hex": "hidden", "created_utc": "added (UTC)"}),
    "user_changes": ("Each user's creation, key, passphrase, role change and revocation, "
                     "signed by whoever authorised it (sealed keys are never shown here).", {
        "id": "change row", "user_id": "user ID", "change": "created, key, passphrase, role "
        "or revoked", "name": "printed name (created)", "role": "role (created, role)",
        "administrator": "1: manages users", "public_key_hex": "the user's public key "
        "(Ed25519)", "sealed_key": "hidden", "by_user_id": "who authorised it",
        "changed_utc": "when (UTC)", "signature": "the authoriser's signature"}),
    "signoffs": ("Signatures bound to a session's seal; validity shows in the sign-off "
                 "queries.", {
        "id": "signature row", "session_id": "session signed", "user_id": "signer's user ID",
        "printed_name": "signer's printed name", "role": "signer's role",
        "meaning": "reviewed or approved", "signed_utc": "when (UTC)",
        "chain_id": "seal link signed", "chain_hash": "seal hash signed",
        "signature": "digest binding signer, meaning and seal"}),
    "corrections": ("Corrections of session details: new rows, never edits.", {
        "id": "correction row", "session_id": "session", "table_name": "table corrected",
        "row_id": "row corrected", "column_name": "column corrected", "old_value": "before",
        "new_value": "after", "reason": "why", "user_id": "who", "corrected_utc": "when (UTC)"}),
    "calibrations": ("Meter checks of a console's output: PASS within ±10 %, WARN to ±20 %, "
                     "FAIL beyond (site file).", {
        "id": "check number", "device_id": "console (devices)", "profile_id": "console profile",
        "console_serial": "console serial", "meter_profile_id": "meter profile",
        "meter_model": "meter model", "meter_serial": "meter head serial",
        "meter_firmware": "meter firmware", "user_id": "who checked",
        "started_utc": "start (UTC)", "ended_utc": "end (UTC)", "shots": "shots measured",
        "wavelength_nm": "wavelength, nm", "set_energy_j": "set energy, J",
        "mean_measured_energy_j": "mean measured energy, J",
        "deviation": "(measured - set) / set, a fraction",
        "max_abs_deviation": "largest single-shot |deviation|, a fraction",
        "result": "pass, warn or fail", "warn_deviation": "warn threshold, a fraction",
        "fail_deviation": "fail threshold, a fraction",
        "fired_by": "laserlog (through the console) or technician"}),
    "calibration_shots": ("Each shot of a calibration check.", {
        "id": "shot row", "calibration_id": "check", "shot": "shot number",
        "received_unix_s": "time, Unix seconds", "set_energy_j": "set energy, J",
        "measured_energy_j": "measured energy, J", "deviation": "(measured - set) / set",
        "result": "pass, warn or fail"}),
    "courses": ("Treatment courses: a client, an area and an indication, with the planned "
                "sessions and the interval window between them.", {
        "id": "course number", "client_ref": "client pseudonym", "area": "treatment area",
        "indication": "what is treated", "profile_id": "console profile, if fixed",
        "planned_sessions": "sessions planned", "min_interval_days": "window opens, days",
        "max_interval_days": "window closes, days", "target_interval_days": "target, days",
        "note": "note", "created_utc": "when (UTC)"}),
    "course_closures": ("Courses closed, with why.", {
        "id": "closure row", "course_id": "course", "reason": "why",
        "closed_utc": "when (UTC)"}),
    "session_kinds": ("What each session was: a course session, a test spot or a one-off, "
                      "and an officer's override of the interval.", {
        "id": "row", "session_id": "session", "kind": "course, test_spot or one_off",
        "course_id": "course", "how": "how the start met the course's window",
        "override_by": "officer who authorised an early start", "override_role": "their role",
        "override_reason": "why", "recorded_utc": "when (UTC)"}),
    "test_spot_readouts": ("Read-outs of test spots, each finding graded 0-3.", {
        "id": "read-out", "session_id": "test-spot session", "erythema": "grade 0-3",
        "oedema": "grade 0-3", "blister": "grade 0-3", "hyperpigmentation": "grade 0-3",
        "hypopigmentation": "grade 0-3", "note": "note", "user_id": "who read it",
        "read_utc": "when (UTC)"}),
    "assessments": ("Immediate endpoints after a session (later ones are corrections).", {
        "id": "assessment", "session_id": "session", "pass_number": "pass, if any",
        "erythema": "grade 0-3", "oedema": "grade 0-3", "pain_nrs": "pain, NRS 0-10",
        "blister": "1 when present", "purpura": "1 when present", "note": "note",
        "correction": "1 when recorded more than 24 h after the end",
        "hours_after_end": "hours after the session's end", "user_id": "who",
        "assessed_utc": "when (UTC)"}),
    "adverse_events": ("Adverse events reported after a session, signed by the reporter.", {
        "id": "event number", "session_id": "session", "kind": "pih, burn, blister...",
        "onset_date": "onset (site date)", "seriousness": "serious or non-serious",
        "area": "area", "pass_number": "pass, if any", "note": "note",
        "by_user_id": "who reported it", "recorded_utc": "when (UTC)",
        "signature": "the reporter's signature"}),
    "adverse_event_changes": ("Outcome updates and retractions of adverse events.", {
        "id": "change", "adverse_event_id": "adverse event", "change": "update or retract",
        "outcome": "resolved, resolving, not-resolved or sequelae",
        "outcome_date": "outcome date", "reason": "why (retractions)",
        "by_user_id": "who", "recorded_utc": "when (UTC)", "signature": "their signature"}),
    "outcomes": ("Outcome scores and skin-analysis numbers per course, over weeks.", {
        "id": "row", "course_id": "course", "client_ref": "client pseudonym", "area": "area",
        "metric": "gais, pore, satisfaction or an imported metric", "value": "score or value",
        "assessed_date": "date assessed", "source": "typed or imported",
        "source_file": "imported file", "source_sha256": "its SHA-256", "user_id": "who",
        "recorded_utc": "when (UTC)"}),
    "documents": ("Consent and aftercare texts, each version kept once (its SHA-256).", {
        "id": "row", "kind": "consent or aftercare", "sha256": "the version: SHA-256 of the file",
        "file_name": "the file it was read from", "size_bytes": "its size in bytes",
        "text": "the Markdown text", "first_recorded_utc": "first recorded (UTC)"}),
    "course_consents": ("The consent version a course's client agreed, and its witness.", {
        "id": "row", "course_id": "course", "client_ref": "client pseudonym",
        "consent_sha256": "consent version (documents.sha256)",
        "witness_user_id": "the registered user who witnessed it", "witness_role": "their role",
        "agreed_utc": "when (UTC)", "signature": "the witness's signature"}),
    "session_aftercare": ("The aftercare version a session's client was given.", {
        "id": "row", "session_id": "session",
        "aftercare_sha256": "aftercare version (documents.sha256)",
        "how": "end (at the session's end) or later", "given_utc": "when (UTC)"}),
    "photos": ("Photos of a course, by reference: the file stays in the site's photo folder.", {
        "id": "row", "course_id": "course", "session_id": "session (if any)",
        "view": "front, left, right or other", "kind": "baseline, before, after or follow-up",
        "area": "sub-area shown", "relative_path": "path in the site's photo folder",
        "sha256": "SHA-256 of the file when added", "size_bytes": "its size in bytes",
        "consent_id": "the consent row then in force (course_consents.id)",
        "consent_sha256": "its consent version", "added_by": "who added it",
        "added_utc": "when (UTC)"}),
    "session_doses": ("Each session's dose figures from its pulses, kept at its end.", {
        "id": "row", "session_id": "session",
        "pulse_count": "pulses they were computed over", "event_count": "events likewise",
        "mean_fluence_j_cm2": "mean fluence, J/cm²",
        "wavelength_nm": "wavelength most pulses had, nm",
        "pass_fluence_j_cm2": "highest per-pass mean fluence, J/cm² (none without passes)"}),
}

#: Views over the course and reaction tables, described column by column.
DERIVED_VIEWS = {
    "session_kind": ("Each session's kind and course (one-off when none was recorded).", {
        "session_id": "session", "kind": "course, test_spot or one_off", "course_id": "course",
        "override_by": "officer who authorised an early start", "override_reason": "why"}),
    "pass_starts": ("Where each pass of a session began (the technician's `pass N`).", {
        "id": "event row", "session_id": "session", "pass_number": "pass",
        "sub_area": "sub-area", "started_unix_s": "time, Unix seconds",
        "started_utc": "time (UTC)"}),
    "pulse_passes": ("Each pulse's pass.", {
        "pulse_id": "pulse", "session_id": "session", "pass_number": "pass",
        "sub_area": "sub-area"}),
    "adverse_event_state": ("Each adverse event with its latest outcome, and whether it was "
                            "retracted.", {
        "id": "event number", "session_id": "session", "kind": "pih, burn, blister...",
        "onset_date": "onset (site date)", "seriousness": "serious or non-serious",
        "area": "area", "pass_number": "pass, if any", "note": "note",
        "by_user_id": "who reported it", "recorded_utc": "when (UTC)",
        "outcome": "latest outcome", "outcome_date": "its date",
        "retracted": "1 when retracted"}),
}

#: The views repeat their tables' columns with readable UTC times.
VIEWS = {
    "pulse_log": ("pulses", "Pulses with readable UTC times."),
    "event_log": ("events", "Events with readable UTC times."),
    "calibration_log": ("calibrations", "Calibration checks, short form."),
}

FACETS = {
    "sessions": ["profile_id", "operator_id", "area", "status"],
    "pulses": ["regime"], "pulse_log": ["regime"],
    "events": ["kind", "severity"], "event_log": ["kind", "severity"],
    "calibrations": ["profile_id", "result"], "calibration_log": ["profile_id", "result"],
    "signoffs": ["meaning", "user_id"], "devices": ["profile_id"],
}

SORT_DESC = {
    "sessions": "started_utc", "pulses": "id", "pulse_log": "id", "events": "id",
    "event_log": "id", "calibrations": "started_utc", "calibration_log": "started_utc",
    "signoffs": "signed_utc", "corrections": "id", "chain": "id",
}

#: Columns that hold secrets: read as NULL through the web view (see laserlog.web.serve).
HIDDEN_COLUMNS = {("users", "salt_hex"), ("users", "key_hex"), ("user_changes", "sealed_key")}


def table_metadata() -> dict[str, dict[str, Any]]:
    """Return Datasette's per-table metadata: descriptions, units, facets, sort order."""
    out: dict[str, dict[str, Any]] = {}
    described = {**TABLES, **DERIVED_VIEWS}
    for view, (base, description) in VIEWS.items():
        columns = dict(TABLES[base][1])
        columns["received_utc"] = "time (UTC)"
        described[view] = (description, columns)
    for table, (description, columns) in described.items():
        entry: dict[str, Any] = {"description": description, "columns": columns}
        if table in FACETS:
            entry["facets"] = FACETS[table]
        if table in SORT_DESC:
            entry["sort_desc"] = SORT_DESC[table]
        out[table] = entry
    out["devices"]["label_column"] = "serial"
    out["users"]["hidden"] = True
    return out


def build_metadata(*, interval_days: float, passwords: dict[str, str] | None) -> dict[str, Any]:
    """Return the whole metadata: title, tables, canned queries, dashboards, log-in."""
    plugins: dict[str, Any] = {"datasette-dashboards": dashboards(DATABASE)}
    metadata: dict[str, Any] = {
        "title": TITLE,
        "description": ("Read-only view of the laserlog database for the laser safety officer. "
                        "Every value is shown in its unit (energy in J, fluence in J/cm², "
                        "spot in mm) and every time in UTC and the site's time zone; a client "
                        "is a pseudonym, never a name. The review queries agree with "
                        "`laserlog report`."),
        "databases": {DATABASE: {
            "description": "laserlog database (opened read-only)",
            "tables": table_metadata(),
            "queries": canned_queries(interval_days),
        }},
        "plugins": plugins,
    }
    if passwords:
        plugins["datasette-auth-passwords"] = {
            f"{user}_password_hash": digest for user, digest in passwords.items()}
        # Everything but the log-in page needs one of these officers.
        metadata["allow"] = {"id": sorted(passwords)}
    return metadata
