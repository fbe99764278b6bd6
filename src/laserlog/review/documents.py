"""Consent and aftercare as versioned documents: what a course's client agreed, what a
session's client was given.

A document's text is kept once per version (its SHA-256) in `documents`, so a later edit of
the site's file never changes what was agreed or given. A consent row names the course, the
client, the version, and the registered user who witnessed it, who signs the row with their
key (review.users: their passphrase opens it). An aftercare row names the session and the
version, given at its end or later. Every row is append-only and in the hash chain.

The clock is `laserlog.recording.courses.now`, the one the course rules read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from laserlog.config.documents import Document
from laserlog.config.files import stored_name
from laserlog.errors import LaserlogError
from laserlog.recording import courses
from laserlog.storage import chain, signing
from laserlog.storage.store import Store

DOCUMENT_COLUMNS = ("kind", "sha256", "file_name", "size_bytes", "text", "first_recorded_utc")
CONSENT_COLUMNS = ("course_id", "client_ref", "consent_sha256", "witness_user_id",
                   "witness_role", "agreed_utc", "signature")
AFTERCARE_COLUMNS = ("session_id", "aftercare_sha256", "how", "given_utc")
_SIGNED = "laserlog consent 1\n"


@dataclass(frozen=True, slots=True)
class Given:
    """A document version as recorded against a course or a session."""

    kind: str
    sha256: str
    file_name: str
    text: str
    at_utc: str
    by: str | None = None

    @property
    def version(self) -> str:
        return self.sha256[:12]


def _document_rows(conn: sqlite3.Connection, document: Document) -> list[tuple]:
    """Return the documents row to add for this version; none when it is kept already."""
    known = conn.execute("SELECT 1 FROM documents WHERE kind = ? AND sha256 = ?",
                         (document.kind, document.sha256)).fetchone()
    if known is not None:
        return []
    return [(document.kind, document.sha256, stored_name(document.path), document.size_bytes,
             document.text, courses.utc_text(courses.now()))]


def _write(store: Store, document: Document, table: str, values: tuple,
           columns: tuple[str, ...], session_id: int | None) -> int:
    """Keep the document's version (once) and add the row naming it, in one transaction
    and one chain link; return the row's id."""
    conn = store.conn
    with conn:
        new_id, ranges = _add(conn, document, table, values, columns)
        head = chain.append(conn, session_id=session_id, kind="document", ranges=ranges)
    chain.write_anchor(store.path, head)
    return new_id


def _add(conn: sqlite3.Connection, document: Document, table: str, values: tuple,
         columns: tuple[str, ...]) -> tuple[int, list[tuple[str, int, int]]]:
    """Insert the document's version (once) and the row naming it inside the caller's
    transaction; return the row's id and the ranges its chain link covers."""
    ranges = []
    for row in _document_rows(conn, document):
        conn.execute(f"INSERT INTO documents ({', '.join(DOCUMENT_COLUMNS)})"
                     f" VALUES ({', '.join('?' * len(DOCUMENT_COLUMNS))})", row)
        kept = int(conn.execute("SELECT max(id) FROM documents").fetchone()[0])
        ranges.append(("documents", kept, kept))
    conn.execute(f"INSERT INTO {table} ({', '.join(columns)})"
                 f" VALUES ({', '.join('?' * len(columns))})", values)
    new_id = int(conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0])
    ranges.append((table, new_id, new_id))
    return new_id, ranges


def _consent_message(values: dict[str, Any]) -> bytes:
    body = {k: v for k, v in values.items() if k not in ("id", "signature")}
    return (_SIGNED + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=True)).encode("ascii")


def record_consent(store: Store, course: courses.Course, document: Document,
                   witness: Any) -> int:
    """Record that the course's client agreed this consent version before `witness` (an
    unlocked review.users.Signer), who signs the row; return its id."""
    values = _consent_row(course.id, course.client_ref, document, witness)
    return _write(store, document, "course_consents", values, CONSENT_COLUMNS, None)


