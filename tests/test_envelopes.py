"""Skin-type envelopes: declared by the profile and the site, the stricter winning; held at
the start and against every pulse of a session through the real recorder and simulator."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_start_contract import cli as in_process

from laserlog.config.profile import load_profile
from laserlog.recording.contract import Contract
from laserlog.recording.recorder import SessionInfo
from laserlog.storage.store import Store

from conftest import START
from reviewkit import assert_clean_error, cli, record

#: A 755 nm console like ps755-ref whose profile declares envelopes for types V and VI.
PROFILE_WITH_ENVELOPES = """format = 2
extends = "ps755-ref"

[device]
id = "ps755-env"
name = "755 nm picosecond console with skin-type envelopes"

[envelope.V]
recommended_fluence_j_cm2 = 0.3
max_fluence_j_cm2 = 2.0

[envelope.VI]
avoid = true
"""


def start_of(skin: str) -> SessionInfo:
    return SessionInfo("tech-01", "C-5001", "left cheek", skin, eyewear_checked=True)


def events(db: Path, session_id: int, kind: str) -> list[tuple[str, int, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT severity, count, message FROM events WHERE session_id = ?"
                            " AND kind = ? ORDER BY id", (session_id, kind)).fetchall()


def fluences(db: Path, session_id: int) -> list[float]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT fluence_j_cm2 FROM pulses WHERE session_id"
                                           " = ?", (session_id,))]


def test_a_type_v_session_above_the_maximum_raises_counted_alarms_beside_the_site_limit(
        simulate, db_path):
    (db_path.parent / "site.toml").write_text(
        "[limits]\nmax_fluence_j_cm2 = 0.7\n\n[envelope.V.755]\nmax_fluence_j_cm2 = 0.5\n")
    sim = simulate("ps755-ref", seed=4, rate_hz=400)
    with Store(db_path) as store:
        rec = record(store, sim, start_of("V"), pulses=80)
    delivered = fluences(db_path, rec.session_id)
    assert delivered and min(delivered) > 0.5, "the simulator's ~0.95 J/cm2 is above 0.5"
    (held,) = events(db_path, rec.session_id, "envelope")
    assert held[0] == "info" and held[2] == (
        f"skin type V envelope on ps755-ref: 755 nm: at most 0.5 J/cm2 (site file "
        f"{db_path.parent / 'site.toml'} [envelope.V.755])")
    passed = events(db_path, rec.session_id, "out_of_envelope")
    assert {severity for severity, _, _ in passed} == {"alarm"}
    assert sum(count for _, count, _ in passed) == len(delivered)
    assert len(passed) < len(delivered), "counted per commit, never one event per pulse"
    assert all("above the skin type V maximum 0.5 J/cm2 at 755 nm (site file" in message
               for _, _, message in passed)
    # The same pulses passed the site's limit too: each event names its own rule and number.
    limit = events(db_path, rec.session_id, "out_of_limit")
    assert limit and all("above the site limit 0.7 J/cm2" in m for _, _, m in limit)
    with Store(db_path) as store:
        from laserlog.review.summary import format_session

        summary = format_session(store, rec.session_id)
    assert f"!! {len(delivered)} pulse(s) beyond the skin type's envelope" in summary


def test_above_the_recommended_fluence_is_a_warning_and_other_types_are_not_held(
        simulate, db_path):
    (db_path.parent / "site.toml").write_text(
        "[envelope.V]\nwavelength_nm = 755\nrecommended_fluence_j_cm2 = 0.5\n"
        "max_fluence_j_cm2 = 5\n")
    sim = simulate("ps755-ref", seed=5, rate_hz=400)
    with Store(db_path) as store:
        typed_v = record(store, sim, start_of("V"), pulses=30)
        typed_iii = record(store, sim, start_of("III"), pulses=10)
    passed = events(db_path, typed_v.session_id, "out_of_envelope")
    assert {severity for severity, _, _ in passed} == {"warning"}
    assert sum(count for _, count, _ in passed) == len(fluences(db_path, typed_v.session_id))
    assert "above the skin type V recommended 0.5 J/cm2 at 755 nm" in passed[0][2]
    assert events(db_path, typed_iii.session_id, "out_of_envelope") == []
    assert events(db_path, typed_iii.session_id, "envelope") == []


def test_where_profile_and_site_both_declare_one_the_stricter_value_wins(
        simulate, db_path, tmp_path):
    path = tmp_path / "ps755-env.toml"
    path.write_text(PROFILE_WITH_ENVELOPES)
    profile = load_profile(path)
    site = db_path.parent / "site.toml"
    site.write_text("[envelope.V.755]\nrecommended_fluence_j_cm2 = 0.5\nmax_fluence_j_cm2 = 0.6\n"
                    "\n[envelope.IV.755]\navoid = true\n")
    contract = Contract.for_database(db_path)
    # Lower recommended from the profile, lower maximum from the site.
    assert contract.envelope_line(profile, "5") == (
        "skin type V envelope on ps755-env: 755 nm: recommended up to 0.3 J/cm2 (profile "
        f"ps755-env [envelope.V]), at most 0.6 J/cm2 (site file {site} [envelope.V.755])")
    # Avoided where either avoids: the site for IV, the profile for VI.
    values = {"operator": "tech-01", "client": "C-5001", "area": "left cheek"}
    checks = {"eyewear": True, "consent": True, "sun_exposure": True}
    for skin, rule in (("IV", f"site file {site} [envelope.IV.755]"),
                       ("VI", "profile ps755-env [envelope.VI]")):
        refused = contract.refusals({**values, "skin": skin}, checks, profile=profile)
        assert refused["skin"].startswith(
            f"755 nm is not to be used on skin type {skin} ({rule}): no session starts")
    sim = simulate(profile, seed=6, rate_hz=400)
    with Store(db_path) as store:
        rec = record(store, sim, start_of("V"), pulses=20)
    passed = events(db_path, rec.session_id, "out_of_envelope")
    assert {severity for severity, _, _ in passed} == {"alarm"}
    assert "above the skin type V maximum 0.6 J/cm2 at 755 nm (site file" in passed[0][2]


def test_an_avoided_wavelength_is_refused_by_record_before_anything_is_written(tmp_path):
    db = tmp_path / "log.db"
    (tmp_path / "site.toml").write_text("[envelope.V.755]\navoid = true\n")
    start = [a if a != "III" else "V" for a in START]
    result = cli("record", "--profile", "ps755-ref", "--port", str(tmp_path / "no-console"),
                 "--operator", "tech-01", "--client", "C-5001", *start, "--db", str(db))
    assert_clean_error(result, "--skin-type: 755 nm is not to be used on skin type V (site "
                       f"file {tmp_path / 'site.toml'} [envelope.V.755]): no session starts")
    assert not db.exists()


def test_a_warn_only_site_starts_with_the_warning_and_alarms_each_pulse(simulate, db_path):
    (db_path.parent / "site.toml").write_text(
        '[envelope]\non_avoid = "warn"\n\n[envelope.V.755]\navoid = true\n')
    sim = simulate("ps755-ref", seed=7, rate_hz=100, fire=True)
    result = cli("record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
                 "tech-01", "--client", "C-5001", *[a if a != "III" else "V" for a in START],
                 "--pulses", "5", "--db", str(db_path))
    assert result.returncode == 0, result.stderr
    assert ("laserlog: skin type V envelope on ps755-ref: 755 nm is not to be used on skin "
            "type V") in result.stderr
    assert "each pulse at it raises an out_of_envelope alarm" in result.stderr
    passed = events(db_path, 1, "out_of_envelope")
    assert passed and {severity for severity, _, _ in passed} == {"alarm"}
    assert "at 755 nm, not to be used on skin type V" in passed[0][2]


_BAD_ENVELOPES = st.one_of(
    # a recommended fluence above the maximum
    st.tuples(st.sampled_from(["I", "III", "V"]), st.floats(0.1, 50), st.floats(0.01, 10)).map(
        lambda t: (f"[envelope.{t[0]}.755]\nmax_fluence_j_cm2 = {t[1]:.3f}\n"
                   f"recommended_fluence_j_cm2 = {t[1] + t[2]:.3f}\n",
                   f"envelope.{t[0]}.755.recommended_fluence_j_cm2")),
    # a skin type that is not a Fitzpatrick type
    st.sampled_from(["VII", "0", "7", "iv", "X", "Type5"]).map(
        lambda t: (f'[envelope."{t}"]\nwavelength_nm = 755\nmax_fluence_j_cm2 = 2\n',
                   f"envelope.{t}")),
    # a negative or zero number where a fluence, a spot or a wavelength belongs
    st.tuples(st.sampled_from(["max_fluence_j_cm2", "recommended_fluence_j_cm2", "spot_mm",
                               "wavelength_nm"]), st.floats(-100, 0)).map(
        lambda t: (f"[envelope.IV]\nmax_fluence_j_cm2 = 3\n{t[0]} = {t[1]:.3f}\n"
                   if t[0] != "max_fluence_j_cm2" else f"[envelope.IV]\n{t[0]} = {t[1]:.3f}\n",
                   f"envelope.IV.{t[0]}")),
)


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_BAD_ENVELOPES)
def test_a_bad_site_envelope_is_one_message_naming_file_and_key_exit_2(tmp_path, case):
    text, key = case
    folder = Path(tmp_path) / f"case-{abs(hash(text))}"
    folder.mkdir(exist_ok=True)
    (folder / "site.toml").write_text(text)
    db = folder / "log.db"
    result = cli("record", "--profile", "ps755-ref", "--port", str(folder / "no-console"),
                 "--operator", "tech-01", "--client", "C-5001", *START, "--db", str(db))
    assert_clean_error(result, str(folder / "site.toml"), key)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not db.exists()


def test_the_site_file_example_in_the_course_docs_loads_as_it_stands(tmp_path):
    from laserlog.config.siteconfig import load_site

    docs = (Path(__file__).resolve().parents[1] / "docs" / "courses.md").read_text()
    (example,) = [b for b in docs.split("```toml\n")[1:] if b.startswith("[envelope]")]
    (tmp_path / "site.toml").write_text(example.split("```")[0])
    rules = load_site(tmp_path / "site.toml").envelopes.rules
    assert [(r.skin_type, r.wavelength_nm, r.handpiece, r.avoid) for r in rules] == [
        ("IV", 1064.0, None, False), ("V", 532.0, None, True), ("V", 755.0, 2, False)]


def test_the_alarm_bar_orders_an_envelope_alarm_with_the_dose_alarms_and_leaves_warnings_off():
    from laserlog.storage.rows import EventRow
    from laserlog.tui.alarms import Alarm, alarm_word, by_severity

    above = EventRow(2.0, "out_of_envelope", "alarm", None, "pulse 9: ...")
    assert alarm_word(above) == "OUT OF ENVELOPE"
    assert alarm_word(EventRow(2.0, "out_of_envelope", "warning", None, "pulse 9: ...")) is None
    envelope = Alarm(1, "out_of_envelope", "OUT OF ENVELOPE", "", 1.0, 1)
    gap = Alarm(2, "gap", "PULSE GAP", "", 0.5, 1)
    link = Alarm(3, "link_lost", "LINK LOST", "", 3.0, 1)
    assert envelope.safety_class == 3
    assert [a.kind for a in by_severity([gap, envelope, link])] == ["link_lost",
                                                                   "out_of_envelope", "gap"]
    # Every dose alarm is class 3: a site limit and a pulse above the tested fluence too.
    limit = Alarm(4, "out_of_limit", "OUT OF LIMIT", "", 4.0, 1)
    tested = Alarm(5, "above_test_spot", "ABOVE TEST SPOT", "", 5.0, 1)
    assert limit.safety_class == tested.safety_class == 3
    assert [a.kind for a in by_severity([gap, tested, limit, link])] == [
        "link_lost", "out_of_limit", "above_test_spot", "gap"]  # oldest first in a class


# -- a two-wavelength console whose envelope avoids one of them ---------------------------------
#: The 1064/532 nm console with its wavelength settable but not reported back.
BLIND_WAVELENGTH = """format = 2
extends = "ps1064-ref"

