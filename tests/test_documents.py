"""Consent and aftercare as versioned documents, through the real command line.

Sessions are recorded from the simulator on a real pty into a real SQLite file; the aftercare
page is printed by the real headless Chromium and read back with pypdf and pypdfium2.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pypdf
import pypdfium2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_courses import cli, rows

from laserlog.storage.verify import verify_database

from conftest import START, copy_with_anchor

PASSPHRASE = "witness passphrase 7"
CONSENT = "# Consent\n\nI agree to a course of picosecond treatment of my left cheek.\n"
AFTERCARE = ("# Aftercare\n\n- Avoid direct sun for **two weeks**.\n- Apply SPF 50 every "
             "morning.\n\n<script>alert('x')</script>\n")
DOC_TABLES = ("documents", "course_consents", "session_aftercare", "courses", "chain")


def counts(db: Path) -> tuple[int, ...]:
    return tuple(rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in DOC_TABLES)


def one_message(status: int, err: str) -> None:
    assert status == 2, err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err


@contextlib.contextmanager
def witness_env() -> Iterator[None]:
    """Run a module fixture's commands with the site file beside the database (not
    $LASERLOG_SITE) and the witness's passphrase, restoring both afterwards."""
    previous = os.environ.pop("LASERLOG_SITE", None)
    os.environ["LASERLOG_PASSPHRASE"] = PASSPHRASE
    try:
        yield
    finally:
        del os.environ["LASERLOG_PASSPHRASE"]
        if previous is not None:
            os.environ["LASERLOG_SITE"] = previous


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site with consent and aftercare files, a witness (lso-01), a course with consent,
    and one course session recorded with the site's aftercare."""
    from laserlog.config.profile import open_profile
    from laserlog.review.users import add_user
    from laserlog.sim.engine import Simulator
    from laserlog.storage.store import Store

    folder = tmp_path_factory.mktemp("documents")
    db = folder / "laserlog.db"
    (folder / "site.toml").write_text('[clinic]\nname = "Rue Lepic Skin Clinic"\n'
                                      '[documents]\nconsent = "consent.md"\n'
                                      'aftercare = "texts/aftercare.md"\n')
    (folder / "consent.md").write_text(CONSENT)
    (folder / "texts").mkdir()
    (folder / "texts" / "aftercare.md").write_text(AFTERCARE)
    with Store(db) as store:
        add_user(store, "lso-01", "Dr Jane Roe", "officer", PASSPHRASE)
    with witness_env():
        status, out, err = cli("course", "new", "--client", "C-1042", "--area", "left cheek",
                               "--indication", "pores", "--sessions", "4", "--interval", "21-42",
                               "--witness", "lso-01", "--db", str(db))
        assert status == 0 and out.strip() == "1", err
        with Simulator(open_profile("ps755-ref"), folder / "console", seed=5,
                       rate_hz=50.0) as sim:
            sim.console.firing = True
            status, _, err = cli("record", "--profile", "ps755-ref", "--port", str(sim.path),
                                 "--operator", "tech-07", "--client", "C-1042", *START,
                                 "--course", "1", "--pulses", "15", "--db", str(db))
            assert status == 0, err
            assert "aftercare given: " in err
    return db


@pytest.fixture
def db(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the recorded database, its anchor and the site's texts."""
    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    monkeypatch.setenv("LASERLOG_PASSPHRASE", PASSPHRASE)
    copy = tmp_path / "laserlog.db"
    copy_with_anchor(recorded, copy)
    for name in ("site.toml", "consent.md"):
        (tmp_path / name).write_text((recorded.parent / name).read_text())
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "aftercare.md").write_text(AFTERCARE)
    return copy


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_course_consent_and_session_aftercare_keep_their_versions_and_texts(db, tmp_path):
    assert rows(db, "SELECT course_id, client_ref, consent_sha256, witness_user_id,"
                    " witness_role FROM course_consents") == [
        (1, "C-1042", sha(CONSENT), "lso-01", "officer")]
    assert rows(db, "SELECT session_id, aftercare_sha256, how FROM session_aftercare") == [
        (1, sha(AFTERCARE), "end")]
    assert rows(db, "SELECT kind, sha256, file_name, size_bytes, text FROM documents"
                    " ORDER BY id") == [
        ("consent", sha(CONSENT), "consent.md", len(CONSENT.encode()), CONSENT),
        ("aftercare", sha(AFTERCARE), "aftercare.md", len(AFTERCARE.encode()), AFTERCARE)]
    # The site edits its text: a later consent is a new version; the first stays as agreed.
    edited = CONSENT + "\nI understand pigment changes may occur.\n"
    (tmp_path / "consent.md").write_text(edited)
    status, out, err = cli("course", "consent", "1", "--witness", "lso-01", "--db", str(db))
    assert status == 0, err
    assert f"course 1: consent {sha(edited)[:12]} (consent.md) agreed, witnessed by lso-01" in out
    status, _, err = cli("course", "consent", "1", "--witness", "lso-01", "--db", str(db))
    assert status == 0, err  # the same version again: its text is not kept twice
    assert rows(db, "SELECT consent_sha256 FROM course_consents ORDER BY id") == [
        (sha(CONSENT),), (sha(edited),), (sha(edited),)]
    assert rows(db, "SELECT text FROM documents WHERE kind = 'consent' ORDER BY id") == [
        (CONSENT,), (edited,)]
    other = tmp_path / "aftercare-v2.md"
    other.write_text("# Aftercare v2\n\nCool compresses.\n")
    status, out, err = cli("aftercare", "1", "--file", str(other), "--db", str(db))
    assert status == 0, err
    assert rows(db, "SELECT how FROM session_aftercare ORDER BY id") == [("end",), ("later",)]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), \
            contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE documents SET text = 'nothing agreed'")
    report = verify_database(db)
    assert report.ok, report


