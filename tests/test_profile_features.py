"""What a profile can express, one feature per test profile in tests/profiles/.

Each feature is proved twice: by transcript (the exact bytes, no I/O) and against the
profile's own simulator over a real pseudo-terminal.
"""

from __future__ import annotations

import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import Profile, load_profile, parse_profile
from laserlog.domain.model import LinkEvent, PulseReading, StatusReading
from laserlog.errors import ProfileError, ProtocolError
from laserlog.link.transcript_file import TranscriptWriter, read_transcript
from laserlog.link.transport import Link
from laserlog.proving.transcript import expected_protocol
from laserlog.sim.console import Console
from laserlog.sim.engine import Simulator

from conftest import wait_until

HERE = Path(__file__).resolve().parent
PROFILES = HERE / "profiles"


def profile(name: str) -> Profile:
    return load_profile(PROFILES / f"{name}.toml")


@contextmanager
def connected(sim: Simulator, p: Profile, *, transcript: Path | None = None) -> Iterator:
    """Yield a driver on an open link to the simulator (optionally spied into a transcript)."""
    link: Link = Link(str(sim.path), p.transport).open()
    writer = TranscriptWriter(transcript, profile=p.id, port=str(sim.path)) if transcript else None
    if writer is not None:
        link = writer.wrap(link)
    try:
        yield driver_module(p).Driver(p, link)
    finally:
        link.close()
        if writer is not None:
            writer.close()


def pulses_from(driver, count: int, timeout_s: float = 10.0) -> list[PulseReading]:
    seen: list[PulseReading] = []
    wait_until(lambda: seen.extend(o for o in driver.poll(0.05) if isinstance(o, PulseReading))
               or len(seen) >= count, timeout_s, f"{count} pulses")
    return seen


# -- command echo ------------------------------------------------------------------------------

ECHO = profile("echo-console")


def test_echo_of_each_command_is_skipped_before_its_reply():
    with expected_protocol(ECHO, [(b"EN?\r\n", b"EN?\r\nEN 300.0\r\n"),
                                  (b"EN 250.0\r\n", b"EN 250.0\r\nOK\r\n"),
                                  (b"FIRE 1\r\n", b"FIRE 1\r\nERR 5\r\n")]) as d:
        assert d.get("energy") == pytest.approx(0.3)
        assert d.set("energy", 0.25) == 0.25
        with pytest.raises(ProtocolError, match="error 5"):
            d.command("fire")
        assert not [o for o in d.poll(0) if isinstance(o, LinkEvent)]


def test_echoing_console_over_pty_reads_clean_and_the_echo_is_on_the_wire(simulate, tmp_path):
    sim = simulate(ECHO, rate_hz=50)
    with connected(sim, ECHO, transcript=tmp_path / "echo.jsonl") as driver:
        assert driver.identify().serial == "FTE-0001"
        driver.set("spot", 6.0)
        assert driver.get("spot") == pytest.approx(6.0)
        driver.start()
        driver.command("fire")
        pulses = pulses_from(driver, 10)
        driver.command("stop")
    assert driver.garbled == 0
    assert [p.seq for p in pulses] == list(range(pulses[0].seq, pulses[0].seq + len(pulses)))
    received = b"".join(c.data for c in read_transcript(tmp_path / "echo.jsonl").chunks
                        if c.direction == "rx")
    assert b"SP?\r\nSP 6.0\r\n" in received


def test_a_driver_without_echo_would_take_the_echo_for_garbage(simulate):
    base = profile("feature-base")
    sim = simulate(ECHO)
    with connected(sim, base) as driver:
        driver.get("energy")
        driver.poll(0.1)
    assert driver.garbled >= 1


# -- minimum gap between commands --------------------------------------------------------------

GAP = profile("gap-console")


