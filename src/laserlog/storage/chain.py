"""The hash chain: every commit that writes log rows appends one link, and sessions are sealed.

A link holds the id ranges its commit wrote and a SHA-256 over the previous link's hash and
a canonical encoding of those rows, read back from SQLite inside the same transaction (so
the bytes hashed are exactly what any later reader gets). A seal snapshots a session's row
(totals, status, who, which client) and its console's row when the session ends. The chain
head also goes to an anchor file beside the database, so a deleted tail or a lost WAL shows.

Canonical encoding (format 1): pickle protocol 2 without memo of the tuple
``(1, link id, session id, kind, committed_unix_s, ranges, snapshot, rows...)`` where
``rows`` is one list of row tuples per range, columns as in `CHAINED`. Floats go in as
their 8 IEEE bytes, so encoding costs ~0.2 us a row (JSON text costs ~4 us: float repr).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import pickle
import sqlite3
import time
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from laserlog.storage import signing

FORMAT = 1
GENESIS_PREFIX = b"laserlog chain genesis 1\n"

#: Columns hashed per table, frozen for chain format 1: a column added later is not covered.
CHAINED: dict[str, tuple[str, ...]] = {
    "pulses": ("id", "session_id", "seq", "received_unix_s", "pulse_duration_ps", "regime",
               "energy_j", "fluence_j_cm2", "spot_mm", "wavelength_nm", "rep_rate_hz",
               "handpiece", "beamlet_fluence_j_cm2", "derived"),
    "events": ("id", "session_id", "received_unix_s", "kind", "severity", "code", "message",
               "missing_pulses", "count", "raw"),
    "settings": ("id", "session_id", "received_unix_s", "name", "value", "unit"),
    "users": ("id", "user_id", "name", "role", "kdf", "salt_hex", "key_hex", "created_utc"),
    "signoffs": ("id", "session_id", "user_id", "printed_name", "role", "meaning", "signed_utc",
                 "chain_id", "chain_hash", "signature"),
    "corrections": ("id", "session_id", "table_name", "row_id", "column_name", "old_value",
                    "new_value", "reason", "user_id", "corrected_utc"),
    "calibrations": ("id", "device_id", "profile_id", "console_serial", "meter_profile_id",
                     "meter_model", "meter_serial", "meter_firmware", "user_id", "started_utc",
                     "ended_utc", "shots", "wavelength_nm", "set_energy_j",
                     "mean_measured_energy_j", "deviation", "max_abs_deviation", "result",
                     "warn_deviation", "fail_deviation", "fired_by"),
    "calibration_shots": ("id", "calibration_id", "shot", "received_unix_s", "set_energy_j",
                          "measured_energy_j", "deviation", "result"),
    # Schema 4: who may sign, with which key, authorised by whom (laserlog.review.users).
    "user_changes": ("id", "user_id", "change", "name", "role", "administrator",
                     "public_key_hex", "sealed_key", "by_user_id", "changed_utc", "signature"),
    # Schema 5: treatment courses (laserlog.recording.courses).
    "courses": ("id", "client_ref", "area", "indication", "profile_id", "planned_sessions",
                "min_interval_days", "max_interval_days", "target_interval_days", "note",
                "created_utc"),
    "course_closures": ("id", "course_id", "reason", "closed_utc"),
    "session_kinds": ("id", "session_id", "kind", "course_id", "how", "override_by",
                      "override_role", "override_reason", "recorded_utc"),
    "test_spot_readouts": ("id", "session_id", "erythema", "oedema", "blister",
                           "hyperpigmentation", "hypopigmentation", "note", "user_id",
                           "read_utc"),
    # Schema 6: after the session (laserlog.review.reactions, laserlog.review.outcomes).
    "assessments": ("id", "session_id", "pass_number", "erythema", "oedema", "pain_nrs",
                    "blister", "purpura", "note", "correction", "hours_after_end", "user_id",
                    "assessed_utc"),
    "adverse_events": ("id", "session_id", "kind", "onset_date", "seriousness", "area",
                       "pass_number", "note", "by_user_id", "recorded_utc", "signature"),
    "adverse_event_changes": ("id", "adverse_event_id", "change", "outcome", "outcome_date",
                              "reason", "by_user_id", "recorded_utc", "signature"),
    "outcomes": ("id", "course_id", "client_ref", "area", "metric", "value", "assessed_date",
                 "source", "source_file", "source_sha256", "user_id", "recorded_utc"),
    # Schema 7: consent and aftercare documents (laserlog.review.documents).
    "documents": ("id", "kind", "sha256", "file_name", "size_bytes", "text",
                  "first_recorded_utc"),
    "course_consents": ("id", "course_id", "client_ref", "consent_sha256", "witness_user_id",
                        "witness_role", "agreed_utc", "signature"),
    "session_aftercare": ("id", "session_id", "aftercare_sha256", "how", "given_utc"),
    # Schema 8: photos by reference (laserlog.recording.photos).
    "photos": ("id", "course_id", "session_id", "view", "kind", "area", "relative_path",
               "sha256", "size_bytes", "consent_id", "consent_sha256", "added_by",
               "added_utc"),
    # Schema 9: each session's dose figures (laserlog.storage.doses).
    "session_doses": ("id", "session_id", "pulse_count", "event_count", "mean_fluence_j_cm2",
                      "wavelength_nm", "pass_fluence_j_cm2"),
}

#: What a seal snapshots of a session and of its console.
SESSION_COLUMNS = ("id", "uuid", "device_id", "profile_id", "port", "operator_id", "client_ref",
                   "area", "skin_type", "eyewear_checked", "checklist_json", "started_utc",
                   "ended_utc", "status", "end_reason", "pulse_count", "total_energy_j",
                   "min_fluence_j_cm2", "max_fluence_j_cm2", "regimes", "missing_pulses",
                   "event_count", "resumes_session_id")
DEVICE_COLUMNS = ("id", "profile_id", "model", "serial", "firmware", "first_seen_utc")

_SELECT = {t: f"SELECT {', '.join(c)} FROM {t} WHERE id BETWEEN ? AND ? ORDER BY id"
           for t, c in CHAINED.items()}


#: While recording, the chain head is signed by the installation key at least this often;
#: every other commit (a seal, a user, a sign-off, a correction) is signed at once.
CHECKPOINT_INTERVAL_S = 10.0


class LogConnection(sqlite3.Connection):
    """A writable connection that carries this installation's key to sign checkpoints."""

    signer: Ed25519PrivateKey | None = None
    last_checkpoint_s: float = float("-inf")


