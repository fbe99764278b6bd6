"""A console (or its cable) can send anything: readings are claims, checked before they count.

Through a real pty: hostile pulse lines among valid ones never become pulses or energy; each
is an invalid_reading event and counts as a shot of unknown dose. A polled shot counter is
believed only as far as the console could have fired.
"""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laserlog.config.profile import open_profile
from laserlog.link.driver import Driver
from laserlog.link.plausibility import INT64_MAX, LIFETIME_SHOTS
from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.review.summary import format_session
from laserlog.sim.engine import Simulator
from laserlog.storage.store import Store

from conftest import wait_until

PROFILE = open_profile("ps755-ref")
INFO = SessionInfo("tech-07", "C-1042", "left cheek", "III", eyewear_checked=True)

#: One valid pulse: energy in mJ, fluence J/cm2, spot mm, duration ps (within the profile).
valid_values = st.fixed_dictionaries({
    "energy": st.floats(1, 500), "fluence": st.floats(0.1, 10), "spot": st.floats(2, 6),
    "duration": st.integers(550, 750)})
#: Values no console could report: each replaces one field of a valid pulse.
hostile_field = st.one_of(
    st.tuples(st.just("energy"), st.sampled_from(["-1.00", "0.00", "5001.00", "1e308", "-0"])),
    st.tuples(st.just("fluence"), st.sampled_from(["0.000", "-0.5", "101", "1e308"])),
    st.tuples(st.just("spot"), st.sampled_from(["0.0", "-1.0", "0.1", "61", "1e300"])),
    st.tuples(st.just("duration"), st.sampled_from(["0", "7501", "1" + "0" * 200])),
    st.tuples(st.just("handpiece"), st.sampled_from(["-1", str(2**63), str(10**30)])),
    st.tuples(st.just("seq"), st.sampled_from(["-5", str(2**63), str(10**25)])),
)
lines = st.lists(st.one_of(valid_values, hostile_field), min_size=1, max_size=40)


def _line(seq: str, energy: str, fluence: str, spot: str, duration: str, handpiece: str) -> bytes:
    return f"P {seq} E{energy} F{fluence} S{spot} D{duration} H{handpiece}\r\n".encode()


def _script(items: list) -> tuple[bytes, list[float], int]:
    """Return the bytes a hostile console sends, the valid pulses' energies (J) and the
    number of hostile lines. Every line but one with a bad sequence number takes the next
    sequence number: a shot whose reading is bad still counts as fired."""
    out, energies, hostile, seq = [], [], 0, 0
    for item in items:
        fields = {"energy": "120.00", "fluence": "0.955", "spot": "4.0", "duration": "650",
                  "handpiece": "1"}
        if isinstance(item, dict):
            seq += 1
            fields.update(energy=f"{item['energy']:.2f}", fluence=f"{item['fluence']:.3f}",
                          spot=f"{item['spot']:.1f}", duration=str(item["duration"]))
            energies.append(float(fields["energy"]) / 1000)
            out.append(_line(str(seq), **fields))
            continue
        hostile += 1
        name, value = item
        if name == "seq":
            out.append(_line(value, **fields))
            continue
        seq += 1
        fields[name] = value
        out.append(_line(str(seq), **fields))
    return b"".join(out), energies, hostile


def _record_script(tmp_path, data: bytes, expect_pulses: int, expect_unknown: int) -> int:
    with Simulator(PROFILE, tmp_path / "console", seed=1) as sim:
        store = Store(tmp_path / "log.db")
        recorder = Recorder(store, PROFILE, str(sim.path))
        session_id = recorder.start(INFO)
        sim.link.write(data)
        wait_until(lambda: (recorder.step(0.02), recorder.totals.pulses == expect_pulses
                            and recorder.totals.unknown_dose == expect_unknown)[1],
                   20, f"{expect_pulses} pulses and {expect_unknown} unknown doses")
        recorder.end("test done")
        store.close()
    return session_id


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(items=lines)
def test_hostile_lines_never_become_pulses_and_each_shot_is_counted(tmp_path_factory, items):
    tmp_path = tmp_path_factory.mktemp("hostile")
    data, energies, hostile = _script(items)
    session_id = _record_script(tmp_path, data, len(energies), hostile)
    conn = sqlite3.connect(tmp_path / "log.db")
    stored = conn.execute("SELECT energy_j FROM pulses WHERE session_id = ? ORDER BY seq",
                          (session_id,)).fetchall()
    assert [round(e, 6) for (e,) in stored] == [round(e, 6) for e in energies]
    kinds = dict(conn.execute("SELECT kind, count(*) FROM events WHERE session_id = ?"
                              " GROUP BY kind", (session_id,)).fetchall())
    assert kinds.get("invalid_reading", 0) == hostile
    assert "gap" not in kinds and "counter_reset" not in kinds  # bad shots still counted
    total, missing, status = conn.execute(
        "SELECT total_energy_j, missing_pulses, status FROM sessions WHERE id = ?",
        (session_id,)).fetchone()
    assert total == pytest.approx(sum(energies))
    assert (missing, status) == (0, "ended")
    assert all(e > 0 for (e,) in stored)