def test_a_document_edited_behind_laserlogs_back_fails_verify(db):
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER documents_no_update")
        conn.execute("UPDATE documents SET text = 'nothing agreed' WHERE kind = 'consent'")
        conn.commit()
    assert not verify_database(db).ok


def _bad_file(tmp_path: Path, kind: str) -> tuple[Path, str]:
    path = tmp_path / f"bad-{kind}"
    if kind == "folder":
        path.mkdir()
        return path, "a folder is not a Markdown file"
    if kind == "fifo":
        os.mkfifo(path)
        return path, "a FIFO is not a Markdown file"
    if kind == "latin1":
        path.write_bytes("Consentement éclairé\n".encode("latin-1"))
        return path, "not UTF-8 text (byte 13)"
    if kind == "binary":
        path.write_bytes(b"%PDF-1.7\n\x00\x01binary")
        return path, "control character U+0000 on line 2"
    if kind == "big":
        path.write_text("# x\n" + "a" * 2**20)
        return path, "larger than 1048576 bytes"
    if kind == "empty":
        path.write_text("\n \n")
        return path, "empty"
    return path, "no such file"


@pytest.mark.parametrize("kind", ["folder", "fifo", "latin1", "binary", "big", "empty",
                                  "missing"])
def test_a_consent_file_that_is_not_utf8_markdown_is_refused_and_nothing_written(
        db, tmp_path, kind):
    path, why = _bad_file(tmp_path, kind)
    before = counts(db)
    status, _, err = cli("course", "new", "--client", "C-2000", "--area", "chin",
                         "--indication", "pores", "--sessions", "3", "--interval", "21-42",
                         "--consent", str(path), "--witness", "lso-01", "--db", str(db))
    one_message(status, err)
    assert f"--consent {path}: {why}" in err
    status, _, err = cli("aftercare", "1", "--file", str(path), "--db", str(db))
    one_message(status, err)
    assert f"--file {path}: {why}" in err
    assert counts(db) == before


def test_the_sites_aftercare_that_is_broken_stops_the_start_naming_the_key(db, tmp_path,
                                                                           simulate):
    (tmp_path / "texts" / "aftercare.md").write_bytes(b"\xff\xfe")
    sim = simulate("ps755-ref", seed=2, rate_hz=50.0)
    sim.console.firing = True
    before = counts(db), rows(db, "SELECT count(*) FROM sessions")
    status, _, err = cli("record", "--profile", "ps755-ref", "--port", str(sim.path),
                         "--operator", "tech-07", "--client", "C-1042", *START,
                         "--pulses", "5", "--db", str(db))
    one_message(status, err)
    assert "[documents] aftercare" in err and "not UTF-8 text (byte 0)" in err
    assert (counts(db), rows(db, "SELECT count(*) FROM sessions")) == before


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(course=st.sampled_from(["1", "2", "0", "x"]),
       user=st.sampled_from(["lso-01", "lso-99", "tech-07"]),
       passphrase=st.sampled_from([PASSPHRASE, "wrong passphrase"]))
