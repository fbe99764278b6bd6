"""Photos by reference, through the real command line: the file stays in the site's photo
folder, the database keeps its path, SHA-256, view, kind, course, session and consent.

Sessions are recorded from the simulator on a real pty into a real SQLite file.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_courses import cli, rows
from test_documents import PASSPHRASE, one_message, witness_env

from laserlog.recording.contract import Contract, CourseRequest
from laserlog.recording.photos import KINDS, VIEWS
from laserlog.storage.verify import verify_database

from conftest import START, copy_with_anchor, wait_until

SITE = 'photos = "photos"\n[documents]\nconsent = "consent.md"\n'
FRONT = b"\xff\xd8\xff\xe0 a front view " * 40


def counts(db: Path) -> tuple[int, ...]:
    return tuple(rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in ("photos", "chain"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site with a photo folder; course 1 (C-1042, left cheek, consent witnessed by
    lso-01) holding session 1; course 2 (C-2000, forehead, no consent) holding session 2."""
    from laserlog.config.profile import open_profile
    from laserlog.review.users import add_user
    from laserlog.sim.engine import Simulator
    from laserlog.storage.store import Store

    folder = tmp_path_factory.mktemp("photos")
    db = folder / "laserlog.db"
    (folder / "site.toml").write_text(SITE)
    (folder / "consent.md").write_text("# Consent\n\nI agree to photos of my cheek.\n")
    with Store(db) as store:
        add_user(store, "lso-01", "Dr Jane Roe", "officer", PASSPHRASE)
    with witness_env():
        for client, area, extra in (("C-1042", "left cheek", ["--witness", "lso-01"]),
                                    ("C-2000", "forehead", [])):
            status, _, err = cli("course", "new", "--client", client, "--area", area,
                                 "--indication", "pores", "--sessions", "4", "--interval",
                                 "21-42", *extra, "--db", str(db))
            assert status == 0, err
        with Simulator(open_profile("ps755-ref"), folder / "console", seed=5,
                       rate_hz=60.0) as sim:
            sim.console.firing = True
            for course, client, area in (("1", "C-1042", "left cheek"),
                                         ("2", "C-2000", "forehead")):
                start = [*START]
                start[1] = area
                status, _, err = cli("record", "--profile", "ps755-ref", "--port",
                                     str(sim.path), "--operator", "tech-07", "--client", client,
                                     *start, "--course", course, "--pulses", "5", "--db", str(db))
                assert status == 0, err
    return db


