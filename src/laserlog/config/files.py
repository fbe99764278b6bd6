"""Files laserlog creates (private to its user: files 0600, folders 0700, whatever the umask)
and files it reads (regular files only, opened without blocking on a FIFO).

Profiles, transcripts, databases and recovery files describe clients and consoles; a
permissive umask (000 on some shared clinic machines) must not make them readable by others.
"""

from __future__ import annotations

import os
import re
import stat
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


#: Control characters a text may hold: tab, line feed, carriage return, form feed.
TEXT_CONTROLS = frozenset("\t\n\r\f")


class NotARegularFile(ValueError):
    """Raise when a path names a folder, a FIFO, a socket or a device instead of a file."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is {kind}")
        self.kind = kind


def kind_of_file(mode: int) -> str:
    """Return what a file that is not a regular one is, as a message names it."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular(path: Path) -> int:
    """Return a descriptor open for reading on a regular file.

    Opened without blocking (a FIFO with no writer would hang a plain open) and checked on
    the descriptor, so a file swapped after the check is not the one read. Raise OSError when
    it cannot be opened, NotARegularFile when it is a folder, FIFO, socket or device.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, kind_of_file(mode))
    except BaseException:
        os.close(fd)
        raise
    return fd


def control_character(text: str) -> int | None:
    """Return the index of a text's first control character other than tab and line breaks,
    or None when it has none."""
    for index, char in enumerate(text):
        if (ord(char) < 32 or 0x7f <= ord(char) < 0xa0) and char not in TEXT_CONTROLS:
            return index
    return None


def stored_name(path: Path) -> str:
    """Return a file's name as a database stores it: UTF-8 text, a byte that is not UTF-8
    shown as U+FFFD (a Linux file name is bytes)."""
    return os.fsencode(path.name).decode("utf-8", "replace")


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
