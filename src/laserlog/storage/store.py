"""The SQLite store: opening (WAL, synchronous=FULL, private file), migrations, queries.

The database is a plain file that the sqlite3 shell, sqlite-utils or Datasette read
without laserlog. Report queries use read-only connections with parameters.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from itertools import chain as chain_rows
from pathlib import Path
from typing import Any, TypeVar

from laserlog.config.files import dangling_link, private_folders
from laserlog.errors import StoreError
from laserlog.storage import chain, definitions, doses, signing
from laserlog.storage.rows import EVENT_COLUMNS, PULSE_COLUMNS, SETTING_COLUMNS
from laserlog.storage.schema import MIGRATION_ROWS, MIGRATIONS, SCHEMA_VERSION

#: How long a connection waits for another program's write lock before it gives up.
BUSY_TIMEOUT_S = 10.0
#: How long one attempt of `Store.write` waits for that lock: between attempts a signal
#: (Ctrl-C, SIGTERM) is honoured, which SQLite's own wait would ignore.
LOCK_ATTEMPT_S = 0.2
#: Why a session left 'recording' by a recorder that died is marked interrupted.
LOST_RECORDER_REASON = "recorder stopped without ending the session"

T = TypeVar("T")

INSERT_PULSE = f"INSERT INTO pulses ({', '.join(PULSE_COLUMNS)}) VALUES ({', '.join('?' * len(PULSE_COLUMNS))})"
INSERT_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
INSERT_SETTING = f"INSERT INTO settings ({', '.join(SETTING_COLUMNS)}) VALUES ({', '.join('?' * len(SETTING_COLUMNS))})"

#: The rows of the pulse_log and event_log views, read from the tables themselves: a view is
#: code in the file that anyone can redefine (`laserlog verify` names it), this is laserlog's.
#: Use as a subquery, `FROM ({PULSE_LOG}) AS pulse_log`: SQLite flattens it into the query.
PULSE_LOG = ("SELECT p.id, p.session_id, p.seq,"
             " strftime('%Y-%m-%dT%H:%M:%fZ', p.received_unix_s, 'unixepoch') AS received_utc,"
             " p.pulse_duration_ps, p.regime, p.energy_j, p.fluence_j_cm2, p.spot_mm,"
             " p.wavelength_nm, p.rep_rate_hz, p.handpiece, p.beamlet_fluence_j_cm2, p.derived"
             " FROM pulses p")
EVENT_LOG = ("SELECT e.id, e.session_id,"
             " strftime('%Y-%m-%dT%H:%M:%fZ', e.received_unix_s, 'unixepoch') AS received_utc,"
             " e.kind, e.severity, e.code, e.message, e.missing_pulses, e.count, e.raw"
             " FROM events e")

#: Rows per statement in `insert_rows`: one step of the SQLite VM writes this many rows.
ROWS_PER_STATEMENT = 100


def insert_rows(conn: sqlite3.Connection, sql: str, rows: list[tuple]) -> None:
    """Insert rows with `sql` (one row's INSERT ... VALUES (?, ...)), many rows per statement.

    Same rows as ``executemany(sql, rows)`` but ~1.6x faster: executemany steps the VM once
    a row, taking and dropping the interpreter lock each time, and that handover is what a
    recorder whose reader thread is busy parsing pays for.
    """
    if len(rows) < ROWS_PER_STATEMENT:
        conn.executemany(sql, rows)
        return
    head, _, values = sql.partition(" VALUES ")
    width = len(rows[0])
    many = f"{head} VALUES {', '.join([values] * ROWS_PER_STATEMENT)}"
    whole = len(rows) - len(rows) % ROWS_PER_STATEMENT
    flat = list(chain_rows.from_iterable(rows[:whole]))
    step = ROWS_PER_STATEMENT * width
    for start in range(0, len(flat), step):
        conn.execute(many, flat[start:start + step])
    if whole < len(rows):
        conn.executemany(sql, rows[whole:])


def utc_now() -> str:
    """Return the current UTC time as ISO 8601 text with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def default_db_path() -> Path:
    """Return the database path: $LASERLOG_DB, else laserlog.db in the user data folder."""
    env = os.environ.get("LASERLOG_DB")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("laserlog", appauthor=False)) / "laserlog.db"


