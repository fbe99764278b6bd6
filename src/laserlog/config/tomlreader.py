"""Walk a parsed TOML document by key path, with typed reads and unknown-key detection."""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Iterator
from typing import Any

from laserlog.errors import ProfileError


class TableReader:
    """Read one TOML table; every read is checked, every key left unread is an error."""

    def __init__(
        self, source: builtins.str, path: builtins.str, table: dict[builtins.str, Any],
        *, docs: builtins.str = "docs/profiles.md",
    ) -> None:
        self.source = source
        self.path = path
        self.table = table
        self.docs = docs  # where the keys are documented, for the unknown-key message
        self._seen: set[str] = set()

    def key(self, name: builtins.str) -> builtins.str:
        """Return the dotted path of a key in this table."""
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: builtins.str, problem: builtins.str, **kw: Any) -> ProfileError:
        """Return a ProfileError located at a key of this table."""
        return ProfileError(self.source, self.key(name), problem, **kw)

    def has(self, name: builtins.str) -> builtins.bool:
        return name in self.table

    def raw(self, name: builtins.str, default: Any = None) -> Any:
        self._seen.add(name)
        return self.table.get(name, default)

    def _required(self, name: builtins.str, kind: builtins.str) -> Any:
        if name not in self.table:
            raise self.error(name, "missing", expected=kind)
        return self.raw(name)

    def str(
        self,
        name: builtins.str,
        default: builtins.str | None = None,
        *,
        choices: tuple[builtins.str, ...] = (),
    ) -> builtins.str:
        value = self.raw(name, default) if default is not None else self._required(name, "text")
        if not isinstance(value, str):
            raise self.error(name, "wrong type", value=value, expected="text")
        if choices and value not in choices:
            raise self.error(
                name, "not allowed", value=value, expected="one of " + ", ".join(choices)
            )
        return value

    def opt_str(self, name: builtins.str) -> builtins.str | None:
        if name not in self.table:
            self._skip(name)
            return None
        return self.str(name)

    def _skip(self, name: builtins.str) -> None:
        self._seen.add(name)

    def float(
        self,
        name: builtins.str,
        default: builtins.float | None = None,
        *,
        positive: builtins.bool = False,
        minimum: builtins.float | None = None,
        maximum: builtins.float | None = None,
    ) -> builtins.float:
        value = self.raw(name, default) if default is not None else self._required(name, "a number")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, "wrong type", value=value, expected="a number")
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            raise self.error(name, "not a finite number", value=value, expected="a finite number")
        if positive and number <= 0:
            raise self.error(name, "must be positive", value=value, expected="a number above 0")
        if minimum is not None and number < minimum:
            raise self.error(name, "too small", value=value, expected=f"at least {minimum:g}")
        if maximum is not None and number > maximum:
            raise self.error(name, "too large", value=value, expected=f"at most {maximum:g}")
        return number

    def opt_float(self, name: builtins.str, **kw: Any) -> builtins.float | None:
        if name not in self.table:
            self._skip(name)
            return None
        return self.float(name, **kw)

    def int(
        self,
        name: builtins.str,
        default: builtins.int | None = None,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        value = (
            self.raw(name, default)
            if default is not None
            else self._required(name, "a whole number")
        )
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, "wrong type", value=value, expected="a whole number")
        if minimum is not None and value < minimum:
            raise self.error(name, "too small", value=value, expected=f"at least {minimum}")
        if maximum is not None and value > maximum:
            raise self.error(name, "too large", value=value, expected=f"at most {maximum}")
        return value

    def opt_int(self, name: builtins.str, **kw: Any) -> builtins.int | None:
        if name not in self.table:
            self._skip(name)
            return None
        return self.int(name, **kw)

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.error(name, "wrong type", value=value, expected="true or false")
        return value

    def list(
        self, name: builtins.str, default: builtins.list[Any] | None = None
    ) -> builtins.list[Any]:
        value = self.raw(name, default) if default is not None else self._required(name, "a list")
        if not isinstance(value, list):
            raise self.error(name, "wrong type", value=value, expected="a list")
        return value

    def sub(self, name: builtins.str, *, required: builtins.bool = False) -> TableReader:
        if name not in self.table:
            if required:
                raise self.error(name, "missing table", expected=f"a [{self.key(name)}] table")
            self._seen.add(name)
            return TableReader(self.source, self.key(name), {}, docs=self.docs)
        value = self.raw(name)
        if not isinstance(value, dict):
            raise self.error(name, "wrong type", value=value, expected="a table")
        return TableReader(self.source, self.key(name), value, docs=self.docs)

    def subtables(self, name: builtins.str) -> Iterator[tuple[builtins.str, TableReader]]:
        """Yield (key, reader) for each table inside table `name`."""
        outer = self.sub(name)
        for key in list(outer.table):
            yield key, outer.sub(key)

    def array_of_tables(self, name: builtins.str) -> Iterator[TableReader]:
        for index, item in enumerate(self.list(name, [])):
            if not isinstance(item, dict):
                raise self.error(f"{name}[{index}]", "wrong type", value=item, expected="a table")
            yield TableReader(self.source, f"{self.key(name)}[{index}]", item, docs=self.docs)

    def done(self) -> None:
        """Raise on the first key of this table that nothing read: a typo or an unsupported key."""
        for name in self.table:
            if name not in self._seen:
                raise self.error(
                    name, "unknown key", expected=f"a key this table defines (see {self.docs})"
                )