class Encoder:
    """Encode values canonically (pickle protocol 2 without memo), reusing one buffer."""

    __slots__ = ("_buffer", "_pickler")

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._pickler = pickle.Pickler(self._buffer, 2)
        # Without the memo, equal values always encode the same, whichever objects hold them.
        # (`fast` is documented as deprecated but is the only switch for it; the encoding is
        # pinned by tests/test_verify.py::test_canonical_encoding_is_frozen.)
        self._pickler.fast = True

    def __call__(self, value: Any) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        self._pickler.dump(value)
        return buffer.getvalue()


def encode(value: Any) -> bytes:
    """Return the canonical bytes of rows and link fields."""
    return Encoder()(value)


def link_hash(prev_hash: str, link_id: int, session_id: int | None, kind: str,
              committed_unix_s: float, ranges: str, snapshot: str | None,
              rows: tuple[list[tuple], ...]) -> str:
    """Return a link's hash (hex) from the previous hash and what the link covers."""
    body = encode((FORMAT, link_id, session_id, kind, committed_unix_s, ranges, snapshot, rows))
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def genesis_hash(ranges: str) -> str:
    """Return the hash the first link follows: it binds the legacy row limits."""
    return hashlib.sha256(GENESIS_PREFIX + ranges.encode("ascii")).hexdigest()


