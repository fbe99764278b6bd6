"""Transcript files: the raw exchange on a link, with timestamps, saved as JSON lines.

`laserlog record --transcript FILE` wraps the recorder's link in a `SpyLink`, which copies
every byte written and read into the file. The first line is a header; each further line
is one chunk, sent (`tx`) or received (`rx`), or a link event (`open`, `close`):

    {"laserlog_transcript": 1, "profile": "ps755-ref", "port": "/dev/ttyUSB0", ...}
    {"t": 0.000412, "tx": "ID?\\r\\n"}
    {"t": 0.003170, "rx": "PSR755,R755-0001,2.1.0\\r\\n"}

`t` is seconds since the header's `started_unix_s`. Bytes are written as text with one
character per byte (U+0000 to U+00FF), so the file stays readable and exact.
`laserlog profiles replay` reads it back (see laserlog.proving.replay).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from laserlog.config.files import new_private_file, read_text
from laserlog.errors import LaserlogError
from laserlog.link.transport import Link

FORMAT = 1
#: One exchange: what the host sent (None for pushed lines) and what came back.
Pair = tuple[bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One entry of a transcript: bytes sent or received, or a link event."""

    t_s: float
    direction: str  # "tx" | "rx" | "event"
    data: bytes = b""
    event: str = ""


@dataclass(slots=True)
class Transcript:
    """A transcript file read back: its header and its chunks in order."""

    header: dict[str, Any]
    chunks: list[Chunk] = field(default_factory=list)
    source: str = ""

    def pairs(self) -> list[Pair]:
        """Return (sent, received) pairs for `expected_protocol`/`TranscriptLink`.

        Everything received after a command, until the next command, is its reply (pushed
        lines included); what arrives before the first command is (None, bytes).
        """
        pairs: list[list[bytes | None]] = []
        pushed = b""
        for chunk in self.chunks:
            if chunk.direction == "tx":
                pairs.append([chunk.data, b""])
            elif chunk.direction == "rx":
                if pairs:
                    pairs[-1][1] = (pairs[-1][1] or b"") + chunk.data
                else:
                    pushed += chunk.data
        out: list[Pair] = [(None, pushed)] if pushed else []
        return out + [(sent, reply) for sent, reply in pairs]


class TranscriptWriter:
    """Append a link's exchange to a transcript file; one writer may wrap several links."""

    def __init__(self, path: str | Path, *, profile: str, port: str) -> None:
        self.path = Path(path)
        try:
            self._file: IO[str] = new_private_file(self.path, encoding="ascii")
        except FileExistsError:
            raise LaserlogError(f"transcript {self.path} already exists; choose a new file "
                                "name (transcripts are never overwritten)") from None
        except OSError as exc:
            raise LaserlogError(f"cannot write transcript {self.path}: {exc.strerror}") from None
        self._lock = threading.Lock()
        self.started_unix_s = time.time()
        self._started = time.monotonic()
        self._write({"laserlog_transcript": FORMAT, "profile": profile, "port": port,
                     "started_unix_s": round(self.started_unix_s, 6)})

    def _write(self, entry: dict[str, Any]) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(json.dumps(entry, ensure_ascii=True) + "\n")
                self._file.flush()

    def record(self, direction: str, data: bytes) -> None:
        """Append bytes sent ("tx") or received ("rx")."""
        self._write({"t": round(time.monotonic() - self._started, 6),
                     direction: data.decode("latin-1")})

    def event(self, name: str) -> None:
        self._write({"t": round(time.monotonic() - self._started, 6), "event": name})

    def wrap(self, link: Link) -> SpyLink:
        """Return `link` wrapped so everything on it lands in this transcript."""
        return SpyLink(link, self)

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpyLink(Link):
    """A Link that copies every byte through it into a transcript."""

    def __init__(self, inner: Link, writer: TranscriptWriter) -> None:
        # Not Link.__init__: the port belongs to `inner`; this only watches it.
        self.inner = inner
        self.writer = writer
        self.url = inner.url
        self.transport = inner.transport
        writer.event("open")

    def open(self) -> SpyLink:
        self.inner.open()
        self.writer.event("open")
        return self

    @property
    def is_open(self) -> bool:
        return self.inner.is_open

    def close(self) -> None:
        if self.inner.is_open:
            self.writer.event("close")
        self.inner.close()

    def write(self, data: bytes) -> None:
        self.inner.write(data)
        self.writer.record("tx", data)

    def read_available(self, timeout_s: float) -> bytes:
        data = self.inner.read_available(timeout_s)
        if data:
            self.writer.record("rx", data)
        return data

    def discard_input(self) -> None:
        self.inner.discard_input()


def read_transcript(path: str | Path) -> Transcript:
    """Read a transcript file, raising LaserlogError naming the line that is not one."""
    path = Path(path)
    try:
        lines = read_text(path, "transcript", max_bytes=2**30).splitlines()
    except OSError as exc:
        raise LaserlogError(f"cannot read transcript {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise LaserlogError(str(exc)) from None
    transcript = Transcript({}, source=str(path))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LaserlogError(f"{path}:{number}: not a transcript line ({exc.msg})") from None
        except RecursionError:
            raise LaserlogError(f"{path}:{number}: not a transcript line (nested too "
                                "deeply)") from None
        if not isinstance(entry, dict):
            raise LaserlogError(f"{path}:{number}: not a transcript line; expected a JSON object")
        if number == 1 or not transcript.header:
            if entry.get("laserlog_transcript") != FORMAT:
                raise LaserlogError(f"{path}:{number}: not a laserlog transcript; expected a "
                                    f'header with "laserlog_transcript": {FORMAT}')
            transcript.header = entry
            continue
        t_s = entry.get("t")
        if not isinstance(t_s, int | float):
            raise LaserlogError(f"{path}:{number}: entry without a time; expected \"t\": seconds")
        for direction in ("tx", "rx"):
            if isinstance(entry.get(direction), str):
                try:
                    data = entry[direction].encode("latin-1")
                except UnicodeEncodeError:
                    raise LaserlogError(f"{path}:{number}: {direction} has a character that is "
                                        "not a byte (U+0000 to U+00FF)") from None
                transcript.chunks.append(Chunk(float(t_s), direction, data))
                break
        else:
            if isinstance(entry.get("event"), str):
                transcript.chunks.append(Chunk(float(t_s), "event", event=entry["event"]))
            else:
                raise LaserlogError(f'{path}:{number}: entry without "tx", "rx" or "event"')
    if not transcript.header:
        raise LaserlogError(f"{path}: empty transcript")
    return transcript
