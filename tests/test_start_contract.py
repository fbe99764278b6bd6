"""The start-of-session contract: `record` and the session form refuse the same starts, in the
same words; control lines and the progress line of a headless session; the pseudonym rule."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import pty
import re
import select
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.widgets import Input, Static
from tui_support import fast_keys  # noqa: F401 (a fixture)

from laserlog.cli.main import main
from laserlog.recording.contract import DEFAULT_CLIENT_PATTERN, Contract, parse_control
from laserlog.tui.app import LaserlogApp
from laserlog.tui.controller import LiveController
from laserlog.tui.session_form import SessionForm

from conftest import START, wait_until

LASERLOG = [sys.executable, "-m", "laserlog"]
CHECKS = ["--check", "eyewear", "--check", "consent", "--check", "sun_exposure"]
#: A port nothing answers on: a start the contract lets through fails only here.
NO_PORT = "/nonexistent/laserlog-port"


def cli(*argv: str) -> tuple[int, str]:
    """Run the command line in this process; return its exit status and standard error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(list(argv))
        except SystemExit as exc:
            status = int(exc.code or 0)
    return status, err.getvalue()


def record(db: Path, *more: str, client: str = "C-1042", port: str = NO_PORT) -> tuple[int, str]:
    return cli("record", "--profile", "ps755-ref", "--port", port, "--operator", "tech-07",
               "--client", client, "--db", str(db), *more)


def sessions(db: Path) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
        except sqlite3.OperationalError:  # being created: no tables yet
            return 0


# -- record refuses an incomplete start, naming every missing field -----------------------
@pytest.mark.parametrize(("missing", "needle"), [
    ("--area", "--area: the treatment area is required"),
    ("--skin-type", "--skin-type: the client's Fitzpatrick skin type is required"),
    ("consent", "checklist item 'consent' (Client consent for this treatment is signed) is not "
                "confirmed: add --check consent"),
    ("sun_exposure", "add --check sun_exposure"),
    ("eyewear", "(Eyewear rated for 755 nm worn by everyone present) is not confirmed"),
])
def test_record_refuses_a_start_without_each_part_of_the_contract(tmp_path, missing, needle):
    argv = list(START)
    if missing.startswith("--"):
        at = argv.index(missing)
        del argv[at:at + 2]
    else:
        at = argv.index(missing)
        del argv[at - 1:at + 1]
    status, err = record(tmp_path / "log.db", *argv)
    assert status == 2 and needle in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert NO_PORT not in err  # refused before the console was touched
    assert sessions(tmp_path / "log.db") == 0


def test_every_refusal_is_named_in_one_message(tmp_path):
    status, err = record(tmp_path / "log.db", client="Lopez1985")
    assert status == 2 and err.count("\n") == 1
    for needle in ("--client: client reference 'Lopez1985' is not a pseudonym", "--area:",
                   "--skin-type:", "--check eyewear", "--check consent", "--check sun_exposure"):
        assert needle in err, err


def test_eyewear_checked_is_the_alias_of_the_eyewear_item(tmp_path):
    argv = [a for a in START if a != "eyewear"]
    argv.remove("--check")  # the one before "eyewear" (any one: they are all "--check")
    status, err = record(tmp_path / "log.db", *argv, "--eyewear-checked")
    assert status == 2 and "not a pseudonym" not in err and "checklist" not in err
    assert "laserlog-port" in err  # it got as far as the port


def test_an_unknown_check_gets_a_did_you_mean(tmp_path):
    status, err = record(tmp_path / "log.db", *START, "--check", "consnt")
    assert status == 2 and "--check 'consnt': not an item of this site's checklist" in err
    assert "did you mean 'consent'?" in err and "`laserlog checklist`" in err


@pytest.mark.parametrize("client", ["Lopez1985", "maria.lopez85", "C-1", "Jane Doe", "ABCDE123",
                                    "C-12345678901", "C--1042", "1042", "C 1042", "Ç-1042"])
def test_names_and_near_pseudonyms_are_refused(tmp_path, client):
    status, err = record(tmp_path / "log.db", *START, client=client)
    assert status == 2 and "is not a pseudonym" in err and "e.g. C-1042" in err, err


