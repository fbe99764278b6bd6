"""The serial link: any pyserial URL, bulk reads, an enforced gap between commands."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from laserlog.errors import PortError

if TYPE_CHECKING:
    import serial

    from laserlog.config.profile import Transport

try:
    from termios import error as _termios_error

    _TTY_REFUSALS: tuple[type[Exception], ...] = (_termios_error,)
except ImportError:  # no termios on Windows
    _TTY_REFUSALS = ()


#: What flushing a port raises once its device is gone: an OSError, or termios' own error.
_FLUSH_FAILURES: tuple[type[Exception], ...] = (OSError, *_TTY_REFUSALS)

# errno values a port gives once its device is gone (EIO, ENXIO, ENODEV).
_GONE_ERRNOS = frozenset({5, 6, 19})

#: The most one read takes from a port whose `in_waiting` cannot say how much has arrived.
READ_CHUNK_BYTES = 65536
#: URL schemes that reach the console through a network server (ser2net and the like).
NETWORK_SCHEMES = frozenset({"socket", "rfc2217"})
#: How long a network port's input is watched and dropped after opening: the server's
#: greeting banner, and the tail of a line the console was sending when we joined, come
#: after the flush, in the first few milliseconds (loopback) to tens of them (a LAN).
NETWORK_SETTLE_S = 0.1


def link_failure(url: str, doing: str, exc: Exception) -> str:
    """Return why the link failed in laserlog's words: what happened, on which port.

    pyserial's own text ("device reports readiness to read but returned no data ...") names
    neither the port nor what to check. `exc`: an OSError, or a termios error (errno, text).
    """
    text = str(exc)
    number = getattr(exc, "errno", None)
    if number is None and exc.args and isinstance(exc.args[0], int):
        number = exc.args[0]  # termios.error carries (errno, text) and no errno attribute
    if number in _GONE_ERRNOS or "returned no data" in text:
        return (f"console on {url} disconnected while {doing}: check the cable or USB "
                "adapter, that the console is on, and that no other program uses the port")
    reason = getattr(exc, "strerror", None) or text or type(exc).__name__
    return f"console on {url} failed while {doing}: {reason}"


class Link:
    """An open serial port. Reads in bulk; framing is the driver's job."""

    def __init__(self, url: str, transport: Transport, *, exclusive: bool = True) -> None:
        self.url = url
        self.transport = transport
        self._exclusive = exclusive
        self._port: serial.SerialBase | None = None
        #: When the last byte went either way (monotonic s): the command gap counts from it,
        #: so a reply that came late still holds the next command back for the whole gap.
        self._last_byte_s = 0.0
        self._timeout_s = transport.timeout_s
        #: socket:// ports: `in_waiting` says only 0 or 1, so what is waiting is read without
        #: blocking instead (set at open).
        self._nonblocking_drain = False
        self._network = False  # socket:// or rfc2217://: the flush cannot reach the console
        self._unread = b""  # read early to time the command gap; handed out by the next read
        self.bytes_sent = 0  # everything written since this Link was made

    def open(self) -> Link:
        """Open the port, raising PortError with what went wrong and where."""
        import serial

        t = self.transport
        kwargs = dict(baudrate=t.baud, bytesize=t.bytesize, parity=t.parity,
                      stopbits=t.stopbits, timeout=t.timeout_s, write_timeout=t.timeout_s)
        scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else ""
        url = self.url
        if scheme == "rfc2217":
            # pyserial's RFC 2217 client refuses any write timeout (NotImplementedError),
            # and waits 3 s for an answer to each modem-line change that ser2net in front of
            # a port without modem lines never sends: laserlog sets none it needs answered.
            del kwargs["write_timeout"]
            if "ign_set_control" not in url:
                url += ("&" if "?" in url else "?") + "ign_set_control"
        try:
            if not scheme:
                kwargs["exclusive"] = self._exclusive
            self._port = serial.serial_for_url(url, **kwargs)
        except serial.SerialException as exc:
            text = str(exc)
            if "exclusively lock" in text or "Resource temporarily unavailable" in text:
                raise PortError(f"port {self.url} is in use by another program "
                                "(is another recorder running?)") from None
            if "No such file" in text or "No such device" in text:
                raise PortError(f"port {self.url} does not exist: check the port name, the "
                                "cable or USB adapter, and that the console is on") from None
            if "Permission denied" in text:
                raise PortError(f"no permission to open port {self.url}: the user needs to "
                                "be in the group that owns it (often dialout)") from None
            if "could not open port" in text:
                raise PortError(f"port {self.url} cannot be opened: {text}") from None
            raise PortError(f"cannot open port {self.url}: {text}") from None
        except (ValueError, OSError) as exc:
            raise PortError(f"cannot open port {self.url}: {exc}") from None
        self._nonblocking_drain = scheme == "socket"
        self._network = scheme in NETWORK_SCHEMES
        self._last_byte_s = 0.0
        return self

    @property
    def is_open(self) -> bool:
        return self._port is not None and self._port.is_open

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(OSError):  # closing an unplugged port may fail; it is gone
                self._port.close()
            self._port = None

    def __enter__(self) -> Link:
        return self.open() if not self.is_open else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        """Send bytes, first waiting out the profile's minimum gap since the last byte sent
        or received."""
        port = self._require()
        gap_s = self.transport.command_gap_s
        if gap_s:
            if self._nonblocking_drain or port.in_waiting:
                # Bytes already here but not yet read arrived before now: count from them.
                self._take_waiting(port)
            wait_s = self._last_byte_s + gap_s - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
        try:
            port.write(data)
            port.flush()
        except OSError as exc:  # SerialException is an OSError
            raise PortError(link_failure(self.url, "writing", exc)) from None
        self._last_byte_s = time.monotonic()
        self.bytes_sent += len(data)

    def read_available(self, timeout_s: float) -> bytes:
        """Return what has arrived, waiting up to `timeout_s` for the first byte."""
        port = self._require()
        try:
            data = self._unread + self._drain(port) if self._unread else self._drain(port)
            self._unread = b""
            if not data:
                if timeout_s != self._timeout_s:  # pyserial reconfigures the tty on every change
                    self._set_timeout(port, timeout_s)
                first = port.read(1)
                if not first:
                    return b""
                data = first + self._drain(port)
        except OSError as exc:  # unplugged: SerialException, or a bare OSError from in_waiting
            raise PortError(link_failure(self.url, "reading", exc)) from None
        self._last_byte_s = time.monotonic()
        return data

    def _take_waiting(self, port: serial.SerialBase) -> None:
        """Keep what has arrived for the next read, noting that bytes came until now."""
        try:
            data = self._drain(port)
        except OSError as exc:
            raise PortError(link_failure(self.url, "reading", exc)) from None
        if data:
            self._unread += data
            self._last_byte_s = time.monotonic()

    def _drain(self, port: serial.SerialBase) -> bytes:
        """Return every byte that has arrived, without waiting for more."""
        if self._nonblocking_drain:
            self._set_timeout(port, 0)
            return port.read(READ_CHUNK_BYTES)
        waiting = port.in_waiting
        return port.read(waiting) if waiting else b""

    def _set_timeout(self, port: serial.SerialBase, timeout_s: float) -> None:
        if timeout_s == self._timeout_s:
            return
        self._timeout_s = timeout_s
        # pyserial keeps the new timeout even when the tty then refuses settings it took at
        # open (some kernels' ptys refuse 7 data bits or parity).
        with contextlib.suppress(*_TTY_REFUSALS):
            port.timeout = timeout_s

    def discard_input(self) -> None:
        """Drop whatever the console sent before now.

        Through a network server the flush reaches only what has crossed the network: the
        server's banner and the rest of a line the console was in the middle of come later.
        So a network port is watched for NETWORK_SETTLE_S, and what came is dropped up to
        its last line end (or, when no line ended, up to the next one): the next read
        starts on a line of the console's.
        """
        port = self._require()
        self._unread = b""
        try:
            port.reset_input_buffer()
        except _FLUSH_FAILURES as exc:  # unplugged: tcflush fails with EIO
            raise PortError(link_failure(self.url, "discarding input", exc)) from None
        if self._network:
            self._settle()

    def _settle(self) -> None:
        """Drop a network port's first input up to a line end (see discard_input)."""
        terminator = self.transport.read_terminator
        started = time.monotonic()
        deadline = started + NETWORK_SETTLE_S
        seen = b""
        while (left := deadline - time.monotonic()) > 0:
            seen += self.read_available(left)
        if not terminator or not seen:
            return
        # Mid-line after the window: read on (up to the reply timeout) to the line's end.
        line_deadline = started + self.transport.timeout_s
        while terminator not in seen and (left := line_deadline - time.monotonic()) > 0:
            seen += self.read_available(min(left, 0.05))
        end = seen.rfind(terminator)
        self._unread = seen[end + len(terminator):] if end >= 0 else b""

    def _require(self) -> serial.SerialBase:
        if self._port is None:
            raise PortError(f"port {self.url} is not open")
        return self._port