_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]#]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_INDEX = re.compile(r"\[\d+\]$")


def _dotted(text: builtins.str) -> builtins.str:
    """Return a TOML dotted key with quotes and spaces removed: `a . "b"` -> `a.b`."""
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return ".".join(p.strip("\"'") for p in parts)


def key_lines(text: builtins.str) -> dict[builtins.str, builtins.int]:
    """Return the line (from 1) where each table and key of a TOML text is defined.

    Paths use the loader's notation: `parameters.energy.max`, `handpieces[1].spot_mm`.
    Best effort, for error messages: a key defined inside an inline table is not listed.
    """
    lines: dict[str, int] = {}
    for path, number in _definitions(text):
        lines.setdefault(path, number)
    return lines


def _definitions(text: builtins.str) -> Iterator[tuple[builtins.str, builtins.int]]:
    """Yield the path and line of every table header and key definition of a TOML text."""
    table = ""
    counts: dict[str, int] = {}
    in_string: str | None = None
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if in_string in line:
                in_string = None
            continue
        if depth > 0:
            depth += line.count("[") - line.count("]")
            continue
        header = _HEADER.match(line)
        if header:
            name = _dotted(header.group(2))
            if header.group(1) == "[[":
                counts[name] = counts.get(name, 0) + 1
            # A path below an array of tables points at its latest element.
            table = _resolve(name, counts)
            yield table, number
            continue
        key = _KEY.match(line)
        if not key:
            continue
        path = f"{table}.{_dotted(key.group(1))}" if table else _dotted(key.group(1))
        yield path, number
        rest = line[key.end():]
        for quote in ('"""', "'''"):
            if rest.count(quote) == 1:
                in_string = quote
        depth = max(0, rest.split("#")[0].count("[") - rest.split("#")[0].count("]"))


_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def syntax_problem(text: builtins.str, error: ValueError) -> builtins.str:
    """Return a TOML syntax error as a message says it; a key or table given twice is
    named, with the line of its first definition."""
    problem = f"TOML syntax error: {error}"
    found = _AT_LINE.search(builtins.str(error))
    if found is None or not builtins.str(error).startswith(("Cannot overwrite", "Cannot declare")):
        return problem
    line = builtins.int(found[1])
    seen: dict[builtins.str, builtins.int] = {}
    for path, number in _definitions(text):
        if number == line and path in seen:
            return (f"{path} is given twice (lines {seen[path]} and {line}); expected each "
                    "key and table once")
        seen.setdefault(path, number)
    return problem


def _resolve(name: builtins.str, counts: dict[builtins.str, builtins.int]) -> builtins.str:
    """Return a header's path with the index of each array of tables it passes through."""
    parts = name.split(".")
    out: list[str] = []
    for i, part in enumerate(parts):
        prefix = ".".join(parts[: i + 1])
        out.append(f"{part}[{counts[prefix] - 1}]" if prefix in counts else part)
    return ".".join(out)


def key_line(text: builtins.str, key: builtins.str) -> builtins.int | None:
    """Return the line of `key` in a TOML text, else of the nearest table holding it."""
    lines = key_lines(text)
    path = key
    while path:
        if path in lines:
            return lines[path]
        if _INDEX.search(path):
            path = _INDEX.sub("", path)
            continue
        path = path.rpartition(".")[0]
    return None
