"""The central server's schema: numbered migrations, a version in `laserlog_meta`, roles.

Every console table of the SQLite file has a twin in the `laserlog` schema with the same
columns (units in their names, the same types) plus `console_id`; rows keep the console's
own ids, so (console_id, id) is their stable key and the hash chain recomputes on the
server exactly as on the console. `sync_marks` holds, per console and table, the last id
shipped: it moves in the same transaction as the rows. `central_users` and
`central_signoffs` belong to the server alone (officers signing there); no sync touches them.
"""

from __future__ import annotations

import uuid
from typing import Any

from laserlog.errors import LaserlogError

SCHEMA = "laserlog"

#: Shipped tables and their columns with SQLite types, in the order they travel. Frozen
#: against the console schema by tests/test_sync.py: a console migration that adds a column
#: needs a server migration too.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "devices": (("id", "INTEGER"), ("profile_id", "TEXT"), ("model", "TEXT"),
                ("serial", "TEXT"), ("firmware", "TEXT"), ("first_seen_utc", "TEXT")),
    "sessions": (("id", "INTEGER"), ("uuid", "TEXT"), ("device_id", "INTEGER"),
                 ("profile_id", "TEXT"), ("port", "TEXT"), ("operator_id", "TEXT"),
                 ("client_ref", "TEXT"), ("area", "TEXT"), ("skin_type", "TEXT"),
                 ("eyewear_checked", "INTEGER"), ("checklist_json", "TEXT"),
                 ("started_utc", "TEXT"), ("ended_utc", "TEXT"), ("status", "TEXT"),
                 ("end_reason", "TEXT"), ("pulse_count", "INTEGER"), ("total_energy_j", "REAL"),
                 ("min_fluence_j_cm2", "REAL"), ("max_fluence_j_cm2", "REAL"),
                 ("regimes", "TEXT"), ("missing_pulses", "INTEGER"), ("event_count", "INTEGER"),
                 ("resumes_session_id", "INTEGER")),
    "users": (("id", "INTEGER"), ("user_id", "TEXT"), ("name", "TEXT"), ("role", "TEXT"),
              ("kdf", "TEXT"), ("salt_hex", "TEXT"), ("key_hex", "TEXT"),
              ("created_utc", "TEXT")),
    "calibrations": (("id", "INTEGER"), ("device_id", "INTEGER"), ("profile_id", "TEXT"),
                     ("console_serial", "TEXT"), ("meter_profile_id", "TEXT"),
                     ("meter_model", "TEXT"), ("meter_serial", "TEXT"),
                     ("meter_firmware", "TEXT"), ("user_id", "TEXT"), ("started_utc", "TEXT"),
                     ("ended_utc", "TEXT"), ("shots", "INTEGER"), ("wavelength_nm", "REAL"),
                     ("set_energy_j", "REAL"), ("mean_measured_energy_j", "REAL"),
                     ("deviation", "REAL"), ("max_abs_deviation", "REAL"), ("result", "TEXT"),
                     ("warn_deviation", "REAL"), ("fail_deviation", "REAL"),
                     ("fired_by", "TEXT")),
    "calibration_shots": (("id", "INTEGER"), ("calibration_id", "INTEGER"), ("shot", "INTEGER"),
                          ("received_unix_s", "REAL"), ("set_energy_j", "REAL"),
                          ("measured_energy_j", "REAL"), ("deviation", "REAL"),
                          ("result", "TEXT")),
    "settings": (("id", "INTEGER"), ("session_id", "INTEGER"), ("received_unix_s", "REAL"),
                 ("name", "TEXT"), ("value", "REAL"), ("unit", "TEXT")),
    "events": (("id", "INTEGER"), ("session_id", "INTEGER"), ("received_unix_s", "REAL"),
               ("kind", "TEXT"), ("severity", "TEXT"), ("code", "INTEGER"), ("message", "TEXT"),
               ("missing_pulses", "INTEGER"), ("count", "INTEGER"), ("raw", "TEXT")),
    "pulses": (("id", "INTEGER"), ("session_id", "INTEGER"), ("seq", "INTEGER"),
               ("received_unix_s", "REAL"), ("pulse_duration_ps", "REAL"), ("regime", "TEXT"),
               ("energy_j", "REAL"), ("fluence_j_cm2", "REAL"), ("spot_mm", "REAL"),
               ("wavelength_nm", "REAL"), ("rep_rate_hz", "REAL"), ("handpiece", "INTEGER"),
               ("beamlet_fluence_j_cm2", "REAL"), ("derived", "TEXT")),
    "signoffs": (("id", "INTEGER"), ("session_id", "INTEGER"), ("user_id", "TEXT"),
                 ("printed_name", "TEXT"), ("role", "TEXT"), ("meaning", "TEXT"),
                 ("signed_utc", "TEXT"), ("chain_id", "INTEGER"), ("chain_hash", "TEXT"),
                 ("signature", "TEXT")),
    "corrections": (("id", "INTEGER"), ("session_id", "INTEGER"), ("table_name", "TEXT"),
                    ("row_id", "INTEGER"), ("column_name", "TEXT"), ("old_value", "TEXT"),
                    ("new_value", "TEXT"), ("reason", "TEXT"), ("user_id", "TEXT"),
                    ("corrected_utc", "TEXT")),
    "user_changes": (("id", "INTEGER"), ("user_id", "TEXT"), ("change", "TEXT"),
                     ("name", "TEXT"), ("role", "TEXT"), ("administrator", "INTEGER"),
                     ("public_key_hex", "TEXT"), ("sealed_key", "TEXT"), ("by_user_id", "TEXT"),
                     ("changed_utc", "TEXT"), ("signature", "TEXT")),
    # Treatment courses, test spots and passes (console schema 5).
    "courses": (("id", "INTEGER"), ("client_ref", "TEXT"), ("area", "TEXT"),
                ("indication", "TEXT"), ("profile_id", "TEXT"), ("planned_sessions", "INTEGER"),
                ("min_interval_days", "INTEGER"), ("max_interval_days", "INTEGER"),
                ("target_interval_days", "INTEGER"), ("note", "TEXT"), ("created_utc", "TEXT")),
    "course_closures": (("id", "INTEGER"), ("course_id", "INTEGER"), ("reason", "TEXT"),
                        ("closed_utc", "TEXT")),
    "session_kinds": (("id", "INTEGER"), ("session_id", "INTEGER"), ("kind", "TEXT"),
                      ("course_id", "INTEGER"), ("how", "TEXT"), ("override_by", "TEXT"),
                      ("override_role", "TEXT"), ("override_reason", "TEXT"),
                      ("recorded_utc", "TEXT")),
    "test_spot_readouts": (("id", "INTEGER"), ("session_id", "INTEGER"), ("erythema", "INTEGER"),
                           ("oedema", "INTEGER"), ("blister", "INTEGER"),
                           ("hyperpigmentation", "INTEGER"), ("hypopigmentation", "INTEGER"),
                           ("note", "TEXT"), ("user_id", "TEXT"), ("read_utc", "TEXT")),
    # Reactions, adverse events and outcomes (console schema 6).
    "assessments": (("id", "INTEGER"), ("session_id", "INTEGER"), ("pass_number", "INTEGER"),
                    ("erythema", "INTEGER"), ("oedema", "INTEGER"), ("pain_nrs", "INTEGER"),
                    ("blister", "INTEGER"), ("purpura", "INTEGER"), ("note", "TEXT"),
                    ("correction", "INTEGER"), ("hours_after_end", "REAL"), ("user_id", "TEXT"),
                    ("assessed_utc", "TEXT")),
    "adverse_events": (("id", "INTEGER"), ("session_id", "INTEGER"), ("kind", "TEXT"),
                       ("onset_date", "TEXT"), ("seriousness", "TEXT"), ("area", "TEXT"),
                       ("pass_number", "INTEGER"), ("note", "TEXT"), ("by_user_id", "TEXT"),
                       ("recorded_utc", "TEXT"), ("signature", "TEXT")),
    "adverse_event_changes": (("id", "INTEGER"), ("adverse_event_id", "INTEGER"),
                              ("change", "TEXT"), ("outcome", "TEXT"), ("outcome_date", "TEXT"),
                              ("reason", "TEXT"), ("by_user_id", "TEXT"), ("recorded_utc", "TEXT"),
                              ("signature", "TEXT")),
    "outcomes": (("id", "INTEGER"), ("course_id", "INTEGER"), ("client_ref", "TEXT"),
                 ("area", "TEXT"), ("metric", "TEXT"), ("value", "REAL"),
                 ("assessed_date", "TEXT"), ("source", "TEXT"), ("source_file", "TEXT"),
                 ("source_sha256", "TEXT"), ("user_id", "TEXT"), ("recorded_utc", "TEXT")),
    # Consent and aftercare documents (console schema 7).
    "documents": (("id", "INTEGER"), ("kind", "TEXT"), ("sha256", "TEXT"), ("file_name", "TEXT"),
                  ("size_bytes", "INTEGER"), ("text", "TEXT"), ("first_recorded_utc", "TEXT")),
    "course_consents": (("id", "INTEGER"), ("course_id", "INTEGER"), ("client_ref", "TEXT"),
                        ("consent_sha256", "TEXT"), ("witness_user_id", "TEXT"),
                        ("witness_role", "TEXT"), ("agreed_utc", "TEXT"), ("signature", "TEXT")),
    "session_aftercare": (("id", "INTEGER"), ("session_id", "INTEGER"),
                          ("aftercare_sha256", "TEXT"), ("how", "TEXT"), ("given_utc", "TEXT")),
    # Photos by reference: the file's path in the site's photo folder and its SHA-256
    # (console schema 8); the pictures themselves stay on the console's disk.
    "photos": (("id", "INTEGER"), ("course_id", "INTEGER"), ("session_id", "INTEGER"),
               ("view", "TEXT"), ("kind", "TEXT"), ("area", "TEXT"), ("relative_path", "TEXT"),
               ("sha256", "TEXT"), ("size_bytes", "INTEGER"), ("consent_id", "INTEGER"),
               ("consent_sha256", "TEXT"), ("added_by", "TEXT"), ("added_utc", "TEXT")),
    # Each session's dose figures as its console computed them from its pulses (console
    # schema 9), with the counts that say whether they are still current.
    "session_doses": (("id", "INTEGER"), ("session_id", "INTEGER"), ("pulse_count", "INTEGER"),
                      ("event_count", "INTEGER"), ("mean_fluence_j_cm2", "REAL"),
                      ("wavelength_nm", "REAL"), ("pass_fluence_j_cm2", "REAL")),
    "chain": (("id", "INTEGER"), ("session_id", "INTEGER"), ("kind", "TEXT"),
              ("committed_unix_s", "REAL"), ("ranges", "TEXT"), ("snapshot", "TEXT"),
              ("row_crcs", "BLOB"), ("hash", "TEXT")),
}

