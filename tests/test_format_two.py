"""Profile format 2: status-line replies, late refusals, multi-command actions, enumerated
parameters, state flags, [bounds] and [envelope], and `profiles upgrade`."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laserlog.cli.main import main
from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.profile import load_profile
from laserlog.domain.model import LinkEvent, StatusReading
from laserlog.errors import ProfileError, ProtocolError
from laserlog.link.transcript_file import read_transcript
from laserlog.link.transport import Link
from laserlog.proving.conformance import run_suite
from laserlog.proving.replay import replay
from laserlog.sim.engine import Simulator

from conftest import START, wait_until

EXAMPLES = bundled_profiles_dir() / "examples"
STATUSLINE = EXAMPLES / "statusline-console.toml"
SILENT = EXAMPLES / "silent-console.toml"


@contextlib.contextmanager
def _console(path: Path, tmp_path: Path):
    """Yield a simulated console for the profile at `path` and a driver talking to it."""
    from laserlog.config.drivers_registry import driver_module

    profile = load_profile(path)
    with Simulator(profile, tmp_path / "c") as sim:
        link = Link(str(sim.path), profile.transport).open()
        try:
            yield sim, driver_module(profile).Driver(profile, link)
        finally:
            link.close()


@pytest.mark.parametrize("path", [STATUSLINE, SILENT], ids=lambda p: p.stem)
def test_example_profile_passes_the_conformance_suite(path: Path) -> None:
    report = run_suite(load_profile(path))
    assert report.ok, report.format()
    assert not [c for c in report.checks if c.group == "pulses" and c.status != "PASS"]


def test_status_line_state_is_read_after_each_query_and_recorded_as_state(tmp_path) -> None:
    with _console(STATUSLINE, tmp_path) as (sim, driver):
        assert driver.get("energy") == pytest.approx(0.3)
        first = [o for o in driver.pending if isinstance(o, StatusReading)]
        assert first and first[-1].state == ("standby",) and first[-1].fault_code == 0
        driver.pending.clear()
        assert driver.profile.parameters["qswitch"].shown(driver.get("qswitch")) == "REP"
        assert not driver.pending  # the same state is not reported twice
        driver.command("fire")
        driver.get("rep_rate")
        firing = [o for o in driver.pending if isinstance(o, StatusReading)]
        assert firing[-1].state == ("firing",) and firing[-1].firing


def test_enumerated_parameter_takes_words_and_refuses_others(tmp_path) -> None:
    with _console(STATUSLINE, tmp_path) as (sim, driver):
        driver.set("qswitch", 2.0)
        assert sim.device.heard[-1][1] == b"QSW SINGLE"
        assert driver.get("qswitch") == 2.0
        with pytest.raises(ProtocolError, match="outside the profile's range"):
            driver.set("qswitch", 3.0)


def test_multi_command_fire_sends_each_command_in_turn(tmp_path) -> None:
    with _console(STATUSLINE, tmp_path) as (sim, driver):
        driver.command("fire")
        heard = [line for _, line in sim.device.heard]
        assert heard[-2:] == [b"LASER ON", b"SHUTTER OPEN"]
        assert sim.console.firing
        driver.command("stop")
        assert not sim.console.firing


def test_late_refusal_is_blamed_on_the_silent_set_not_the_next_command(tmp_path) -> None:
    with _console(SILENT, tmp_path) as (sim, driver):
        unchecked = type(driver)(driver.profile.without_ranges(), driver.link)
        with pytest.raises(ProtocolError, match=r"refused 'EN 400.0': value out of range"):
            unchecked.set("energy", 0.4)
        assert unchecked.get("energy") == pytest.approx(0.12)  # the next query is not blamed
        unchecked.set("energy", 0.2)  # taken: nothing comes within the window
        # A refusal arriving after the window still names the set that caused it.
        sim.link.write(b"??\r\n")
        wait_until(lambda: (unchecked.pump(0.05), unchecked.pending)[1], 5, "late line")
        event = unchecked.pending[-1]
        assert isinstance(event, LinkEvent) and event.kind == "error_reply"
        assert "refused 'EN 200.0'" in event.detail


def _profile_text(extra: str = "", fire: str = '"FIRE"', stream: str = '"PUSH 1"') -> str:
    return (SILENT.read_text()
            .replace('send = "FIRE 1"', f"send = {fire}")
            .replace('send = "PUSH 1"', f"send = {stream}") + extra)


@pytest.mark.parametrize(("fire", "stream", "extra", "key", "problem"), [
    ('"PUSH 1"', '"PUSH 1"', "", "commands.fire.send", "as commands.stream_on does"),
    ('["ARM", "PUSH 1"]', '"PUSH 1"', "", "commands.fire.send", "as commands.stream_on does"),
    ('"EN 5.0"', '"PUSH 1"', "", "commands.fire.send", "parameters.energy.set"),
    ('"SP?"', '"PUSH 1"', "", "commands.fire.send", "which reads parameters.spot"),
    ('"FIRE 1"', '"PUSH 1"', "\n[bounds.energy]\nmax = 500\n", "bounds.energy.max",
     "outside the parameter's range"),
    ('"FIRE 1"', '"PUSH 1"', "\n[envelope.IV]\nrecommended_fluence_j_cm2 = 3\n"
     "max_fluence_j_cm2 = 2\n", "envelope.IV.recommended_fluence_j_cm2", "above max"),
    ('"FIRE 1"', '"PUSH 1"', "\n[envelope.VII]\nmax_fluence_j_cm2 = 2\n", "envelope.VII",
     "not a Fitzpatrick skin type"),
    ('"FIRE 1"', '"PUSH 1"', "\n[envelope.V]\navoid = [532]\n", "envelope.V.avoid",
     "not one of the console's wavelengths"),
])
def test_check_refuses_what_cannot_work_with_file_and_key(tmp_path, capsys, fire, stream,
                                                          extra, key, problem) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(_profile_text(extra, fire, stream))
    assert main(["profiles", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}" in err and key in err and problem in err, err
    assert "Traceback" not in err


def test_bounds_and_envelopes_are_kept_on_the_profile(tmp_path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(_profile_text("\n[bounds.energy]\nmax = 250\n\n[envelope.I]\n"
                                  "recommended_fluence_j_cm2 = 2\nmax_fluence_j_cm2 = 4\n\n"
                                  "[envelope.VI]\navoid = true\n", '"FIRE 1"'))
    profile = load_profile(path)
    assert profile.bounds == {"energy": (None, pytest.approx(0.25))}
    assert profile.envelopes["I"].max_fluence_j_cm2 == 4
    assert profile.envelopes["VI"].avoid_wavelengths_nm == (755.0,)


def test_a_state_reply_field_is_refused_not_left_to_crash_the_simulator(tmp_path) -> None:
    path = tmp_path / "state.toml"
    path.write_text(SILENT.read_text().replace('reply = "EN {value:.1f}"',
                                               'reply = "EN {value:.1f}\\r\\nS {state:d}"'))
    with pytest.raises(ProfileError, match=r"parameters.energy.reply.*unknown field \{state\}"):
        load_profile(path)


FORMAT_ONE = """# A console of ours (kept comment)
format = 1   # the format line's own comment

