"""Recording across a room: a real ser2net on loopback in front of the simulator's pty.

Every URL form the README lists must record: `socket://` (raw TCP) and `rfc2217://`
(telnet with RFC 2217 port control), each with ser2net's greeting banner on connect, while
the console is already firing. Every shot after the start is stored, none is garbled.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ser2netkit

from conftest import START


@pytest.fixture(scope="module")
def ser2net_program() -> str:
    ser2netkit.install_ser2net()
    program = ser2netkit.find_ser2net()
    if program is None:
        reason = ("ser2net is not installed and cannot be (needs root and apt-get: "
                  "apt-get install ser2net)")
        print(f"SKIP test_network_ports: {reason}", file=sys.stderr)
        pytest.skip(reason)
    return program


@pytest.fixture
def served(ser2net_program, simulate, tmp_path) -> Iterator[tuple[object, ser2netkit.Ser2net]]:
    """A firing simulated console behind a running ser2net."""
    sim = simulate("ps755-ref", rate_hz=20, fire=True)
    server = ser2netkit.start(sim.path, tmp_path)
    try:
        yield sim, server
    finally:
        server.stop()


def _record(url: str, db_path: Path, pulses: int, capsys) -> tuple[int, str]:
    from laserlog.cli.main import main

    status = main(["record", "--profile", "ps755-ref", "--port", url, "--operator", "tech-07",
                   "--client", "C-1042", *START, "--pulses", str(pulses),
                   "--db", str(db_path)])
    return status, capsys.readouterr().err


def _stored(db_path: Path) -> tuple[list[int], list[tuple[str, str]]]:
    with sqlite3.connect(db_path) as conn:
        seqs = [row[0] for row in conn.execute("SELECT seq FROM pulses ORDER BY id")]
        events = list(conn.execute("SELECT kind, message FROM events ORDER BY id"))
    return seqs, events


@pytest.mark.realtime
@pytest.mark.parametrize("scheme", ["socket", "rfc2217"])
def test_record_through_ser2net_stores_every_shot_and_no_garbled_line(served, scheme, db_path,
                                                                     capsys):
    sim, server = served
    url = server.socket_url if scheme == "socket" else server.rfc2217_url
    status, err = _record(url, db_path, 40, capsys)
    assert status == 0, err
    assert "Traceback" not in err
    seqs, events = _stored(db_path)
    assert len(seqs) == 40
    # Every shot after the start is there: the sequence numbers run on without a hole, and
    # no shot went missing between the console's counter at the start and the first one.
    assert seqs == list(range(seqs[0], seqs[0] + 40))
    kinds = [kind for kind, _ in events]
    assert "gap" not in kinds, events
    assert "garbled" not in kinds, events
    assert sim.pulses_sent >= seqs[-1]


# -- the link itself, against a TCP peer that plays a network serial server -----------------


class _Peer:
    """A TCP server on loopback that sends scripted chunks, each after a pause (seconds)."""

    def __init__(self, script: list[tuple[float, bytes]]) -> None:
        import socket
        import threading

        self.script = script
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import time

        conn, _ = self.server.accept()
        with conn:
            for pause_s, data in self.script:
                time.sleep(pause_s)
                conn.sendall(data)
            self.done.set()
            conn.recv(1)  # hold the connection until the client closes it

    def close(self) -> None:
        self.server.close()


def _link(url: str):
    from laserlog.config.profile import Transport
    from laserlog.link.transport import Link

    return Link(url, Transport(timeout_s=0.5)).open()


def test_socket_reads_take_everything_waiting_in_one_read():
    block = b"".join(b"P %d E120.0 S4.0 D650\r\n" % n for n in range(100))  # 2.3 KB
    peer = _Peer([(0.2, block)])
    link = _link(f"socket://127.0.0.1:{peer.port}")
    try:
        assert peer.done.wait(5)
        chunks: list[bytes] = []
        while sum(map(len, chunks)) < len(block):
            chunk = link.read_available(1.0)
            assert chunk, "the block did not arrive"
            chunks.append(chunk)
    finally:
        link.close()
        peer.close()
    assert b"".join(chunks) == block
    assert len(chunks) == 1, [len(c) for c in chunks]  # a byte a read before: 2 300 reads


@pytest.mark.realtime
def test_opening_a_network_port_drops_the_banner_and_the_tail_of_a_line():
    # ser2net greets after the connection is up, and the console was mid-line when we joined.
    peer = _Peer([(0.01, b"\r\nser2net port 2000 device /dev/ttyUSB0\r\n\r\n"),
                  (0.02, b"0 E12"), (0.01, b"0.0 S4.0\r\n"),
                  (0.3, b"P 8 E121.0 S4.0\r\n")])
    link = _link(f"socket://127.0.0.1:{peer.port}")
    try:
        link.discard_input()
        received = b""
        while not received.endswith(b"\r\n"):
            chunk = link.read_available(2.0)
            assert chunk, f"nothing after {received!r}"
            received += chunk
    finally:
        link.close()
        peer.close()
    assert received == b"P 8 E121.0 S4.0\r\n"
