"""Command and reply templates that run both ways: render for the sender, parse for the reader.

A template is a Python format string such as ``"EN {value:.1f} MJ"``. The simulator renders
it; the driver compiles it once into a bytes regex that recovers the fields. One text in the
profile therefore drives both ends of the line, so they cannot drift apart.

What a console sends may be hostile, so matching takes time linear in the line: every field
and every run of spaces matches possessively (it never gives characters back), a text field
stops at the first character of the literal after it, and two fields may touch only when the
first has a fixed width. Format specs come from a small grammar with bounded widths.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

_NUMBER = rb"(?>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_INTEGER = rb"(?>[-+]?\d+)"
_FORMATTER = string.Formatter()
_INTEGER_PATTERNS = {"d": _INTEGER, "x": rb"[0-9A-Fa-f]++", "X": rb"[0-9A-Fa-f]++",
                     "o": rb"[0-7]++", "b": rb"[01]++"}
#: [[fill]align][sign][z][#][0][width][,|_][.precision][type], widths and precisions bounded.
_SPEC = re.compile(r"(?:[^{}]?[<>=^])?[-+ ]?z?#?0?(?P<width>\d{1,3})?[,_]?"
                   r"(?:\.(?P<precision>\d{1,3}))?[bdoxXeEfFgGs%]?")
MAX_WIDTH = 64
MAX_PRECISION = 30
MAX_TEMPLATE_CHARS = 400
_BASES = {"d": 10, "x": 16, "X": 16, "o": 8, "b": 2}
_WIDTH = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d+)")


@dataclass(frozen=True, slots=True)
class Template:
    """A format string with named fields, compiled for parsing."""

    text: str
    fields: tuple[str, ...] = field(init=False)
    integer_fields: frozenset[str] = field(init=False)
    regex: re.Pattern[bytes] = field(init=False)
    #: The base each integer field is written in: 10 (d), 16 (x, X), 8 (o) or 2 (b).
    bases: dict[str, int] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.text) > MAX_TEMPLATE_CHARS:
            raise ValueError(f"longer than {MAX_TEMPLATE_CHARS} characters")
        parts: list[bytes] = []
        names: list[str] = []
        integers: set[str] = set()
        bases: dict[str, int] = {}
        pieces = list(_FORMATTER.parse(self.text))
        for index, (literal, name, spec, conversion) in enumerate(pieces):
            if literal:
                # Padding spaces in fixed-width replies may widen or narrow with the value.
                parts.append(re.sub(rb"(\\ )+", rb" *+", re.escape(literal.encode("latin-1"))))
            if name is None:
                continue
            if not name.isidentifier():
                raise ValueError(f"field {{{name}}} must be a plain name")
            if conversion:
                raise ValueError(f"field {{{name}}} must not use a !{conversion} conversion")
            _check_spec(name, spec or "")
            kind = (spec or "s")[-1]
            if name in names:
                parts.append(b"(?P=" + name.encode() + b")")
                continue
            names.append(name)
            pattern = b""
            if kind in _INTEGER_PATTERNS:
                integers.add(name)
                bases[name] = _BASES[kind]
                pattern = _INTEGER_PATTERNS[kind]
            width = _WIDTH.match(spec or "")
            following = pieces[index + 1] if index + 1 < len(pieces) else None
            touching = following is not None and not following[0] and following[1] is not None
            if width and width.group(1) and touching:
                # Two columns with nothing between them can only be told apart by width.
                width_pattern = b"[ 0-9A-Za-z.+-]{" + width.group(1).encode() + b"}"
                parts.append(b"(?P<" + name.encode() + b">" + width_pattern + b")")
                continue
            if touching:
                assert following is not None
                raise ValueError(f"fields {{{name}}} and {{{following[1]}}} touch: put a "
                                 f"separator between them, or give {{{name}}} a width")
            if kind in _INTEGER_PATTERNS:
                pass
            elif kind in "feEfFgG%":
                pattern = _NUMBER
            elif following is not None and following[0]:
                # Text stops where the literal after it starts (so it can never claim it).
                stop = re.escape(following[0][0].encode("latin-1"))
                pattern = b"(?:(?!" + stop + b").)*+"
            else:
                pattern = rb".*+"
            parts.append(b" *+(?P<" + name.encode() + b">" + pattern + b")")
        object.__setattr__(self, "fields", tuple(names))
        object.__setattr__(self, "integer_fields", frozenset(integers))
        object.__setattr__(self, "bases", bases)
        object.__setattr__(self, "regex", re.compile(b"".join(parts) + rb"\Z", re.DOTALL))

    def render(self, **values: object) -> str:
        """Return the template filled with these values."""
        return self.text.format(**values)

    def integer(self, name: str, text: str) -> int:
        """Return an integer field read by `match`, in the base its spec writes it."""
        return int(text, self.bases.get(name, 10))

    def match(self, data: bytes) -> dict[str, str] | None:
        """Return the fields of `data` as text, or None when it does not have this shape."""
        found = self.regex.match(data)
        if found is None:
            return None
        return {k: v.decode("latin-1").strip() for k, v in found.groupdict().items()}


def _check_spec(name: str, spec: str) -> None:
    """Raise ValueError unless a field's format spec is plain and bounded."""
    found = _SPEC.fullmatch(spec)
    if found is None:
        raise ValueError(f"field {{{name}:{spec}}} has a format spec outside "
                         "[[fill]align][sign][0][width][.precision][type]")
    if int(found["width"] or 0) > MAX_WIDTH or int(found["precision"] or 0) > MAX_PRECISION:
        raise ValueError(f"field {{{name}:{spec}}}: width at most {MAX_WIDTH}, precision at "
                         f"most {MAX_PRECISION}")


def compile_template(text: str) -> Template:
    """Return a compiled template, raising ValueError with the reason when it is malformed."""
    try:
        return Template(text)
    except (ValueError, re.error) as exc:
        raise ValueError(f"bad template {text!r}: {exc}") from None
