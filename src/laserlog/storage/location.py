"""Tell a database file from a central server's address, and who holds a file open."""

from __future__ import annotations

import os
from pathlib import Path


def is_url(text: str | None) -> bool:
    """Return True when a --db or --to value names a PostgreSQL server, not a file."""
    return bool(text) and str(text).startswith(("postgresql://", "postgres://"))


def lock_holders(path: str | Path, limit: int = 3) -> list[str]:
    """Return the other processes that have a database file open, as "PID name" (Linux).

    Best effort: an empty list where /proc cannot tell (another OS, another user's process).
    """
    try:
        target = Path(path).resolve()
        proc = Path("/proc")
        found: list[str] = []
        for pid in sorted(p for p in os.listdir(proc) if p.isdigit()):
            if int(pid) == os.getpid():
                continue
            try:
                fds = os.listdir(proc / pid / "fd")
                if any(Path(os.readlink(proc / pid / "fd" / fd)) == target for fd in fds):
                    name = (proc / pid / "comm").read_text().strip()
                    found.append(f"PID {pid} {name}")
            except OSError:
                continue
            if len(found) >= limit:
                break
        return found
    except OSError:
        return []