def locked(exc: BaseException) -> bool:
    """Tell SQLite's 'database is locked' (another program's write lock) from a real fault."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc))


def _never() -> bool:
    return False


def _ignore(message: str) -> None:
    pass


def _explain(exc: BaseException) -> str:
    """Return what an SQLite or OS error means for the person at the console."""
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return f"{text} (the file or its folder is read-only: check its permissions)"
    if "full" in text:
        return f"{text} (free space on the disk, or choose another --db)"
    if "disk I/O error" in text:
        return f"{text} (the -wal or -shm file beside it may be truncated or damaged: keep "\
               "all three files for inspection, run `laserlog verify`, and record into another --db)"
    if "not a database" in text or "malformed" in text:
        return f"{text} (the file is damaged or not a laserlog database; keep it for "\
               "inspection and record into another --db)"
    return text


def _tighten(path: Path) -> None:
    """Make an existing database (and its -wal, -shm) private, saying so when it was not."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                os.chmod(file, 0o600)
                print(f"laserlog: notice: {file} was open to others (mode {mode:04o}); "
                      "made private (0600)", file=sys.stderr)
        except OSError:
            continue  # absent, or not ours to change: SQLite says what matters


def connect(path: str | Path, *, readonly: bool = False,
            create_dirs: bool = True) -> sqlite3.Connection:
    """Open a connection with the settings every connection needs (WAL, FULL sync, timeouts).

    A new database and a new folder for it are private (0600, 0700) whatever the umask.
    """
    path = Path(path)
    problem = dangling_link(path, "database", "a database file, or a path where nothing "
                                              "exists yet")
    if problem:
        raise StoreError(problem)
    if path.exists() and not path.is_file():
        kind = "folder" if path.is_dir() else "special file (a device, FIFO or socket)"
        raise StoreError(f"database {path} is a {kind}; expected a database file")
    try:
        if readonly:
            if not path.exists():
                raise StoreError(f"database {path} does not exist (record a session first, "
                                 "or pass --db)")
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True,
                                   timeout=BUSY_TIMEOUT_S,
                                   check_same_thread=False)
        else:
            if not path.parent.is_dir():
                if not create_dirs:
                    raise StoreError(f"folder {path.parent} for database {path.name} does not "
                                     "exist; create it or choose another --db")
                private_folders(path.parent)
            if not path.exists():
                # Private from the first byte; SQLite gives -wal and -shm the same mode.
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
                os.chmod(path, 0o600)  # whatever the umask
            else:
                _tighten(path)
                if not os.access(path, os.R_OK | os.W_OK):
                    # SQLite would open it read-only without a word, and fail at the first
                    # row a session writes.
                    raise StoreError(f"cannot open database {path}: the file is read-only for "
                                     "this user (check its permissions, or choose another --db)")
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                                   factory=chain.LogConnection)
            conn.execute("PRAGMA journal_mode=WAL")
            # Every commit of this connection is vouched for by this installation's key.
            conn.signer = signing.installation_key()[0]
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.row_factory = sqlite3.Row
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open database {path}: {_explain(exc)}") from None
    except OSError as exc:
        raise StoreError(f"cannot create database {path}: {exc.strerror}") from None
    return conn


