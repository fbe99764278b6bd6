"""Templates run both ways: what the simulator renders, the driver's regex reads back."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from laserlog.config.template import compile_template

finite_floats = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
ints = st.integers(min_value=-(10**9), max_value=10**9)
signs = st.sampled_from(["", "+", " ", "-"])
zero_pads = st.sampled_from(["", "0"])
widths = st.one_of(st.just(""), st.integers(1, 14).map(str))


@st.composite
def float_specs(draw: st.DrawFn) -> str:
    """Return a float format spec: sign, zero padding, width, precision, type."""
    alternate = draw(st.sampled_from(["", "#"]))
    precision = draw(st.one_of(st.just(""), st.integers(0, 6).map(lambda p: f".{p}")))
    kind = draw(st.sampled_from(["f", "e", "E", "g", "G"]))
    return f"{draw(signs)}{alternate}{draw(zero_pads)}{draw(widths)}{precision}{kind}"


@st.composite
def int_specs(draw: st.DrawFn) -> str:
    """Return an integer format spec: sign, zero padding, width, 'd'."""
    return f"{draw(signs)}{draw(zero_pads)}{draw(widths)}d"


# The field alone, behind a command word, between words, and before another field.
SHAPES = [
    "{{value:{spec}}}",
    "EN {{value:{spec}}}",
    "EN {{value:{spec}}} MJ",
    "P{{value:{spec}}},{{seq:d}}",
]


@given(st.sampled_from(SHAPES), float_specs(), finite_floats, st.integers(0, 10**6))
def test_float_fields_read_back_what_was_rendered(
    shape: str, spec: str, value: float, seq: int
) -> None:
    template = compile_template(shape.format(spec=spec))
    text = template.render(value=value, seq=seq)
    fields = template.match(text.encode("latin-1"))
    assert fields is not None, text
    assert float(fields["value"]) == float(format(value, spec))
    if "seq" in template.fields:
        assert int(fields["seq"]) == seq


@given(st.sampled_from(SHAPES), int_specs(), ints, st.integers(0, 10**6))
def test_integer_fields_read_back_exactly(shape: str, spec: str, value: int, seq: int) -> None:
    template = compile_template(shape.format(spec=spec))
    assert "value" in template.integer_fields
    fields = template.match(template.render(value=value, seq=seq).encode("latin-1"))
    assert fields is not None
    assert int(fields["value"]) == value


@given(
    st.floats(min_value=0.0, max_value=999.0),
    st.floats(min_value=0.1, max_value=99.0),
    st.integers(0, 99_999),
)
def test_fixed_width_columns_read_back_while_each_column_is_padded(
    energy: float, spot: float, count: int
) -> None:
    # 15 characters, as a fixed-width console sends after its CR LF prefix.
    template = compile_template("{energy:6.1f}{spot:4.1f}{count:5d}")
    text = template.render(energy=energy, spot=spot, count=count)
    assume(len(text) == 15 and text[6] == " " and text[10] == " ")
    fields = template.match(text.encode("latin-1"))
    assert fields is not None
    assert float(fields["energy"]) == float(f"{energy:6.1f}")
    assert float(fields["spot"]) == float(f"{spot:4.1f}")
    assert int(fields["count"]) == count


def test_full_width_adjacent_columns_are_split_by_width() -> None:
    template = compile_template("{a:05d}{b:05d}")
    assert template.match(b"0001200034") == {"a": "00012", "b": "00034"}


def test_padding_spaces_in_literals_may_widen_or_narrow() -> None:
    template = compile_template("E {value:.1f} MJ")
    assert template.match(b"E 12.5 MJ") == {"value": "12.5"}
    assert template.match(b"E    12.5   MJ") == {"value": "12.5"}
    assert template.match(b"E12.5MJ") == {"value": "12.5"}


def test_a_field_named_twice_must_repeat_its_value() -> None:
    template = compile_template("{code:d}/{code:d}")
    assert template.fields == ("code",)
    assert template.match(b"7/7") == {"code": "7"}
    assert template.match(b"7/8") is None


def test_text_fields_take_what_lies_between_literals() -> None:
    template = compile_template("{model},{serial},{firmware}")
    assert template.match(b"PSR755,R755-0001,2.1.0") == {
        "model": "PSR755",
        "serial": "R755-0001",
        "firmware": "2.1.0",
    }
    assert template.integer_fields == frozenset()


# -- what does not match ------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [b"EN abc", b"EN", b"XX 12.5", b"EN 12.5 extra", b"EN 12.5\r\n", b"en 12.5", b"EN 1.2.3", b""],
)
def test_text_of_another_shape_does_not_match(text: bytes) -> None:
    assert compile_template("EN {value:.1f}").match(text) is None


@given(st.binary(max_size=40))
def test_arbitrary_bytes_without_the_command_word_do_not_match(data: bytes) -> None:
    assume(not data.lstrip(b" ").startswith(b"EN"))
    assert compile_template("EN {value:.1f}").match(data) is None


@given(finite_floats.filter(lambda v: v != int(v)))
def test_an_integer_field_refuses_a_decimal_number(value: float) -> None:
    assert compile_template("HP {value:d}").match(f"HP {value}".encode()) is None


@given(finite_floats, st.binary(min_size=1, max_size=10).filter(lambda b: not b.isspace()))
def test_trailing_junk_after_a_reply_does_not_match(value: float, junk: bytes) -> None:
    assume(not junk[:1].isdigit() and junk[:1] not in (b".", b"e", b"E"))
    template = compile_template("EN {value:.1f}")
    assert template.match(template.render(value=value).encode() + junk) is None


# -- what does not compile ----------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "EN {value:.1f",  # unclosed field
        "EN }",  # lone closing brace
        "EN {0}",  # positional field
        "EN {}",  # unnamed field
        "EN {value!r}",  # conversion
        "EN {value.real}",  # attribute access
        "EN {value[0]}",  # indexing
        "EN {value} \u2192",  # not latin-1: cannot go on the wire
    ],
)
def test_malformed_templates_raise_value_error_naming_the_template(text: str) -> None:
    with pytest.raises(ValueError, match="bad template") as info:
        compile_template(text)
    assert repr(text) in str(info.value)


@given(st.integers(0, 99), st.sampled_from(["", "EN ", "P "]))
def test_numbered_fields_are_refused(index: int, prefix: str) -> None:
    with pytest.raises(ValueError, match="plain name"):
        compile_template(f"{prefix}{{{index}}}")
