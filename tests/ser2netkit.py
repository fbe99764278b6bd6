"""A real ser2net (the Debian package) on loopback, in front of a simulated console's pty.

One server offers the pty twice: raw TCP (`socket://`) and telnet with RFC 2217
(`rfc2217://`), each on a free port of 127.0.0.1. Like Debian's shipped configuration it
greets every client with a banner, so a recorder must not take the greeting for a line
from the console.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ports import free_port

#: The greeting of Debian's /etc/ser2net.yaml (\p: the port, \d: the device, \B: its settings).
BANNER = r"\r\nser2net port \p device \d [\B] (Debian GNU/Linux)\r\n\r\n"


def find_ser2net() -> str | None:
    """Return the ser2net program, None when it is not installed."""
    return shutil.which("ser2net") or next(
        (p for p in ("/usr/sbin/ser2net", "/usr/bin/ser2net") if os.access(p, os.X_OK)), None)


def install_ser2net() -> None:
    """Install Debian's ser2net when it is missing and we may (root with apt-get)."""
    if find_ser2net() is not None or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["apt-get", "install", "-y", "-q", "ser2net"], capture_output=True,
                              timeout=600, env=env)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600, env=env)
            subprocess.run(["apt-get", "install", "-y", "-q", "ser2net"], capture_output=True,
                           timeout=600, env=env)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@dataclass
class Ser2net:
    """A running ser2net: the URLs that reach the console, and how to stop it."""

    process: subprocess.Popen[bytes]
    raw_port: int
    rfc2217_port: int
    log: Path

    @property
    def socket_url(self) -> str:
        return f"socket://127.0.0.1:{self.raw_port}"

    @property
    def rfc2217_url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.rfc2217_port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start(device: Path, folder: Path, baud: int = 115200) -> Ser2net:
    """Start ser2net serving `device`; return once both ports accept connections."""
    program = find_ser2net()
    if program is None:
        raise RuntimeError("ser2net is not installed")
    raw, telnet = free_port(), free_port()
    connector = f"serialdev,{device},{baud}n81,local"
    config = folder / "ser2net.yaml"
    config.write_text(
        f"define: &banner {BANNER}\n"
        "connection: &raw\n"
        f"    accepter: tcp,127.0.0.1,{raw}\n"
        "    enable: on\n"
        "    options:\n"
        "      banner: *banner\n"
        "      kickolduser: true\n"
        f"    connector: {connector}\n"
        "connection: &rfc2217\n"
        f"    accepter: telnet(rfc2217),tcp,127.0.0.1,{telnet}\n"
        "    enable: on\n"
        "    options:\n"
        "      banner: *banner\n"
        "      kickolduser: true\n"
        f"    connector: {connector}\n")
    log = folder / "ser2net.log"
    # -n: stay in the foreground (ours to stop); -u: no UUCP lock files in /var/lock.
    with log.open("wb") as out:
        process = subprocess.Popen([program, "-n", "-u", "-c", str(config),
                                    "-P", str(folder / "ser2net.pid")],
                                   stdout=out, stderr=subprocess.STDOUT)
    server = Ser2net(process, raw, telnet, log)
    deadline = time.monotonic() + 10
    while not (_listening(raw) and _listening(telnet)):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"ser2net did not start: {log.read_text(errors='replace')}")
        time.sleep(0.02)
    return server