@pytest.mark.parametrize("client", ["C-1042", "AB1234", "abcd-0000000001", "X123"])
def test_pseudonyms_pass(tmp_path, client):
    status, err = record(tmp_path / "log.db", *START, client=client.strip())
    assert status == 2 and "pseudonym" not in err and "laserlog-port" in err, err


@settings(max_examples=150, deadline=None)
@given(client=st.text(min_size=0, max_size=60))
def test_the_pseudonym_rule_is_the_pattern_through_the_real_command(tmp_path_factory, client):
    if "\x00" in client or client.startswith("-"):
        return  # not an argument a shell can pass / an option
    db = tmp_path_factory.mktemp("p") / "log.db"
    status, err = record(db, *START, client=client)
    assert status == 2 and "Traceback" not in err
    refused = "is not a pseudonym" in err or "pseudonym is required" in err
    assert refused == (re.fullmatch(DEFAULT_CLIENT_PATTERN, client.strip()) is None), err
    assert sessions(db) == 0


@settings(max_examples=100, deadline=None)
@given(area=st.text(max_size=300), skin=st.text(max_size=12),
       checks=st.lists(st.text(min_size=1, max_size=20).filter(lambda s: not s.startswith("-")),
                       max_size=4))
def test_hostile_area_skin_and_checks_get_one_message(tmp_path_factory, area, skin, checks):
    if "\x00" in area + skin + "".join(checks) or area.startswith("-") or skin.startswith("-"):
        return
    db = tmp_path_factory.mktemp("h") / "log.db"
    argv = ["--area", area, "--skin-type", skin]
    for key in checks:
        argv += ["--check", key]
    status, err = record(db, *argv)
    assert status == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert sessions(db) == 0


# -- the site's own pseudonym rule -----------------------------------------------------------
def test_a_site_sets_its_own_pseudonym_rule(tmp_path):
    (tmp_path / "site.toml").write_text('[clients]\npattern = "K[0-9]{2}/[0-9]{4}"\n'
                                        'example = "K12/0042"\n')
    db = tmp_path / "log.db"
    status, err = record(db, *START, client="C-1042")
    assert status == 2 and "this site's pattern K[0-9]{2}/[0-9]{4}" in err
    assert "e.g. K12/0042" in err and str(tmp_path / "site.toml") in err
    status, err = record(db, *START, client="K12/0042")
    assert status == 2 and "pseudonym" not in err and "laserlog-port" in err


@pytest.mark.parametrize(("clients", "needle"), [
    ('pattern = "K[0-9"\nexample = "K1"', "not a regular expression"),
    ('pattern = "[A-Z]*"\nexample = "A"', "matches an empty reference"),
    ('pattern = "K[0-9]{4}"\nexample = "C-1042"', "does not match the pattern"),
    ('pattern = "K[0-9]{4}"', "missing or does not match"),
    ('example = "K1234"', "an example without a pattern"),
    ('pattern = 7\nexample = "7"', "pattern"),
    ('pattern = "K[0-9]{4}"\nexample = "K1234"\nflavour = "x"', "flavour"),
])
def test_a_broken_pseudonym_rule_is_refused_naming_the_key(tmp_path, clients, needle):
    (tmp_path / "site.toml").write_text(f"[clients]\n{clients}\n")
    status, err = record(tmp_path / "log.db", *START)
    assert status == 2 and needle in err and "site.toml" in err and "Traceback" not in err, err


# -- laserlog checklist ----------------------------------------------------------------------
def test_checklist_lists_the_items_and_their_keys(tmp_path, capsys):
    assert main(["checklist", "--profile", "ps1064-ref"]) == 0
    out = capsys.readouterr().out
    assert "eyewear       required  Eyewear rated for 1064/532 nm worn by everyone present" in out
    assert "3 of 3 are required" in out
    own = tmp_path / "checklist.toml"
    own.write_text('[[item]]\nkey = "goggles"\nlabel = "Goggles on"\n'
                   '[[item]]\nkey = "photo"\nlabel = "Baseline photo taken"\nrequired = false\n')
    assert main(["checklist", "--keys", "--checklist", str(own)]) == 0
    assert capsys.readouterr().out == "goggles\nphoto\n"
    # The site's own checklist is the one `record` answers: an optional item may stay open.
    status, err = record(tmp_path / "log.db", "--area", "chin", "--skin-type", "2",
                         "--checklist", str(own), "--check", "goggles")
    assert status == 2 and "checklist" not in err and "laserlog-port" in err, err
    status, err = record(tmp_path / "log.db", "--area", "chin", "--skin-type", "2",
                         "--checklist", str(own), "--eyewear-checked")
    assert status == 2 and "--eyewear-checked answers the item 'eyewear'" in err