#: Session columns that move while a session records (and on a recovery); the rest are fixed.
SESSION_MUTABLE = ("ended_utc", "status", "end_reason", "pulse_count", "total_energy_j",
                   "min_fluence_j_cm2", "max_fluence_j_cm2", "regimes", "missing_pulses",
                   "event_count", "resumes_session_id")

_PG_TYPES = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text", "BLOB": "bytea"}

CONSOLE_ROLE = "laserlog_console"
OFFICER_ROLE = "laserlog_officer"


def columns(table: str) -> tuple[str, ...]:
    """Return a shipped table's column names, in order."""
    return tuple(name for name, _ in TABLES[table])


#: Shipped tables the server learnt later (created by the migration that brought them).
SHIPPED_SINCE_V3 = ("user_changes",)
SHIPPED_SINCE_V4 = ("courses", "course_closures", "session_kinds", "test_spot_readouts",
                    "assessments", "adverse_events", "adverse_event_changes", "outcomes")
SHIPPED_SINCE_V5 = ("documents", "course_consents", "session_aftercare")
SHIPPED_SINCE_V6 = ("photos",)
SHIPPED_SINCE_V7 = ("session_doses",)


def _shipped_table(table: str) -> str:
    body = ", ".join(f"{name} {_PG_TYPES[kind]}" for name, kind in TABLES[table])
    return (f"CREATE TABLE {SCHEMA}.{table} (console_id integer NOT NULL"
            f" REFERENCES {SCHEMA}.consoles, {body}, PRIMARY KEY (console_id, id))")


