"""Photo files by reference: where one lies in the site's photo folder, and its SHA-256.

A photo stays where it is; laserlog keeps its path relative to the site's photo folder
(`photos = "..."` in the site file) and the SHA-256 of its bytes, so a later edit is found.
A path is resolved (symbolic links followed) before it is checked against the folder, so a
link pointing out of the folder is refused like a path outside it. The type is checked before
the file is opened and again on the open descriptor (opened non-blocking): a folder, a FIFO
or a device is refused without blocking. The bytes are hashed in chunks of `CHUNK_BYTES`, so
a photo of any size is never held whole in memory. An empty file is not a photo.
"""

from __future__ import annotations

import hashlib
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from laserlog.config.files import kind_of_file
from laserlog.errors import LaserlogError

#: How much of a photo is read at a time while hashing it.
CHUNK_BYTES = 1 << 20


class PhotoError(LaserlogError):
    """Raise when a file cannot be taken as a photo of the site's photo folder."""


@dataclass(frozen=True, slots=True)
class PhotoFile:
    """A photo file as found: its path in the photo folder, its SHA-256 and size."""

    relative_path: str
    sha256: str
    size_bytes: int


#: Unicode categories a photo's name may not hold: controls (an escape sequence would drive
#: the terminal `photo list` prints to), format characters (a right-to-left override shows
#: "x\u202egpj.exe" as "xexe.jpg"), line and paragraph separators.
_INVISIBLE = frozenset(("Cc", "Cf", "Zl", "Zp"))


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in _INVISIBLE


def shown(path: str | Path) -> str:
    """Return a path as messages print it: bytes that are not UTF-8 as \\xNN, invisible
    characters (controls, direction overrides) as \\xNN or \\uNNNN."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if not any(_invisible(c) for c in text):
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if _invisible(c) else c
                   for c in text)


def _readable_name(relative: str, given: str) -> str:
    """Return the stored form of a relative path; refuse one that is not UTF-8 text."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        raise PhotoError(f"photo {shown(given)}: its name is not UTF-8 text; expected a file "
                         "name in UTF-8 (rename the file); nothing was written") from None
    odd = next((c for c in relative if _invisible(c)), None)
    if odd is not None:
        raise PhotoError(f"photo {shown(given)}: its name holds the invisible character "
                         f"U+{ord(odd):04X} ({unicodedata.name(odd, 'a control')}); expected a "
                         "file name of printable characters (rename the file); nothing was "
                         "written")
    return relative


def photo_folder(folder: Path | None, source: str) -> Path:
    """Return the site's photo folder, resolved; raise naming the site file when it names
    none or the folder is missing."""
    if folder is None:
        raise PhotoError(f"the site file {source} names no photo folder; add photos = "
                         "\"photos\" (a folder beside it) to keep photos by reference; "
                         "nothing was written")
    if not folder.is_dir():
        raise PhotoError(f"the photo folder {shown(folder)} (site file {source}: photos) is "
                         "not a folder; expected an existing folder; nothing was written")
    return folder.resolve()


def locate(given: str, folder: Path) -> tuple[Path, str]:
    """Return the file `given` names (resolved) and its path relative to `folder` (resolved);
    raise PhotoError for a missing file or one outside the folder, naming both."""
    path = Path(given)
    try:
        path.lstat()
    except FileNotFoundError:
        raise PhotoError(f"photo {shown(given)}: no such file; expected a photo file in the "
                         f"photo folder {shown(folder)}; nothing was written") from None
    except OSError as exc:
        raise PhotoError(f"photo {shown(given)}: cannot be read ({exc.strerror}); nothing was "
                         "written") from None
    real = path.resolve()
    if not real.is_relative_to(folder):
        via = f" (it leads to {shown(real)})" if path.is_symlink() else ""
        raise PhotoError(f"photo {shown(given)}{via} is outside the photo folder "
                         f"{shown(folder)}; expected a file inside it (laserlog keeps photos "
                         "by reference, relative to that folder); nothing was written")
    return real, _readable_name(real.relative_to(folder).as_posix(), given)


def hash_file(path: Path, what: str, size_bytes: int | None = None) -> tuple[str, int]:
    """Return a regular file's SHA-256 and size, read in chunks; raise PhotoError naming
    `what` for anything else, without opening a FIFO or a device for reading first.

    Only the bytes the file holds when it is opened are read, so a file that keeps growing
    (or a sparse one of a terabyte) never holds the reader; one whose size or modification
    time changed while it was read is refused. With `size_bytes` (a recorded size), a file of
    another size is not read at all: its hash comes back as "".
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise PhotoError(f"{what}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise PhotoError(f"{what}: {kind_of_file(mode).removeprefix('not ')} is not a photo; "
                         "expected an image file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise PhotoError(f"{what}: cannot be read ({exc.strerror})") from None
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    try:
        opened = os.fstat(fd)  # swapped for something else since the check?
        if not stat.S_ISREG(opened.st_mode):
            raise PhotoError(f"{what}: {kind_of_file(opened.st_mode).removeprefix('not ')} is "
                             "not a photo; expected an image file")
        if size_bytes is not None and opened.st_size != size_bytes:
            return "", opened.st_size
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as file:
            while size < opened.st_size:
                count = file.readinto(view[:min(CHUNK_BYTES, opened.st_size - size)])
                if not count:
                    break
                digest.update(view[:count])
                size += count
        after = os.fstat(fd)
    except OSError as exc:
        raise PhotoError(f"{what}: cannot be read ({exc.strerror})") from None
    finally:
        view.release()
        os.close(fd)
    if (size, after.st_size, after.st_mtime_ns) != (opened.st_size,) * 2 + (opened.st_mtime_ns,):
        raise PhotoError(f"{what}: changed while it was read ({opened.st_size} bytes when "
                         f"opened, {after.st_size} after); expected a file no program is "
                         "writing (wait until it is copied or saved)")
    return digest.hexdigest(), size


def read_photo(given: str, folder: Path) -> PhotoFile:
    """Return the photo `given` names in the (resolved) photo folder, hashed; raise
    PhotoError saying what is wrong and what was expected."""
    real, relative = locate(given, folder)
    try:
        sha256, size = hash_file(real, f"photo {shown(given)}")
    except PhotoError as exc:
        raise PhotoError(f"{exc}; nothing was written") from None
    if size == 0:
        raise PhotoError(f"photo {shown(given)}: an empty file (0 bytes) is not a photo; "
                         "expected an image file; nothing was written")
    return PhotoFile(relative, sha256, size)
