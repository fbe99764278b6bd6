"""A course's photos, kept by reference: recorded, listed, counted, and checked against
their files.

A row names the file by its path in the site's photo folder (laserlog.config.photos) with
its SHA-256 and size, its view and kind, the course and the session (one of the course's)
it documents, who added it, and the consent row the course rested on then. Rows are
append-only and in the hash chain. A file is recorded once: the same bytes, or the same
path, a second time are refused, naming the earlier row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from laserlog.config.photos import PhotoError, PhotoFile, hash_file, shown
from laserlog.errors import LaserlogError
from laserlog.recording import courses
from laserlog.storage import chain
from laserlog.storage.store import Store

VIEWS = ("front", "left", "right", "other")
KINDS = ("baseline", "before", "after", "follow-up")
COLUMNS = ("course_id", "session_id", "view", "kind", "area", "relative_path", "sha256",
           "size_bytes", "consent_id", "consent_sha256", "added_by", "added_utc")


@dataclass(frozen=True, slots=True)
class Photo:
    """One recorded photo."""

    id: int
    course_id: int
    session_id: int | None
    view: str
    kind: str
    area: str | None
    relative_path: str
    sha256: str
    size_bytes: int
    consent_id: int | None
    consent_sha256: str | None
    added_by: str
    added_utc: str


def _photos(conn: sqlite3.Connection, where: str = "", params: tuple = ()) -> list[Photo]:
    cur = conn.execute(f"SELECT id, {', '.join(COLUMNS)} FROM photos {where} ORDER BY id",
                       params)
    return [Photo(*tuple(r)) for r in cur.fetchall()]


def listed(conn: sqlite3.Connection, course_id: int | None = None) -> list[Photo]:
    """Return every photo (one course's), in the order added."""
    if course_id is None:
        return _photos(conn)
    return _photos(conn, "WHERE course_id = ?", (course_id,))


def baseline_count(conn: sqlite3.Connection, course_id: int) -> int:
    """Return how many baseline photos a course has."""
    return int(conn.execute("SELECT count(*) FROM photos WHERE course_id = ? AND kind ="
                            " 'baseline'", (course_id,)).fetchone()[0])


def earlier(conn: sqlite3.Connection, photo: PhotoFile) -> str:
    """Return why this file was recorded already ("" when it was not): the same bytes or
    the same path, naming the earlier row."""
    for found in _photos(conn, "WHERE sha256 = ? OR relative_path = ?",
                         (photo.sha256, photo.relative_path)):
        same = "these bytes" if found.sha256 == photo.sha256 else "this path, with other bytes"
        return (f"photo {found.id} (course {found.course_id}, {found.kind} {found.view}, "
                f"added {found.added_utc[:10]} by {found.added_by}) already records "
                f"{same} as {found.relative_path}")
    return ""


def record(store: Store, course: courses.Course, session_id: int | None, photo: PhotoFile, *,
           view: str, kind: str, area: str | None, added_by: str) -> int:
    """Record a photo of a course (and session) with the consent the course rests on now;
    return its row id. The caller checked the session belongs to the course."""
    if view not in VIEWS or kind not in KINDS:
        raise ValueError(f"view {view!r} or kind {kind!r} unknown")
    conn = store.conn
    with conn:
        repeated = earlier(conn, photo)
        if repeated:
            raise LaserlogError(f"{repeated}; a file is recorded once; nothing was written")
        consent = conn.execute("SELECT id, consent_sha256 FROM course_consents"
                               " WHERE course_id = ? ORDER BY id DESC LIMIT 1",
                               (course.id,)).fetchone()
        values = (course.id, session_id, view, kind, area, photo.relative_path, photo.sha256,
                  photo.size_bytes, consent[0] if consent else None,
                  consent[1] if consent else None, added_by, courses.utc_text(courses.now()))
        head = chain.insert(conn, "photos", [values], COLUMNS, session_id=session_id,
                            kind="photo")
        new_id = int(conn.execute("SELECT max(id) FROM photos").fetchone()[0])
    chain.write_anchor(store.path, head)
    return new_id


@dataclass(frozen=True, slots=True)
class PhotoCheck:
    """What a recorded photo's file says now: 'ok', 'changed', 'missing' or 'unreadable'."""

    photo: Photo
    state: str
    detail: str = ""


def check(conn: sqlite3.Connection, folder: Path) -> list[PhotoCheck]:
    """Return each recorded photo's state against its file in the (resolved) photo folder.

    A file of another size than recorded is not read (it changed); a path that now leads
    out of the folder (a link put in its place) is not read either.
    """
    out = []
    for photo in listed(conn):
        path = folder / photo.relative_path
        what = f"photo {photo.id} {shown(photo.relative_path)}"
        if not path.exists() and not path.is_symlink():
            out.append(PhotoCheck(photo, "missing"))
            continue
        real = path.resolve()
        if not real.is_relative_to(folder):
            out.append(PhotoCheck(photo, "unreadable", f"{what}: now leads to {shown(real)}, "
                                  f"outside the photo folder {shown(folder)}; expected the "
                                  "file recorded inside it"))
            continue
        try:
            sha256, size = hash_file(path, what, photo.size_bytes)
        except PhotoError as exc:
            out.append(PhotoCheck(photo, "unreadable", str(exc)))
            continue
        if sha256 == photo.sha256 and size == photo.size_bytes:
            out.append(PhotoCheck(photo, "ok"))
        else:
            now = f", SHA-256 {sha256[:12]}" if sha256 else ""
            out.append(PhotoCheck(photo, "changed", f"{size} bytes{now} (recorded "
                                  f"{photo.size_bytes} bytes, {photo.sha256[:12]})"))
    return out