def test_summary_shows_shots_of_unknown_dose_beside_the_totals(tmp_path):
    data, energies, hostile = _script([{"energy": 100, "fluence": 1, "spot": 4, "duration": 650},
                                       ("energy", "-1.00"), ("spot", "0.0")])
    session_id = _record_script(tmp_path, data, 1, 2)
    with Store(tmp_path / "log.db", readonly=True) as store:
        text = format_session(store, session_id)
    assert "pulses    1   total energy 0.1000 J" in text
    assert "+ 2 shot(s) of unknown dose" in text
    assert "energy -0.001 J is not physical" in text


def test_sequence_jumps_past_a_lifetime_of_shots_are_misreads_not_missing_pulses(tmp_path):
    big = INT64_MAX - 1
    data = b"".join(_line(str(seq), "120.00", "0.955", "4.0", "650", "1")
                    for seq in (1, 2**62, big, big + 1))
    session_id = _record_script(tmp_path, data, 4, 0)
    conn = sqlite3.connect(tmp_path / "log.db")
    kinds = [k for (k,) in conn.execute("SELECT kind FROM events WHERE session_id = ?",
                                        (session_id,))]
    assert kinds.count("counter_implausible") == 2
    assert conn.execute("SELECT missing_pulses FROM sessions WHERE id = ?",
                        (session_id,)).fetchone() == (0,)
    assert LIFETIME_SHOTS < 2**62 - 1


# -- a pushed sequence number is held to the console's rate ---------------------------------
def _pushed(lines: list[tuple[float, int]], *, baseline: tuple[int, float] | None = None,
            profile=PROFILE) -> list[tuple[str, int | None, str]]:
    """Complete pulse lines (arrival time s, sequence number) of one valid pulse each;
    return the events as (kind, missing pulses, message)."""
    from laserlog.domain.model import PulseReading
    from laserlog.recording.completion import PulseCompleter

    completer = PulseCompleter(profile, 1)
    if baseline is not None:
        completer.baseline_seq, completer.baseline_unix_s = baseline
    events: list = []
    for t, seq in lines:
        row = completer.pulse(PulseReading(t, seq, 0.12, 0.955, 4.0, 650.0, handpiece=1), events)
        assert row is not None
    return [(e.kind, e.missing_pulses, e.message) for e in events]


def test_a_pushed_jump_faster_than_the_console_fires_is_implausible_not_missing_pulses():
    # ps755-ref fires at most 10 Hz: 0.1 s after pulse 100, 5000 cannot be the next one seen.
    events = _pushed([(0.0, 100), (0.1, 5000), (0.2, 5001), (0.3, 5002)])
    assert [(kind, missing) for kind, missing, _ in events] == [("counter_implausible", None)]
    message = events[0][2]
    assert "from 100 to 5000" in message and "at most 9 at 10 Hz" in message
    assert "not 4899 lost pulses" in message


def test_a_pushed_jump_the_console_could_have_fired_is_missing_pulses():
    # 30 s after pulse 100 a 10 Hz console may have fired up to 1205 shots: 1100 is believed.
    events = _pushed([(0.0, 100), (30.0, 1201), (30.1, 1202)])
    assert [(kind, missing) for kind, missing, _ in events] == [("gap", 1100)]


def test_a_few_dropped_pushed_lines_are_still_missing_pulses():
    # Four lines dropped in a burst that arrived at once (no time between them).
    events = _pushed([(0.0, 1), (0.0, 2), (0.0, 7), (0.1, 8)])
    assert events == [("gap", 4, "4 pulse(s) missing between 2 and 7")]


def test_a_flipped_digit_in_a_pushed_line_is_a_misread_and_counting_carries_on():
    events = _pushed([(0.0, 154), (0.1, 100155), (0.2, 156), (0.3, 160)])
    assert [(kind, missing) for kind, missing, _ in events] == [
        ("counter_implausible", None), ("counter_misread", None), ("gap", 3)]
    assert "sequence number 100155 between 154 and 156" in events[1][2]


def test_a_pushed_jump_from_the_counter_at_start_is_held_to_the_rate_too():
    assert [k for k, _, _ in _pushed([(0.5, 90_000)], baseline=(10, 0.0))] == [
        "counter_implausible"]
    assert _pushed([(0.5, 20)], baseline=(10, 0.0)) == [
        ("gap", 9, "9 pulse(s) missing between the counter at start (10) and 20")]


