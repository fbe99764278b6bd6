"""The database schema, numbered and chained through PRAGMA user_version.

Columns carry their unit in their name. Log tables are append-only: triggers refuse
UPDATE, DELETE, and an INSERT OR REPLACE over an existing row.
"""

from __future__ import annotations

LOG_TABLES = ("pulses", "events", "settings")

#: Tables laserlog adds to a file outside the numbered migrations, made when first needed:
#: a console's identity for the central server and the servers it ships to
#: (laserlog.central.identity). `laserlog verify` accepts exactly these, or their absence.
OUTSIDE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS central_identity (
    console_uuid TEXT NOT NULL,
    created_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS central_servers (
    server_uuid TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    first_synced_utc TEXT NOT NULL
);
"""

_V1 = """
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    profile_id TEXT NOT NULL,
    model TEXT NOT NULL,
    serial TEXT NOT NULL,
    firmware TEXT,
    first_seen_utc TEXT NOT NULL,
    UNIQUE (profile_id, serial)
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    device_id INTEGER REFERENCES devices(id),
    profile_id TEXT NOT NULL,
    port TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    client_ref TEXT NOT NULL,
    area TEXT,
    skin_type TEXT CHECK (skin_type IN ('I', 'II', 'III', 'IV', 'V', 'VI')),
    eyewear_checked INTEGER NOT NULL DEFAULT 0,
    checklist_json TEXT,
    started_utc TEXT NOT NULL,
    ended_utc TEXT,
    status TEXT NOT NULL DEFAULT 'recording'
        CHECK (status IN ('recording', 'ended', 'interrupted')),
    end_reason TEXT,
    pulse_count INTEGER NOT NULL DEFAULT 0,
    total_energy_j REAL NOT NULL DEFAULT 0,
    min_fluence_j_cm2 REAL,
    max_fluence_j_cm2 REAL,
    regimes TEXT NOT NULL DEFAULT '',
    missing_pulses INTEGER NOT NULL DEFAULT 0,
    event_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_started ON sessions (started_utc);
CREATE INDEX sessions_client ON sessions (client_ref);

CREATE TABLE pulses (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    seq INTEGER,
    received_unix_s REAL NOT NULL,
    pulse_duration_ps REAL NOT NULL CHECK (pulse_duration_ps > 0),
    regime TEXT NOT NULL CHECK (regime IN ('ps', 'ns', 'long')),
    energy_j REAL,
    fluence_j_cm2 REAL,
    spot_mm REAL,
    wavelength_nm REAL,
    rep_rate_hz REAL,
    handpiece INTEGER,
    beamlet_fluence_j_cm2 REAL,
    derived TEXT NOT NULL DEFAULT ''
);
CREATE INDEX pulses_session ON pulses (session_id, id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER REFERENCES sessions(id),
    received_unix_s REAL NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL DEFAULT 'info' CHECK (severity IN ('info', 'warning', 'alarm')),
    code INTEGER,
    message TEXT NOT NULL DEFAULT '',
    missing_pulses INTEGER,
    count INTEGER NOT NULL DEFAULT 1,
    raw TEXT
);
CREATE INDEX events_session ON events (session_id, id);
CREATE INDEX events_kind ON events (kind, received_unix_s);

CREATE TABLE settings (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    received_unix_s REAL NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL
);
CREATE INDEX settings_session ON settings (session_id, id);

CREATE VIEW pulse_log AS
SELECT p.id, p.session_id, p.seq,
       strftime('%Y-%m-%dT%H:%M:%fZ', p.received_unix_s, 'unixepoch') AS received_utc,
       p.pulse_duration_ps, p.regime, p.energy_j, p.fluence_j_cm2, p.spot_mm,
       p.wavelength_nm, p.rep_rate_hz, p.handpiece, p.beamlet_fluence_j_cm2, p.derived
FROM pulses p;

CREATE VIEW event_log AS
SELECT e.id, e.session_id,
       strftime('%Y-%m-%dT%H:%M:%fZ', e.received_unix_s, 'unixepoch') AS received_utc,
       e.kind, e.severity, e.code, e.message, e.missing_pulses, e.count, e.raw
FROM events e;
"""


def _append_only(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows cannot be changed'); END;
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows cannot be deleted'); END;
CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table}
WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM {table} WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows cannot be replaced'); END;
"""


# An interrupted session can be resumed as a new session linked to it.
_V2 = """
ALTER TABLE sessions ADD COLUMN resumes_session_id INTEGER REFERENCES sessions(id);
"""

# Safety officer review: hash chain (laserlog.storage.chain), users and sign-off, corrections,
# calibration checks. The genesis link records how far the older, unchained rows go.
_V3_TABLES = ("chain", "users", "signoffs", "corrections", "calibrations", "calibration_shots")
_V3 = """
CREATE TABLE chain (
    id INTEGER PRIMARY KEY,
    session_id INTEGER,
    kind TEXT NOT NULL,
    committed_unix_s REAL NOT NULL,
    ranges TEXT NOT NULL DEFAULT '',
    snapshot TEXT,
    row_crcs BLOB,
    hash TEXT NOT NULL
);
CREATE INDEX chain_session ON chain (session_id, id);
INSERT INTO chain (id, kind, committed_unix_s, ranges, hash)
SELECT 0, 'genesis', (julianday('now') - 2440587.5) * 86400.0,
       'pulses 1 ' || (SELECT coalesce(max(id), 0) FROM pulses)
       || ',events 1 ' || (SELECT coalesce(max(id), 0) FROM events)
       || ',settings 1 ' || (SELECT coalesce(max(id), 0) FROM settings)
       || ',sessions 1 ' || (SELECT coalesce(max(id), 0) FROM sessions)
       || ',devices 1 ' || (SELECT coalesce(max(id), 0) FROM devices),
       '';

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('technician', 'officer', 'engineer')),
    kdf TEXT NOT NULL,
    salt_hex TEXT NOT NULL,
    key_hex TEXT NOT NULL,
    created_utc TEXT NOT NULL
);

CREATE TABLE signoffs (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    user_id TEXT NOT NULL,
    printed_name TEXT NOT NULL,
    role TEXT NOT NULL,
    meaning TEXT NOT NULL CHECK (meaning IN ('reviewed', 'approved')),
    signed_utc TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    chain_hash TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX signoffs_session ON signoffs (session_id, id);

CREATE TABLE corrections (
    id INTEGER PRIMARY KEY,
    session_id INTEGER REFERENCES sessions(id),
    table_name TEXT NOT NULL,
    row_id INTEGER NOT NULL,
    column_name TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    reason TEXT NOT NULL,
    user_id TEXT NOT NULL,
    corrected_utc TEXT NOT NULL
);
CREATE INDEX corrections_row ON corrections (table_name, row_id, id);

CREATE TABLE calibrations (
    id INTEGER PRIMARY KEY,
    device_id INTEGER REFERENCES devices(id),
    profile_id TEXT NOT NULL,
    console_serial TEXT NOT NULL,
    meter_profile_id TEXT NOT NULL,
    meter_model TEXT NOT NULL,
    meter_serial TEXT NOT NULL,
    meter_firmware TEXT,
    user_id TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    ended_utc TEXT NOT NULL,
    shots INTEGER NOT NULL,
    wavelength_nm REAL,
    set_energy_j REAL NOT NULL,
    mean_measured_energy_j REAL NOT NULL,
    deviation REAL NOT NULL,
    max_abs_deviation REAL NOT NULL,
    result TEXT NOT NULL CHECK (result IN ('pass', 'warn', 'fail')),
    warn_deviation REAL NOT NULL,
    fail_deviation REAL NOT NULL,
    fired_by TEXT NOT NULL CHECK (fired_by IN ('laserlog', 'technician'))
);
CREATE INDEX calibrations_device ON calibrations (device_id, id);

CREATE TABLE calibration_shots (
    id INTEGER PRIMARY KEY,
    calibration_id INTEGER NOT NULL REFERENCES calibrations(id),
    shot INTEGER NOT NULL,
    received_unix_s REAL NOT NULL,
    set_energy_j REAL NOT NULL,
    measured_energy_j REAL NOT NULL,
    deviation REAL NOT NULL,
    result TEXT NOT NULL CHECK (result IN ('pass', 'warn', 'fail'))
);
CREATE INDEX calibration_shots_check ON calibration_shots (calibration_id, id);

CREATE VIEW calibration_log AS
SELECT c.id, c.started_utc, c.profile_id, c.console_serial, c.meter_model, c.meter_serial,
       c.user_id, c.shots, c.set_energy_j, c.mean_measured_energy_j, c.deviation, c.result
FROM calibrations c;

-- A session's details are fixed once recorded (corrections are rows of their own); its
-- totals and status move while it records and are sealed into the chain when it ends.
CREATE TRIGGER sessions_no_delete BEFORE DELETE ON sessions
BEGIN SELECT RAISE(ABORT, 'sessions cannot be deleted'); END;
CREATE TRIGGER sessions_no_replace BEFORE INSERT ON sessions
WHEN EXISTS (SELECT 1 FROM sessions WHERE id = NEW.id OR uuid = NEW.uuid)
BEGIN SELECT RAISE(ABORT, 'sessions cannot be replaced'); END;
CREATE TRIGGER sessions_fixed_details BEFORE UPDATE ON sessions
WHEN NEW.id IS NOT OLD.id OR NEW.uuid IS NOT OLD.uuid OR NEW.device_id IS NOT OLD.device_id
  OR NEW.profile_id IS NOT OLD.profile_id OR NEW.port IS NOT OLD.port
  OR NEW.operator_id IS NOT OLD.operator_id OR NEW.client_ref IS NOT OLD.client_ref
  OR NEW.area IS NOT OLD.area OR NEW.skin_type IS NOT OLD.skin_type
  OR NEW.eyewear_checked IS NOT OLD.eyewear_checked
  OR NEW.checklist_json IS NOT OLD.checklist_json OR NEW.started_utc IS NOT OLD.started_utc
BEGIN SELECT RAISE(ABORT, 'session details cannot be changed: record a correction instead'); END;

CREATE TRIGGER devices_no_update BEFORE UPDATE ON devices
BEGIN SELECT RAISE(ABORT, 'devices is append-only: rows cannot be changed'); END;
CREATE TRIGGER devices_no_delete BEFORE DELETE ON devices
BEGIN SELECT RAISE(ABORT, 'devices is append-only: rows cannot be deleted'); END;
CREATE TRIGGER devices_no_replace BEFORE INSERT ON devices
WHEN EXISTS (SELECT 1 FROM devices WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'devices is append-only: rows cannot be replaced'); END;
-- INSERT OR IGNORE of a known console keeps the first row; OR REPLACE must not swap it.
CREATE TRIGGER devices_keep_first BEFORE INSERT ON devices
WHEN EXISTS (SELECT 1 FROM devices WHERE profile_id = NEW.profile_id AND serial = NEW.serial)
BEGIN SELECT RAISE(IGNORE); END;
CREATE TRIGGER users_no_replace_id BEFORE INSERT ON users
WHEN EXISTS (SELECT 1 FROM users WHERE user_id = NEW.user_id)
BEGIN SELECT RAISE(ABORT, 'users is append-only: a user cannot be replaced'); END;
"""

# Keys and who may do what (laserlog.review.users): a role for those who manage users (the
# users table is rebuilt for its CHECK, rows and ids unchanged, so the chain still holds),
# and every user's creation, key, passphrase, role change and revocation as a signed row.
_V4 = """
CREATE TABLE users_v4 (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('technician', 'officer', 'engineer', 'administrator')),
    kdf TEXT NOT NULL,
    salt_hex TEXT NOT NULL,
    key_hex TEXT NOT NULL,
    created_utc TEXT NOT NULL
);
INSERT INTO users_v4 (id, user_id, name, role, kdf, salt_hex, key_hex, created_utc)
SELECT id, user_id, name, role, kdf, salt_hex, key_hex, created_utc FROM users ORDER BY id;
DROP TABLE users;
ALTER TABLE users_v4 RENAME TO users;
CREATE TRIGGER users_no_replace_id BEFORE INSERT ON users
WHEN EXISTS (SELECT 1 FROM users WHERE user_id = NEW.user_id)
BEGIN SELECT RAISE(ABORT, 'users is append-only: a user cannot be replaced'); END;

CREATE TABLE user_changes (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    change TEXT NOT NULL CHECK (change IN ('created', 'key', 'passphrase', 'role', 'revoked')),
    name TEXT,
    role TEXT CHECK (role IN ('technician', 'officer', 'engineer', 'administrator')),
    administrator INTEGER NOT NULL DEFAULT 0,
    public_key_hex TEXT,
    sealed_key TEXT,
    by_user_id TEXT NOT NULL,
    changed_utc TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX user_changes_user ON user_changes (user_id, id);
""" + _append_only("users") + _append_only("user_changes")

# Treatment courses (laserlog.recording.courses): a course per client x area x indication
# with its planned sessions and interval window, its closing, each session's kind (course,
# one-off, test spot; later rows attach a session to a course) with any officer's override of
# the window, and test spots' read-outs. Sessions recorded before are one-offs. A pass is an
# event of kind 'pass' (code: the pass number, raw: the sub-area); the views give each pulse
# its pass in plain SQL.
_V5_TABLES = ("courses", "course_closures", "session_kinds", "test_spot_readouts")
_V5 = """
CREATE TABLE courses (
    id INTEGER PRIMARY KEY,
    client_ref TEXT NOT NULL,
    area TEXT NOT NULL,
    indication TEXT NOT NULL,
    profile_id TEXT,
    planned_sessions INTEGER NOT NULL CHECK (planned_sessions BETWEEN 1 AND 100),
    min_interval_days INTEGER NOT NULL CHECK (min_interval_days >= 0),
    max_interval_days INTEGER NOT NULL
        CHECK (max_interval_days >= 1 AND max_interval_days >= min_interval_days),
    target_interval_days INTEGER CHECK (target_interval_days IS NULL OR target_interval_days
        BETWEEN min_interval_days AND max_interval_days),
    note TEXT,
    created_utc TEXT NOT NULL
);
CREATE INDEX courses_client ON courses (client_ref, area);

CREATE TABLE course_closures (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    reason TEXT NOT NULL,
    closed_utc TEXT NOT NULL
);
CREATE INDEX course_closures_course ON course_closures (course_id, id);

CREATE TABLE session_kinds (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    kind TEXT NOT NULL CHECK (kind IN ('course', 'one_off', 'test_spot')),
    course_id INTEGER REFERENCES courses(id),
    how TEXT NOT NULL CHECK (how IN ('start', 'attach', 'migration')),
    override_by TEXT,
    override_role TEXT,
    override_reason TEXT,
    recorded_utc TEXT NOT NULL,
    CHECK ((kind = 'course') = (course_id IS NOT NULL) OR kind = 'test_spot')
);
CREATE INDEX session_kinds_session ON session_kinds (session_id, id);
CREATE INDEX session_kinds_course ON session_kinds (course_id, id);
INSERT INTO session_kinds (session_id, kind, course_id, how, recorded_utc)
SELECT id, 'one_off', NULL, 'migration', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM sessions ORDER BY id;

CREATE TABLE test_spot_readouts (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    erythema INTEGER NOT NULL CHECK (erythema BETWEEN 0 AND 3),
    oedema INTEGER NOT NULL CHECK (oedema BETWEEN 0 AND 3),
    blister INTEGER NOT NULL CHECK (blister BETWEEN 0 AND 3),
    hyperpigmentation INTEGER NOT NULL CHECK (hyperpigmentation BETWEEN 0 AND 3),
    hypopigmentation INTEGER NOT NULL CHECK (hypopigmentation BETWEEN 0 AND 3),
    note TEXT,
    user_id TEXT,
    read_utc TEXT NOT NULL
);
CREATE INDEX test_spot_readouts_session ON test_spot_readouts (session_id, id);

CREATE VIEW session_kind AS
SELECT s.id AS session_id, coalesce(k.kind, 'one_off') AS kind, k.course_id,
       k.override_by, k.override_reason
FROM sessions s
LEFT JOIN session_kinds k ON k.id = (SELECT max(id) FROM session_kinds
                                     WHERE session_id = s.id);

CREATE VIEW pass_starts AS
SELECT e.id, e.session_id, e.code AS pass_number, e.raw AS sub_area,
       e.received_unix_s AS started_unix_s,
       strftime('%Y-%m-%dT%H:%M:%fZ', e.received_unix_s, 'unixepoch') AS started_utc
FROM events e WHERE e.kind = 'pass';

CREATE VIEW pulse_passes AS
SELECT p.id AS pulse_id, p.session_id, ps.pass_number, ps.sub_area
FROM pulses p
LEFT JOIN pass_starts ps ON ps.id = (
    SELECT e.id FROM events e WHERE e.session_id = p.session_id AND e.kind = 'pass'
      AND e.received_unix_s <= p.received_unix_s
    ORDER BY e.received_unix_s DESC, e.id DESC LIMIT 1);
""" + "".join(_append_only(t) for t in _V5_TABLES)

# After the session (laserlog.review.reactions, laserlog.review.outcomes): the immediate
# endpoints of a session or pass (a later one is a correction: a new row marked so), adverse
# events reported later with their updates and retractions (each row signed by the user who
# reports it), and outcomes over a course (scales entered by hand, skin-analysis numbers
# imported from a file). The views give each adverse event its newest state.
_V6_TABLES = ("assessments", "adverse_events", "adverse_event_changes", "outcomes")
_V6 = """
CREATE TABLE assessments (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    pass_number INTEGER CHECK (pass_number IS NULL OR pass_number BETWEEN 1 AND 99),
    erythema INTEGER NOT NULL CHECK (erythema BETWEEN 0 AND 3),
    oedema INTEGER NOT NULL CHECK (oedema BETWEEN 0 AND 3),
    pain_nrs INTEGER NOT NULL CHECK (pain_nrs BETWEEN 0 AND 10),
    blister INTEGER NOT NULL CHECK (blister IN (0, 1)),
    purpura INTEGER NOT NULL CHECK (purpura IN (0, 1)),
    note TEXT,
    correction INTEGER NOT NULL CHECK (correction IN (0, 1)),
    hours_after_end REAL,
    user_id TEXT,
    assessed_utc TEXT NOT NULL
);
CREATE INDEX assessments_session ON assessments (session_id, id);

CREATE TABLE adverse_events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    kind TEXT NOT NULL CHECK (kind IN ('pih', 'hypopigmentation', 'blister', 'burn', 'scarring',
                                       'infection', 'hsv', 'other')),
    onset_date TEXT NOT NULL,
    seriousness TEXT NOT NULL CHECK (seriousness IN ('serious', 'non-serious')),
    area TEXT,
    pass_number INTEGER CHECK (pass_number IS NULL OR pass_number BETWEEN 1 AND 99),
    note TEXT,
    by_user_id TEXT NOT NULL,
    recorded_utc TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX adverse_events_session ON adverse_events (session_id, id);

CREATE TABLE adverse_event_changes (
    id INTEGER PRIMARY KEY,
    adverse_event_id INTEGER NOT NULL REFERENCES adverse_events(id),
    change TEXT NOT NULL CHECK (change IN ('update', 'retraction')),
    outcome TEXT CHECK (outcome IS NULL OR outcome IN ('resolved', 'resolving', 'not-resolved',
                                                       'sequelae')),
    outcome_date TEXT,
    reason TEXT,
    by_user_id TEXT NOT NULL,
    recorded_utc TEXT NOT NULL,
    signature TEXT NOT NULL,
    CHECK ((change = 'update') = (outcome IS NOT NULL AND outcome_date IS NOT NULL)),
    CHECK ((change = 'retraction') = (reason IS NOT NULL))
);
CREATE INDEX adverse_event_changes_event ON adverse_event_changes (adverse_event_id, id);

CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY,
    course_id INTEGER REFERENCES courses(id),
    client_ref TEXT NOT NULL,
    area TEXT,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    assessed_date TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('entered', 'import')),
    source_file TEXT,
    source_sha256 TEXT,
    user_id TEXT,
    recorded_utc TEXT NOT NULL
);
CREATE INDEX outcomes_course ON outcomes (course_id, assessed_date);
CREATE INDEX outcomes_client ON outcomes (client_ref, area);

CREATE VIEW adverse_event_state AS
SELECT a.id, a.session_id, a.kind, a.onset_date, a.seriousness, a.area, a.pass_number, a.note,
       a.by_user_id, a.recorded_utc,
       (SELECT c.outcome FROM adverse_event_changes c WHERE c.adverse_event_id = a.id
          AND c.change = 'update' ORDER BY c.id DESC LIMIT 1) AS outcome,
       (SELECT c.outcome_date FROM adverse_event_changes c WHERE c.adverse_event_id = a.id
          AND c.change = 'update' ORDER BY c.id DESC LIMIT 1) AS outcome_date,
       EXISTS (SELECT 1 FROM adverse_event_changes c WHERE c.adverse_event_id = a.id
          AND c.change = 'retraction') AS retracted
FROM adverse_events a;
""" + "".join(_append_only(t) for t in _V6_TABLES)

# Consent and aftercare as versioned documents (laserlog.review.documents): each text kept
# once per version (its SHA-256), so a later edit of the site's file never changes what was
# agreed or given; which consent version a course's client agreed, witnessed by a registered
# user who signs the row; which aftercare version a session's end gave.
_V7_TABLES = ("documents", "course_consents", "session_aftercare")
_V7 = """
CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('consent', 'aftercare')),
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
    file_name TEXT NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes BETWEEN 1 AND 1048576),
    text TEXT NOT NULL,
    first_recorded_utc TEXT NOT NULL,
    UNIQUE (kind, sha256)
);

CREATE TABLE course_consents (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    client_ref TEXT NOT NULL,
    consent_sha256 TEXT NOT NULL,
    witness_user_id TEXT NOT NULL,
    witness_role TEXT NOT NULL,
    agreed_utc TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX course_consents_course ON course_consents (course_id, id);

CREATE TABLE session_aftercare (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    aftercare_sha256 TEXT NOT NULL,
    how TEXT NOT NULL CHECK (how IN ('end', 'later')),
    given_utc TEXT NOT NULL
);
CREATE INDEX session_aftercare_session ON session_aftercare (session_id, id);
""" + "".join(_append_only(t) for t in _V7_TABLES)

# Photos by reference (laserlog.recording.photos): the file stays in the site's photo folder;
# the row keeps its path there, its SHA-256 and size (so `verify --photos` finds an edited
# file), its view and kind, the course (and session) it documents, who added it, and the
# consent row the course rested on then (NULL: none recorded). Each file is recorded once.
_V8_TABLES = ("photos",)
_V8 = """
CREATE TABLE photos (
    id INTEGER PRIMARY KEY,
    course_id INTEGER NOT NULL REFERENCES courses(id),
    session_id INTEGER REFERENCES sessions(id),
    view TEXT NOT NULL CHECK (view IN ('front', 'left', 'right', 'other')),
    kind TEXT NOT NULL CHECK (kind IN ('baseline', 'before', 'after', 'follow-up')),
    area TEXT,
    relative_path TEXT NOT NULL,
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 1),
    consent_id INTEGER REFERENCES course_consents(id),
    consent_sha256 TEXT,
    added_by TEXT NOT NULL,
    added_utc TEXT NOT NULL
);
CREATE INDEX photos_course ON photos (course_id, id);
CREATE INDEX photos_sha256 ON photos (sha256);
""" + "".join(_append_only(t) for t in _V8_TABLES)

# Each session's dose figures (laserlog.storage.doses), appended when its totals are recounted
# (its end, a recovery): the counts they were computed over say whether a row is still
# current. Sessions recorded before have none; the report computes theirs from the pulses.
_V9_TABLES = ("session_doses",)
_V9 = """
CREATE TABLE session_doses (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    pulse_count INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    mean_fluence_j_cm2 REAL,
    wavelength_nm REAL,
    pass_fluence_j_cm2 REAL
);
CREATE INDEX session_doses_session ON session_doses (session_id, id);
""" + "".join(_append_only(t) for t in _V9_TABLES)

#: Migration N brings a database from user_version N-1 to N. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    _V1 + "".join(_append_only(t) for t in LOG_TABLES),
    _V2,
    _V3 + "".join(_append_only(t) for t in _V3_TABLES),
    _V4,
    _V5,
    _V6,
    _V7,
    _V8,
    _V9,
)

SCHEMA_VERSION = len(MIGRATIONS)

#: Rows a migration writes into a chained table (migration number -> table): they join the
#: chain in the migration's own transaction.
MIGRATION_ROWS = {5: "session_kinds"}
