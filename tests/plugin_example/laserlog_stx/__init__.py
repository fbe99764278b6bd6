"""A laserlog driver from outside the package: text commands framed as STX body ETX BCC.

Some consoles wrap every message, both ways, as::

    STX (0x02) | body ... | ETX (0x03) | BCC

where BCC is the XOR of every byte of body and ETX. The body is an ordinary text command
or reply, so this driver reuses laserlog's line protocol (templates, ok/error, pushed
pulses, the simulator's side) and replaces only the framing: `wire()` for what the host
sends, `frame()` for what the simulated console sends, and a framer for both directions.
A frame with a bad BCC reaches the line driver as it arrived, matches no template and is
reported as a garbled line.

The package registers this module under the `laserlog.drivers` entry-point group
(see pyproject.toml); a profile selects it with `protocol = "stx_bcc"` and takes its
options from an `[stx_bcc]` table (`ok`, `error`, as for `[line]`).
"""

from __future__ import annotations

from laserlog.plugin import (
    ConsoleState,
    LineDevice,
    LineDriver,
    Link,
    Profile,
    ProfileError,
    check_line_profile,
)

__all__ = ["Device", "Driver", "bcc", "check_profile", "frame"]

STX = b"\x02"
ETX = b"\x03"


def bcc(data: bytes) -> int:
    """Return the block check character: the XOR of every byte."""
    check = 0
    for byte in data:
        check ^= byte
    return check


def frame(body: bytes) -> bytes:
    """Return `body` framed as STX body ETX BCC."""
    checked = body + ETX
    return STX + checked + bytes((bcc(checked),))


class StxFramer:
    """Split a byte stream into frame bodies; junk and bad-BCC frames come out as they were."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data
        out: list[bytes] = []
        while True:
            start = buffer.find(STX)
            if start < 0:
                if buffer.strip():
                    out.append(buffer)
                buffer = b""
                break
            if buffer[:start].strip():
                out.append(buffer[:start])
            end = buffer.find(ETX, start)
            if end < 0 or end + 1 >= len(buffer):
                buffer = buffer[start:]
                break
            body, check = buffer[start + 1:end], buffer[end + 1]
            out.append(body if bcc(body + ETX) == check else buffer[start:end + 2])
            buffer = buffer[end + 2:]
        self._buffer = buffer
        return out


def check_profile(profile: Profile) -> None:
    """Check the line protocol's keys; refuse the line options this framing replaces."""
    check_line_profile(profile)
    if profile.transport.reply_width is not None:
        raise ProfileError(profile.source, "transport.reply_width", "not used by stx_bcc",
                           expected="no reply_width: every reply is an STX/ETX frame")
    for key in ("echo", "address", "reply_end"):
        if key in profile.protocol_options:
            raise ProfileError(profile.source, f"{profile.protocol}.{key}",
                               "not supported by stx_bcc", expected="ok and error only")


class Driver(LineDriver):
    """Host side: line-protocol requests, sent and read as STX/ETX frames."""

    def __init__(self, profile: Profile, link: Link, **kw: object) -> None:
        super().__init__(profile, link, **kw)
        self.framer = StxFramer()  # type: ignore[assignment]

    def wire(self, request: bytes) -> bytes:
        return frame(request)


class Device(LineDevice):
    """Console side for the simulator: the line protocol's answers, framed."""

    def __init__(self, profile: Profile, console: ConsoleState) -> None:
        super().__init__(profile, console)
        self.framer = StxFramer()  # type: ignore[assignment]

    def frame(self, text: str) -> bytes:
        return frame(text.encode("latin-1"))
