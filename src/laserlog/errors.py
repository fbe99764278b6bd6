"""One error hierarchy whose messages a technician or an engineer can act on."""

from __future__ import annotations


class LaserlogError(Exception):
    """Base of every error the command line reports without a traceback (exit status 2)."""

    exit_status = 2


class ProfileError(LaserlogError):
    """Raise when a profile file cannot be used: names the file, the key, the value, the need."""

    def __init__(
        self,
        source: str,
        key: str,
        problem: str,
        *,
        value: object = None,
        expected: str | None = None,
        line: int | None = None,
    ) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.value = value
        self.expected = expected
        self.line = line
        where = f"{source}:{line}" if line else source
        parts = [f"{where}: {key}: {problem}" if key else f"{where}: {problem}"]
        if value is not None:
            parts.append(f"got {value!r}")
        if expected:
            parts.append(f"expected {expected}")
        super().__init__("; ".join(parts))


class ProfileNotFound(LaserlogError):
    """Raise when no profile of that name is in any profile folder."""


class PortError(LaserlogError):
    """Raise when a serial port cannot be opened, is in use, or fails."""


class IdentityMismatch(LaserlogError):
    """Raise when a console identifies as another model or serial number than expected."""


class ProtocolError(LaserlogError):
    """Raise when a console answers a command with an error or not at all."""


class SessionError(LaserlogError):
    """Raise when session details are refused (operator, client, skin type, checklist)."""


class ConsoleNotReady(SessionError):
    """Raise when a session would start on a console that reports a fault or an open interlock.

    The operator may start anyway with a typed reason, which the session records.
    """


class StoreError(LaserlogError):
    """Raise when the database cannot be opened, migrated or queried."""


class RecorderError(LaserlogError):
    """Raise when recording stopped on a failure of its own; the session says why."""

    exit_status = 3