[device]
id = "ps1064-blind"
name = "1064/532 nm console that does not report its selected wavelength"

[parameters.wavelength]
readable = false
"""


def record_v(sim, db: Path, *more: str) -> tuple[int, str]:
    """Record a type V session of C-5001 on the simulator's console, in this process."""
    start = [a if a != "III" else "V" for a in START]
    return in_process("record", "--profile", str(sim.profile.source), "--port", str(sim.path),
                      "--operator", "tech-01", "--client", "C-5001", *start, "--db", str(db),
                      *more)


def test_record_refuses_a_console_set_to_the_avoided_wavelength_and_touches_it_no_further(
        simulate, db_path, monkeypatch):
    site = db_path.parent / "site.toml"
    site.write_text("[envelope.V.532]\navoid = true\n")
    sim = simulate("ps1064-ref", seed=2, rate_hz=200)
    assert sim.console.set("wavelength", 532) == 0
    touched: list[str] = []
    for name in ("set", "run"):
        real = getattr(sim.console, name)
        monkeypatch.setattr(sim.console, name, lambda *a, _real=real, _name=name: (
            touched.append(f"{_name} {a}"), _real(*a))[1])
    status, err = record_v(sim, db_path, "--pulses", "3")
    assert status == 2, err
    assert err.strip().splitlines()[-1] == (
        "laserlog: error: the session was not started: the console is set to 532 nm, which is "
        f"not to be used on skin type V (site file {site} [envelope.V.532]): select another "
        "wavelength on the console (a site may allow it with a warning: [envelope] on_avoid "
        "= \"warn\")")
    assert touched == [], "a refused start only reads the console"
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    # Switched to 1064 nm on the console: the same start goes ahead, without a warning.
    sim.console.params["wavelength"] = 1064.0
    sim.console.firing = True
    status, err = record_v(sim, db_path, "--pulses", "3")
    assert status == 0, err
    assert events(db_path, 1, "envelope_avoid") == []


