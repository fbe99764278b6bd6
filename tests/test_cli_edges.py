"""The command line's edge: odd numbers, dates, paths and umasks get one message and exit 2.

Each case runs through the real entry point, `main(argv)`, in process; nothing may print a
traceback, hang, overwrite what exists, or create a file others can read.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laserlog.cli.main import main
from laserlog.storage.store import Store

from conftest import START

ID_COMMANDS = [
    ["sessions", "show", "{n}"],
    ["sessions", "list", "--limit", "{n}"],
    ["signoff", "{n}", "--meaning", "reviewed", "--user", "lso-01"],
    ["correct", "{n}", "--field", "area", "--value", "x", "--reason", "r", "--user", "lso-01"],
    ["export", "--format", "csv", "--session", "{n}", "--out", "{tmp}/out.csv"],
    ["report", "energy", "--last", "{n}"],
]



@pytest.fixture
def db(tmp_path):
    path = tmp_path / "log.db"
    with Store(path) as store:
        store.create_session(device_id=None, profile_id="ps755-ref", port="x",
                             operator_id="tech-07", client_ref="C-1042", area=None,
                             skin_type=None, eyewear_checked=True, checklist_json=None)
    return path


def _run(argv, capsys):
    started = time.monotonic()
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse refuses with exit 2
        status = exc.code
    err = capsys.readouterr().err
    assert time.monotonic() - started < 2
    assert "Traceback" not in err
    return status, err


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(ID_COMMANDS),
       n=st.integers(min_value=2**63, max_value=2**200) | st.integers(max_value=0))
def test_ids_and_counts_beyond_64_bits_or_below_one_are_refused(db, tmp_path, capsys, command,
                                                                n):
    argv = [a.format(n=n, tmp=tmp_path) for a in command] + ["--db", str(db)]
    status, err = _run(argv, capsys)
    assert status == 2
    assert str(n) in err and ("too large" in err or "above 0" in err)


@pytest.mark.parametrize("to", ["9999-12-31", "0001-01-01T00:00Z", "9999-12-31T23:59:59Z"])
def test_dates_at_the_extremes_are_taken(db, capsys, to):
    status, err = _run(["report", "energy", "--from", "0001-01-01", "--to", to, "--db", str(db),
                        "--format", "json"], capsys)
    assert status == 0 or "backwards" in err


def test_export_never_overwrites_and_writes_only_regular_files(db, tmp_path, capsys):
    existing = tmp_path / "report.csv"
    existing.write_text("keep me")
    argv = ["export", "--format", "csv", "--session", "1", "--db", str(db), "--out"]
    status, err = _run([*argv, str(existing)], capsys)
    assert status == 2 and "exists" in err and existing.read_text() == "keep me"
    status, err = _run([*argv, str(tmp_path)], capsys)
    assert status == 2 and "not a regular file" in err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    status, err = _run([*argv, str(fifo), "--force"], capsys)
    assert status == 2 and stat.S_ISFIFO(fifo.stat().st_mode)
    status, _ = _run([*argv, str(existing), "--force"], capsys)
    assert status == 0 and existing.read_text() != "keep me"


def test_simulate_refuses_a_link_path_that_exists(tmp_path, capsys):
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    status, err = _run(["simulate", "ps755-ref", "--link", str(keep)], capsys)
    assert status == 2 and "already exists" in err and keep.read_text() == "mine"


@pytest.mark.parametrize("kind", ["empty", "folder", "fifo"])
def test_a_database_path_that_is_no_file_is_named_as_such(tmp_path, capsys, kind):
    target = {"empty": "", "folder": str(tmp_path), "fifo": str(tmp_path / "db")}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    status, err = _run(["sessions", "list", "--db", target], capsys)
    assert status == 2
    assert {"empty": "empty path", "folder": "is a folder", "fifo": "special file"}[kind] in err


def test_under_umask_000_everything_created_is_private(tmp_path):
    code = ("import os, sys; os.umask(0); from laserlog.cli.main import main; "
            "sys.exit(main(sys.argv[1:]))")
    db = tmp_path / "new" / "deeper" / "log.db"
    subprocess.run([sys.executable, "-c", code, "sessions", "list", "--db", str(db)],
                   check=False, capture_output=True)
    with Store(db):
        pass
    subprocess.run([sys.executable, "-c", code, "profiles", "new", "my-console", "--dir",
                    str(tmp_path / "profiles" / "mine")], check=True, capture_output=True)
    for folder in (tmp_path / "new", tmp_path / "new" / "deeper", tmp_path / "profiles",
                   tmp_path / "profiles" / "mine"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for file in (db, tmp_path / "profiles" / "mine" / "my-console.toml"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_an_existing_database_open_to_others_is_made_private_with_a_notice(db, capsys):
    os.chmod(db, 0o644)
    with Store(db):
        pass
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert "made private (0600)" in capsys.readouterr().err


def _deep_toml(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    return path


@pytest.mark.parametrize("kind", ["deep", "fifo", "dev-zero", "non-utf8", "folder"])
def test_a_profile_file_that_cannot_be_one_is_refused_in_one_line(tmp_path, capsys, kind):
    path = {"deep": lambda: _deep_toml(tmp_path), "fifo": lambda: tmp_path / "p.toml",
            "dev-zero": lambda: "/dev/zero", "non-utf8": lambda: tmp_path / "latin.toml",
            "folder": lambda: tmp_path}[kind]()
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "non-utf8":
        path.write_bytes(b'format = 1\n# caf\xe9\n')
    status, err = _run(["profiles", "check", str(path)], capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1, err


def test_one_deeply_nested_file_in_a_profiles_folder_leaves_the_list_working(tmp_path, capsys):
    _deep_toml(tmp_path)
    assert main(["profiles", "list", "--profiles", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "deep" in listed and "INVALID" in listed and "nested more than" in listed
    assert "ps755-ref" in listed


def test_a_site_file_that_is_not_utf8_or_nests_too_deep_says_so(db, tmp_path, capsys,
                                                                 monkeypatch):
    site = tmp_path / "site.toml"
    for content in (b"[limits]\n# \xff\n", ("x = " + "[" * 3000 + "]" * 3000).encode()):
        site.write_bytes(content)
        monkeypatch.setenv("LASERLOG_SITE", str(site))
        status, err = _run(["site", "--db", str(db)], capsys)
        assert status == 2 and str(site) in err


def test_a_profile_with_a_byte_order_mark_loads(tmp_path, capsys):
    from laserlog.config.catalog import bundled_profiles_dir

    path = tmp_path / "ps755-ref.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (bundled_profiles_dir() / "ps755-ref.toml").read_bytes())
    status, err = _run(["profiles", "check", str(path)], capsys)
    assert status == 0, err


def test_export_never_replaces_the_database_it_reads(db, capsys):
    status, err = _run(["export", "--format", "csv", "--session", "1", "--db", str(db),
                        "--out", str(db), "--force"], capsys)
    assert status == 2 and "is the database being exported" in err
    with Store(db, readonly=True) as store:
        assert store.session(1) is not None


@pytest.mark.parametrize("argv", [
    ["report", "energy", "--from", "0001-01-01T00:00+05:00"],
    ["report", "faults", "--from", "2026-01-01", "--to", "9999-12-31T23:59:59-05:00"],
    ["simulate", "ps755-ref", "--link", ""],
])
def test_offsets_past_the_calendar_and_empty_links_get_one_message(db, capsys, argv):
    status, err = _run([*argv, "--db", str(db)] if argv[0] == "report" else argv, capsys)
    assert status in (0, 2)
    if argv[0] == "simulate":
        assert status == 2 and "--link is empty" in err


def test_a_port_lock_planted_as_a_link_is_refused_not_followed(tmp_path, monkeypatch):
    from laserlog.errors import PortError
    from laserlog.link.portlock import PortLock

    monkeypatch.setenv("LASERLOG_LOCK_DIR", str(tmp_path / "locks"))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    lock = PortLock("/dev/ttyUSB9")
    lock.path.symlink_to(victim)
    with pytest.raises(PortError, match="cannot take the lock"):
        lock.acquire()
    assert victim.read_text() == "keep"


@pytest.mark.parametrize("old, new", [
    (b'line = "P {seq:d} E{energy:.2f} F{fluence:.3f} S{spot:.1f} D{pulse_duration:d} '
     b'H{handpiece:d}"', b'line = ""'),
    (b"[pulses.units]", b'[pulses.fixed]\nwavelength = "1e300 km"\n\n[pulses.units]'),
])
def test_profiles_whose_values_overflow_or_whose_line_is_empty_are_refused(tmp_path, capsys,
                                                                           old, new):
    from laserlog.config.catalog import bundled_profiles_dir

    text = (bundled_profiles_dir() / "ps755-ref.toml").read_bytes()
    assert old in text
    path = tmp_path / "ps755-ref.toml"
    path.write_bytes(text.replace(old, new))
    status, err = _run(["profiles", "check", str(path)], capsys)
    assert status == 2 and "INVALID" in err


def test_an_infinite_value_in_an_older_database_exports_as_null_not_infinity(db, tmp_path):
    import json
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO pulses (session_id, seq, received_unix_s, pulse_duration_ps,"
                     " regime, energy_j, wavelength_nm, derived) VALUES (1, 1, 1.0, 650.0,"
                     " 'ps', 0.1, 9e999, '')")
    for fmt in ("json", "ndjson"):
        out = tmp_path / f"x.{fmt}"
        assert main(["export", "--format", fmt, "--session", "1", "--db", str(db), "--out",
                     str(out)]) == 0

        def refuse(constant):
            raise ValueError(f"{constant} is not JSON")

        text = out.read_text()
        docs = [text] if fmt == "json" else text.splitlines()
        for doc in docs:
            json.loads(doc, parse_constant=refuse)
        assert '"wavelength_nm": null' in text


def test_a_passphrase_that_is_not_text_is_refused_in_one_line(db, capsys, monkeypatch):
    monkeypatch.setenv("LASERLOG_PASSPHRASE", "pass\udcffword")
    status, err = _run(["users", "add", "lso-01", "--name", "A. Officer", "--role", "officer",
                        "--db", str(db)], capsys)
    assert status == 2 and "LASERLOG_PASSPHRASE is not UTF-8 text" in err


def test_serve_on_a_busy_port_is_one_message_and_exit_2(db, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        status, err = _run(["serve", "--db", str(db), "--port", str(port)], capsys)
    assert status == 2 and f"cannot listen on 127.0.0.1:{port}" in err


def test_an_emptied_database_is_named_as_truncated_by_its_anchor(db, capsys):
    from laserlog.storage import chain
    from laserlog.storage.store import Store as _Store

    with _Store(db) as store:
        head = chain.append_batch(store.conn, 1, {"pulses": 0, "events": 0, "settings": 0})
        store.conn.commit()
    chain.write_anchor(db, head)
    db.write_bytes(b"")
    for argv in (["verify", "--db", str(db)], ["sessions", "list", "--db", str(db)],
                 ["record", "--profile", "ps755-ref", "--port", "/nonexistent", "--operator",
                  "tech-07", "--client", "C-1042", *START, "--db", str(db)]):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
        captured = capsys.readouterr()
        assert status in (1, 2)
        assert ("empty or truncated, but its anchor says the hash chain had "
                f"{head.link_id} link") in (
            captured.out + captured.err)
    assert db.stat().st_size == 0


@pytest.mark.parametrize("text", ["1_0", "\u0661", " 1 2", "0x1"])
def test_ids_are_ascii_digits_only(db, capsys, text):
    status, err = _run(["sessions", "show", text, "--db", str(db)], capsys)
    assert status == 2 and "is not a whole number" in err


def test_a_transcript_path_that_is_empty_or_the_database_is_refused(db, capsys):
    base = ["record", "--profile", "ps755-ref", "--port", "/nonexistent", "--operator",
            "tech-07", "--client", "C-1042", *START, "--db", str(db)]
    status, err = _run([*base, "--transcript", ""], capsys)
    assert status == 2 and "empty path" in err
    status, err = _run([*base, "--transcript", str(db)], capsys)
    assert status == 2 and "--transcript is the database file" in err


NEWER_COMMANDS = [
    ["record", "--profile", "ps755-ref", "--port", "/dev/null/none", "--operator", "tech-07",
     "--client", "C-1042", *START],
    ["recover", "{tmp}/spill.ndjson"],
    ["sessions", "list"],
    ["sessions", "show", "1"],
    ["report", "energy"],
    ["verify"],
    ["export", "--format", "csv", "--session", "1", "--out", "{tmp}/out.csv"],
    ["users", "list"],
    ["signoff", "1", "--meaning", "reviewed", "--user", "lso-01"],
    ["serve", "--port", "8799"],
    ["sync", "--to", "postgresql://nobody@127.0.0.1:1/none"],
]


def test_a_database_from_a_newer_laserlog_is_one_same_message_for_every_command(
        db, tmp_path, capsys):
    from laserlog.storage.schema import SCHEMA_VERSION

    newer = SCHEMA_VERSION + 1
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {newer}")
    (tmp_path / "spill.ndjson").write_text("")
    before = db.read_bytes()
    said = {}
    for command in NEWER_COMMANDS:
        argv = [a.format(tmp=tmp_path) for a in command] + ["--db", str(db)]
        status, err = _run(argv, capsys)
        assert status == 2, (command, err)
        said[" ".join(command[:2])] = err
    expected = (f"laserlog: error: database {db} has schema {newer}, newer than this laserlog "
                f"reads (schema {SCHEMA_VERSION} and older): a newer laserlog wrote it; use "
                "that laserlog, or upgrade this one (nothing was changed)\n")
    assert said == {name: expected for name in said}
    assert db.read_bytes() == before
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("command, link_name", [
    (["record", "--profile", "ps755-ref", "--port", "/dev/null/none", "--operator", "tech-07",
      "--client", "C-1042", *START, "--db", "{link}"], "log.db"),
    (["sessions", "list", "--db", "{link}"], "log.db"),
    (["profiles", "new", "my-console", "--dir", "{link}"], "profiles"),
    (["profiles", "new", "my-console", "--dir", "{link}/deeper"], "profiles"),
    (["export", "--format", "csv", "--session", "1", "--out", "{link}", "--db", "{db}"],
     "out.csv"),
])
def test_a_path_that_is_a_link_to_nothing_is_one_message_and_nothing_is_made_through_it(
        db, tmp_path, capsys, command, link_name):
    target = tmp_path / "elsewhere" / link_name  # its folder is missing too
    link = tmp_path / "links" / link_name
    link.parent.mkdir()
    link.symlink_to(target)
    argv = [a.format(link=link, db=db) for a in command]
    status, err = _run(argv, capsys)
    assert status == 2 and len(err.splitlines()) == 1, err
    assert f"{link} is a symbolic link to {target}, which does not exist" in err
    assert "nothing was created through it" in err
    assert not (tmp_path / "elsewhere").exists()
    assert [p.name for p in link.parent.iterdir()] == [link_name]
