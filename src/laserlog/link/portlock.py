"""One recorder per port: an advisory lock file that names the process holding it.

pyserial's `exclusive=True` is advisory too and says nothing about who holds the port;
this lock survives reconnects (the device node may change) and dies with its process,
even under kill -9.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from laserlog.errors import PortError


def lock_dir() -> Path:
    """Return the folder for port locks, private to the user ($LASERLOG_LOCK_DIR overrides)."""
    folder = Path(os.environ.get("LASERLOG_LOCK_DIR")
                  or Path(tempfile.gettempdir()) / f"laserlog-{os.getuid()}-locks")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = folder.lstat()
    # In a shared /tmp another user could have made the folder first, or a link in its place.
    if folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise PortError(f"lock folder {folder} is not a private folder of this user; remove "
                        "it or set $LASERLOG_LOCK_DIR to one")
    return folder


def _key(url: str) -> str:
    name = os.path.abspath(url) if "://" not in url else url
    return hashlib.sha256(name.encode()).hexdigest()[:24]


class PortLock:
    """Hold the lock for one port while recording from it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = lock_dir() / f"port-{_key(url)}.lock"
        self._fd = -1

    def acquire(self) -> PortLock:
        """Take the lock, or raise PortError naming the process that holds it."""
        try:  # never through a link planted in the lock's place
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise PortError(f"cannot take the lock {self.path} for port {self.url}: "
                            f"{exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise PortError(f"port {self.url} is in use by another laserlog recorder "
                            f"(PID {holder}); end that session first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0