def test_pulses_at_the_avoided_wavelength_mid_session_still_raise_envelope_alarms(
        simulate, db_path):
    site = db_path.parent / "site.toml"
    site.write_text("[envelope.V.532]\navoid = true\n")
    sim = simulate("ps1064-ref", seed=3, rate_hz=200)

    def switch(recorder) -> None:
        if recorder.totals.pulses >= 10 and sim.console.params["wavelength"] != 532:
            with sim._lock:
                sim.console.set("wavelength", 532)

    with Store(db_path) as store:
        rec = record(store, sim, start_of("V"), pulses=40, during=switch)
    with sqlite3.connect(db_path) as conn:
        (at_532,) = conn.execute("SELECT count(*) FROM pulses WHERE session_id = ? AND "
                                 "wavelength_nm = 532", (rec.session_id,)).fetchone()
    assert at_532 >= 1
    passed = events(db_path, rec.session_id, "out_of_envelope")
    assert {severity for severity, _, _ in passed} == {"alarm"}
    assert sum(count for _, count, _ in passed) == at_532, "each 532 nm pulse, no 1064 nm one"
    assert all(f"at 532 nm, not to be used on skin type V (site file {site} [envelope.V.532])"
               in message for _, _, message in passed)


def test_an_unread_wavelength_starts_with_a_warning_unless_every_wavelength_is_avoided(
        simulate, db_path, tmp_path):
    path = tmp_path / "ps1064-blind.toml"
    path.write_text(BLIND_WAVELENGTH)
    profile = load_profile(path)
    site = db_path.parent / "site.toml"
    site.write_text("[envelope.V.532]\navoid = true\n")
    sim = simulate(profile, seed=4, rate_hz=200, fire=True)
    assert sim.console.set("wavelength", 532) == 0  # set, but not read: it does not refuse
    status, err = record_v(sim, db_path, "--pulses", "3")
    assert status == 0, err
    warning = ("the console does not report its selected wavelength: 532 nm is not to be "
               f"used on skin type V (site file {site} [envelope.V.532]); each pulse at it "
               "raises an out_of_envelope alarm")
    assert events(db_path, 1, "envelope_avoid") == [("warning", 1, warning)]
    with Store(db_path) as store:
        from laserlog.review.summary import format_session

        assert f"  !  envelope avoid: {warning}" in format_session(store, 1).splitlines()
    # Both wavelengths avoided: refused whatever the console is set to, nothing written.
    site.write_text("[envelope.V]\navoid = true\n")
    status, err = record_v(sim, db_path, "--pulses", "3")
    assert status == 2 and "--skin-type: 1064 nm is not to be used on skin type V" in err, err
    assert "532 nm is not to be used on skin type V" in err
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (1,)