def _v1() -> list[str]:
    out = [
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"""CREATE TABLE {SCHEMA}.laserlog_meta (key text PRIMARY KEY, value text NOT NULL)""",
        f"""CREATE TABLE {SCHEMA}.consoles (
            console_id serial PRIMARY KEY,
            console_uuid uuid NOT NULL UNIQUE,
            name text NOT NULL,
            site text,
            first_synced_utc timestamptz NOT NULL DEFAULT now(),
            last_synced_utc timestamptz,
            head_link bigint NOT NULL DEFAULT 0,
            head_hash text NOT NULL DEFAULT '',
            last_ids text NOT NULL DEFAULT '{{}}')""",
        f"""CREATE TABLE {SCHEMA}.sync_marks (
            console_id integer NOT NULL REFERENCES {SCHEMA}.consoles,
            table_name text NOT NULL,
            last_id bigint NOT NULL,
            PRIMARY KEY (console_id, table_name))""",
    ]
    later = (SHIPPED_SINCE_V3 + SHIPPED_SINCE_V4 + SHIPPED_SINCE_V5 + SHIPPED_SINCE_V6
             + SHIPPED_SINCE_V7)
    out += [_shipped_table(table) for table in TABLES if table not in later]
    out += [
        f"CREATE INDEX sessions_started ON {SCHEMA}.sessions (started_utc)",
        f"CREATE INDEX events_kind ON {SCHEMA}.events (kind, received_unix_s)",
        f"CREATE INDEX pulses_session ON {SCHEMA}.pulses (console_id, session_id, id)",
        f"CREATE INDEX chain_session ON {SCHEMA}.chain (console_id, session_id, id)",
    ]
    return out