def _command_times(sim: Simulator, p: Profile, path: Path) -> tuple[list[float], list[float]]:
    """Send eight queries; return when each left the host and when each reached the console."""
    with connected(sim, p, transcript=path) as driver:
        for _ in range(4):
            driver.get("energy")
            driver.get("spot")
    sent = [c.t_s for c in read_transcript(path).chunks if c.direction == "tx"]
    heard = [t for t, line in sim.device.heard if line in (b"EN?", b"SP?")]
    return sent, heard


def test_command_gap_is_kept_between_consecutive_commands(simulate, tmp_path):
    assert GAP.transport.command_gap_s == pytest.approx(0.040)
    sent, heard = _command_times(simulate(GAP), GAP, tmp_path / "gap.jsonl")
    assert len(sent) == 8 and len(heard) == 8
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 0.040 * 0.97, gaps
    # As the console saw them: the arrivals are spread by the gap too (scheduling aside).
    assert heard[-1] - heard[0] >= 7 * 0.040 * 0.6


def test_command_gap_counts_from_a_late_reply_not_from_our_send(simulate, tmp_path):
    from laserlog.sim.faults import parse_spec

    # Each reply comes 100 ms after its command: more than the 40 ms gap, so a gap counted
    # from our own send would let the next command go out the moment the reply is read.
    sim = simulate(GAP, faults=parse_spec("latency=0.1"))
    path = tmp_path / "late.jsonl"
    with connected(sim, GAP, transcript=path) as driver:
        for _ in range(3):
            driver.get("energy")
            driver.get("spot")
    chunks = [c for c in read_transcript(path).chunks if c.direction in ("tx", "rx")]
    after_reply = [b.t_s - a.t_s for a, b in zip(chunks, chunks[1:], strict=False)
                   if a.direction == "rx" and b.direction == "tx"]
    assert len(after_reply) == 5
    assert min(after_reply) >= 0.040 * 0.9, after_reply


def test_without_a_gap_the_same_commands_follow_each_other_at_once(simulate, tmp_path):
    base = profile("feature-base")
    sent, _ = _command_times(simulate(base), base, tmp_path / "nogap.jsonl")
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert min(gaps) < 0.040


# -- keep-alive and the console's watchdog -----------------------------------------------------

WATCHDOG = profile("watchdog-console")


def test_keepalive_is_read_from_the_profile():
    keepalive = WATCHDOG.keepalive
    assert keepalive is not None
    assert (keepalive.command, keepalive.interval_s, keepalive.timeout_s, keepalive.fault) == (
        "ping", pytest.approx(0.15), pytest.approx(0.5), 50)
    assert profile("feature-base").keepalive is None


def test_console_watchdog_stops_firing_after_host_silence_and_recovers_when_host_speaks():
    console = Console(WATCHDOG)
    console.firing = True
    assert console.check_watchdog(10.0) is None  # armed only once the host has spoken
    console.heard_host(10.0)
    assert console.check_watchdog(10.4) is None
    assert console.check_watchdog(10.6) == 50
    assert not console.firing and console.fault_code == 50
    console.heard_host(11.0)
    assert console.fault_code == 0 and not console.firing


def test_driver_keeps_the_console_firing_with_keepalives_then_silence_trips_it(simulate):
    sim = simulate(WATCHDOG, rate_hz=40)
    with connected(sim, WATCHDOG) as driver:
        driver.identify()
        driver.start()
        driver.command("fire")
        pulses: list[PulseReading] = []
        until = time.monotonic() + 1.5  # three watchdog periods
        while time.monotonic() < until:
            pulses.extend(o for o in driver.poll(0.05) if isinstance(o, PulseReading))
        assert sim.console.firing
        pings = [t for t, line in sim.device.heard if line == b"PING"]
        assert len(pings) >= 7
        assert max(b - a for a, b in zip(pings, pings[1:], strict=False)) < 0.5
        assert len(pulses) >= 40
        # The host falls silent: the console stops and pushes its watchdog fault.
        wait_until(lambda: not sim.console.firing, 3.0, "the watchdog to stop emission")
        observed = driver.poll(0.2)
        assert any(isinstance(o, StatusReading) and o.fault_code == 50 for o in observed)
        status = driver.read_status()  # the host speaks again: the fault clears
        assert status is not None and status.fault_code == 0 and status.firing is False


