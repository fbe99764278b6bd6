"""End to end: the real `laserlog demo` in a real terminal (tmux), driven by keys.

A technician's path: start a session through the form, watch pulses arrive, end it, find it
in History, quit; then the database holds that session with its pulses.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_until

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


class Terminal:
    """A private tmux server running one command in a 120x36 window."""

    def __init__(self, tmp_path: Path, command: str, env: dict[str, str]) -> None:
        self.socket = str(tmp_path / "tmux.sock")
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # COLUMNS and LINES (set by pytest) would override the real terminal size.
        script = f"env -u COLUMNS -u LINES {exports} {command}; echo laserlog-exit=$?; sleep 60"
        self.tmux("new-session", "-d", "-s", "e2e", "-x", "120", "-y", "36", script)

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        return subprocess.run([TMUX, "-S", self.socket, *args], capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "e2e")

    def cursor_row(self) -> int:
        return int(self.tmux("display", "-p", "-t", "e2e", "#{cursor_y}"))

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "e2e", *(["-l"] if literal else []), *keys)

    def wait_for(self, needle: str | re.Pattern, what: str | None = None,
                 timeout_s: float = 20) -> str:
        def seen() -> str | None:
            text = self.screen()
            found = needle.search(text) if isinstance(needle, re.Pattern) else needle in text
            return text if found else None

        return str(wait_until(seen, timeout_s, what or str(needle)))

    def row_of(self, label: str) -> int:
        for number, line in enumerate(self.screen().splitlines()):
            if line.lstrip().startswith(label):
                return number
        raise AssertionError(f"no line starts with {label!r}:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([str(TMUX), "-S", self.socket, "kill-server"], capture_output=True)


def start_session(term: Terminal) -> None:
    """Start session 1 through the form, key by key, as a technician would."""
    term.wait_for("LINK UP", "the live screen with the console connected")
    term.keys("s")
    term.wait_for("Start a session on 755 nm", "the session form")
    for label, text in (("Operator", "tech-07"), ("Client", "C-1042"),
                        ("Area", "left cheek"), ("Skin type", "3")):
        row = term.row_of(label)
        wait_until(lambda row=row: term.cursor_row() == row, 10, f"focus on {label}")
        term.keys(text, literal=True)
        term.wait_for(re.compile(rf"{label}\s+{re.escape(text)}"), f"{text} typed")
        term.keys("Tab")
    row = term.row_of("Course")  # left empty: a one-off
    wait_until(lambda: term.cursor_row() == row, 10, "focus on Course")
    term.keys("Tab")
    for label in ("Eyewear rated for 755 nm", "Client consent", "Recent sun exposure"):
        term.wait_for(f"> [ ] {label}", f"focus on the checklist item {label}")
        term.keys("Space")
        term.wait_for(f"> [x] {label}", f"{label} ticked")
        term.keys("Tab")
    term.keys("C-s")
    term.wait_for("REC session 1", "the session to start")


def processes_using(path: Path) -> list[int]:
    """Return the pids whose command line names `path`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(path).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _demo_terminal(tmp_path: Path, db: Path) -> Terminal:
    """Open `laserlog demo --db DB` in a real terminal, with its own data and config folders."""
    env = {"TERM": "xterm-256color", "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": os.pathsep.join(sys.path)}
    return Terminal(tmp_path, f"{shlex.quote(sys.executable)} -m laserlog demo --db "
                              f"{shlex.quote(str(db))}", env)


def test_demo_in_a_terminal_starts_records_and_ends_a_session_found_in_history(tmp_path):
    db = tmp_path / "demo.db"
    term = _demo_terminal(tmp_path, db)
    try:
        start_session(term)
        term.wait_for(re.compile(r"SHOTS\s+(1\d|[2-9]\d|\d{3,})"), "ten pulses")
        assert re.search(r"#\d+\s+\+\d\d:\d\d\.\d\s+\d+ ps pico", term.screen())
        term.keys("x")
        term.wait_for("End session 1 now?")
        term.keys("y")
        term.wait_for("Assess session 1 (optional)", "the assessment offered at the end")
        term.keys("1", "Tab", "0", "Tab", "2", "C-s")
        summary = term.wait_for("assessed  erythema 1, oedema 0, pain 2/10", "the summary")
        assert "Session 1  [ended]" in summary
        pulses = int(re.search(r"pulses\s+(\d+)", summary).group(1))  # type: ignore[union-attr]
        assert pulses >= 10 and "regimes picosecond" in summary, summary
        term.keys("F3")
        history = term.wait_for("session(s), newest first", "history")
        assert re.search(r"1\s+\S+ \S+\s+ended\s+tech-07\s+C-1042\s+left cheek", history)
        term.keys("C-q")
        term.wait_for("laserlog-exit=0", "laserlog to exit cleanly")
    finally:
        term.close()
    with sqlite3.connect(db) as conn:
        (row,) = conn.execute("SELECT status, operator_id, client_ref, area, skin_type,"
                              " eyewear_checked, pulse_count, checklist_json FROM sessions")
        stored = conn.execute("SELECT count(*), min(seq) FROM pulses WHERE session_id = 1")
        count, first_seq = stored.fetchone()
        assessed = conn.execute("SELECT session_id, erythema, oedema, pain_nrs, user_id"
                                " FROM assessments").fetchall()
    assert assessed == [(1, 1, 0, 2, "tech-07")]
    assert row[:6] == ("ended", "tech-07", "C-1042", "left cheek", "III", 1)
    assert row[6] == count == pulses and first_seq == 1
    assert '"consent": true' in row[7]