#: Tables the server keeps itself, never shipped: the people who sign on the server, and
#: their sign-offs (beside the `signoffs` each console ships).
CENTRAL_USERS = "central_users"
CENTRAL_SIGNOFFS = "central_signoffs"
#: What an officer writes into a central sign-off; `db_login` and `recorded_at` the server sets.
CENTRAL_SIGNOFF_COLUMNS = ("console_id", "session_id", "user_id", "printed_name", "role",
                           "meaning", "signed_utc", "chain_id", "chain_hash", "signature")


def _v2() -> list[str]:
    """Sign-off on the server: its own users and an append-only table of signatures."""
    return [
        f"""CREATE TABLE {SCHEMA}.{CENTRAL_USERS} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id text NOT NULL UNIQUE,
            name text NOT NULL,
            role text NOT NULL CHECK (role IN ('technician', 'officer', 'engineer')),
            kdf text NOT NULL,
            salt_hex text NOT NULL,
            key_hex text NOT NULL,
            created_utc text NOT NULL,
            db_login text NOT NULL DEFAULT session_user)""",
        f"""CREATE TABLE {SCHEMA}.{CENTRAL_SIGNOFFS} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            console_id integer NOT NULL REFERENCES {SCHEMA}.consoles,
            session_id bigint NOT NULL,
            user_id text NOT NULL,
            printed_name text NOT NULL,
            role text NOT NULL,
            meaning text NOT NULL CHECK (meaning IN ('reviewed', 'approved')),
            signed_utc text NOT NULL,
            chain_id bigint NOT NULL,
            chain_hash text NOT NULL,
            signature text NOT NULL,
            db_login text NOT NULL DEFAULT session_user,
            recorded_at timestamptz NOT NULL DEFAULT now())""",
        f"CREATE INDEX central_signoffs_session ON {SCHEMA}.{CENTRAL_SIGNOFFS}"
        " (console_id, session_id, id)",
        # Who wrote a row is the login the server saw, whatever the client claims.
        f"""CREATE FUNCTION {SCHEMA}.stamp_login() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN NEW.db_login := session_user; RETURN NEW; END $$""",
        f"""CREATE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '{SCHEMA}.% is append-only: % refused', TG_TABLE_NAME, TG_OP
                  USING ERRCODE = 'insufficient_privilege'; END $$""",
        *(statement for table in (CENTRAL_USERS, CENTRAL_SIGNOFFS) for statement in (
            f"CREATE TRIGGER {table}_login BEFORE INSERT ON {SCHEMA}.{table}"
            f" FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.stamp_login()",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {SCHEMA}.{table}"
            f" FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {SCHEMA}.{table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change()")),
    ]


CENTRAL_USER_KEYS = "central_user_keys"