# -- NAME = value replies closed by a status line ----------------------------------------------

NAMEVAL = profile("nameval-console")


def test_name_value_replies_end_with_a_status_line():
    with expected_protocol(NAMEVAL, [
        (b"IDENT\r", b"MODEL = NV755\r\nSERIAL = NV-0042\r\nFIRMWARE = 4.1\r\nSTATUS 0\r\n"),
        (b"ENERGY?\r", b"ENERGY = 150.0 mJ\r\nSTATUS 0\r\n"),
        (b"ENERGY 200.0\r", b"ENERGY = 200.0 mJ\r\nSTATUS 0\r\n"),
        (b"LASER ON\r", b"STATUS 0\r\n"),
        (b"ENERGY 300.0\r", b"STATUS 7\r\n"),
    ]) as d:
        ident = d.identify()
        assert (ident.model, ident.serial, ident.firmware) == ("NV755", "NV-0042", "4.1")
        assert d.get("energy") == pytest.approx(0.15)
        assert d.set("energy", 0.2) == 0.2
        d.command("fire")
        with pytest.raises(ProtocolError, match="error 7"):
            d.set("energy", 0.3)


def test_a_reply_the_status_line_closes_must_match_its_template():
    with expected_protocol(NAMEVAL, [(b"ENERGY?\r", b"POWER = 3 W\r\nSTATUS 0\r\n")]) as d:
        with pytest.raises(ProtocolError, match="expected 'ENERGY = "):
            d.get("energy")


def test_name_value_console_over_pty(simulate):
    sim = simulate(NAMEVAL, rate_hz=50)
    with connected(sim, NAMEVAL) as driver:
        assert driver.identify().serial == "NV-0001"
        settings = driver.read_settings()
        assert settings["pulse_duration"] == pytest.approx(750)
        unchecked = driver_module(NAMEVAL).Driver(NAMEVAL.without_ranges(), driver.link)
        with pytest.raises(ProtocolError, match="error 2"):
            unchecked.set("energy", 0.5)
        status = driver.read_status()
        assert status is not None and status.firing is False
        driver.start()
        driver.command("fire")
        pulses = pulses_from(driver, 5)
        driver.command("stop")
    assert pulses[0].energy_j == pytest.approx(0.15, rel=0.2)


# -- addressed framing -------------------------------------------------------------------------

ADDRESSED = profile("addressed-console")


def test_addressed_lines_carry_sender_and_receiver():
    with expected_protocol(ADDRESSED, [(b"[PC>L1]EN?\r\n", b"[L1>PC]EN 300.0\r\n"),
                                       (b"[PC>L1]EN 250.0\r\n", b"[L1>PC]OK\r\n")]) as d:
        assert d.get("energy") == pytest.approx(0.3)
        d.set("energy", 0.25)


def test_lines_between_other_parties_are_ignored_and_unaddressed_ones_are_garbled():
    bus = (b"[L2>PC]P 1 E1.0 S4.0 H1\r\n"      # another console on the bus
           b"[L1>XX]FAULT 10\r\n"              # our console, to another host
           b"P 3 E1.0 S4.0 H1\r\n"             # no address at all
           b"[L1>PC]P 7 E300.0 S4.0 H1\r\n")
    with expected_protocol(ADDRESSED, [(None, bus)]) as d:
        observed = d.poll(0)
    assert [o.seq for o in observed if isinstance(o, PulseReading)] == [7]
    assert d.foreign == 2
    assert [o.raw for o in observed if isinstance(o, LinkEvent)] == [b"P 3 E1.0 S4.0 H1"]


