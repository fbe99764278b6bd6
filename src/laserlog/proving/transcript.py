"""Replay (sent, reply) pairs against a driver with no I/O, in the style of PyMeasure's tests.

    with expected_protocol(profile, [(b"EN?\\r\\n", b"EN 120.0\\r\\n")]) as driver:
        assert driver.get("energy") == 0.12

A pair whose sent part is None is something the console pushes unasked. Leaving the block
checks that every pair was used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from laserlog.config.drivers_registry import driver_module
from laserlog.errors import PortError
from laserlog.link.transcript_file import Pair

if TYPE_CHECKING:
    from laserlog.config.profile import Profile
    from laserlog.link.driver import Driver


class TranscriptMismatch(AssertionError):
    """The driver sent something other than the transcript says."""


class TranscriptLink:
    """A stand-in for `Link` that checks writes against a transcript and serves its replies."""

    def __init__(self, pairs: Sequence[Pair], url: str = "transcript://") -> None:
        self.url = url
        self.pairs: deque[Pair] = deque(pairs)
        self.inbox = bytearray()
        self.sent: list[bytes] = []
        self._release_pushed()

    def _release_pushed(self) -> None:
        while self.pairs and self.pairs[0][0] is None:
            self.inbox += self.pairs.popleft()[1] or b""

    @property
    def is_open(self) -> bool:
        return True

    def open(self) -> TranscriptLink:
        return self

    def close(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.sent.append(data)
        if not self.pairs:
            raise TranscriptMismatch(f"driver sent {data!r} after the transcript ended")
        expected, reply = self.pairs.popleft()
        if data != expected:
            raise TranscriptMismatch(f"driver sent {data!r}, transcript expects {expected!r}")
        self.inbox += reply or b""
        self._release_pushed()

    def read_available(self, timeout_s: float) -> bytes:
        data = bytes(self.inbox)
        self.inbox.clear()
        return data

    def discard_input(self) -> None:
        self.inbox.clear()

    def unplug(self) -> None:
        raise PortError(f"{self.url} unplugged")


@contextmanager
def expected_protocol(profile: Profile, pairs: Sequence[Pair]) -> Iterator[Driver]:
    """Yield a driver for `profile` wired to a transcript; check it was used up."""
    link = TranscriptLink(pairs)
    driver = driver_module(profile).Driver(profile, link)
    yield driver
    if link.pairs:
        raise TranscriptMismatch(f"transcript not used up: next expected {link.pairs[0]!r}")
