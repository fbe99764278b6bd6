"""What `profiles check` accepts cannot crash or stall anything later.

Templates match in time linear in the line by construction: no quantifier in a compiled
template can give characters back (checked here on every bundled and test profile), format
specs come from a bounded grammar, and units are parsed, never evaluated.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.profile import load_profile
from laserlog.config.template import Template, compile_template
from laserlog.domain.units import parse_quantity
from laserlog.errors import ProfileError

ROOT = Path(__file__).resolve().parent.parent
PROFILE_FILES = sorted(bundled_profiles_dir().glob("*.toml")) + sorted(
    (ROOT / "tests" / "profiles").glob("*.toml"))


def templates_of(path: Path) -> list[Template]:
    """Return every template a profile compiled (pulse line, replies, commands, status)."""
    profile = load_profile(path, [str(ROOT / "tests" / "profiles")])
    found: list[Template] = []

    def walk(value: object, depth: int = 0) -> None:
        if isinstance(value, Template):
            found.append(value)
        elif depth < 4 and isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)
        elif depth < 4 and isinstance(value, tuple | list):
            for item in value:
                walk(item, depth + 1)
        elif depth < 4 and hasattr(value, "__dataclass_fields__"):
            for name in value.__dataclass_fields__:
                walk(getattr(value, name), depth + 1)

    walk(profile)
    return found


def _without_atomic_groups(pattern: bytes) -> bytes:
    """Return the pattern with every (?>...) group cut out (they never backtrack)."""
    out, i = bytearray(), 0
    while i < len(pattern):
        if pattern.startswith(b"(?>", i):
            depth, i = 1, i + 3
            while depth:
                if pattern[i:i + 1] == b"\\":
                    i += 2
                    continue
                depth += {b"(": 1, b")": -1}.get(pattern[i:i + 1], 0)
                i += 1
            continue
        out += pattern[i:i + 1]
        i += 1
    return bytes(out)


def backtracking_quantifiers(pattern: bytes) -> list[int]:
    """Return where an unbounded quantifier may give characters back (not possessive)."""
    bare = _without_atomic_groups(pattern)
    spots, i, in_class = [], 0, False
    while i < len(bare):
        char = bare[i:i + 1]
        if char == b"\\":
            i += 2
            continue
        if char == b"[" and not in_class:
            in_class = True
        elif char == b"]" and in_class:
            in_class = False
        elif char in (b"*", b"+") and not in_class and bare[i - 1:i] not in (b"(", b"?"):
            if bare[i + 1:i + 2] != b"+":
                spots.append(i)
            i += 1  # skip the possessive mark
        i += 1
    return spots


@pytest.mark.parametrize("path", PROFILE_FILES, ids=lambda p: p.stem)
def test_every_template_of_every_profile_matches_without_backtracking(path):
    try:
        templates = templates_of(path)
    except ProfileError:
        pytest.skip("a profile that needs its parent from elsewhere")
    if not templates:
        pytest.skip("binary frames: no text templates")
    for template in templates:
        pattern = template.regex.pattern
        assert b".*?" not in pattern, template.text
        assert backtracking_quantifiers(pattern) == [], (template.text, pattern)


def test_the_check_sees_a_quantifier_that_can_give_characters_back():
    assert backtracking_quantifiers(rb" *(?P<a>[-+]?\d+) *(?P<b>.*?)\Z")
    assert not backtracking_quantifiers(rb" *+(?P<a>(?>[-+]?\d+)) *+(?P<b>(?:(?!X).)*+)\Z")


@pytest.mark.parametrize("text, reason", [
    ("E{value:.999999999f}", "precision"),
    ("E{value:1000000000d}", "width"),
    ("E{value:{foo}}", "format spec"),
    ("E{value:.1q}", "format spec"),
    ("{a:d}{b:f}", "touch"),
    ("{model}{serial}", "touch"),
    ("X" * 500, "longer"),
])
def test_templates_that_would_blow_up_later_are_refused_at_check(text, reason):
    with pytest.raises(ValueError, match=reason):
        compile_template(text)


@pytest.mark.parametrize("text", ["10**10**10 nm", "nan nm", "inf nm", "1e400 nm",
                                  "__import__('os') nm", "(1) nm", "2 nm.to('m')"])
def test_units_are_parsed_not_evaluated(text):
    with pytest.raises(ValueError):
        parse_quantity(text, "wavelength")


@settings(max_examples=200, deadline=None)
@given(line=st.binary(max_size=256) | st.text("0123456789 .-+eE*", max_size=256).map(str.encode))
def test_hostile_lines_never_match_a_pulse_line_with_fields_that_are_not_numbers(line):
    template = compile_template("P {seq:d} E{energy:.2f} F{fluence:.3f} S{spot:.1f} "
                                "D{pulse_duration:d} H{handpiece:d}")
    fields = template.match(line)
    if fields is not None:
        for name in ("energy", "fluence", "spot"):
            float(fields[name])
        for name in ("seq", "pulse_duration", "handpiece"):
            int(fields[name])


def test_a_text_field_stops_at_the_literal_after_it():
    template = compile_template("{model} firmware Version {firmware}")
    assert template.match(b"Maestro firmware Version 1.2") == {"model": "Maestro",
                                                               "firmware": "1.2"}
    assert re.search(rb"\(\?!", template.regex.pattern)


@pytest.mark.parametrize("old, new, reason", [
    (b'get = "EN?"', b'get = "EN? {foo}"', "which nothing fills"),
    (b'set = "EN {value:.1f}"', b'set = "EN {value:.1f} {other:d}"', "unknown field {other}"),
    (b'set = "EN {value:.1f}"', b'set = "EN {value:s}"', "cannot be written with the min"),
])
def test_templates_the_recorder_could_not_fill_are_refused_at_check(tmp_path, old, new, reason):
    text = (bundled_profiles_dir() / "ps755-ref.toml").read_bytes()
    assert old in text
    path = tmp_path / "ps755-ref.toml"
    path.write_bytes(text.replace(old, new, 1))
    with pytest.raises(ProfileError, match=re.escape(reason)):
        load_profile(path)


def test_a_status_field_read_as_text_is_refused_at_check(tmp_path):
    text = (bundled_profiles_dir() / "ps755-ref.toml").read_bytes()
    old = b'reply = "ST {fault:d} {interlock:d} {firing:d}"'
    assert old in text
    path = tmp_path / "ps755-ref.toml"
    path.write_bytes(text.replace(old, b'reply = "ST {fault} {interlock:d} {firing:d}"'))
    with pytest.raises(ProfileError, match=re.escape("field {fault} is not read as a whole")):
        load_profile(path)