def test_addressed_console_over_pty_answers_only_its_own_address(simulate):
    sim = simulate(ADDRESSED, rate_hz=50)
    with connected(sim, ADDRESSED) as driver:
        assert driver.identify().serial == "FTA-0001"
        assert driver.get("energy") == pytest.approx(0.3)
        driver.link.write(b"[PC>L2]EN?\r\n")  # for another console on the bus
        assert driver.link.read_available(0.3) == b""
        driver.start()
        driver.command("fire")
        assert len(pulses_from(driver, 5)) >= 5
        driver.command("stop")
    assert driver.garbled == 0


# -- SCPI-style queries ------------------------------------------------------------------------

SCPI = profile("scpi-console")


def test_scpi_sets_are_confirmed_by_reading_the_error_queue():
    with expected_protocol(SCPI, [
        (b"*IDN?\n", b"LASERCO,QS532,QS-0099,2.3\n"),
        (b":SOUR:ENER?\n", b"2.5000E-01\n"),
        (b":SOUR:ENER 3.0000E-01\n", b""),
        (b"SYST:ERR?\n", b'0,"No error"\n'),
        (b":OUTP ON\n", b""),
        (b"SYST:ERR?\n", b'-241,"Hardware missing"\n'),
    ]) as d:
        assert d.identify().serial == "QS-0099"
        assert d.get("energy") == pytest.approx(0.25)
        assert d.set("energy", 0.3) == 0.3
        with pytest.raises(ProtocolError, match='error -241, Hardware missing'):
            d.command("fire")


def test_scpi_console_over_pty_refuses_with_its_own_error_codes(simulate):
    sim = simulate(SCPI, rate_hz=40)
    with connected(sim, SCPI) as driver:
        assert driver.identify().model == "QS532"
        driver.set("rep_rate", 8.0)
        assert driver.get("rep_rate") == pytest.approx(8.0)
        unchecked = driver_module(SCPI).Driver(SCPI.without_ranges(), driver.link)
        with pytest.raises(ProtocolError, match="error -222, value out of range"):
            unchecked.set("energy", 0.9)
        driver.start()
        driver.command("fire")
        pulses = pulses_from(driver, 4)
        driver.command("stop")
    assert pulses[1].seq == pulses[0].seq + 1


# -- status words with named bits --------------------------------------------------------------

BITS = profile("bitstatus-console")


@pytest.mark.parametrize(("reply", "fault", "interlock", "firing"), [
    (b"SW 0000\r\n", 0, False, False),
    (b"SW 0001\r\n", 0, False, True),
    (b"SW 0012\r\n", 10, True, False),     # bits 1 and 4: the lowest named fault wins
    (b"SW 0201\r\n", 21, False, True),     # bit 9: coolant flow, while firing
])
def test_status_word_bits_are_decoded_by_name(reply, fault, interlock, firing):
    with expected_protocol(BITS, [(b"SW?\r\n", reply)]) as d:
        status = d.read_status()
    assert status is not None
    assert (status.fault_code, status.interlock_open, status.firing) == (fault, interlock, firing)


def test_status_word_round_trips_through_the_simulator(simulate):
    sim = simulate(BITS)
    with connected(sim, BITS) as driver:
        sim.inject_fault(20)
        driver.poll(0.1)
        status = driver.read_status()
        assert status is not None and status.fault_code == 20 and not status.interlock_open
    assert BITS.status.encode_word(20, False, True) == 0b10001


@pytest.mark.parametrize("fault", [0, 10, 20, 21])
@pytest.mark.parametrize("firing", [False, True])
def test_status_word_encodes_and_decodes_the_same_state(fault, firing):
    status = BITS.status
    interlock = bool(fault and status.faults[fault].interlock)
    word = status.encode_word(fault, interlock, firing)
    assert status.decode_word(word) == (fault, interlock, firing)


def test_scpi_status_byte_reports_the_interlock_as_the_tables_interlock_fault():
    with expected_protocol(SCPI, [(b"*STB?\n", b"2\n")]) as d:
        status = d.read_status()
    assert status is not None and status.fault_code == 10 and status.interlock_open


# -- multi-line replies ------------------------------------------------------------------------

MULTI = profile("multiline-console")