def test_a_profile_top_rate_decides_what_a_pushed_jump_may_be():
    from dataclasses import replace

    lines = [(0.0, 100), (0.1, 500)]  # 399 missing in 0.1 s
    fast = replace(PROFILE, pulses=replace(PROFILE.pulses, max_rate_hz=1000))
    assert [(k, n) for k, n, _ in _pushed(lines, profile=fast)] == [("gap", 399)]
    assert [(k, n) for k, n, _ in _pushed(lines)] == [("counter_implausible", None)]


# -- a polled shot counter is evidence, not truth ------------------------------------------
class ScriptedCounter(Driver):
    """A polled console whose counter readings (and the time of each) the test writes."""

    def __init__(self, readings: list[tuple[float, float]]) -> None:
        super().__init__(open_profile("cfr-ndyag"), link=None)  # type: ignore[arg-type]
        self.readings = list(readings)
        self.now_s = 0.0
        self.monotonic = lambda: self.now_s

    def get(self, name: str) -> float:
        self.now_s, value = self.readings.pop(0)
        return value

    def poll_all(self) -> tuple[list[int], list[str]]:
        """Read the counter until the script ends; return the pulse seqs and event texts."""
        self._last_counter, self._counter_read_at = None, 0.0
        self._poll_counter()
        while self.readings:
            self._poll_counter()
        seqs = [o.seq for o in self.pending if hasattr(o, "seq")]
        texts = [f"{o.kind}: {o.detail}" for o in self.pending if hasattr(o, "kind")]
        return seqs, texts


def test_a_flipped_digit_in_the_counter_fabricates_no_pulses():
    # 10 Hz console read every 0.1 s: 154 -> 100154 (a flipped digit) -> 155 -> 156
    driver = ScriptedCounter([(0.0, 154), (0.1, 100154), (0.2, 155), (0.3, 156)])
    seqs, texts = driver.poll_all()
    assert seqs == [155, 156]
    assert any(t.startswith("counter_implausible: shot counter read 100154 after 154")
               for t in texts)
    assert any("counter_misread" in t and "100154" in t for t in texts)


def test_a_huge_jump_is_refused_at_once_without_building_a_pulse_per_count():
    driver = ScriptedCounter([(0.0, 10), (0.1, 900_000_010), (0.2, 11)])
    seqs, texts = driver.poll_all()
    assert seqs == [11]
    assert len(driver.pending) < 10


def test_a_dip_then_recovery_is_a_misread_and_a_confirmed_dip_is_a_restart():
    misread = ScriptedCounter([(0.0, 158), (0.1, 159), (0.2, 60), (0.3, 161)])
    seqs, texts = misread.poll_all()
    assert seqs == [159, 160, 161]
    assert any("counter_misread: shot counter read 60 between 159 and 161" in t for t in texts)
    restart = ScriptedCounter([(0.0, 158), (0.1, 159), (0.2, 1), (0.3, 2)])
    seqs, _ = restart.poll_all()
    assert seqs == [159, 1, 2]  # the completer reports the restart when seq goes back


def test_a_confirmed_jump_is_believed_from_its_new_value_without_counting_the_gap():
    driver = ScriptedCounter([(0.0, 100), (0.1, 5000), (0.2, 5001)])
    seqs, texts = driver.poll_all()
    assert seqs == [5001]
    assert any(t.startswith("counter_jump: shot counter moved from 100 to 5000") for t in texts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 2.0), st.integers(-10, 2**64)), min_size=1,
                max_size=30))
def test_no_counter_sequence_yields_more_pulses_than_the_console_could_fire(steps):
    t, readings = 0.0, [(0.0, 0.0)]
    for dt, value in steps:
        t += dt
        readings.append((t, float(value)))
    driver = ScriptedCounter(readings)
    seqs, _ = driver.poll_all()
    rate = driver._max_rate_hz
    assert len(seqs) <= (rate * 4 * t + 5) * 2 + 5
    assert all(0 <= s <= INT64_MAX for s in seqs)


