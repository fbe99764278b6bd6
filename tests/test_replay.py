"""Transcripts: `record --transcript` saves the raw exchange; `profiles replay` compares it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from laserlog.cli.main import main
from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.profile import open_profile
from laserlog.errors import LaserlogError
from laserlog.link.transcript_file import read_transcript
from laserlog.proving.replay import Operation, Recogniser, replay

from conftest import START, wait_until

TRANSCRIPTS = sorted((bundled_profiles_dir() / "transcripts").glob("*.jsonl"))


def write_transcript(path: Path, profile: str, *chunks: tuple[str, str]) -> Path:
    """Write a transcript by hand: chunks of ("tx" | "rx", text)."""
    lines = [json.dumps({"laserlog_transcript": 1, "profile": profile, "port": "by-hand",
                         "started_unix_s": 0.0})]
    lines += [json.dumps({"t": i * 0.01, kind: text}) for i, (kind, text) in enumerate(chunks)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bundled_profiles_ship_transcripts() -> None:
    names = {p.stem for p in TRANSCRIPTS}
    assert {"ps755-ref", "ps1064-ref", "cfr-ndyag", "fx1550-ref"} <= names


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_bundled_transcript_replays_without_a_difference(path: Path) -> None:
    transcript = read_transcript(path)
    profile = open_profile(transcript.header["profile"])
    report = replay(profile, transcript)
    assert report.ok, report.format(every_step=True)
    assert all(step.operation.kind != "unknown" for step in report.steps)
    if profile.pulses.mode == "pushed":
        assert report.pushed_pulses >= 8


def test_record_with_transcript_then_replay(simulate, tmp_path, capsys) -> None:
    sim = simulate("ps755-ref", rate_hz=50)
    sim.console.firing = True
    path, db = tmp_path / "session.jsonl", tmp_path / "log.db"
    assert main(["record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
                 "tech-01", "--client", "C-3001", *START, "--pulses", "10", "--db", str(db),
                 "--transcript", str(path)]) == 0
    transcript = read_transcript(path)
    assert transcript.header["profile"] == "ps755-ref"
    assert transcript.header["port"] == str(sim.path)
    times = [c.t_s for c in transcript.chunks]
    assert times == sorted(times)
    sent = [c.data for c in transcript.chunks if c.direction == "tx"]
    assert sent[0] == b"ID?\r\n" and b"STREAM 1\r\n" in sent and sent[-1] == b"STREAM 0\r\n"
    received = b"".join(c.data for c in transcript.chunks if c.direction == "rx")
    assert received.count(b"\r\nP ") >= 9
    capsys.readouterr()
    assert main(["profiles", "replay", "ps755-ref", str(path)]) == 0
    assert "0 differ" in capsys.readouterr().out


def test_record_never_overwrites_a_transcript(simulate, tmp_path) -> None:
    sim = simulate("ps755-ref")
    path = tmp_path / "kept.jsonl"
    path.write_text("precious\n")
    result = subprocess.run(
        [sys.executable, "-m", "laserlog", "record", "--profile", "ps755-ref", "--port",
         str(sim.path), "--operator", "tech-01", "--client", "C-3002", *START, "--pulses", "1",
         "--db", str(tmp_path / "log.db"), "--transcript", str(path)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "already exists" in result.stderr
    assert path.read_text() == "precious\n"


def test_a_reply_the_driver_cannot_read_is_a_difference(tmp_path, capsys) -> None:
    path = write_transcript(tmp_path / "t.jsonl", "ps755-ref",
                            ("tx", "ID?\r\n"), ("rx", "PSR755,R755-0001,2.1.0\r\n"),
                            ("tx", "EN?\r\n"), ("rx", "EN 12O.0\r\n"))
    assert main(["profiles", "replay", "ps755-ref", str(path)]) == 1
    out = capsys.readouterr().out
    assert "get energy" in out and "DIFFERS" in out
    assert "console no reply, simulator ok" in out
    assert "the driver cannot read b'EN 12O.0' from the console" in out


def test_a_console_that_refuses_what_the_simulator_takes_is_a_difference(tmp_path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", "ps755-ref",
                            ("tx", "EN 250.0\r\n"), ("rx", "ERR 2\r\n"),
                            ("tx", "EN 100.0\r\n"), ("rx", "OK\r\n"))
    report = replay(open_profile("ps755-ref"), read_transcript(path))
    first, second = report.steps
    assert first.operation == Operation("set", "energy", pytest.approx(0.25))
    assert first.console.kind == "refused" and first.simulator.kind == "ok"
    assert first.differences and not second.differences
    assert "set energy 250 mJ" in report.format()


def test_values_that_differ_are_notes_not_differences(tmp_path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", "ps755-ref",
                            ("tx", "ID?\r\n"), ("rx", "PSR755,R755-7777,2.2.0\r\n"),
                            ("tx", "RR?\r\n"), ("rx", "RR 8.0\r\n"))
    report = replay(open_profile("ps755-ref"), read_transcript(path))
    assert report.ok
    assert [bool(s.notes) for s in report.steps] == [True, True]
    assert "value 8 Hz recorded, 5 Hz simulated" in report.format()
    assert "serial" not in report.steps[0].differences


def test_a_request_the_profile_does_not_describe_is_a_difference(tmp_path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", "ps755-ref",
                            ("tx", "SERVICE MODE\r\n"), ("rx", "ERR 1\r\n"))
    report = replay(open_profile("ps755-ref"), read_transcript(path))
    assert report.steps[0].operation.kind == "unknown"
    assert not report.ok


def test_pushed_lines_before_the_first_command_are_read_too(tmp_path) -> None:
    path = write_transcript(tmp_path / "t.jsonl", "ps755-ref",
                            ("rx", "P 1 E120.00 F0.955 S4.0 D650 H1\r\n"),
                            ("tx", "EN?\r\n"), ("rx", "EN 120.0\r\nP 2 E120.00 F0.955 S4.0 D650 H1\r\n"))
    transcript = read_transcript(path)
    assert transcript.pairs()[0] == (None, b"P 1 E120.00 F0.955 S4.0 D650 H1\r\n")
    report = replay(open_profile("ps755-ref"), transcript)
    assert report.ok and report.pushed_pulses == 2


def test_recogniser_knows_every_request_of_a_binary_profile() -> None:
    profile = open_profile("ps1064-ref")
    recogniser = Recogniser(profile)
    kinds = {op.kind for op in recogniser.requests.values()}
    assert {"identity", "status", "get", "command"} <= kinds
    from laserlog.drivers.binary_frame import compile_layout

    layout = compile_layout(profile)
    spot = layout.params["spot"]
    frame = layout.frame(layout.set, bytes((spot.code,)) + spot.encode(7.5))
    assert recogniser.recognise(frame) == Operation("set", "spot", pytest.approx(7.5))


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty transcript"),
    ("not json\n", ":1: not a transcript line"),
    ('{"something": 1}\n', "not a laserlog transcript"),
    ('{"laserlog_transcript": 1}\n{"t": 0.1}\n', ':2: entry without "tx", "rx" or "event"'),
    ('{"laserlog_transcript": 1}\n{"tx": "x"}\n', ":2: entry without a time"),
])
def test_a_broken_transcript_is_refused_naming_the_line(tmp_path, content, message) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(content)
    with pytest.raises(LaserlogError, match=message.replace("(", r"\(")):
        read_transcript(path)


def test_replay_cli_refuses_a_broken_transcript_with_exit_2(tmp_path, capsys) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text("not json\n")
    assert main(["profiles", "replay", "ps755-ref", str(path)]) == 2
    assert "not a transcript line" in capsys.readouterr().err


def test_transcript_follows_a_reconnect(simulate, tmp_path) -> None:
    from laserlog.link.transcript_file import TranscriptWriter
    from laserlog.recording.recorder import Recorder, SessionInfo
    from laserlog.storage.store import Store

    profile = open_profile("ps755-ref")
    sim = simulate(profile, rate_hz=50)
    sim.console.firing = True
    store = Store(str(tmp_path / "log.db"))
    with TranscriptWriter(tmp_path / "t.jsonl", profile=profile.id, port=str(sim.path)) as w:
        recorder = Recorder(store, profile, str(sim.path), wrap_link=w.wrap)
        recorder.start(SessionInfo("tech-01", "C-3003", eyewear_checked=True))
        for _ in range(10):
            recorder.step(0.05)
        assert recorder.link is not None
        recorder.link.close()
        recorder._lost("test: link closed")
        wait_until(lambda: recorder.step(0.05) or recorder._link_up, 10, "reconnect")
        recorder.end()
    store.close()
    events = [c.event for c in read_transcript(tmp_path / "t.jsonl").chunks
              if c.direction == "event"]
    assert events.count("open") == 2