# -- the form refuses what record refuses, in the same words ---------------------------------
@pytest.fixture
def form_app(simulate, db_path):
    made: list[LiveController] = []

    def make() -> LaserlogApp:
        sim = simulate("ps755-ref", seed=3, rate_hz=20.0)
        controller = LiveController(db_path, sim.profile, str(sim.path))
        made.append(controller)
        return LaserlogApp(controller)

    yield make
    for controller in made:
        controller.shutdown()


CASES = [
    {"client": "Lopez1985", "area": "", "skin": "7"},
    {"client": "maria.lopez85", "area": "left cheek", "skin": ""},
    {"client": "C-1", "area": "   ", "skin": "III"},
]


@pytest.mark.usefixtures("fast_keys")
def test_the_form_and_record_refuse_the_same_fields_in_the_same_words(form_app, db_path,
                                                                     tmp_path):
    app = form_app()
    seen: list[dict[str, str]] = []

    async def scenario() -> None:
        async with app.run_test(size=(100, 40)) as pilot:
            for case in CASES:
                await pilot.press("s")
                await pilot.pause()
                form = app.screen
                assert isinstance(form, SessionForm)
                form.query_one("#operator", Input).value = "tech-07"
                for name, value in case.items():
                    form.query_one(f"#{name}", Input).value = value
                await pilot.pause()
                await pilot.press("ctrl+s")
                await pilot.pause()
                seen.append({name: str(form.query_one(f"#{name}-error", Static).render())
                             for name in ("client", "area", "skin", "check-eyewear",
                                          "check-consent", "check-sun_exposure")})
                assert app.controller.session is None
                await pilot.press("escape")
                await pilot.pause()

    asyncio.run(scenario())
    for case, form_errors in zip(CASES, seen, strict=True):
        argv = ["--area", case["area"], "--skin-type", case["skin"]]
        status, err = record(tmp_path / "log.db", *argv, client=case["client"])
        assert status == 2
        for name, option in (("client", "--client"), ("area", "--area"), ("skin", "--skin-type")):
            if form_errors[name]:
                assert f"{option}: {form_errors[name]}" in err, (name, err)
            else:
                assert f"{option}:" not in err
        for key in ("eyewear", "consent", "sun_exposure"):
            assert form_errors[f"check-{key}"] == "required by this site's checklist"
            assert f"add --check {key}" in err
    assert sessions(db_path) == 0


