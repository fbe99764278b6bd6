"""The MicroJewel profile against an independent emulator of its controller, and against
laserlog's own simulator: every shot recorded, conformance read-only, replay clean."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from microjewel_emulator import Emulator
from pty_peer import record_panel_shots

from laserlog.cli.main import main


@pytest.fixture
def emulator(tmp_path: Path):
    with Emulator(tmp_path / "microjewel") as emu:
        yield emu


def test_record_stores_every_shot_fired_from_the_panel(emulator, tmp_path, capsys) -> None:
    db, transcript = tmp_path / "log.db", tmp_path / "session.jsonl"
    emulator.laser.rep_rate_hz = 5
    before = emulator.laser.shot_count
    status, out, err = record_panel_shots(emulator, "qc-microjewel", 12, ";LA:SC?", db, transcript)
    assert status == 0, err
    assert "Traceback" not in err
    with sqlite3.connect(db) as con:
        seqs = [row[0] for row in con.execute("SELECT seq FROM pulses ORDER BY id")]
        energy = con.execute("SELECT energy_j FROM pulses").fetchone()[0]
        states = [row[0] for row in con.execute(
            "SELECT severity || ' ' || message FROM events WHERE kind = 'console_state'")]
    assert seqs == list(range(before + 1, before + 13))  # seq is the controller's own count
    assert energy == pytest.approx(0.004)
    # Status bits that are states are recorded as such, never as alarms.
    assert states and all(s.startswith("info console state: ") for s in states), states
    assert "ready_to_enable" in states[0]
    # laserlog never fires a console while recording: the technician does.
    assert not [c for c in emulator.laser.heard if c.startswith((";LA:FL", ";LA:EN"))]
    capsys.readouterr()
    assert main(["profiles", "replay", "qc-microjewel", str(transcript)]) == 0
    assert "0 differ" in capsys.readouterr().out


def test_profiles_test_passes_read_only_against_the_emulator(emulator, capsys) -> None:
    assert main(["profiles", "test", "qc-microjewel", "--port", str(emulator.link)]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "PASS  status" in out
    sent = set(emulator.laser.heard)
    assert sent <= {";LA:RR?", ";LA:SC?", ";LA:TR?", ";LA:FT?", ";LA:SS?"}, sent


def test_profiles_test_passes_against_the_simulator(capsys) -> None:
    assert main(["profiles", "test", "qc-microjewel"]) == 0
    out = capsys.readouterr().out
    assert "PASS  pulses polled" in out and "0 failed" in out


def test_the_emulator_refuses_fire_before_arming() -> None:
    from microjewel_emulator import MicroJewel

    laser = MicroJewel()
    assert laser.answer(";LA:FL 1") == "?8"
    assert laser.answer(";LA:EN 1") == "ok" and laser.answer(";LA:FL 1") == "ok"
    assert laser.status_word() & 3 == 3
