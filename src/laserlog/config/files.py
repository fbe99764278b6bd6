"""Create what laserlog writes private to its user: files 0600, folders 0700, whatever the umask.

Profiles, transcripts, databases and recovery files describe clients and consoles; a
permissive umask (000 on some shared clinic machines) must not make them readable by others.
"""

from __future__ import annotations

import os
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


def new_private_file(path: Path, encoding: str = "utf-8") -> IO[str]:
    """Open a new file for writing, 0600; raise FileExistsError rather than replace one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask
    return os.fdopen(fd, "w", encoding=encoding)