def test_consent_takes_only_a_known_course_and_a_witness_whose_passphrase_opens_their_key(
        db, monkeypatch, course, user, passphrase):
    monkeypatch.setenv("LASERLOG_PASSPHRASE", passphrase)
    before = counts(db)
    status, out, err = cli("course", "consent", course, "--witness", user, "--db", str(db))
    if course == "1" and user == "lso-01" and passphrase == PASSPHRASE:
        assert status == 0, err
        assert counts(db)[1] == before[1] + 1
        return
    one_message(status, err)
    if course == "x":
        assert "'x' is not a course ID; expected a number" in err
    elif course != "1":
        assert f"course {course!r}: no such course in {db}" in err
    elif user != "lso-01":
        assert f"--witness {user}: unknown user {user!r}" in err
    else:
        assert "--witness lso-01: wrong passphrase for user lso-01; nothing was written" in err
    assert counts(db) == before


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session=st.integers(-1, 4))
def test_aftercare_takes_only_a_recorded_session(db, session):
    before = counts(db)
    status, _, err = cli("aftercare", str(session), "--db", str(db))
    if session == 1:
        assert status == 0, err
        return
    one_message(status, err)
    assert (f"session {session}: no such session in {db}" in err if session > 0
            else f"'{session}' must be above 0" in err)
    assert counts(db) == before


def test_consent_without_a_witness_and_aftercare_without_one_recorded_are_refused(db, tmp_path):
    status, _, err = cli("course", "new", "--client", "C-2000", "--area", "chin",
                         "--indication", "pores", "--sessions", "3", "--interval", "21-42",
                         "--consent", str(tmp_path / "consent.md"), "--db", str(db))
    one_message(status, err)
    assert "--consent needs --witness USER" in err
    out = tmp_path / "none.pdf"
    status, _, err = cli("export", "--format", "html", "--aftercare", "--from", "2020-01-01",
                         "--out", str(out), "--db", str(db))
    one_message(status, err)
    assert "--aftercare prints one session's aftercare page" in err and not out.exists()


def test_a_new_course_and_its_consent_are_written_together_or_not_at_all(
        db, tmp_path, monkeypatch):
    from laserlog.errors import LaserlogError
    from laserlog.review import documents

    def broken(*_: object) -> bytes:
        raise LaserlogError("the consent could not be signed (simulated)")

    argv = ("course", "new", "--client", "C-2000", "--area", "chin", "--indication", "pores",
            "--sessions", "3", "--interval", "21-42", "--consent",
            str(tmp_path / "consent.md"), "--witness", "lso-01", "--db", str(db))
    before = counts(db)
    monkeypatch.setattr(documents, "_consent_message", broken)  # the consent's step fails
    status, _, err = cli(*argv)
    one_message(status, err)
    assert "could not be signed (simulated)" in err
    assert counts(db) == before  # no course without the consent it rests on
    monkeypatch.undo()
    monkeypatch.setenv("LASERLOG_PASSPHRASE", PASSPHRASE)
    status, out, err = cli(*argv)
    assert status == 0, err
    new_id = int(out.strip())
    assert rows(db, "SELECT course_id, client_ref FROM course_consents WHERE course_id = ?",
                new_id) == [(new_id, "C-2000")]
    assert verify_database(db).ok


def test_aftercare_page_is_one_pdf_page_with_the_text_and_the_sessions_numbers(db, tmp_path):
    out = tmp_path / "aftercare.pdf"
    status, stdout, err = cli("export", "--format", "pdf", "--aftercare", "--session", "1",
                              "--out", str(out), "--db", str(db))
    assert status == 0, err
    assert "exported the aftercare page of session 1" in stdout
    pages = pypdf.PdfReader(out).pages
    assert len(pages) == 1
    text = " ".join(pages[0].extract_text().split())
    ((pulses, energy, mean, high, area, day),) = rows(
        db, "SELECT count(*), sum(p.energy_j), avg(p.fluence_j_cm2), max(p.fluence_j_cm2),"
            " s.area, substr(s.started_utc, 1, 10) FROM pulses p JOIN sessions s"
            " ON s.id = p.session_id WHERE p.session_id = 1")
    assert "Rue Lepic Skin Clinic · Aftercare · session 1 · client C-1042" in text, text
    assert f"{pulses} {energy:.4f} {mean:.3f} {high:.3f}" in text, text
    assert area in text and day in text
    assert "Avoid direct sun for two weeks." in text and "Apply SPF 50 every morning." in text
    assert "<script>alert('x')</script>" in text  # shown as text, never markup
    assert f"Aftercareversion{sha(AFTERCARE)}" in text.replace(" ", "")
    assert "page 1 of 1" in text
    image = pypdfium2.PdfDocument(str(out))[0].render(scale=1).to_pil().convert("L")
    width, height = image.size
    grey = image.tobytes()
    inked = [y for y in range(height) if min(grey[y * width:(y + 1) * width]) < 128]
    assert inked and inked[0] < height * 0.1  # the running head at the top
    assert any(y > height * 0.9 for y in inked)  # the version and "page 1 of 1" at the foot
    body = [y for y in inked if height * 0.1 < y < height * 0.9]
    assert len(body) > 60  # the numbers table and the text, not a blank page