@pytest.mark.parametrize("name, value, what", [
    ("rep_rate", -5.0, "repetition rate -5 Hz is not physical"),
    ("wavelength", 1e300, "wavelength 1e+300 nm is not physical"),
    ("handpiece", -1.0, "handpiece setting -1.0 is not a code"),
    ("handpiece", 1e30, "handpiece setting 1e+30 is not a code"),
])
def test_a_pulse_completed_from_hostile_settings_is_no_pulse(tmp_path, name, value, what):
    """The console reads back a setting no console could have; pulses completed from it are
    shots of unknown dose, never stored values."""
    profile = open_profile("ps755-ref")
    line = b"P 1 E120.00 F0.955 S4.0 D650\r\n"  # no handpiece, wavelength or rate on the line
    from dataclasses import replace

    from laserlog.config.template import compile_template

    profile = replace(profile, pulses=replace(profile.pulses, line=compile_template(
        "P {seq:d} E{energy:.2f} F{fluence:.3f} S{spot:.1f} D{pulse_duration:d}")))
    with Simulator(profile, tmp_path / "console", seed=1) as sim:
        sim.console.params[name] = value
        store = Store(tmp_path / "log.db")
        recorder = Recorder(store, profile, str(sim.path))
        session_id = recorder.start(INFO)
        sim.link.write(line)
        wait_until(lambda: (recorder.step(0.02), recorder.totals.unknown_dose == 1)[1], 20,
                   "the shot of unknown dose")
        recorder.end("test done")
        store.close()
    conn = sqlite3.connect(tmp_path / "log.db")
    assert conn.execute("SELECT count(*) FROM pulses").fetchone() == (0,)
    (message,) = conn.execute("SELECT message FROM events WHERE session_id = ? AND kind = "
                              "'invalid_reading'", (session_id,)).fetchone()
    assert what in message


def test_a_profile_declares_its_own_hard_bound_and_top_rate(tmp_path):
    from laserlog.config.catalog import bundled_profiles_dir
    from laserlog.config.profile import load_profile
    from laserlog.link.plausibility import hard_bounds, max_rate_hz

    text = (bundled_profiles_dir() / "ps755-ref.toml").read_text()
    text = text.replace('[parameters.energy]\n', '[parameters.energy]\nplausible_max = 600\n', 1)
    text = text.replace('[pulses]\n', '[pulses]\nmax_rate_hz = 12\n', 1)
    path = tmp_path / "ps755-ref.toml"
    path.write_text(text)
    profile = load_profile(path)
    assert hard_bounds(profile, "energy")[1] == pytest.approx(0.6)  # 600 mJ, not 10 x 500 mJ
    assert max_rate_hz(profile) == 12
    data, energies, hostile = _script([{"energy": 590, "fluence": 4.7, "spot": 4, "duration": 650},
                                       ("energy", "700.00")])
    with Simulator(profile, tmp_path / "console", seed=1) as sim:
        store = Store(tmp_path / "log.db")
        recorder = Recorder(store, profile, str(sim.path))
        session_id = recorder.start(INFO)
        sim.link.write(data)
        wait_until(lambda: (recorder.step(0.02), recorder.totals.pulses == 1
                            and recorder.totals.unknown_dose == 1)[1], 20, "both shots")
        recorder.end("test done")
        store.close()
    conn = sqlite3.connect(tmp_path / "log.db")
    kinds = [k for (k,) in conn.execute("SELECT kind FROM events WHERE session_id = ?",
                                        (session_id,))]
    assert "out_of_limit" in kinds and "invalid_reading" in kinds  # 590 stored, 700 refused


def test_a_hard_bound_below_the_range_is_refused_at_check(tmp_path):
    from laserlog.config.catalog import bundled_profiles_dir
    from laserlog.config.profile import load_profile
    from laserlog.errors import ProfileError

    text = (bundled_profiles_dir() / "ps755-ref.toml").read_text()
    path = tmp_path / "ps755-ref.toml"
    path.write_text(text.replace('[parameters.energy]\n', '[parameters.energy]\nplausible_max = 400\n'))
    with pytest.raises(ProfileError, match="below the range's maximum"):
        load_profile(path)


def test_a_pulse_whose_energy_cannot_be_worked_out_is_said_to_be_of_unknown_dose(tmp_path):
    profile = open_profile("fx1550-ref")
    with Simulator(profile, tmp_path / "console", seed=1) as sim:
        store = Store(tmp_path / "log.db")
        recorder = Recorder(store, profile, str(sim.path))
        session_id = recorder.start(INFO)
        sim.link.write(b"T 1 Z20.0 S7.0 D10.00 H9\r\nT 2 Z20.0 S7.0 D10.00 H9\r\n")
        wait_until(lambda: (recorder.step(0.02), recorder.totals.pulses == 2)[1], 20,
                   "two pulses from an unknown handpiece")
        recorder.end("test done")
        text = format_session(store, session_id)
        store.close()
    conn = sqlite3.connect(tmp_path / "log.db")
    assert conn.execute("SELECT count(*) FROM events WHERE kind = 'energy_unknown'"
                        ).fetchone() == (1,)  # said once, not per pulse
    assert "+ 2 shot(s) of unknown dose" in text