def _v3() -> list[str]:
    """Keys: the consoles' signed user changes, each server user's key sealed under their
    passphrase (keys of users from before come as rows of their own), and each console's
    installation keys as it registered them on its first sync after keys."""
    return [
        *(_shipped_table(t) for t in SHIPPED_SINCE_V3),
        f"""CREATE TABLE {SCHEMA}.{CENTRAL_USER_KEYS} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id text NOT NULL UNIQUE REFERENCES {SCHEMA}.{CENTRAL_USERS} (user_id),
            public_key_hex text NOT NULL,
            sealed_key text NOT NULL,
            created_utc text NOT NULL,
            db_login text NOT NULL DEFAULT session_user)""",
        *(f"CREATE TRIGGER {CENTRAL_USER_KEYS}_{name}" + body for name, body in (
            ("login", f" BEFORE INSERT ON {SCHEMA}.{CENTRAL_USER_KEYS}"
                      f" FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.stamp_login()"),
            ("append_only", f" BEFORE UPDATE OR DELETE ON {SCHEMA}.{CENTRAL_USER_KEYS}"
                            f" FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change()"),
            ("no_truncate", f" BEFORE TRUNCATE ON {SCHEMA}.{CENTRAL_USER_KEYS}"
                            f" FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_change()"))),
        f"ALTER TABLE {SCHEMA}.consoles ADD COLUMN installation_keys text NOT NULL DEFAULT ''",
        f"ALTER TABLE {SCHEMA}.{CENTRAL_USERS} ADD COLUMN public_key_hex text,"
        " ADD COLUMN sealed_key text",
    ]


def _v4() -> list[str]:
    """Courses, test spots, passes' session kinds, reactions, adverse events and outcomes:
    shipped like every console table (their rows are in the consoles' hash chains)."""
    return [_shipped_table(t) for t in SHIPPED_SINCE_V4]


def _v5() -> list[str]:
    """Consent and aftercare documents, the consents courses rest on and the aftercare
    sessions gave: shipped like every console table (in the consoles' hash chains)."""
    return [_shipped_table(t) for t in SHIPPED_SINCE_V5]


def _v6() -> list[str]:
    """Photos by reference (path, SHA-256, view, kind, consent): shipped like every console
    table (in the consoles' hash chains); the image files are not."""
    return [_shipped_table(t) for t in SHIPPED_SINCE_V6]


def _v7() -> list[str]:
    """Each session's dose figures (the dose-safety report reads them instead of every
    pulse): shipped like every console table (in the consoles' hash chains)."""
    return [*(_shipped_table(t) for t in SHIPPED_SINCE_V7),
            f"CREATE INDEX session_doses_session ON {SCHEMA}.session_doses"
            " (console_id, session_id, id)"]


#: Migration N brings the server from version N-1 to N. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (tuple(_v1()), tuple(_v2()), tuple(_v3()),
                                           tuple(_v4()), tuple(_v5()), tuple(_v6()),
                                           tuple(_v7()))
SCHEMA_VERSION = len(MIGRATIONS)


class CentralError(LaserlogError):
    """Raise when the central server cannot be reached, refuses us, or disagrees with us."""


def server_version(conn: Any) -> int:
    """Return the server schema's version; 0 when laserlog never created it there."""
    exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.laserlog_meta",)).fetchone()[0]
    if exists is None:
        return 0
    row = conn.execute(f"SELECT value FROM {SCHEMA}.laserlog_meta WHERE key = 'schema_version'"
                       ).fetchone()
    return int(row[0]) if row else 0


def check_version(conn: Any, where: str) -> int:
    """Refuse a server whose schema is newer than this laserlog; return its version."""
    version = server_version(conn)
    if version > SCHEMA_VERSION:
        raise CentralError(f"{where} has central schema {version}, newer than this laserlog "
                           f"understands ({SCHEMA_VERSION}): upgrade laserlog on this machine; "
                           "nothing was written")
    return version