def row_crcs(rows: list[tuple]) -> array:
    """Return one CRC-32 per row: stored with a link, they point at the row that changed.

    Each row's canonical bytes are what `encode(row)` gives; they are pickled one after
    the other into one buffer and cut at the offsets (a fifth faster than one at a time).
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, 2)
    pickler.fast = True  # no memo, as in Encoder
    dump, tell = pickler.dump, buffer.tell
    ends = [tell() for row in rows if dump(row) is None]
    data = buffer.getvalue()
    crc32 = zlib.crc32
    return array("I", [crc32(data[start:end]) for start, end in zip([0, *ends], ends, strict=False)])


def parse_ranges(ranges: str) -> list[tuple[str, int, int]]:
    """Return [(table, first id, last id)] from a link's ranges text."""
    out = []
    if ranges:
        for part in ranges.split(","):
            table, first, last = part.split(" ")
            out.append((table, int(first), int(last)))
    return out


@dataclass(frozen=True, slots=True)
class Head:
    """The newest link: what the anchor file records."""

    link_id: int
    hash: str
    last_ids: dict[str, int] = field(default_factory=dict)


def _cursor(conn: sqlite3.Connection) -> sqlite3.Cursor:
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples: the rows are hashed as read
    return cur


def head(conn: sqlite3.Connection) -> tuple[int, str]:
    """Return (id, hash) of the newest link; the genesis hash when there is none yet."""
    cur = _cursor(conn)
    row = cur.execute("SELECT id, kind, ranges, hash FROM chain ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        raise sqlite3.DatabaseError("the chain has no genesis link (schema 3 missing?)")
    link_id, kind, ranges, hash_ = row
    return int(link_id), (genesis_hash(ranges) if kind == "genesis" else hash_)


def _rows(cur: sqlite3.Cursor, table: str, first: int, last: int,
          written: list[tuple] | None) -> list[tuple]:
    """Return the rows of a range as SQLite gives them back, with their ids.

    `written` (the rows just inserted, without ids, in id order) spares reading back a big
    batch, which costs as much as inserting it: the writer's rows hold exactly the values
    SQLite stores (floats in REAL columns, None for NULL; laserlog.recording.completion keeps them
    so). The first and last rows are still read back and compared, and any difference
    falls back to reading the whole range, so the link never hashes other bytes than a
    later reader gets.
    """
    if written is None or len(written) != last - first + 1:
        return cur.execute(_SELECT[table], (first, last)).fetchall()
    rows = [(row_id, *row) for row_id, row in zip(range(first, last + 1), written, strict=True)]
    probe = cur.execute(_SELECT[table], (first, first)).fetchall() \
        + cur.execute(_SELECT[table], (last, last)).fetchall()
    if encode(probe) != encode([rows[0], rows[-1]]):
        return cur.execute(_SELECT[table], (first, last)).fetchall()
    return rows


def append(conn: sqlite3.Connection, *, session_id: int | None, kind: str,
           ranges: Sequence[tuple[str, int, int]] = (), snapshot: str | None = None,
           written: dict[str, list[tuple]] | None = None) -> Head:
    """Append a link for rows written in the current transaction; return the new head.

    Call inside the write transaction, after the writes: SQLite then holds the write lock,
    so the head cannot move between reading it and appending to it. `written` maps a
    table to the rows just inserted into it (see `_rows`).
    """
    cur = _cursor(conn)
    prev_id, prev = head(conn)
    lists: list[list[tuple]] = []
    for table, first, last in ranges:
        lists.append(_rows(cur, table, first, last, (written or {}).get(table)))
    link_id = prev_id + 1
    now = time.time()
    text = ",".join(f"{t} {a} {b}" for t, a, b in ranges)
    digest = link_hash(prev, link_id, session_id, kind, now, text, snapshot, tuple(lists))
    crcs = row_crcs([row for rows in lists for row in rows]).tobytes() if lists else None
    cur.execute("INSERT INTO chain (id, session_id, kind, committed_unix_s, ranges, snapshot,"
                " row_crcs, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (link_id, session_id, kind, now, text, snapshot, crcs, digest))
    signer = getattr(conn, "signer", None)
    if signer is not None and kind != "checkpoint":
        since = time.monotonic() - conn.last_checkpoint_s  # type: ignore[attr-defined]
        if kind != "batch" or since >= CHECKPOINT_INTERVAL_S:
            return checkpoint(conn, signer, link_id, digest)
    return Head(link_id, digest, _last_ids(cur))


def _last_ids(cur: sqlite3.Cursor) -> dict[str, int]:
    """Return each chained table's last id (tables a migration adds later count as empty)."""
    found = {}
    for table in CHAINED:
        try:
            found[table] = cur.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        except sqlite3.OperationalError:  # not there yet: an older schema, mid-upgrade
            found[table] = 0
    return found


def recomputes(conn: sqlite3.Connection, link_id: int) -> bool:
    """Return whether one link's stored hash recomputes from its rows and the link before it."""
    cur = _cursor(conn)
    row = cur.execute("SELECT session_id, kind, committed_unix_s, ranges, snapshot, hash"
                      " FROM chain WHERE id = ?", (link_id,)).fetchone()
    if row is None:
        return False
    session_id, kind, ts, ranges, snapshot, stored = row
    if link_id == 1:
        genesis = cur.execute("SELECT ranges FROM chain WHERE id = 0").fetchone()
        prev = genesis_hash(genesis[0] if genesis else "")
    else:
        before = cur.execute("SELECT hash FROM chain WHERE id = ?", (link_id - 1,)).fetchone()
        if before is None:
            return False
        prev = before[0]
    try:
        lists = [cur.execute(_SELECT[t], (a, b)).fetchall() for t, a, b in parse_ranges(ranges)]
    except (KeyError, ValueError):
        return False
    return link_hash(prev, link_id, session_id, kind, ts, ranges, snapshot,
                     tuple(lists)) == stored


def checkpoint_message(link_id: int, link_hash: str, disowns: Sequence[int] = ()) -> bytes:
    """Return what an installation key signs: a link and its hash (all before it, by the
    chain), and the checkpoints after the last good one that it found forged."""
    text = f"laserlog checkpoint 1\n{link_id}\n{link_hash}"
    if disowns:
        text += "\ndisowns " + ",".join(str(i) for i in disowns)
    return text.encode("ascii")


def checkpoint(conn: sqlite3.Connection, key: Ed25519PrivateKey, link_id: int,
               link_hash: str) -> Head:
    """Append a checkpoint after link `link_id`: the installation's signature of its hash.

    Before vouching for everything up to there, it judges the checkpoints since the newest
    one that holds (each one laserlog writes did the same, so they all hold or are named):
    a checkpoint forged at the tail is disowned here, in what this one signs, rather than
    silently covered.
    """
    disowns = _forged_since_last_good(conn)
    data: dict[str, Any] = {"link": link_id, "hash": link_hash, "key": signing.public_hex(key),
                            "signature": signing.sign(key, checkpoint_message(
                                link_id, link_hash, disowns))}
    if disowns:
        data["disowns"] = disowns
    head = append(conn, session_id=None, kind="checkpoint",
                  snapshot=json.dumps(data, sort_keys=True))
    if isinstance(conn, LogConnection):
        conn.last_checkpoint_s = time.monotonic()
    return head


def _forged_since_last_good(conn: sqlite3.Connection) -> list[int]:
    """Return the checkpoints, newest first back to the newest that holds, that do not hold."""
    cur, look = _cursor(conn), _cursor(conn)
    forged: list[int] = []
    # Read back from the tail lazily: the newest checkpoint normally holds, a few links back.
    for link_id, snapshot, session_id in cur.execute(
            "SELECT id, snapshot, session_id FROM chain WHERE kind = 'checkpoint'"
            " ORDER BY id DESC LIMIT 1000"):
        cp = read_checkpoint(int(link_id), snapshot)
        before = look.execute("SELECT hash FROM chain WHERE id = ?", (link_id - 1,)).fetchone()
        if (cp.valid and session_id is None and cp.signed_link == link_id - 1 and before
                and before[0] == cp.signed_hash):
            break
        forged.append(int(link_id))
    return sorted(forged)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint link as stored: which link it vouches for, with which key, whether the
    signature holds for the hash it names, and the checkpoints it found forged."""

    link_id: int
    signed_link: int
    signed_hash: str
    key: str
    valid: bool
    disowns: tuple[int, ...] = ()


def read_checkpoint(link_id: int, snapshot: str | None) -> Checkpoint:
    """Return a checkpoint link's content (valid False when it is unreadable or forged)."""
    try:
        data = json.loads(snapshot or "")
        signed_link, signed_hash, key = int(data["link"]), str(data["hash"]), str(data["key"])
        disowns = tuple(int(i) for i in data.get("disowns", ()))
        ok = signing.verifies(key, checkpoint_message(signed_link, signed_hash, disowns),
                              str(data["signature"]))
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError):
        return Checkpoint(link_id, -1, "", "", False)
    return Checkpoint(link_id, signed_link, signed_hash, key, ok, disowns)


def append_batch(conn: sqlite3.Connection, session_id: int | None,
                 counts: dict[str, int], written: dict[str, list[tuple]] | None = None) -> Head:
    """Append the link of a commit that just inserted `counts[table]` rows into each table."""
    ranges = []
    cur = _cursor(conn)
    for table, count in counts.items():
        if count:
            last = cur.execute(f"SELECT max(id) FROM {table}").fetchone()[0]
            ranges.append((table, last - count + 1, last))
    return append(conn, session_id=session_id, kind="batch", ranges=ranges, written=written)


def insert(conn: sqlite3.Connection, table: str, rows: list[tuple], columns: tuple[str, ...],
           *, session_id: int | None = None, kind: str = "rows") -> Head:
    """Insert rows into a chained table and append their link (inside a transaction)."""
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' * len(columns))})")
    conn.executemany(sql, rows)
    last = _cursor(conn).execute(f"SELECT max(id) FROM {table}").fetchone()[0]
    return append(conn, session_id=session_id, kind=kind,
                  ranges=[(table, last - len(rows) + 1, last)])


def snapshot_text(conn: sqlite3.Connection, session_id: int) -> str | None:
    """Return the JSON snapshot a seal holds: the session's row and its console's row."""
    cur = _cursor(conn)
    session = cur.execute(f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions WHERE id = ?",
                          (session_id,)).fetchone()
    if session is None:
        return None
    device = None
    if session[2] is not None:
        device = cur.execute(f"SELECT {', '.join(DEVICE_COLUMNS)} FROM devices WHERE id = ?",
                             (session[2],)).fetchone()
    return json.dumps({"session": dict(zip(SESSION_COLUMNS, session, strict=True)),
                       "device": dict(zip(DEVICE_COLUMNS, device, strict=True)) if device else None},
                      sort_keys=True)


#: A session's details, fixed once recorded: what its opening link holds against its row.
DETAIL_COLUMNS = ("id", "uuid", "device_id", "profile_id", "port", "operator_id", "client_ref",
                  "area", "skin_type", "eyewear_checked", "checklist_json", "started_utc",
                  "resumes_session_id")


def open_session(conn: sqlite3.Connection, session_id: int,
                 ranges: Sequence[tuple[str, int, int]] = ()) -> Head | None:
    """Append a session's opening link: its details as recorded (inside the transaction that
    inserts the row), so they are checked before the session is sealed; `ranges`: rows
    written with it (its kind)."""
    text = snapshot_text(conn, session_id)
    if text is None:
        return None
    return append(conn, session_id=session_id, kind="session", snapshot=text, ranges=ranges)


def session_details(snapshot: str | None) -> dict[str, Any]:
    """Return the fixed details from a session snapshot ({} when there is none)."""
    try:
        session = json.loads(snapshot or "null")["session"]
    except (ValueError, TypeError, KeyError):
        return {}
    return {k: session.get(k) for k in DETAIL_COLUMNS} if isinstance(session, dict) else {}


def seal(conn: sqlite3.Connection, session_id: int) -> Head | None:
    """Append a seal of the session's row as it is now (inside the write transaction)."""
    text = snapshot_text(conn, session_id)
    if text is None:
        return None
    return append(conn, session_id=session_id, kind="seal", snapshot=text)


def reseal_if_sealed(conn: sqlite3.Connection, session_id: int) -> Head | None:
    """Seal again a session that was already sealed (its totals were just recounted)."""
    cur = _cursor(conn)
    sealed = cur.execute("SELECT 1 FROM chain WHERE session_id = ? AND kind = 'seal' LIMIT 1",
                         (session_id,)).fetchone()
    return seal(conn, session_id) if sealed else None


# -- the anchor file ------------------------------------------------------------------------
def anchor_path(db_path: str | Path) -> Path:
    """Return the anchor file of a database: beside it, named after it."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".anchor")


def read_anchor(path: str | Path) -> dict[str, Any] | None:
    """Return an anchor file's content, None when there is no such file.

    Raises ValueError when the file exists but is not an anchor, OSError when unreadable.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("link"), int) \
            or not isinstance(data.get("hash"), str):
        raise ValueError(f"{path} is not a laserlog anchor file")
    return data


