"""The COMPex excimer profile against an independent emulator of the laser, and against
laserlog's own simulator: every shot recorded, conformance read-only, replay clean."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from compex_emulator import Compex, Emulator
from pty_peer import record_panel_shots

from laserlog.cli.main import main

#: What the source's driver only reads: a read-only conformance run may send nothing else.
QUERIES = {"REPRATE?", "EGY SET?", "HV?", "MODE?", "TRIGGER?", "OPMODE?", "TOTALCOUNTER?"}


@pytest.fixture
def emulator(tmp_path: Path):
    with Emulator(tmp_path / "compex") as emu:
        yield emu


def test_record_stores_every_shot_fired_from_the_keypad(emulator, tmp_path, capsys) -> None:
    db, transcript = tmp_path / "log.db", tmp_path / "session.jsonl"
    before = emulator.laser.total_counter
    status, out, err = record_panel_shots(emulator, "compex-excimer", 15, "TOTALCOUNTER?", db, transcript)
    assert status == 0, err
    assert "Traceback" not in err
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT seq, energy_j, regime FROM pulses ORDER BY id").fetchall()
        opmodes = {row[0] for row in con.execute(
            "SELECT value FROM settings WHERE name = 'opmode'")}
        errors = con.execute("SELECT count(*) FROM events WHERE kind IN "
                             "('garbled', 'error_reply', 'timeout')").fetchone()[0]
    assert [r[0] for r in rows] == list(range(before + 1, before + 16))  # the tube's count
    assert [r[1] for r in rows] == pytest.approx([0.150] * 15)  # the preset, EGY SET?
    assert {r[2] for r in rows} == {"ns"}
    assert errors == 0
    # The operating state is an enumerated setting: OFF:0 (index 0) and, firing, ON:0.
    assert 0.0 in opmodes
    # laserlog never fires a console while recording, nor changes its settings.
    assert not [c for c in emulator.laser.heard if "=" in c]
    capsys.readouterr()
    assert main(["profiles", "replay", "compex-excimer", str(transcript)]) == 0
    out = capsys.readouterr().out
    assert "0 differ" in out and "Traceback" not in out


def test_profiles_test_passes_read_only_against_the_emulator(emulator, capsys) -> None:
    assert main(["profiles", "test", "compex-excimer", "--port", str(emulator.link)]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "PASS  get opmode  OFF:0" in out
    assert "PASS  get mode  EGY NGR" in out
    sent = set(emulator.laser.heard)
    assert sent <= QUERIES, sent - QUERIES


def test_profiles_test_passes_against_the_simulator(capsys) -> None:
    assert main(["profiles", "test", "compex-excimer"]) == 0
    out = capsys.readouterr().out
    assert "PASS  pulses polled" in out and "0 failed" in out
    # EGY=0 is taken by the laser (gas menu default): only laserlog refuses below the range.
    assert "PASS  refuse energy" in out and "range_checked = false" in out


def test_the_emulator_answers_queries_only_and_takes_egy_zero_as_the_default() -> None:
    laser = Compex(start_delay_s=0)
    assert laser.answer("EGY=300") is None and laser.answer("EGY SET?") == "300"
    assert laser.answer("EGY=0") is None and laser.answer("EGY SET?") == "150"
    assert laser.answer("OPMODE=ON") is None and laser.answer("OPMODE?") == "OFF:0"
    laser.tick(float("inf"))
    assert laser.answer("OPMODE?") == "ON:0"
    laser.interlock_out = True
    assert laser.answer("OPMODE?") == "OFF:1"