def test_multi_line_reply_is_read_line_by_line_with_pushed_pulses_in_between():
    with expected_protocol(MULTI, [(b"ID?\r\n", b"MODEL FTM1064\r\nP 5 E300.0 S4.0 H1\r\n"
                                                b"SERIAL X-9\r\nFIRMWARE 7\r\n")]) as d:
        ident = d.identify()
        observed = d.poll(0)
    assert (ident.model, ident.serial, ident.firmware) == ("FTM1064", "X-9", "7")
    assert [o.seq for o in observed if isinstance(o, PulseReading)] == [5]


def test_a_stray_line_before_a_multi_line_reply_is_reported_and_skipped():
    with expected_protocol(MULTI, [(b"ST?\r\n", b"noise\r\nFLT 20\r\nSTATE 0 1\r\n")]) as d:
        status = d.read_status()
        observed = d.poll(0)
    assert status is not None and (status.fault_code, status.firing) == (20, True)
    assert [o.raw for o in observed if isinstance(o, LinkEvent)] == [b"noise"]


def test_multi_line_console_over_pty(simulate):
    sim = simulate(MULTI)
    with connected(sim, MULTI) as driver:
        assert driver.identify().serial == "FTM-0001"
        sim.inject_fault(20)
        driver.poll(0.1)
        status = driver.read_status()
    assert status is not None and status.fault_code == 20


# -- data bits, parity, stop bits --------------------------------------------------------------

SERIAL7E2 = profile("serial7e2-console")


def test_seven_data_bits_even_parity_two_stop_bits_are_validated_and_opened(simulate):
    t = SERIAL7E2.transport
    assert (t.bytesize, t.parity, t.stopbits) == (7, "E", 2)
    sim = simulate(SERIAL7E2)
    with connected(sim, SERIAL7E2) as driver:
        port = driver.link._port
        assert (port.bytesize, port.parity, port.stopbits) == (7, "E", 2)
        # The tty itself was asked for two stop bits (a pty keeps what it can).
        assert termios.tcgetattr(port.fd)[2] & termios.CSTOPB
        assert driver.identify().serial == "F7E2-0001"
        assert driver.get("energy") == pytest.approx(0.3)


def test_seven_bit_profile_refuses_a_reply_with_an_eight_bit_character(tmp_path):
    text = (PROFILES / "serial7e2-console.toml").read_text()
    text = text.replace("[simulator]", '[parameters.energy]\nreply = "EN {value:.1f} \u00b0"\n\n'
                                       "[simulator]")
    path = tmp_path / "serial7e2-console.toml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "feature-base.toml").write_text((PROFILES / "feature-base.toml").read_text())
    with pytest.raises(ProfileError, match="parameters.energy.reply: has a character that 7 "
                                           "data bits cannot carry"):
        load_profile(path)


# -- family inheritance and handpiece tables ---------------------------------------------------

CHILD = profile("family-child")


def test_child_inherits_and_overrides_tables_key_by_key():
    base = profile("feature-base")
    assert CHILD.extends == (str(PROFILES / "feature-base.toml"),)
    assert CHILD.identity.model == "FTC1064"
    energy = CHILD.parameters["energy"]
    assert (energy.min, energy.max, energy.initial) == (pytest.approx(0.01), pytest.approx(1.2),
                                                        pytest.approx(0.5))
    assert energy.get is not None and energy.get.text == "EN?"  # inherited
    assert CHILD.commands.keys() == base.commands.keys()
    assert CHILD.transport == base.transport


def test_child_handpieces_merge_by_code():
    hps = CHILD.handpieces
    assert sorted(hps) == [1, 2, 3, 4]
    assert hps[2].spot_mm == 6 and hps[2].shape == "round" and hps[2].name == "Round 6 mm"
    assert hps[3].name == "Square 5 mm"  # untouched parent entry
    assert hps[4].fractional and hps[4].beamlet_count == 144
    assert sorted(CHILD.status.faults) == [10, 20, 30]