def migrate(conn: Any, where: str) -> str:
    """Create or upgrade the server's schema and roles (one transaction); return its uuid."""
    import psycopg

    # One migrator at a time: two consoles syncing a new server race to create it.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('laserlog schema'))")
    version = check_version(conn, where)
    try:
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
            if number == 1:
                conn.execute(f"INSERT INTO {SCHEMA}.laserlog_meta VALUES ('server_uuid', %s)",
                             (str(uuid.uuid4()),))
                conn.execute(f"INSERT INTO {SCHEMA}.laserlog_meta VALUES ('schema_version', '0')")
            conn.execute(f"UPDATE {SCHEMA}.laserlog_meta SET value = %s"
                         " WHERE key = 'schema_version'", (str(number),))
        if version < SCHEMA_VERSION:
            _grant(conn)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CentralError(f"{where} has central schema {version}, this laserlog needs "
                           f"{SCHEMA_VERSION}, and this login may not create it "
                           f"({exc.diag.message_primary}): run `laserlog sync` once as the "
                           "database's owner") from None
    row = conn.execute(f"SELECT value FROM {SCHEMA}.laserlog_meta WHERE key = 'server_uuid'"
                       ).fetchone()
    return str(row[0])


def _grant(conn: Any) -> None:
    """Create the two group roles and give each what it may do, nothing more.

    A console appends: it inserts rows, moves its own marks and head, and updates the
    totals of sessions still recording; it reads no clinical rows. An officer reads
    everything and appends sign-offs given on the server; the console role has no right on the server's own
    sign-off tables.
    """
    for role in (CONSOLE_ROLE, OFFICER_ROLE):
        conn.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname ="
                     f" '{role}') THEN CREATE ROLE {role} NOLOGIN; END IF; END $$")
        conn.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}")
    tables = ", ".join(f"{SCHEMA}.{t}" for t in TABLES)
    conn.execute(f"GRANT INSERT ON {tables} TO {CONSOLE_ROLE}")
    conn.execute(f"GRANT SELECT, INSERT ON {SCHEMA}.consoles, {SCHEMA}.sync_marks"
                 f" TO {CONSOLE_ROLE}")
    conn.execute(f"GRANT SELECT ON {SCHEMA}.laserlog_meta TO {CONSOLE_ROLE}")
    conn.execute(f"GRANT UPDATE (last_id) ON {SCHEMA}.sync_marks TO {CONSOLE_ROLE}")
    conn.execute(f"GRANT UPDATE (name, site, last_synced_utc, head_link, head_hash, last_ids)"
                 f" ON {SCHEMA}.consoles TO {CONSOLE_ROLE}")
    # ON CONFLICT DO UPDATE reads the columns it updates: totals and status, no clinical detail.
    conn.execute(f"GRANT SELECT (console_id, id, {', '.join(SESSION_MUTABLE)}) ON"
                 f" {SCHEMA}.sessions TO {CONSOLE_ROLE}")
    conn.execute(f"GRANT UPDATE ({', '.join(SESSION_MUTABLE)}) ON {SCHEMA}.sessions"
                 f" TO {CONSOLE_ROLE}")
    conn.execute(f"GRANT SELECT (console_id, id, kind, hash) ON {SCHEMA}.chain TO {CONSOLE_ROLE}")
    conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {SCHEMA} TO {CONSOLE_ROLE}")
    conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO {OFFICER_ROLE}")
    # The shipped sign-offs are the consoles' own rows, in their chains: an officer signs on
    # the server in central_signoffs instead (schema 1 granted INSERT here; taken back).
    conn.execute(f"REVOKE INSERT ON {SCHEMA}.signoffs FROM {OFFICER_ROLE}")
    # Central sign-offs: officers append them (the server stamps the login); consoles may not
    # even read them. Central users are added by the database's owner only.
    conn.execute(f"GRANT INSERT ({', '.join(CENTRAL_SIGNOFF_COLUMNS)}) ON"
                 f" {SCHEMA}.{CENTRAL_SIGNOFFS} TO {OFFICER_ROLE}")
    # A server user from before keys gets theirs at their next passphrase, as themselves.
    conn.execute(f"GRANT INSERT (user_id, public_key_hex, sealed_key, created_utc) ON"
                 f" {SCHEMA}.{CENTRAL_USER_KEYS} TO {OFFICER_ROLE}")
    conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {SCHEMA} TO {OFFICER_ROLE}")
    # A console registers its installation keys on its first sync after keys (sync writes
    # them only while empty; changing them later is the owner's work).
    conn.execute(f"GRANT UPDATE (installation_keys) ON {SCHEMA}.consoles TO {CONSOLE_ROLE}")
