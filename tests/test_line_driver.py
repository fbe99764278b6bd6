"""The line-protocol driver, by transcript and against the simulator over a real pty."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import open_profile
from laserlog.domain.model import LinkEvent, PulseReading, StatusReading
from laserlog.drivers.line import LineFramer
from laserlog.errors import IdentityMismatch, ProtocolError
from laserlog.link.transport import Link
from laserlog.proving.transcript import TranscriptMismatch, expected_protocol

from conftest import wait_until

PROFILE = open_profile("ps755-ref")


def test_get_converts_console_units_to_canonical():
    with expected_protocol(PROFILE, [(b"EN?\r\n", b"EN 120.0\r\n"), (b"PW?\r\n", b"PW 650\r\n")]) as d:
        assert d.get("energy") == pytest.approx(0.120)
        assert d.get("pulse_duration") == pytest.approx(650.0)


def test_set_sends_console_units_and_accepts_ok():
    with expected_protocol(PROFILE, [(b"EN 250.0\r\n", b"OK\r\n")]) as d:
        assert d.set("energy", 0.25) == 0.25


def test_set_outside_profile_range_is_refused_before_sending():
    with expected_protocol(PROFILE, []) as d, pytest.raises(ProtocolError, match="outside"):
        d.set("energy", 0.9)


def test_error_reply_raises_protocol_error_with_code():
    with expected_protocol(PROFILE, [(b"FIRE 1\r\n", b"ERR 5\r\n")]) as d:
        with pytest.raises(ProtocolError, match="error 5"):
            d.command("fire")


def test_pushed_pulses_between_query_and_reply_are_kept():
    burst = b"".join(f"P {n} E120.00 F0.955 S4.0 D650 H1\r\n".encode() for n in range(1, 4))
    with expected_protocol(PROFILE, [(b"RR?\r\n", burst + b"RR 5.0\r\n")]) as d:
        assert d.get("rep_rate") == 5.0
        pulses = [o for o in d.poll(0) if isinstance(o, PulseReading)]
    assert [p.seq for p in pulses] == [1, 2, 3]
    assert pulses[0].energy_j == pytest.approx(0.12)
    assert pulses[0].fluence_j_cm2 == pytest.approx(0.955)


def test_garbled_lines_become_link_events_not_pulses():
    with expected_protocol(PROFILE, [(None, b"P 1 E12x.0 F0.9 S4.0 D650 H1\r\n\x00\xffzz\r\n"
                                           b"P 2 E120.00 F0.955 S4.0 D650 H1\r\n")]) as d:
        obs = d.poll(0)
    assert [o.seq for o in obs if isinstance(o, PulseReading)] == [2]
    assert sum(isinstance(o, LinkEvent) and o.kind == "garbled" for o in obs) == 2


def test_pushed_fault_line_reports_interlock():
    with expected_protocol(PROFILE, [(None, b"FAULT 10\r\n")]) as d:
        (status,) = d.poll(0)
    assert isinstance(status, StatusReading)
    assert status.fault_code == 10 and status.interlock_open


def test_transcript_catches_a_wrong_command():
    with pytest.raises(TranscriptMismatch):
        with expected_protocol(PROFILE, [(b"EN?\r\n", b"EN 1.0\r\n")]) as d:
            d.get("spot")


def test_identify_refuses_another_model():
    with expected_protocol(PROFILE, [(b"ID?\r\n", b"OTHER9,X1,1.0\r\n")]) as d:
        with pytest.raises(IdentityMismatch, match="OTHER9"):
            d.identify()


@given(st.lists(st.binary(min_size=0, max_size=40).filter(lambda b: b"\r\n" not in b), max_size=20),
       st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=10))
def test_line_framer_reassembles_lines_under_any_chunking(lines, cuts):
    stream = b"".join(line + b"\r\n" for line in lines)
    framer = LineFramer(b"\r\n", 10_000)
    out: list[bytes] = []
    pos = 0
    index = 0
    while pos < len(stream):
        size = cuts[index % len(cuts)]
        out.extend(framer.feed(stream[pos:pos + size]))
        pos += size
        index += 1
    assert out == lines


def test_driver_talks_to_simulator_over_pty(simulate):
    sim = simulate("ps755-ref", seed=3, rate_hz=100)
    with Link(str(sim.path), PROFILE.transport) as link:
        driver = driver_module(PROFILE).Driver(PROFILE, link)
        identity = driver.identify(expect_serial="R755-0001")
        assert identity.serial == "R755-0001"
        driver.set("energy", 0.2)
        assert driver.get("fluence") == pytest.approx(0.2 / (3.14159265 * 0.4**2 / 4), rel=1e-3)
        driver.start()
        driver.command("fire")
        seen: list[PulseReading] = []
        wait_until(lambda: seen.extend(o for o in driver.poll(0.05) if isinstance(o, PulseReading))
                   or len(seen) >= 50, what="50 pulses")
    seqs = [p.seq for p in seen]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for p in seen:
        assert p.energy_j == pytest.approx(p.fluence_j_cm2 * 3.14159265 * 0.4**2 / 4, rel=0.01)


def test_simulator_refuses_out_of_range_set_with_error_reply(simulate):
    sim = simulate("ps755-ref")
    with Link(str(sim.path), PROFILE.transport) as link:
        driver = driver_module(PROFILE).Driver(PROFILE, link)
        # Bypass the driver's own range check to see the console's answer.
        with pytest.raises(ProtocolError, match="error 2"):
            driver.exchange("EN 900.0", driver.profile.parameters["energy"].set_reply or driver._ok)