def test_child_fires_through_its_own_handpiece_on_the_simulator(simulate):
    sim = simulate(CHILD, rate_hz=50)
    with connected(sim, CHILD) as driver:
        driver.set("handpiece", 4)
        driver.start()
        driver.command("fire")
        pulses = pulses_from(driver, 3)
        driver.command("stop")
    assert {p.handpiece for p in pulses} == {4}
    assert pulses[0].spot_mm == pytest.approx(8.0)


def test_parent_found_on_the_profile_search_path(tmp_path, monkeypatch):
    monkeypatch.setenv("LASERLOG_PROFILES", str(PROFILES))
    child = tmp_path / "elsewhere.toml"
    child.write_text('format = 1\nextends = "feature-base"\n\n[device]\nid = "elsewhere"\n'
                     'model = "ELS1"\n')
    loaded = load_profile(child)
    assert loaded.identity.model == "ELS1" and "energy" in loaded.parameters


def test_a_bundled_profile_can_be_extended(tmp_path):
    child = tmp_path / "ps755-clinic.toml"
    child.write_text('format = 1\nextends = "ps755-ref"\n\n[device]\nid = "ps755-clinic"\n\n'
                     "[parameters.energy]\nmax = 300\n")
    loaded = load_profile(child)
    assert loaded.parameters["energy"].max == pytest.approx(0.3)
    assert loaded.handpieces[2].fractional


def test_parse_profile_refuses_extends_it_cannot_follow():
    with pytest.raises(ProfileError, match="extends: cannot be followed here"):
        parse_profile({"format": 1, "extends": "x", "device": {}}, "raw")


def test_error_in_the_parent_is_named_from_the_child(tmp_path):
    parent_text = (PROFILES / "feature-base.toml").read_text()
    (tmp_path / "parent.toml").write_text(parent_text.replace('firmware = "3.0"',
                                                              'firmware = "3.0"\nnois = 1'))
    child = tmp_path / "kid.toml"
    child.write_text('format = 1\nextends = "parent"\n\n[device]\nid = "kid"\n')
    with pytest.raises(ProfileError) as caught:
        load_profile(child)
    message = str(caught.value)
    assert message.startswith(f"{child}: simulator.nois: unknown key (inherited from "
                              f"{tmp_path / 'parent.toml'}:"), message


def test_profiles_list_shows_a_family_member(tmp_path, capsys):
    from laserlog.cli.main import main

    assert main(["profiles", "list", "--profiles", str(PROFILES)]) == 0
    out = capsys.readouterr().out
    assert "family-child" in out and "INVALID" not in out.split("family-child")[1].split("\n")[0]



def test_a_parent_in_a_profiles_folder_is_found_by_check_and_record_options(tmp_path, capsys):
    from laserlog.cli.main import main
    from laserlog.config.profile import open_profile

    child = tmp_path / "kid-console.toml"
    child.write_text('format = 1\nextends = "feature-base"\n\n[device]\nid = "kid-console"\n')
    assert main(["profiles", "check", str(child)]) == 2
    assert "extends: no such profile" in capsys.readouterr().err
    assert main(["profiles", "check", str(child), "--profiles", str(PROFILES)]) == 0
    assert open_profile(str(child), [str(PROFILES)]).identity.model == "FTB1064"


def test_an_echo_that_comes_after_the_next_command_is_still_recognised(tmp_path):
    # Without an acknowledgement a command takes no reply: its echo may arrive only with
    # the answer to the next command.
    text = (PROFILES / "feature-base.toml").read_text().replace('ok = "OK"', "echo = true")
    path = tmp_path / "feature-base.toml"
    path.write_text(text)
    quiet = load_profile(path)
    with expected_protocol(quiet, [(b"STREAM 1\r\n", b""),
                                   (b"EN?\r\n", b"STREAM 1\r\nEN?\r\nEN 300.0\r\n")]) as d:
        d.command("stream_on")
        assert d.get("energy") == pytest.approx(0.3)
        assert not [o for o in d.poll(0) if isinstance(o, LinkEvent)]