def write_anchor(db_path: str | Path, head: Head | None) -> bool:
    """Record the chain head in the anchor file unless it already records a newer one.

    Also in the second anchor file set for the database (`set_second_anchor`), whose
    failure is never reported. Never raises: the commit it follows has happened, and a
    missing anchor update only shows as an anchor behind the database in `laserlog verify`.
    Returns False when the anchor beside the database could not be written.
    """
    if head is None:
        return True
    second = _SECOND_ANCHORS.get(os.path.abspath(db_path))
    if second is not None:
        _write_anchor_file(second, db_path, head)
    return _write_anchor_file(anchor_path(db_path), db_path, head)


def _write_anchor_file(path: Path, db_path: str | Path, head: Head) -> bool:
    try:
        lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        with contextlib.suppress(ValueError, OSError):
            current = read_anchor(path)
            if current is not None and current["link"] >= head.link_id:
                return True
        data = {"format": FORMAT, "database": Path(db_path).name, "link": head.link_id,
                "hash": head.hash, "last_ids": head.last_ids,
                "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        return True
    except (OSError, sqlite3.Error):
        return False
    finally:
        os.close(lock_fd)


#: Second anchor files by database (absolute path): a witness on another drive.
_SECOND_ANCHORS: dict[str, Path] = {}


def set_second_anchor(db_path: str | Path, path: str | Path | None) -> None:
    """Have `write_anchor` also write a database's head to `path` (None: no longer)."""
    key = os.path.abspath(db_path)
    if path is None:
        _SECOND_ANCHORS.pop(key, None)
    else:
        _SECOND_ANCHORS[key] = Path(path)


def anchor_problem(path: str | Path) -> str | None:
    """Return why an anchor file cannot be written at `path`; None when it can.

    Tried the way every update is made, under the anchor's lock: its lock file opened, a
    scratch file written beside it and removed, and nothing but a file in its place.
    """
    path = Path(path)
    if path.is_dir():
        return "it is a folder"
    try:
        lock_fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        tmp = path.with_name(path.name + ".tmp")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.unlink(tmp)
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(lock_fd)
    return None