@pytest.fixture
def db(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the recorded database and its site, with an empty photo folder."""
    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "laserlog.db"
    copy_with_anchor(recorded, copy)
    (tmp_path / "site.toml").write_text(SITE)
    (tmp_path / "photos").mkdir()
    return copy


def add(db: Path, file: str | Path, *extra: str, course: str = "1") -> tuple[int, str, str]:
    return cli("photo", "add", str(file), "--course", course, "--view", "front", "--kind",
               "baseline", "--user", "tech-07", *extra, "--db", str(db))


def test_a_photo_is_kept_by_reference_and_verify_names_an_edited_and_a_missing_one(db):
    folder = db.parent / "photos"
    (folder / "C-1042").mkdir()
    front = folder / "C-1042" / "front.jpg"
    front.write_bytes(FRONT)
    side = folder / "side.jpg"
    side.write_bytes(b"a left side view")
    status, out, err = add(db, front, "--session", "1", "--area", " left   cheek ")
    assert status == 0, err
    consent = rows(db, "SELECT id, consent_sha256 FROM course_consents")[0]
    assert f"photo 1: baseline front of course 1 session 1, C-1042/front.jpg ({len(FRONT)} " \
           f"bytes, SHA-256 {hashlib.sha256(FRONT).hexdigest()[:12]}), consent " \
           f"{consent[1][:12]}" in out
    status, out, err = cli("photo", "add", "photos/side.jpg", "--course", "2", "--session", "2",
                           "--view", "left", "--kind", "follow-up", "--user", "Tech-07",
                           "--db", str(db))
    assert status == 0, err
    assert "no consent recorded for the course" in out
    assert rows(db, "SELECT id, course_id, session_id, view, kind, area, relative_path, sha256,"
                    " size_bytes, consent_id, consent_sha256, added_by FROM photos") == [
        (1, 1, 1, "front", "baseline", "left cheek", "C-1042/front.jpg",
         hashlib.sha256(FRONT).hexdigest(), len(FRONT), consent[0], consent[1], "tech-07"),
        (2, 2, 2, "left", "follow-up", None, "side.jpg",
         hashlib.sha256(b"a left side view").hexdigest(), 16, None, None, "tech-07")]
    assert verify_database(db).ok
    status, out, _ = cli("photo", "list", "--course", "2", "--db", str(db))
    assert status == 0 and "side.jpg" in out and "front.jpg" not in out
    status, out, _ = cli("course", "show", "1", "--db", str(db))
    assert status == 0 and "photos    1 by reference" in out and "C-1042/front.jpg" in out
    status, out, _ = cli("verify", "--photos", "--db", str(db))
    assert status == 0 and "photos: 2 of 2 recorded photo(s) present" in out, out

    front.write_bytes(FRONT[:-1] + b"!")  # retouched after it was added
    side.unlink()
    status, out, _ = cli("verify", "--photos", "--db", str(db))
    assert status == 1, out
    assert "photo: photo 1 (C-1042/front.jpg, course 1) changed since it was added" in out
    assert "note: photo missing: photo 2 (side.jpg, course 2)" in out
    assert "photo 2 (side.jpg, course 2) changed" not in out
    assert cli("verify", "--db", str(db))[0] == 0  # without --photos the files are not read


def test_a_second_photo_is_refused_before_the_first_full_session_until_the_baseline(db):
    site = db.parent / "site.toml"
    site.write_text(SITE + "[courses]\nbaseline_photos = 1\n")
    status, out, err = cli("course", "new", "--client", "C-3000", "--area", "left cheek",
                           "--indication", "pores", "--sessions", "2", "--interval", "21-42",
                           "--db", str(db))
    assert status == 0, err
    course = out.strip()
    values = {"client": "C-3000", "area": "left cheek", "skin": "III"}
    with sqlite3.connect(db) as conn:
        said = Contract.for_database(db).course_refusal(conn, CourseRequest(course), values,
                                                        "ps755-ref")
    assert said.startswith(f"this site requires 1 baseline photo(s) of course {course} "
                           "before its first session"), said
    status, _, err = cli("record", "--profile", "ps755-ref", "--port", "/nonexistent/port",
                         "--operator", "tech-07", "--client", "C-3000", *START, "--course",
                         course, "--db", str(db))
    one_message(status, err)
    assert f"--course: {said}" in err  # the form's words, refused before the console
    (db.parent / "photos" / "base.jpg").write_bytes(FRONT)
    status, _, err = add(db, "photos/base.jpg", course=course)
    assert status == 0, err
    with sqlite3.connect(db) as conn:
        assert Contract.for_database(db).course_refusal(conn, CourseRequest(course), values,
                                                        "ps755-ref") == ""


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "pipe.jpg")
    return folder / "pipe.jpg"


def _escaping_link(folder: Path) -> Path:
    (folder.parent / "elsewhere.jpg").write_bytes(FRONT)
    (folder / "link.jpg").symlink_to(folder.parent / "elsewhere.jpg")
    return folder / "link.jpg"


def _outside(folder: Path) -> Path:
    (folder.parent / "outside.jpg").write_bytes(FRONT)
    return folder.parent / "outside.jpg"


def _not_utf8(folder: Path) -> Path:
    name = os.fsdecode(b"caf\xe9.jpg")
    (folder / name).write_bytes(FRONT)
    return folder / name


def _empty(folder: Path) -> Path:
    (folder / "empty.jpg").write_bytes(b"")
    return folder / "empty.jpg"


def _folder(folder: Path) -> Path:
    (folder / "album").mkdir()
    return folder / "album"


def _named(name: str):  # type: ignore[no-untyped-def]
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(FRONT + name.encode())
        return folder / name
    return make


HOSTILE = {
    "line feed": (_named("front\n.jpg"), "front\\n.jpg: its name holds the invisible "
                  "character U+000A"),
    "C1 escape": (_named("front\x9b31m.jpg"), "front\\x9b31m.jpg: its name holds the "
                  "invisible character U+009B"),
    "direction override": (_named("front\u202egpj.exe"), "front\\u202egpj.exe: its name "
                           "holds the invisible character U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    "missing": (lambda f: f / "nowhere.jpg", "nowhere.jpg: no such file"),
    "folder": (_folder, "album: a folder is not a photo"),
    "fifo": (_fifo, "pipe.jpg: a FIFO is not a photo"),
    "escaping link": (_escaping_link, "is outside the photo folder"),
    "outside": (_outside, "outside.jpg is outside the photo folder"),
    "not UTF-8": (_not_utf8, "caf\\xe9.jpg: its name is not UTF-8 text"),
    "empty": (_empty, "empty.jpg: an empty file (0 bytes) is not a photo"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_file_that_is_not_a_photo_of_the_folder_is_refused_naming_it(db, case):
    make, expected = HOSTILE[case]
    folder = db.parent / "photos"
    path = make(folder)
    before = counts(db)
    result: list[tuple[int, str, str]] = []
    worker = threading.Thread(target=lambda: result.append(add(db, path)), daemon=True)
    worker.start()
    wait_until(lambda: result, timeout_s=10.0)  # a FIFO must not block the command
    status, _, err = result[0]
    one_message(status, err)
    assert expected in err and "nothing was written" in err, err
    if case in ("escaping link", "outside"):
        assert str(folder.resolve()) in err  # both named: the file and the folder
    if case == "escaping link":
        assert f"(it leads to {folder.parent.resolve() / 'elsewhere.jpg'})" in err
    assert counts(db) == before


def test_an_area_with_a_terminal_escape_is_refused_before_anything_is_written(db):
    (db.parent / "photos" / "a.jpg").write_bytes(FRONT)
    before = counts(db)
    status, _, err = add(db, db.parent / "photos" / "a.jpg", "--area", "\x1b[31mcheek")
    one_message(status, err)
    assert "--area" in err and "control character U+001B" in err and "\x1b" not in err, err
    assert counts(db) == before


def test_an_unreadable_photo_is_refused_naming_why(db, monkeypatch):
    photo = db.parent / "photos" / "locked.jpg"
    photo.write_bytes(FRONT)
    photo.chmod(0)
    if os.geteuid() == 0:  # root reads any file: refuse the open as the kernel would
        real_open = os.open

        def refusing(path, flags, *a, **kw):  # type: ignore[no-untyped-def]
            if Path(path) == photo:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, flags, *a, **kw)

        monkeypatch.setattr(os, "open", refusing)
    before = counts(db)
    status, _, err = add(db, photo)
    one_message(status, err)
    assert "locked.jpg: cannot be read (Permission denied)" in err
    assert counts(db) == before


def test_the_same_file_twice_unknown_courses_and_other_courses_sessions_are_refused(db):
    folder = db.parent / "photos"
    (folder / "a.jpg").write_bytes(FRONT)
    (folder / "copy.jpg").write_bytes(FRONT)
    assert add(db, folder / "a.jpg", "--session", "1")[0] == 0
    before = counts(db)
    for path, said in (("a.jpg", "already records these bytes as a.jpg"),
                       ("copy.jpg", "already records these bytes as a.jpg")):
        status, _, err = add(db, folder / path)
        one_message(status, err)
        assert "photo 1 (course 1, baseline front, added " in err and said in err, err
    (folder / "a.jpg").write_bytes(FRONT + b"retouched")  # the same path, other bytes
    status, _, err = add(db, folder / "a.jpg")
    one_message(status, err)
    assert "already records this path, with other bytes as a.jpg" in err
    (folder / "b.jpg").write_bytes(b"another view")
    status, _, err = add(db, folder / "b.jpg", "--session", "2")
    one_message(status, err)
    assert "--session 2: not a session of course 1" in err and "(it is course 2)" in err
    status, _, err = add(db, folder / "b.jpg", "--session", "9")
    one_message(status, err)
    assert "session 9: no such session" in err
    assert counts(db) == before


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(course=st.one_of(st.integers(3, 10**20).map(str), st.text(max_size=8)),
       view=st.one_of(st.sampled_from(VIEWS), st.text(max_size=8)),
       kind=st.one_of(st.sampled_from(KINDS), st.text(max_size=10)))
def test_unknown_courses_views_and_kinds_are_one_message(db, course, view, kind):
    if view in VIEWS and kind in KINDS and course.strip().removeprefix("#") in ("1", "2"):
        return
    photo = db.parent / "photos" / "c.jpg"
    photo.write_bytes(FRONT)
    before = counts(db)
    status, _, err = cli("photo", "add", str(photo), "--course", course, "--view", view,
                         "--kind", kind, "--user", "tech-07", "--db", str(db))
    one_message(status, err)
    assert ("--view" in err or "--kind" in err or "course" in err or "--course" in err), err
    assert counts(db) == before


def test_verify_never_reads_a_photo_swapped_for_a_terabyte_or_a_link_out_of_the_folder(db):
    folder = db.parent / "photos"
    for name in ("grown.jpg", "linked.jpg"):
        (folder / name).write_bytes(FRONT + name.encode())
        assert add(db, folder / name)[0] == 0
    with open(folder / "grown.jpg", "r+b") as f:  # sparse: a terabyte of zeros after it
        f.truncate(2**40)
    (db.parent / "elsewhere.jpg").write_bytes(FRONT + b"linked.jpg")  # the same bytes
    (folder / "linked.jpg").unlink()
    (folder / "linked.jpg").symlink_to(db.parent / "elsewhere.jpg")
    result: list[tuple[int, str, str]] = []
    worker = threading.Thread(target=lambda: result.append(cli("verify", "--photos", "--db",
                                                               str(db))), daemon=True)
    worker.start()
    wait_until(lambda: result, timeout_s=10.0)  # a whole read of a terabyte takes minutes
    status, out, _ = result[0]
    assert status == 1, out
    assert f"photo 1 (grown.jpg, course 1) changed since it was added: {2**40} bytes " \
           f"(recorded {len(FRONT) + 9} bytes" in out, out
    assert f"photo 2 linked.jpg: now leads to {(db.parent / 'elsewhere.jpg').resolve()}, " \
           "outside the photo folder" in out, out


def test_a_photo_written_while_it_is_hashed_is_refused(db, monkeypatch):
    import hashlib as real
    from types import SimpleNamespace

    from laserlog.config import photos as photo_files

    photo = db.parent / "photos" / "copying.jpg"
    photo.write_bytes(FRONT)

    class Growing:
        """A digest whose first chunk finds the camera's copy still being written."""

        def __init__(self) -> None:
            self.digest = real.sha256()

        def update(self, chunk: bytes) -> None:
            if photo.stat().st_size == len(FRONT):
                with open(photo, "ab") as f:
                    f.write(b"more of the image")
            self.digest.update(chunk)

        def hexdigest(self) -> str:
            return self.digest.hexdigest()

    monkeypatch.setattr(photo_files, "hashlib", SimpleNamespace(sha256=Growing))
    before = counts(db)
    status, _, err = add(db, photo)
    one_message(status, err)
    assert f"copying.jpg: changed while it was read ({len(FRONT)} bytes when opened, " \
           f"{len(FRONT) + 17} after); expected a file no program is writing" in err, err
    assert counts(db) == before


def test_verify_lists_at_most_fifty_missing_photos(db):
    folder = db.parent / "photos"
    for n in range(53):
        (folder / f"p{n}.jpg").write_bytes(b"photo %d" % n)
    from laserlog.config.photos import read_photo
    from laserlog.recording import courses, photos
    from laserlog.storage.store import Store

    with Store(db) as store:
        course = courses.find(store.conn, 1)
        assert course is not None
        for n in range(53):
            photos.record(store, course, None, read_photo(str(folder / f"p{n}.jpg"),
                                                          folder.resolve()),
                          view="front", kind="after", area=None, added_by="tech-07")
    for n in range(53):
        (folder / f"p{n}.jpg").unlink()  # the folder was archived elsewhere
    status, out, _ = cli("verify", "--photos", "--db", str(db))
    assert status == 0, out
    assert out.count("note: photo missing: photo ") == 50 and "p49.jpg" in out, out
    assert "p50.jpg" not in out and "note: photo missing: ... 3 more" in out
    assert "photos: 0 of 53 recorded photo(s) present" in out


def test_a_huge_photo_is_hashed_in_chunks_never_read_whole(db):
    huge = db.parent / "photos" / "huge.tif"
    size = 64 * 2**20
    with open(huge, "wb") as f:  # sparse: 64 MiB of zeros on disk in no time
        f.truncate(size)
    (db.parent / "photos" / "small.jpg").write_bytes(FRONT)
    tracemalloc.start()
    try:
        assert add(db, db.parent / "photos" / "small.jpg", course="2")[0] == 0
        _, small_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        status, out, err = add(db, huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 0, err
    assert peak - small_peak < 4 * 2**20, (peak, small_peak)  # a whole read holds 64 MiB
    digest = hashlib.sha256()
    zeros = bytes(2**20)
    for _ in range(64):
        digest.update(zeros)
    assert rows(db, "SELECT sha256, size_bytes FROM photos WHERE id = 2") == [
        (digest.hexdigest(), size)]


def test_a_database_locked_by_another_writer_is_one_message_and_nothing_written(
        db, monkeypatch):
    from laserlog.storage import store as store_module

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.3)
    (db.parent / "photos" / "a.jpg").write_bytes(FRONT)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        status, _, err = add(db, db.parent / "photos" / "a.jpg")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    one_message(status, err)
    assert f"database {db} is locked by another program" in err
    assert rows(db, "SELECT count(*) FROM photos") == [(0,)]


def test_a_schema_7_database_migrates_and_takes_photos(tmp_path, monkeypatch):
    from laserlog.recording import courses
    from laserlog.storage import schema, store
    from laserlog.storage.store import Store

    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    db = tmp_path / "laserlog.db"
    with monkeypatch.context() as old:
        old.setattr(store, "MIGRATIONS", schema.MIGRATIONS[:7])
        old.setattr(store, "SCHEMA_VERSION", 7)
        with Store(db) as seven:
            courses.create(seven, client="C-1042", area="left cheek", indication="pores",
                           sessions=2, window=courses.Window(21, 42), profile_id=None, note=None)
    assert rows(db, "PRAGMA user_version") == [(7,)]
    (tmp_path / "site.toml").write_text('photos = "."\n')
    (tmp_path / "front.jpg").write_bytes(FRONT)
    status, _, err = add(db, tmp_path / "front.jpg")
    assert status == 0, err
    assert rows(db, "PRAGMA user_version") == [(schema.SCHEMA_VERSION,)]
    assert rows(db, "SELECT relative_path FROM photos") == [("front.jpg",)]
    report = verify_database(db)
    assert report.ok, [f.message for f in report.findings]


def test_verify_photos_against_a_central_server_says_where_to_run_it():
    status, _, err = cli("verify", "--photos", "--db", "postgresql://127.0.0.1:1/laserlog")
    one_message(status, err)
    assert "--photos checks the photo files where they are kept" in err