def consent_writer(document: Document, witness: Any
                   ) -> Callable[[sqlite3.Connection, int, str], list[tuple[str, int, int]]]:
    """Return what adds a new course's consent inside the transaction that creates the
    course (`courses.create(..., also=...)`), so a failure leaves neither written."""
    def add(conn: sqlite3.Connection, course_id: int, client_ref: str
            ) -> list[tuple[str, int, int]]:
        values = _consent_row(course_id, client_ref, document, witness)
        return _add(conn, document, "course_consents", values, CONSENT_COLUMNS)[1]
    return add


def _consent_row(course_id: int, client_ref: str, document: Document, witness: Any) -> tuple:
    """Return a consent row, signed by its witness."""
    if document.kind != "consent":
        raise LaserlogError(f"{document.path} is read as {document.kind}, not consent")
    values: dict[str, Any] = {
        "course_id": course_id, "client_ref": client_ref,
        "consent_sha256": document.sha256, "witness_user_id": witness.user.user_id,
        "witness_role": witness.user.role, "agreed_utc": courses.utc_text(courses.now())}
    values["signature"] = signing.sign(witness.key, _consent_message(values))
    return tuple(values[c] for c in CONSENT_COLUMNS)


def unlock_witness(store: Store, user_id: str, passphrase: str, what: str) -> Any:
    """Return the consent's witness (a review.users.Signer) when their passphrase opens
    their key, or raise LaserlogError naming them as `what` (`--witness`, the form's field)."""
    from laserlog.domain.ids import normal_id
    from laserlog.review.users import AuthError, unlock

    who = normal_id(user_id, what)
    try:
        return unlock(store, who, passphrase)
    except AuthError as exc:
        said = str(exc)
        raise LaserlogError(f"{what} {who}: {said}" + (
            "" if "nothing was written" in said else "; nothing was written")) from None


def record_aftercare(store: Store, session_id: int, document: Document, how: str) -> int:
    """Record that a session's client was given this aftercare version (`how`: 'end' at
    the session's end, 'later'); return the row's id."""
    if document.kind != "aftercare":
        raise LaserlogError(f"{document.path} is read as {document.kind}, not aftercare")
    values = (session_id, document.sha256, how, courses.utc_text(courses.now()))
    return _write(store, document, "session_aftercare", values, AFTERCARE_COLUMNS, session_id)


def consents(conn: sqlite3.Connection, course_id: int) -> list[dict[str, Any]]:
    """Return a course's consents in the order agreed, each with its text and whether the
    witness's signature holds for the row (their key as the users' registry knows it)."""
    from laserlog.review.users import registry

    cur = conn.execute(
        f"SELECT c.id, {', '.join('c.' + k for k in CONSENT_COLUMNS)}, d.file_name, d.text"
        " FROM course_consents c LEFT JOIN documents d ON d.kind = 'consent'"
        " AND d.sha256 = c.consent_sha256 WHERE c.course_id = ? ORDER BY c.id", (course_id,))
    names = [d[0] for d in cur.description]
    found = [dict(zip(names, tuple(r), strict=True)) for r in cur.fetchall()]
    users = registry(conn) if found else None
    for row in found:
        user = users.find(str(row["witness_user_id"])) if users is not None else None
        signed = {k: row[k] for k in CONSENT_COLUMNS}
        row["signature_holds"] = bool(user is not None and signing.verifies(
            user.public_key, _consent_message(signed), row["signature"]))
    return found


def latest_aftercare(conn: sqlite3.Connection, session_id: int) -> Given | None:
    """Return the aftercare version a session's client was last given; None when none was."""
    row = conn.execute(
        "SELECT a.aftercare_sha256, d.file_name, d.text, a.given_utc FROM session_aftercare a"
        " JOIN documents d ON d.kind = 'aftercare' AND d.sha256 = a.aftercare_sha256"
        " WHERE a.session_id = ? ORDER BY a.id DESC LIMIT 1", (session_id,)).fetchone()
    if row is None:
        return None
    return Given("aftercare", str(row[0]), str(row[1]), str(row[2]), str(row[3]))
