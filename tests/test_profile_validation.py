"""A broken profile is refused with a message naming the file, the key, the value, the need.

Each case takes the bundled ps755-ref.toml, breaks one thing and loads the copy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from laserlog.config.profile import load_profile
from laserlog.errors import ProfileError

PROFILES = Path(__file__).resolve().parents[1] / "profiles"
REFERENCE = (PROFILES / "ps755-ref.toml").read_text(encoding="utf-8")


def mutated(old: str, new: str) -> str:
    """Return the reference profile with its one occurrence of `old` replaced by `new`."""
    assert REFERENCE.count(old) == 1, f"{old!r} must occur once in ps755-ref.toml"
    return REFERENCE.replace(old, new)


def refused(tmp_path: Path, text: str) -> tuple[Path, ProfileError]:
    """Write `text` as a profile, load it, and return the path and the error it raised."""
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    return path, info.value


def assert_names(error: ProfileError, path: Path, key: str, *values: str) -> None:
    """Assert the message names the file, the key path and each of `values`."""
    message = str(error)
    assert message.startswith(str(path)), message
    assert error.source == str(path)
    assert error.key == key, message
    assert f": {key}: " in message, message
    for value in values:
        assert value in message, message


@pytest.mark.parametrize("name", ["ps755-ref", "fx1550-ref"])
def test_bundled_reference_profiles_load(name: str) -> None:
    profile = load_profile(PROFILES / f"{name}.toml")
    assert profile.id == name
    assert profile.kind == "reference"


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    text = mutated("baud = 115200", "baud = = 115200")
    line = text.splitlines().index("baud = = 115200") + 1
    path, error = refused(tmp_path, text)
    assert error.line == line
    assert str(error).startswith(f"{path}:{line}: TOML syntax error")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("timeout_s = 1.0", "timeout_s = 1.0\nbaudrate = 9600", "transport.baudrate"),
        ("initial = 120\n", "initial = 120\nmaximum = 600\n", "parameters.energy.maximum"),
        (
            'name = "Zoom 2-6 mm"',
            'name = "Zoom 2-6 mm"\nspot_size_mm = 4',
            "handpieces[0].spot_size_mm",
        ),
        ("noise = 0.03", "noise = 0.03\nseed = 4", "simulator.seed"),
        ("format = 2\n", 'format = 2\ncolour = "red"\n', "colour"),
        ('ok = "OK"', 'ok = "OK"\nbusy = "BUSY"', "line.busy"),
    ],
)
def test_unknown_key_is_named_with_its_path(tmp_path: Path, old: str, new: str, key: str) -> None:
    path, error = refused(tmp_path, mutated(old, new))
    assert_names(error, path, key, "unknown key")


@pytest.mark.parametrize(
    ("old", "new", "key", "value"),
    [
        ('unit = "mJ"', 'unit = "ns"', "parameters.energy.unit", "'ns'"),
        ('energy = "mJ"', 'energy = "ns"', "pulses.units.energy", "'ns'"),
        ('spot = "mm"\npulse_duration', 'spot = "mJ"\npulse_duration', "pulses.units.spot", "'mJ'"),
        (
            'unit = "J/cm^2"\nmin = 0.1',
            'unit = "J/cm"\nmin = 0.1',
            "parameters.fluence.unit",
            "'J/cm'",
        ),
        ('unit = "mJ"', 'unit = "bananas"', "parameters.energy.unit", "'bananas'"),
        (
            'pulse_duration = "ps"',
            'pulse_duration = "ps"\n\n[pulses.fixed]\nwavelength = "755 ps"',
            "pulses.fixed.wavelength",
            "'755 ps'",
        ),
    ],
)
def test_unit_of_the_wrong_dimension_is_refused(
    tmp_path: Path, old: str, new: str, key: str, value: str
) -> None:
    path, error = refused(tmp_path, mutated(old, new))
    assert_names(error, path, key, value)
    assert error.expected is not None


@pytest.mark.parametrize(
    ("old", "new", "key", "value"),
    [
        ("max = 500", "max = nan", "parameters.energy.max", "nan"),
        ("timeout_s = 1.0", "timeout_s = inf", "transport.timeout_s", "inf"),
        ("spot_mm = 6", "spot_mm = nan", "handpieces[1].spot_mm", "nan"),
        ("noise = 0.03", "noise = -nan", "simulator.noise", "nan"),
    ],
)
def test_nan_and_infinity_are_refused(
    tmp_path: Path, old: str, new: str, key: str, value: str
) -> None:
    path, error = refused(tmp_path, mutated(old, new))
    assert_names(error, path, key, "not a finite number", f"got {value}")


@pytest.mark.parametrize(
    ("old", "new", "key", "value"),
    [
        ("timeout_s = 1.0", "timeout_s = 0", "transport.timeout_s", "0"),
        ("timeout_s = 1.0", "timeout_s = -1.0", "transport.timeout_s", "-1.0"),
        ("spot_min_mm = 2", "spot_min_mm = -2", "handpieces[0].spot_min_mm", "-2"),
        (
            "beamlet_energy_fraction = 0.7",
            "beamlet_energy_fraction = 0",
            "handpieces[1].beamlet_energy_fraction",
            "0",
        ),
        (
            'mode = "pushed"',
            'mode = "pushed"\npoll_interval_ms = 0',
            "pulses.poll_interval_ms",
            "0",
        ),
        ('unit = "mJ"', 'unit = "mJ"\nwire_scale = -10', "parameters.energy.wire_scale", "-10"),
    ],
)
def test_zero_or_negative_where_positive_is_required(
    tmp_path: Path, old: str, new: str, key: str, value: str
) -> None:
    path, error = refused(tmp_path, mutated(old, new))
    assert_names(error, path, key, "must be positive", f"got {value}")


@pytest.mark.parametrize(
    ("old", "new", "key", "values"),
    [
        ("min = 1\nmax = 500", "min = 600\nmax = 500", "parameters.energy.max", ("600", "500")),
        (
            "spot_min_mm = 2\nspot_max_mm = 6",
            "spot_min_mm = 6\nspot_max_mm = 2",
            "handpieces[0].spot_max_mm",
            ("2.0", "6"),
        ),
        ("initial = 120", "initial = 501", "parameters.energy.initial", ("501", "500")),
        (
            'min = 0\nget = "SC?"',
            'max = 10\ninitial = 11\nget = "SC?"',
            "parameters.shot_counter.initial",
            ("11", "at most 10"),
        ),
    ],
)
def test_inverted_or_violated_range_is_refused(
    tmp_path: Path, old: str, new: str, key: str, values: tuple[str, ...]
) -> None:
    path, error = refused(tmp_path, mutated(old, new))
    assert_names(error, path, key, *values)


@pytest.mark.parametrize(
    ("old", "new", "key", "value"),
    [
        (
            'reply = "EN {value:.1f}"',
            'reply = "EN {value:.1f"',
            "parameters.energy.reply",
            "EN {value:.1f",
        ),
        ('set = "SP {value:.1f}"', 'set = "SP {0}"', "parameters.spot.set", "SP {0}"),
        (
            'fault_line = "FAULT {code:d}"',
            'fault_line = "FAULT {code!r}"',
            "status.fault_line",
            "FAULT {code!r}",
        ),
        ('get = "ID?"', 'get = "ID?}"', "identity.get", "ID?}"),
        ('error = "ERR {code:d}"', 'error = "ERR {code:d"', "line.error", "ERR {code:d"),
    ],
)
def test_template_that_does_not_compile_is_refused(
    tmp_path: Path, old: str, new: str, key: str, value: str
) -> None:
    path, error = refused(tmp_path, mutated(old, new))
    assert_names(error, path, key, value)


def test_pulse_line_field_without_a_unit_is_refused(tmp_path: Path) -> None:
    path, error = refused(tmp_path, mutated('energy = "mJ"\n', ""))
    assert_names(error, path, "pulses.units.energy", "missing")


def test_unknown_protocol_is_refused_naming_the_drivers(tmp_path: Path) -> None:
    # The author renamed both the protocol and its options table; no driver has that name.
    text = mutated('protocol = "line"', 'protocol = "smoke-signal"')
    text = text.replace("[line]", "[smoke-signal]")
    path, error = refused(tmp_path, text)
    assert_names(error, path, "device.protocol", "'smoke-signal'", "no such driver", "line")


def test_misspelt_protocol_is_reported_as_the_protocol(tmp_path: Path) -> None:
    path, error = refused(tmp_path, mutated('protocol = "line"', 'protocol = "lnie"'))
    assert_names(error, path, "device.protocol", "'lnie'")


@pytest.mark.parametrize(
    ("old", "new", "key", "value"),
    [
        ("beamlets = [10, 10]", "beamlets = [10, 0]", "handpieces[1].beamlets", "[10, 0]"),
        ("beamlets = [10, 10]", "beamlets = [10]", "handpieces[1].beamlets", "[10]"),
        (
            'counter = "shot_counter"',
            'counter = "shot_countr"',
            "pulses.counter",
            "'shot_countr'",
        ),
        ('kind = "reference"', 'kind = "vendor"', "device.kind", "'vendor'"),
        ('parity = "none"', 'parity = "odd-ish"', "transport.parity", "'odd-ish'"),
        ("handpiece = 1\npulse", "handpiece = 7\npulse", "simulator.handpiece", "7"),
    ],
)
def test_other_inconsistent_values_are_refused(
    tmp_path: Path, old: str, new: str, key: str, value: str
) -> None:
    path, error = refused(tmp_path, mutated(old, new))
    assert_names(error, path, key, value)