def schema_version(conn: sqlite3.Connection, path: str | Path) -> int:
    """Return a database's schema number; raise StoreError when a newer laserlog wrote it.

    Every command that opens a database asks here, so each refuses a newer one in the same
    words, before reading or changing anything.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(f"database {path} has schema {version}, newer than this laserlog "
                         f"reads (schema {SCHEMA_VERSION} and older): a newer laserlog wrote "
                         "it; use that laserlog, or upgrade this one (nothing was changed)")
    return version


def migrate(conn: sqlite3.Connection, path: str | Path = "") -> int:
    """Bring the schema up to date; return the version it is now at."""
    try:
        version = schema_version(conn, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a laserlog database: {exc}") from None
    head = None
    migrated: list[tuple[str, int, int]] = []
    for number in range(version + 1, SCHEMA_VERSION + 1):
        try:
            with conn:
                conn.executescript("BEGIN;" + MIGRATIONS[number - 1]
                                   + f";PRAGMA user_version = {number};")
                migrated += _migrated_rows(conn, number)
                # What the schema now is goes into the chain with the last migration (the
                # chain's tables are the newest schema's).
                if number == SCHEMA_VERSION:
                    head = definitions.record(conn, number, migrated) or head
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.rollback()
            raise StoreError(f"cannot prepare database {path} (schema {number}): "
                             f"{_explain(exc)}") from None
    if path:
        chain.write_anchor(path, head)
    if version == 3 and SCHEMA_VERSION >= 4:
        _say_keys_arrived(conn, path)
    return SCHEMA_VERSION


def _migrated_rows(conn: sqlite3.Connection, number: int) -> list[tuple[str, int, int]]:
    """Return the id range migration `number` wrote into a chained table (the schema link
    that ends the migrations covers it), or nothing."""
    table = MIGRATION_ROWS.get(number)
    if table is None:
        return []
    last = conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    return [(table, 1, int(last))] if last is not None else []


def _say_keys_arrived(conn: sqlite3.Connection, path: str | Path) -> None:
    """Say once, at the upgrade that brings keys, who administers users until one is named."""
    officers = [r[0] for r in conn.execute(
        "SELECT user_id FROM users WHERE role = 'officer' ORDER BY id")]
    if officers:
        print(f"laserlog: notice: {path} now signs with keys: its officers "
              f"({', '.join(officers)}) are its administrators by default until one is named "
              "(`laserlog users role ID administrator --as ID`); each user gets a key the "
              "next time they give their passphrase; earlier sign-offs read LEGACY",
              file=sys.stderr)


def truncated(path: str | Path, schema_version: int) -> str | None:
    """Return why a database with no schema is not new but emptied: its anchor says the chain
    had links. None for a database that is simply new (no anchor, or an empty one)."""
    if schema_version != 0:
        return None
    try:
        anchor = chain.read_anchor(chain.anchor_path(path))
    except (ValueError, OSError):
        return None
    if not anchor or anchor.get("link", 0) <= 0:
        return None
    return (f"database {path} is empty or truncated, but its anchor says the hash chain had "
            f"{anchor['link']} link(s): it was emptied or replaced; restore it from a backup "
            "(nothing was written to it)")


class Store:
    """The laserlog database: sessions, devices, and reads for the views."""

    def __init__(self, path: str | Path, *, readonly: bool = False,
                 create_dirs: bool = True) -> None:
        self.path = Path(path)
        self.readonly = readonly
        #: Tells `write` that a signal asks the program to stop (a front end sets it).
        self.interrupted: Callable[[], bool] = _never
        #: Told once per `write` that waits for another program's lock, with what to show.
        self.waiting: Callable[[str], None] = _ignore
        # A zero-byte file has schema 0; check it before opening, which would give it a header.
        emptied = (truncated(self.path, 0)
                   if self.path.is_file() and self.path.stat().st_size == 0 else None)
        if emptied:
            raise StoreError(emptied)
        self.conn = connect(self.path, readonly=readonly, create_dirs=create_dirs)
        try:
            version = schema_version(self.conn, self.path)
        except StoreError:
            self.conn.close()
            raise
        emptied = truncated(self.path, version)
        if emptied:
            self.conn.close()
            raise StoreError(emptied)
        if version >= 3:
            self._check_tables()
        if not readonly:
            migrate(self.conn, self.path)
        else:
            if version != SCHEMA_VERSION:
                raise StoreError(f"database {self.path} has schema {version}, expected "
                                 f"{SCHEMA_VERSION}; run any recording command to upgrade it")

    def _check_tables(self) -> None:
        """Refuse a file whose core tables are something else (a view in a table's place could
        make every read lie, or never end); `laserlog verify` says more."""
        kinds = dict(self.conn.execute(
            "SELECT name, type FROM sqlite_master WHERE name IN"
            " ('sessions', 'pulses', 'events', 'settings', 'chain', 'devices')").fetchall())
        for name in ("sessions", "pulses", "events", "settings", "chain", "devices"):
            if kinds.get(name) != "table":
                self.conn.close()
                raise StoreError(f"database {self.path}: {name} is "
                                 f"{'a ' + kinds[name] if name in kinds else 'missing'}, not "
                                 "laserlog's table: it was changed outside laserlog (run "
                                 "`laserlog verify`, restore it from a backup)")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def db(self):
        """Return a sqlite-utils view of the same connection (made once: each one made runs
        a PRAGMA on the connection, and every query goes through it)."""
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    # -- writes (small and rare: the pulse path goes through the writer) -------------------
    def write(self, transaction: Callable[[], T], *,
              give_up: Callable[[], bool] | None = None) -> T:
        """Run a write transaction, waiting for another program's write lock in attempts of
        LOCK_ATTEMPT_S, so a signal is honoured while it waits.

        It waits up to BUSY_TIMEOUT_S, and a signal (`interrupted`) ends the wait with
        KeyboardInterrupt; or, given `give_up`, until that says to stop. Then the lock's
        error is raised; `transaction` rolls back what it did when it fails. `waiting` is
        told when the wait begins.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        told = False
        self.conn.execute(f"PRAGMA busy_timeout={int(LOCK_ATTEMPT_S * 1000)}")
        try:
            while True:
                try:
                    return transaction()
                except sqlite3.OperationalError as exc:
                    if not locked(exc):
                        raise
                    if not told:
                        told = True
                        self.waiting(f"database {self.path} is locked by another program: "
                                     "waiting for it to let go (Ctrl-C stops waiting)")
                    if give_up is not None:
                        if give_up():
                            raise
                    elif self.interrupted():
                        raise KeyboardInterrupt(
                            f"interrupted while waiting for another program's write lock on "
                            f"{self.path}; nothing more was written") from None
                    elif time.monotonic() >= deadline:
                        raise
                time.sleep(0.01)  # an attempt refused at once (a stale snapshot) must not spin
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")

    def device_id(self, profile_id: str, model: str, serial: str, firmware: str) -> int:
        """Return the id of this console, recording it the first time it is seen."""
        def transaction() -> int:
            with self.conn:
                self.conn.execute(
                    "INSERT OR IGNORE INTO devices (profile_id, model, serial, firmware,"
                    " first_seen_utc) VALUES (?, ?, ?, ?, ?)",
                    (profile_id, model, serial, firmware, utc_now()))
                row = self.conn.execute("SELECT id FROM devices WHERE profile_id = ? AND"
                                        " serial = ?", (profile_id, serial)).fetchone()
            return int(row[0])

        return self.write(transaction)

    def create_session(self, *, device_id: int | None, profile_id: str, port: str,
                       operator_id: str, client_ref: str, area: str | None,
                       skin_type: str | None, eyewear_checked: bool,
                       checklist_json: str | None, resumes_session_id: int | None = None,
                       kind: tuple[str, int | None, str | None, str | None, str | None] = (
                           "one_off", None, None, None, None),
                       started_utc: str | None = None) -> int:
        """Record the start of a session and return its id. `kind`: its kind, course, and
        the officer who authorised a start before the course's window (who, role, why);
        `started_utc`: the start as the course rules saw it (default: now)."""
        def transaction() -> int:
            with self.conn:
                cur = self.conn.execute(
                    "INSERT INTO sessions (uuid, device_id, profile_id, port, operator_id,"
                    " client_ref, area, skin_type, eyewear_checked, checklist_json, started_utc,"
                    " resumes_session_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (str(uuid.uuid4()), device_id, profile_id, port, operator_id, client_ref,
                     area, skin_type, int(eyewear_checked), checklist_json,
                     started_utc or utc_now(), resumes_session_id))
                session_id = int(cur.lastrowid or 0)
                kind_id = int(self.conn.execute(
                    "INSERT INTO session_kinds (session_id, kind, course_id, how, override_by,"
                    " override_role, override_reason, recorded_utc) VALUES"
                    " (?, ?, ?, 'start', ?, ?, ?, ?)", (session_id, *kind, utc_now())
                ).lastrowid or 0)
                # Its details go into the chain at once: checked before it is sealed too.
                heads.append(chain.open_session(self.conn, session_id,
                                                [("session_kinds", kind_id, kind_id)]))
            return session_id

        heads: list[chain.Head | None] = []
        session_id = self.write(transaction)
        chain.write_anchor(self.path, heads[-1] if heads else None)
        return session_id

    def end_session(self, session_id: int, status: str, reason: str, *,
                    ended_utc: str | None = None,
                    give_up: Callable[[], bool] | None = None) -> None:
        """Mark a session ended (or interrupted), now or at `ended_utc`; see `write` for
        `give_up`."""
        def transaction() -> chain.Head | None:
            with self.conn:
                self.conn.execute("UPDATE sessions SET ended_utc = ?, status = ?, end_reason = ?"
                                  " WHERE id = ?", (ended_utc or utc_now(), status, reason,
                                                    session_id))
                return chain.seal(self.conn, session_id)  # the session as it ended, chained

        chain.write_anchor(self.path, self.write(transaction, give_up=give_up))

    def mark_interrupted(self, port: str) -> list[int]:
        """Mark sessions left 'recording' on a port by a recorder that died; return their ids.

        Call only while holding the port's lock: then no live recorder owns them.
        """
        rows = self.conn.execute("SELECT id FROM sessions WHERE status = 'recording' AND port = ?",
                                 (port,)).fetchall()
        ids = [int(r[0]) for r in rows]
        for session_id in ids:
            self.recount(session_id)
            self.end_session(session_id, "interrupted", LOST_RECORDER_REASON)
        return ids

    def check_complete(self) -> None:
        """Refuse to record into a database that has lost committed rows.

        SQLite silently ignores an incomplete WAL, so a truncated WAL or a deleted tail only
        shows against the chain head recorded in the anchor file beside the database.
        """
        from laserlog.storage import chain

        anchor_file = chain.anchor_path(self.path)
        try:
            anchor = chain.read_anchor(anchor_file)
        except (ValueError, OSError):
            return  # an unreadable anchor is verify's finding; recording may go on
        if anchor is None:
            return
        link, _ = chain.head(self.conn)
        if link < int(anchor["link"]):
            raise StoreError(
                f"database {self.path} ends at chain link {link}, but its anchor "
                f"{anchor_file} records link {anchor['link']}: committed rows are missing "
                "(a truncated WAL or a deleted tail). Keep both files for inspection, run "
                "`laserlog verify`, and record into another --db meanwhile")

    def last_pulse(self, session_id: int) -> tuple[int, float] | None:
        """Return the sequence number and arrival time (Unix seconds) of the last committed
        pulse of a session or, when it has none, of the sessions it resumes."""
        current: int | None = session_id
        while current is not None:
            row = self.conn.execute("SELECT seq, received_unix_s FROM pulses WHERE session_id = ?"
                                    " ORDER BY id DESC LIMIT 1", (current,)).fetchone()
            if row is not None:
                return int(row[0]), float(row[1])
            link = self.conn.execute("SELECT resumes_session_id FROM sessions WHERE id = ?",
                                     (current,)).fetchone()
            current = link[0] if link else None
        return None

    def latest_interrupted(self, port: str) -> dict[str, Any] | None:
        """Return the most recent interrupted session recorded from a port."""
        rows = self.query("SELECT s.*, d.serial FROM sessions s LEFT JOIN devices d"
                          " ON d.id = s.device_id WHERE s.status = 'interrupted' AND s.port = ?"
                          " ORDER BY s.id DESC LIMIT 1", (port,))
        return rows[0] if rows else None

    def recount(self, session_id: int, *, give_up: Callable[[], bool] | None = None) -> None:
        """Recompute a session's aggregates from its committed pulses and events, and append
        its dose figures (laserlog.storage.doses); see `write` for `give_up`."""
        self.write(lambda: self._recount(session_id), give_up=give_up)

    def _recount(self, session_id: int) -> None:
        with self.conn:
            self.conn.execute(
                """UPDATE sessions SET
                     pulse_count = (SELECT count(*) FROM pulses WHERE session_id = :s),
                     total_energy_j = (SELECT coalesce(sum(energy_j), 0) FROM pulses WHERE session_id = :s),
                     min_fluence_j_cm2 = (SELECT min(fluence_j_cm2) FROM pulses WHERE session_id = :s),
                     max_fluence_j_cm2 = (SELECT max(fluence_j_cm2) FROM pulses WHERE session_id = :s),
                     regimes = coalesce((SELECT group_concat(regime, ',') FROM
                         (SELECT DISTINCT regime FROM pulses WHERE session_id = :s ORDER BY regime)), ''),
                     missing_pulses = (SELECT coalesce(sum(missing_pulses), 0) FROM events WHERE session_id = :s),
                     event_count = (SELECT count(*) FROM events WHERE session_id = :s)
                   WHERE id = :s""", {"s": session_id})
            # Its dose figures as of these rows, so reports need not read its pulses again.
            head = doses.record(self.conn, [session_id])
            # Recounted after it ended (rows recovered or added later): seal it again.
            head = chain.reseal_if_sealed(self.conn, session_id) or head
        chain.write_anchor(self.path, head)

    # -- reads ------------------------------------------------------------------------------
    def query(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Run a parameterised read through sqlite-utils; return the rows as dicts."""
        return list(self.db.query(sql, params))

    def sessions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Return the most recent sessions, newest first."""
        return self.query(
            "SELECT s.*, d.model, d.serial FROM sessions s LEFT JOIN devices d ON d.id = s.device_id"
            " ORDER BY s.id DESC LIMIT ?", (limit,))

    def session(self, session_id: int) -> dict[str, Any] | None:
        """Return one session with its console's identity, or None."""
        rows = self.query(
            "SELECT s.*, d.model, d.serial, d.firmware FROM sessions s"
            " LEFT JOIN devices d ON d.id = s.device_id WHERE s.id = ?", (session_id,))
        return rows[0] if rows else None

    def pulses(self, session_id: int, *, after_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Return one page of a session's pulses (keyset paging: fast at any depth)."""
        return self.query(
            f"SELECT * FROM ({PULSE_LOG}) AS pulse_log WHERE session_id = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (session_id, after_id, limit))

    def events(self, session_id: int) -> list[dict[str, Any]]:
        """Return a session's events in the order they were recorded."""
        return self.query(f"SELECT * FROM ({EVENT_LOG}) AS event_log WHERE session_id = ?"
                          " ORDER BY id", (session_id,))

    def settings(self, session_id: int) -> list[dict[str, Any]]:
        """Return a session's setting changes in order."""
        return self.query(
            "SELECT name, value, unit, strftime('%Y-%m-%dT%H:%M:%fZ', received_unix_s, 'unixepoch')"
            " AS received_utc FROM settings WHERE session_id = ? ORDER BY id", (session_id,))
