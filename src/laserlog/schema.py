"""The database schema, numbered and chained through PRAGMA user_version.

Columns carry their unit in their name. Log tables are append-only: triggers refuse
UPDATE, DELETE, and an INSERT OR REPLACE over an existing row.
"""

from __future__ import annotations

LOG_TABLES = ("pulses", "events", "settings")

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

#: Migration N brings a database from user_version N-1 to N. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    _V1 + "".join(_append_only(t) for t in LOG_TABLES),
    _V2,
)

SCHEMA_VERSION = len(MIGRATIONS)
