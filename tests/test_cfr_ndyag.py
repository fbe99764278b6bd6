"""The bundled Q-switched Nd:YAG profile on the CFR command set: transcripts and a simulated pty."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.drivers_registry import driver_module
from laserlog.config.profile import Profile, load_profile
from laserlog.domain import dosimetry
from laserlog.domain.model import PulseReading
from laserlog.drivers import fixed_width
from laserlog.drivers.fixed_width import Driver as FixedWidthDriver
from laserlog.errors import ProfileError, ProtocolError
from laserlog.link.transport import Link
from laserlog.proving.transcript import TranscriptLink, expected_protocol
from laserlog.sim.console import interpolate
from laserlog.sim.engine import Simulator

from conftest import wait_until

PROFILE_PATH = bundled_profiles_dir() / "cfr-ndyag.toml"


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile(PROFILE_PATH)


# -- the profile ---------------------------------------------------------------------------


def test_profile_follows_the_cfr_serial_settings(profile: Profile) -> None:
    t = profile.transport
    assert profile.kind == "documented"
    assert (t.baud, t.bytesize, t.parity, t.stopbits) == (9600, 8, "N", 1)
    assert (t.write_terminator, t.read_terminator) == (b"\r\n", b"")
    assert (t.reply_prefix, t.reply_width) == (b"\r\n", 15)
    assert profile.identity.get is None
    assert driver_module(profile) is fixed_width


def test_pulses_are_nanosecond_1064_nm_counted_on_the_qswitch_counter(profile: Profile) -> None:
    pulses = profile.pulses
    assert pulses.mode == "polled"
    assert pulses.counter == "qswitch_counter"
    assert pulses.poll_interval_s == pytest.approx(0.1)
    assert pulses.fixed["pulse_duration"] == pytest.approx(7_000)
    assert dosimetry.regime(pulses.fixed["pulse_duration"]) == "ns"
    assert pulses.fixed["wavelength"] == pytest.approx(1064)


def test_output_energy_and_fluence_stay_in_the_nd_yag_ranges(profile: Profile) -> None:
    assert profile.pulses.energy_transfer is not None
    source, points = profile.pulses.energy_transfer
    lamp = profile.parameters[source]
    assert source == "lamp_energy"
    assert lamp.min is not None and lamp.max is not None
    assert interpolate(points, lamp.min) == pytest.approx(0.0, abs=0.01)
    top_j = interpolate(points, lamp.max)
    assert 0.8 <= top_j <= 1.2
    assert all(b[1] > a[1] for a, b in itertools.pairwise(points))
    for hp in profile.handpieces.values():
        assert hp.shape == "round" and hp.spot_mm is not None and 1 <= hp.spot_mm <= 10
        assert 0.5 <= top_j / hp.area_cm2(hp.spot_mm) <= 12


@pytest.mark.parametrize(("old", "new", "key"), [
    ('reply = "voltage  {value:04d} V"', 'reply = "voltage {value:04d} V"',
     "parameters.lamp_voltage.reply"),
    ('reply = "shutter opened "', 'reply = "shutter opened"', "commands.shutter_open.reply"),
    ("max = 99.99", "max = 100", "parameters.rep_rate.reply"),
])
def test_profile_load_rejects_a_reply_that_is_not_15_characters(
        tmp_path: Path, old: str, new: str, key: str) -> None:
    text = PROFILE_PATH.read_text(encoding="utf-8")
    assert text.count(old) == 1
    broken = tmp_path / "cfr-broken.toml"
    broken.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profile(broken)
    assert caught.value.key == key
    assert "exactly 15" in str(caught.value)


def test_profile_load_rejects_an_unknown_status_field(tmp_path: Path) -> None:
    text = PROFILE_PATH.read_text(encoding="utf-8")
    broken = tmp_path / "cfr-broken.toml"
    broken.write_text(text.replace("Q {qswitch:d}", "Q {qsw:d}"), encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profile(broken)
    assert caught.value.key == "status.reply"
    assert "{qsw}" in str(caught.value)


# -- transcripts ---------------------------------------------------------------------------

GETS = [
    ("lamp_voltage", b">V\r\n", b"\r\nvoltage  0920 V", 920.0),
    ("lamp_energy", b">ENE\r\n", b"\r\nenergy    11.0J", 11.0),
    ("rep_rate", b">F\r\n", b"\r\nfreq.  10.00 Hz", 10.0),
    ("qswitch_delay", b">W\r\n", b"\r\ndelay    150 uS", 150e-6),
    ("cooling_temperature", b">CG\r\n", b"\r\ntemp. CG 35 d  ", 35.0),
    ("lamp_counter", b">C\r\n", b"\r\nct LP 000123456", 123_456.0),
    ("qswitch_counter", b">CQ\r\n", b"\r\nct QS 000000123", 123.0),
]


def test_transcripts_cover_every_readable_parameter(profile: Profile) -> None:
    with expected_protocol(profile, []) as driver:
        assert sorted(driver.gettable()) == sorted(name for name, *_ in GETS)


@pytest.mark.parametrize(("name", "sent", "reply", "value"), GETS, ids=[g[0] for g in GETS])
def test_get_reads_the_fixed_width_reply(profile: Profile, name: str, sent: bytes,
                                         reply: bytes, value: float) -> None:
    with expected_protocol(profile, [(sent, reply)]) as driver:
        assert driver.get(name) == pytest.approx(value)


def test_get_reads_space_padded_numbers_too(profile: Profile) -> None:
    with expected_protocol(profile, [(b">ENE\r\n", b"\r\nenergy     7.5J")]) as driver:
        assert driver.get("lamp_energy") == pytest.approx(7.5)


SETS = [
    ("lamp_energy", 11.0, b">ENE110\r\n", b"\r\nenergy    11.0J"),
    ("lamp_energy", 7.5, b">ENE75\r\n", b"\r\nenergy    07.5J"),
    ("rep_rate", 10.0, b">F1000\r\n", b"\r\nfreq.  10.00 Hz"),
    ("rep_rate", 2.5, b">F250\r\n", b"\r\nfreq.  02.50 Hz"),
    ("lamp_voltage", 920.0, b">V920\r\n", b"\r\nvoltage  0920 V"),
    ("qswitch_delay", 180e-6, b">W180\r\n", b"\r\ndelay    180 uS"),
]


@pytest.mark.parametrize(("name", "value", "sent", "reply"), SETS)
def test_set_writes_the_scaled_value_and_reads_the_echo(profile: Profile, name: str, value: float,
                                                        sent: bytes, reply: bytes) -> None:
    with expected_protocol(profile, [(sent, reply)]) as driver:
        assert driver.set(name, value) == pytest.approx(value)
        assert driver.settings[name] == pytest.approx(value)


@pytest.mark.parametrize(("name", "value"), [
    ("lamp_energy", 23.5), ("lamp_energy", 6.9), ("rep_rate", 100.0), ("lamp_voltage", 1900.0),
    ("qswitch_delay", 50e-6),
])
def test_out_of_range_set_is_refused_before_sending(profile: Profile, name: str,
                                                     value: float) -> None:
    with expected_protocol(profile, []) as driver:
        with pytest.raises(ProtocolError, match="outside the profile's range"):
            driver.set(name, value)
        assert isinstance(driver.link, TranscriptLink)
        assert driver.link.sent == []
        assert name not in driver.settings


@pytest.mark.parametrize("name", ["cooling_temperature", "lamp_counter", "qswitch_counter"])
def test_read_only_parameters_cannot_be_set(profile: Profile, name: str) -> None:
    with (expected_protocol(profile, []) as driver,
          pytest.raises(ProtocolError, match="cannot be set")):
        driver.set(name, 1.0)


@pytest.mark.parametrize(("reply", "fault_code", "interlock_open", "firing"), [
    (b"\r\nI 0 F 0 S 0 Q 0", 0, False, False),
    (b"\r\nI 0 F 2 S 1 Q 2", 0, False, True),
    (b"\r\nI 0 F 6 S 1 Q 6", 0, False, True),   # started from an external trigger
    (b"\r\nI 0 F 1 S 1 Q 0", 0, False, False),  # single shot armed, not started
    (b"\r\nI 1 F 0 S 0 Q 0", 1, True, False),
])
def test_wor_status_gives_interlock_and_lamp_state(profile: Profile, reply: bytes, fault_code: int,
                                                   interlock_open: bool, firing: bool) -> None:
    with expected_protocol(profile, [(b">WOR\r\n", reply)]) as driver:
        status = driver.read_status()
    assert status is not None
    assert (status.fault_code, status.interlock_open, status.firing) == (
        fault_code, interlock_open, firing)


@pytest.mark.parametrize(("name", "sent"), [
    ("fire", b">A\r\n"), ("stop", b">S\r\n"), ("simmer", b">M\r\n"),
    ("qswitch_start", b">PQ\r\n"), ("qswitch_stop", b">SQ\r\n"), ("qswitch_single", b">OQ\r\n"),
])
def test_actions_are_sent_without_waiting_for_a_reply(profile: Profile, name: str,
                                                      sent: bytes) -> None:
    with expected_protocol(profile, [(sent, None)]) as driver:
        driver.command(name)  # waiting for a reply would time out with a ProtocolError
        assert isinstance(driver.link, TranscriptLink)
        assert driver.link.sent == [sent]
        assert not driver.pending


@pytest.mark.parametrize(("name", "sent", "reply"), [
    ("shutter_open", b">R1\r\n", b"\r\nshutter opened "),
    ("shutter_close", b">R\r\n", b"\r\nshutter closed "),
])
def test_shutter_commands_wait_for_their_state_reply(profile: Profile, name: str, sent: bytes,
                                                     reply: bytes) -> None:
    with expected_protocol(profile, [(sent, reply)]) as driver:
        driver.command(name)
        assert not driver.pending  # the reply was taken as the answer, not as garbage


def test_missing_shutter_reply_times_out(profile: Profile) -> None:
    with (expected_protocol(profile, [(b">R1\r\n", None)]) as driver,
          pytest.raises(ProtocolError, match="no reply")):
        driver.command("shutter_open")


# -- against the simulator on a pty --------------------------------------------------------


@pytest.fixture
def simulator(profile: Profile, simulate: Callable[..., Simulator]) -> Simulator:
    return simulate(profile, seed=11)  # conftest's fixture stops it after the test


@pytest.fixture
def driver(profile: Profile, simulator: Simulator) -> Iterator[FixedWidthDriver]:
    link = Link(str(simulator.path), profile.transport).open()
    try:
        yield FixedWidthDriver(profile, link)
    finally:
        link.close()


def test_simulator_answers_every_get_with_its_state(profile: Profile, simulator: Simulator,
                                                    driver: FixedWidthDriver) -> None:
    for name in driver.gettable():
        assert driver.get(name) == pytest.approx(simulator.console.value(name)), name
    settings = driver.read_settings()
    assert settings == pytest.approx({"lamp_voltage": 920.0, "lamp_energy": 11.0, "rep_rate": 10.0,
                                      "qswitch_delay": 150e-6, "cooling_temperature": 35.0,
                                      "lamp_counter": 123_456.0})
    assert driver.get("qswitch_counter") == 123


@pytest.mark.parametrize(("name", "value"), [
    ("lamp_voltage", 1800.0), ("lamp_voltage", 500.0), ("lamp_energy", 23.0),
    ("lamp_energy", 7.3), ("rep_rate", 99.99), ("rep_rate", 1.0), ("qswitch_delay", 999e-6),
    ("qswitch_delay", 100e-6),
])
def test_simulator_takes_every_set_and_reads_it_back(simulator: Simulator, driver: FixedWidthDriver,
                                                     name: str, value: float) -> None:
    assert driver.set(name, value) == pytest.approx(value)
    assert simulator.console.value(name) == pytest.approx(value)
    assert driver.get(name) == pytest.approx(value)


def test_simulator_keeps_its_setting_when_written_out_of_range(profile: Profile,
                                                              simulator: Simulator,
                                                              driver: FixedWidthDriver) -> None:
    reply = profile.parameters["lamp_energy"].reply
    fields = driver.exchange(">ENE300", reply)  # 30 J: bypasses the driver's own range check
    assert float(fields["value"]) == pytest.approx(11.0)
    assert simulator.console.value("lamp_energy") == pytest.approx(11.0)


def test_status_follows_fire_stop_and_interlock(simulator: Simulator, driver: FixedWidthDriver) -> None:
    idle = driver.read_status()
    assert idle is not None and (idle.interlock_open, idle.firing) == (False, False)
    driver.command("fire")
    wait_until(lambda: simulator.console.firing, what="the simulator to start firing")
    firing = driver.read_status()
    assert firing is not None and firing.firing is True
    driver.command("stop")
    stopped = driver.read_status()  # answered after the stop: the simulator reads in order
    assert stopped is not None and stopped.firing is False
    simulator.inject_fault(1)
    locked = driver.read_status()
    assert locked is not None
    assert (locked.fault_code, locked.interlock_open, locked.firing) == (1, True, False)
    driver.command("fire")  # refused by the open interlock: the lamp stays stopped
    still = driver.read_status()
    assert still is not None and still.firing is False


def test_fired_pulses_arrive_from_the_qswitch_counter(profile: Profile, simulator: Simulator,
                                                      driver: FixedWidthDriver) -> None:
    console = simulator.console
    driver.set("rep_rate", 25.0)  # several pulses per 100 ms poll: counter jumps count them all
    baseline = console.shot_counter
    driver.start()
    driver.command("fire")
    pulses: list[PulseReading] = []

    def collect() -> list[PulseReading]:
        found = [o for o in driver.poll(0.05) if isinstance(o, PulseReading)]
        pulses.extend(found)
        return pulses

    wait_until(lambda: len(collect()) >= 8, what="eight pulses from the Q-switch counter")
    driver.command("stop")
    wait_until(lambda: not console.firing, what="the simulator to stop firing")
    # Two round trips after stop: the simulator's loop turn that handled it has finished.
    driver.get("lamp_voltage")
    driver.get("lamp_voltage")
    final = console.shot_counter
    wait_until(lambda: collect() and pulses[-1].seq == final, what="the last counted pulse")
    seqs = [p.seq for p in pulses]
    assert seqs == list(range(baseline + 1, final + 1))
    assert len(pulses) == final - baseline == simulator.pulses_sent
    assert driver.get("qswitch_counter") == final


@given(st.lists(st.integers(min_value=0, max_value=999_999_999), min_size=1, max_size=20),
       st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8),
       st.binary(max_size=30))
def test_fixed_width_framer_cuts_replies_under_any_chunking_and_junk(counts, cuts, junk):
    from laserlog.drivers.line import FixedWidthFramer

    replies = [f"ct QS {n:09d}".encode() for n in counts]
    junk = junk.replace(b"\r\n", b"")
    stream = junk + b"".join(b"\r\n" + r for r in replies)
    framer = FixedWidthFramer(b"\r\n", 15)
    frames: list[bytes] = []
    pos, index = 0, 0
    while pos < len(stream):
        size = cuts[index % len(cuts)]
        frames.extend(framer.feed(stream[pos:pos + size]))
        pos, index = pos + size, index + 1
    assert [f for f in frames if f.startswith(b"ct QS ")] == replies