[device]
id = "old-console"
name = "Old console"
kind = "reference"
protocol = "line"
model = "OLD1"

[parameters.energy]
quantity = "energy"
unit = "mJ"
min = 5
max = 400
hard_max = 4000   # a comment on the renamed key
get = "EN?"
reply = "EN {value:.1f}"

[commands.fire]
send = "FIRE"

[pulses]
mode = "pushed"
line = "P {seq:d} {energy:.1f}"

[pulses.units]
energy = "mJ"

[pulses.fixed]
pulse_duration = "750 ps"
"""


def test_check_names_a_format_one_file_and_upgrade_rewrites_it_keeping_comments(
        tmp_path, capsys) -> None:
    path = tmp_path / "old-console.toml"
    path.write_text(FORMAT_ONE)
    assert main(["profiles", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "is profile format 1" in out and f"laserlog profiles upgrade {path}" in out
    assert main(["profiles", "upgrade", str(path)]) == 0
    assert "format 1 -> 2" in capsys.readouterr().out
    text = path.read_text()
    assert text == (FORMAT_ONE.replace("format = 1 ", "format = 2 ")
                    .replace("hard_max = 4000", "plausible_max = 4000"))
    profile = load_profile(path)
    assert profile.format_version == 2 and profile.parameters["energy"].hard_max == 4.0
    assert main(["profiles", "check", str(path)]) == 0
    assert "format 1" not in capsys.readouterr().out


def test_format_one_refuses_format_two_constructs_and_names_the_fix(tmp_path) -> None:
    path = tmp_path / "old.toml"
    path.write_text(FORMAT_ONE.replace('send = "FIRE"', 'send = ["ARM", "FIRE"]'))
    with pytest.raises(ProfileError, match="profiles upgrade FILE"):
        load_profile(path)


@settings(deadline=None)
@given(st.text(alphabet=st.sampled_from("ab =#[]\n\"1.x_"), max_size=80))
def test_upgrade_of_any_text_answers_in_one_message_or_loads(tmp_path_factory, tail) -> None:
    path = tmp_path_factory.mktemp("u") / "fuzz.toml"
    path.write_text(FORMAT_ONE + tail)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["profiles", "upgrade", str(path)])
    assert status in (0, 2), err.getvalue()
    if status == 2:
        assert err.getvalue().startswith("INVALID ") and str(path) in err.getvalue()
        assert path.read_text() == FORMAT_ONE + tail  # a refused upgrade leaves the file
    else:
        assert load_profile(path).format_version == 2


def test_status_line_console_records_and_replays(tmp_path, capsys) -> None:
    profile = load_profile(STATUSLINE)
    db, transcript = tmp_path / "log.db", tmp_path / "t.jsonl"
    with Simulator(profile, tmp_path / "c", rate_hz=10) as sim:
        sim.console.firing = True  # fired from the console's own panel
        assert main(["record", "--profile", str(STATUSLINE), "--port", str(sim.path),
                     "--operator", "tech-01", "--client", "C-1042", *START, "--pulses", "8",
                     "--db", str(db), "--transcript", str(transcript)]) == 0
    sent = [c.data for c in read_transcript(transcript).chunks if c.direction == "tx"]
    assert b"LASER ON\r" not in sent  # never fired by laserlog
    report = replay(profile, read_transcript(transcript))
    assert report.ok, report.format()
