"""Rewrite a format 1 profile as format 2 by editing its text, so its comments stay.

A TOML round trip would drop every comment an engineer wrote; the changes between the
formats are small enough for line edits: the `format` line, and `hard_max` in a parameter
table renamed `plausible_max` (beside format 2's [bounds], "hard" said the wrong thing: it
is the ceiling of a physical reading, not a limit on settings).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from laserlog.config.profile import FORMAT_VERSION
from laserlog.errors import ProfileError

_FORMAT = re.compile(r"^(?P<lead>[ \t]*format[ \t]*=[ \t]*)(?P<version>\d+)(?P<rest>[ \t]*(?:#.*)?)$",
                     re.MULTILINE)
_HEADER = re.compile(r"^[ \t]*\[(?P<name>[^\[\]]+)\][ \t]*(?:#.*)?$")
#: Keys renamed in format 2, per table prefix: (table prefix, old key, new key).
RENAMED = (("parameters.", "hard_max", "plausible_max"),)


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What upgrading one file did."""

    path: Path
    from_version: int
    renamed: tuple[str, ...]  # "parameters.energy.hard_max -> plausible_max"

    @property
    def changed(self) -> bool:
        return self.from_version != FORMAT_VERSION


def upgraded_text(text: str, source: str) -> tuple[str, int, list[str]]:
    """Return the text as format 2, the version it had, and the keys renamed."""
    found = list(_FORMAT.finditer(text))
    if len(found) != 1:
        raise ProfileError(source, "format", "no single `format = N` line to rewrite"
                           if not found else "more than one `format` line",
                           expected="one line `format = 1` at the top of the file")
    version = int(found[0]["version"])
    if version == FORMAT_VERSION:
        return text, version, []
    if version != 1:
        raise ProfileError(source, "format", "cannot be upgraded", value=version,
                           expected="format 1")
    match = found[0]
    text = (text[:match.start()] + f"{match['lead']}{FORMAT_VERSION}{match['rest']}"
            + text[match.end():])
    table = ""
    renamed: list[str] = []
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        header = _HEADER.match(line)
        if header:
            table = re.sub(r"\s+", "", header["name"])
            continue
        for prefix, old, new in RENAMED:
            if table.startswith(prefix):
                edited, count = re.subn(rf"^([ \t]*){old}([ \t]*=)", rf"\g<1>{new}\g<2>", line)
                if count:
                    lines[index] = edited
                    renamed.append(f"{table}.{old} -> {new}")
    return "".join(lines), version, renamed


def upgrade_file(path: str | Path, extra_dirs: list[str] | None = None) -> Upgrade:
    """Rewrite a profile file as format 2 in place, after checking the result loads."""
    from laserlog.config.profile import load_profile

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(str(path), "", f"cannot be read ({exc})") from None
    new_text, version, renamed = upgraded_text(text, str(path))
    if version == FORMAT_VERSION:
        return Upgrade(path, version, ())
    trial = path.with_name(f".{path.stem}.upgrading{path.suffix}")
    trial.write_text(new_text, encoding="utf-8")
    try:
        load_profile(trial, extra_dirs)
    except ProfileError as exc:
        trial.unlink()
        raise ProfileError(str(path), exc.key, f"does not load once upgraded: {exc.problem}",
                           value=exc.value, expected=exc.expected) from None
    os.replace(trial, path)
    return Upgrade(path, version, tuple(renamed))