# -- a headless session: control lines and the progress line ---------------------------------
def _start_record(sim_path: Path, db: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([*LASERLOG, "record", "--profile", "ps755-ref", "--port",
                             str(sim_path), "--operator", "tech-07", "--client", "C-1042",
                             *START, "--db", str(db), "--duration", "60"], text=True, **popen)


def test_control_lines_on_standard_input_note_mark_and_end_the_session(simulate, tmp_path):
    sim = simulate("ps755-ref", seed=2, rate_hz=20.0)
    sim.console.firing = True
    db = tmp_path / "log.db"
    proc = _start_record(sim.path, db, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        wait_until(lambda: sessions(db) == 1, what="the session to start")
        lines = ["note cheek cooled, client comfortable", "marker", "marker second pass",
                 "bogus words", "note", "x" * 10_000, "\xff\x00 note?", "end now"]
        for line in lines:  # bytes: invalid UTF-8 and a NUL arrive as the console's would
            proc.stdin.buffer.write(line.encode("latin-1") + b"\n")
            proc.stdin.flush()
        wait_until(lambda: _events(db, "marker") == 2, what="the markers")
        proc.stdin.write("end\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "note recorded: cheek cooled, client comfortable" in err
    assert "marker recorded: marker 2: second pass" in err
    assert err.count("not recorded:") == 5 and "Traceback" not in err
    assert "(ended from standard input)" in out
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT kind, message FROM events WHERE kind IN ('note', 'marker')"
                            " ORDER BY id").fetchall()
        reason = conn.execute("SELECT status, end_reason FROM sessions").fetchone()
    assert rows == [("note", "cheek cooled, client comfortable"), ("marker", "marker 1"),
                    ("marker", "marker 2: second pass")]
    assert reason == ("ended", "ended from standard input")


def _events(db: Path, kind: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT count(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0]



def test_input_from_a_file_is_not_read_as_control_lines(simulate, tmp_path):
    sim = simulate("ps755-ref", seed=2, rate_hz=20.0)
    sim.console.firing = True
    db = tmp_path / "log.db"
    script = tmp_path / "lines.txt"
    script.write_text("end\n")
    with script.open() as stdin:
        result = subprocess.run([*LASERLOG, "record", "--profile", "ps755-ref", "--port",
                                 str(sim.path), "--operator", "tech-07", "--client", "C-1042",
                                 *START, "--db", str(db), "--pulses", "5"], stdin=stdin,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "(duration or pulse count reached)" in result.stdout


def test_a_terminal_shows_one_live_progress_line(simulate, tmp_path):
    sim = simulate("ps755-ref", seed=2, rate_hz=20.0)
    sim.console.firing = True
    db = tmp_path / "log.db"
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))  # 60 columns
    proc = _start_record(sim.path, db, stdin=follower, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"pulses" not in seen.split(b"\r")[-1]:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                seen += os.read(leader, 4096)
        drawn = seen.split(b"\r\x1b[K")[-1]  # the line drawn (in one write)
        assert re.match(rb"\d+ pulses [0-9.]+ J \| \d:\d\d \| link up", drawn), seen[-300:]
        assert len(drawn.decode()) <= 59  # never wrapped: it is redrawn in place
        os.write(leader, b"note typed at the terminal\n")
        wait_until(lambda: _events(db, "note") == 1, what="the note typed")
        os.write(leader, b"end\n")
        proc.wait(timeout=30)
    finally:
        proc.kill()
        os.close(leader)
    assert proc.returncode == 0
    assert proc.stdout is not None and "(ended from standard input)" in proc.stdout.read()


# -- control lines and corrections -----------------------------------------------------------
@pytest.mark.parametrize(("line", "parsed"), [
    ("note  two   spaces ", ("note", "two spaces")), ("marker", ("marker", "")),
    ("marker left side", ("marker", "left side")), ("end", ("end", "")), ("  end  ", ("end", ""))])
def test_control_lines_parse(line, parsed):
    assert parse_control(line) == parsed


def test_a_name_corrected_is_kept_only_as_its_hash(tmp_path, simulate, monkeypatch):
    import hashlib

    from laserlog.recording.contract import SessionInfo
    from laserlog.recording.recorder import Recorder
    from laserlog.review.corrections import correct
    from laserlog.review.users import add_user
    from laserlog.storage.store import Store

    sim = simulate("ps755-ref", seed=2, rate_hz=20.0)
    db = tmp_path / "log.db"
    with Store(db) as store:
        recorder = Recorder(store, sim.profile, str(sim.path))
        recorder.start(SessionInfo("tech-07", "maria85", "chin", "II"))  # the floor lets it by
        recorder.end()
        officer = add_user(store, "officer-1", "Officer", "officer", "a long passphrase 1")
        row = correct(store, 1, "client", "C-1042", "name typed by mistake", officer)
        with pytest.raises(Exception, match="not a pseudonym"):
            correct(store, 1, "client", "Lopez1985", "again", officer)
    assert row["old_value"] == "sha256:" + hashlib.sha256(b"maria85").hexdigest()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        kept = conn.execute("SELECT old_value, new_value FROM corrections").fetchall()
    assert kept == [(row["old_value"], "C-1042")]
    assert Contract().client_ref(" C-1042 ") == "C-1042"


# -- a console that reports a fault ------------------------------------------------------------
def test_record_starts_over_a_fault_only_with_a_reason_and_a_registered_operator(
        simulate, tmp_path, monkeypatch):
    from laserlog.review.users import add_user
    from laserlog.storage.store import Store

    sim = simulate("ps755-ref", seed=2, rate_hz=20.0)
    sim.inject_fault(10)
    db = tmp_path / "log.db"
    status, err = record(db, *START, "--duration", "1", port=str(sim.path))
    assert status == 2 and "console reports fault 10" in err
    assert "with --start-over-fault REASON" in err and sessions(db) == 0
    reason = ["--start-over-fault", "interlock loop tested, fault latched"]
    monkeypatch.setenv("LASERLOG_PASSPHRASE", "seven's long passphrase")
    status, err = record(db, *START, *reason, "--duration", "1", port=str(sim.path))
    assert status == 2 and "over a console fault or an open interlock needs the operator to " \
                           "be a registered user" in err and sessions(db) == 0
    with Store(db) as store:
        add_user(store, "tech-07", "Tech Seven", "technician", "seven's long passphrase")
    status, err = record(db, *START, *reason, "--duration", "1", port=str(sim.path))
    assert status == 0, err
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT code, message FROM events WHERE kind = 'start_over_fault'"
                            ).fetchall()
    assert rows == [(10, "started by tech-07 although the console reports fault 10 "
                         "(interlock_open: Door or remote interlock open: emission stopped) and "
                         "the interlock "
                         "open; reason: interlock loop tested, fault latched")]


# -- the form refuses what the console is set to, in record's words ----------------------------
@pytest.mark.usefixtures("fast_keys")
def test_the_form_refuses_an_avoided_wavelength_and_a_fluence_above_the_test_spot_as_record_does(
        simulate, tmp_path, monkeypatch):
    from test_tui_courses import plan_course
    from test_tui_live import fill_form
    from tui_support import wait_for

    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    (tmp_path / "site.toml").write_text(
        '[courses]\nabove_test_spot = "refuse"\n\n[envelope.V.532]\navoid = true\n')
    db = tmp_path / "laserlog.db"
    sim = simulate("ps1064-ref", seed=5, rate_hz=40.0)
    sim.console.firing = True
    params = sim.console.params
    energy = params["energy"]
    start = ["record", "--profile", "ps1064-ref", "--port", str(sim.path), "--operator",
             "tech-07", "--client", "C-1042", *[a if a != "III" else "V" for a in START],
             "--db", str(db), "--pulses", "4"]
    assert cli("course", "new", "--client", "C-1042", "--area", "left cheek", "--indication",
               "pores", "--sessions", "3", "--interval", "21-42", "--db", str(db))[0] == 0
    params["energy"] = energy / 2
    assert cli(*start, "--test-spot", "--course", "1")[0] == 0
    # record's words: the fluence set above the test spot's, then the avoided wavelength.
    params["energy"] = energy
    status, above_err = cli(*start, "--course", "1")
    assert status == 2 and "above the highest test spot 1 tested there" in above_err
    params["energy"], params["wavelength"] = energy / 2, 532.0
    status, avoid_err = cli(*start)
    assert status == 2 and "the console is set to 532 nm, which is not to be used" in avoid_err
    controller = LiveController(db, sim.profile, str(sim.path))
    app = LaserlogApp(controller)
    seen: dict[str, str] = {}

    async def refused(form: SessionForm, pilot) -> str:
        shown = form.query_one("#form-error", Static)
        shown.update("")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: str(shown.render()).startswith("not started: "),
                       what="the start to be refused")
        assert controller.session is None
        return str(shown.render()).removeprefix("not started: ")

    async def scenario() -> None:
        async with app.run_test(size=(100, 44)) as pilot:
            form = await fill_form(pilot, skin="5")
            seen["wavelength"] = await refused(form, pilot)
            params["energy"], params["wavelength"] = energy, 1064.0
            form.query_one("#course", Input).value = "1"
            await pilot.pause()
            seen["fluence"] = await refused(form, pilot)
            # A course planned on the form is held to the same settings before it is written.
            form.query_one("#course", Input).value = ""
            await plan_course(pilot, form, interval="21-42", witness="", passphrase="")
            seen["new course"] = await refused(form, pilot)

    try:
        asyncio.run(scenario())
    finally:
        controller.shutdown()
    assert seen["wavelength"].startswith("the session was not started: the console is set to "
                                         "532 nm, which is not to be used on skin type V")
    assert f"laserlog: error: {seen['wavelength']}" in avoid_err
    assert seen["fluence"].startswith("the session was not started: the console is set to ")
    assert f"laserlog: error: {seen['fluence']}" in above_err
    assert seen["new course"] == seen["fluence"]
    assert sessions(db) == 1  # the test spot alone
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM courses").fetchone()[0] == 1  # none written