def test_closing_the_terminal_mid_session_ends_it_committed_and_leaves_no_process(tmp_path):
    db = tmp_path / "hangup.db"
    term = _demo_terminal(tmp_path, db)
    try:
        start_session(term)
        term.wait_for(re.compile(r"SHOTS\s+([3-9]|\d\d)"), "a few pulses")
    finally:
        term.close()  # the terminal goes away: SIGHUP

    def ended() -> bool:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT status FROM sessions").fetchone()[0] == "ended"

    wait_until(ended, 20, "the session to be ended")
    wait_until(lambda: not processes_using(db), 20, "laserlog to exit")
    with sqlite3.connect(db) as conn:
        counted, stored = conn.execute(
            "SELECT pulse_count, (SELECT count(*) FROM pulses) FROM sessions").fetchone()
    assert counted == stored >= 3


def test_a_faulted_console_leads_the_bar_and_its_state_turns_stale_while_unplugged(tmp_path):
    """Fault injection in the simulator, `laserlog live` in a real terminal: idle, no session."""
    link = tmp_path / "console"
    # Console fault 10 (an interlock) from 0.5 s on; the adapter unplugged at 8 s for 10 s.
    sim = subprocess.Popen([sys.executable, "-m", "laserlog", "simulate", "ps755-ref", "--link",
                            str(link), "--faults", "fault=10@0.5+600,unplug=8+10"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"TERM": "xterm-256color", "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "PYTHONPATH": os.pathsep.join(sys.path)}
    term = None
    try:
        wait_until(link.exists, 10, "the simulated console")
        term = Terminal(tmp_path, f"{shlex.quote(sys.executable)} -m laserlog live --profile "
                                  f"ps755-ref --port {shlex.quote(str(link))} --db "
                                  f"{shlex.quote(str(tmp_path / 'live.db'))}", env)
        screen = term.wait_for(re.compile(r"INTERLOCK OPEN, FAULT 10\s+\d+s ago"),
                               "the fault as read, with its age")
        bar = screen.splitlines()[1]
        assert bar.lstrip().startswith(("!! FAULT", "!! INTERLOCK")), screen
        assert "interlock closed" not in screen and "no active alarms" not in screen
        term.wait_for("x LINK DOWN", "the unplugged adapter", timeout_s=30)
        # No reading for more than 5 s: the last state shown is marked stale, never current.
        screen = term.wait_for(re.compile(r"INTERLOCK OPEN, FAULT 10 STALE \d+s"),
                               "the state marked stale")
        assert screen.splitlines()[1].lstrip().startswith(("!! FAULT", "!! INTERLOCK")), screen
        term.wait_for("= LINK UP", "the adapter plugged back", timeout_s=30)
        screen = term.wait_for(re.compile(r"INTERLOCK OPEN, FAULT 10\s+\d+s ago"),
                               "a fresh reading")
        term.keys("a")
        dialog = term.wait_for("alarm(s) as", "the acknowledge dialog")
        assert "FAULT (fault): interlock_open: Door or remote" in dialog, dialog
        assert "INTERLOCK (interlock_open): interlock open" in dialog, dialog
        # The unplug between sessions was an alarm of its own (after the fault: class 2).
        assert "LINK LOST (link_lost) cleared: between sessions, console on" in dialog, dialog
        term.keys("Enter")
        screen = term.wait_for("(acked, still true)", "the acknowledged fault still shown")
        assert screen.splitlines()[1].lstrip().startswith(("!! FAULT", "!! INTERLOCK")), screen
        term.keys("C-q")
        term.wait_for("laserlog-exit=0", "laserlog to exit cleanly")
    finally:
        if term is not None:
            term.close()
        sim.terminate()
        sim.wait(10)


def test_a_scanned_burst_typed_with_the_form_key_fills_each_field_in_a_terminal(tmp_path):
    """`s` and four fields in one write to the terminal, as a barcode scanner sends them."""
    term = _demo_terminal(tmp_path, tmp_path / "burst.db")
    try:
        term.wait_for("LINK UP", "the live screen with the console connected")
        term.keys("s", "tech-07", "Tab", "C-1042", "Tab", "left cheek", "Enter", "III", "Tab",
                  "Tab", "Space", "Down", "Space")  # the second Tab passes the Course field
        screen = term.wait_for("> [x] Client consent", "the second checklist item ticked")
        for label, text in (("Operator", "tech-07"), ("Client", "C-1042"),
                            ("Area", "left cheek"), ("Skin type", "III")):
            assert re.search(rf"{label}\s+{re.escape(text)}\s", screen), screen
        assert "[x] Eyewear rated for 755 nm" in screen, screen
    finally:
        term.close()
