"""Create what laserlog writes private to its user: files 0600, folders 0700, whatever the umask.

Profiles, transcripts, databases and recovery files describe clients and consoles; a
permissive umask (000 on some shared clinic machines) must not make them readable by others.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import IO


def private_folders(folder: Path) -> None:
    """Create a folder and its missing parents, each 0700 whatever the umask."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(mode=0o700)
        os.chmod(new, 0o700)


def dangling_link(path: Path, what: str, expected: str) -> str | None:
    """Return why `path` cannot be created when it, or a missing folder above it, is a
    symbolic link to nothing (what is created there would appear wherever the link points);
    None when it can. `what` names the path, `expected` what it should be."""
    link = path
    while not link.exists():
        if link.is_symlink():
            where = f"{path} is" if link == path else f"{path}: its folder {link} is"
            return (f"{what} {where} a symbolic link to {os.readlink(link)}, which does not "
                    f"exist; nothing was created through it (expected {expected})")
        if link.parent == link:
            break
        link = link.parent
    return None


def new_private_file(path: Path, encoding: str = "utf-8") -> IO[str]:
    """Open a new file for writing, 0600; raise FileExistsError rather than replace one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask
    return os.fdopen(fd, "w", encoding=encoding)


#: Profiles, site files, checklists and transcripts are small; anything larger is not one.
MAX_TEXT_BYTES = 16 * 2**20
#: Deeper nesting than any laserlog file needs; parsers recurse per level.
MAX_NESTING = 64


def read_text(path: Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Return a regular file's UTF-8 text (a leading BOM dropped); raise ValueError saying
    what is wrong with it. A FIFO, a device or a folder is refused before it is opened."""
    if not path.exists():
        raise FileNotFoundError(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file")
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path} is larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    return text.removeprefix("\ufeff")


def nesting_depth(text: str) -> int:
    """Return how deeply brackets and braces nest in a text (strings not told apart)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


_QUOTED = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'')


def dotted_depth(text: str) -> int:
    """Return the most parts a TOML key or table header has (`a.b.c` has 3)."""
    deepest = 0
    for line in text.splitlines():
        key = _QUOTED.sub("q", line).split("=", 1)[0]
        deepest = max(deepest, key.count(".") + 1)
    return deepest


def loads_toml(text: str) -> dict:
    """Parse TOML, refusing nesting deeper than MAX_NESTING (ValueError, or the
    parser's own TOMLDecodeError for a syntax error)."""
    import tomllib

    if nesting_depth(text) > MAX_NESTING or dotted_depth(text) > MAX_NESTING:
        raise ValueError(f"nested more than {MAX_NESTING} levels deep")
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_NESTING} levels deep") from None
