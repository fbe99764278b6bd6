"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder.

Listens on 127.0.0.1 only, on a free port, with its unix socket in the same folder, and
password (scram) authentication so a wrong password is refused as in production. initdb
refuses to run as root: as root the server runs as an unprivileged system user created on
the fly (`laserlog-pg`). Everything is removed when the server stops.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ports import free_port

SERVER_USER = "laserlog-pg"
SUPERUSER = "laserlog_admin"
PASSWORD = "test-admin-password"


def find_bindir() -> Path | None:
    """Return the folder holding initdb, pg_ctl and postgres, None when not installed."""
    candidates: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0:
            candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if all(Path(folder, tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _as_server_user() -> list[str]:
    """Return the command prefix that runs a tool as an unprivileged user ([] when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", SERVER_USER], check=True, capture_output=True)
    return ["runuser", "-u", SERVER_USER, "--"]


@dataclass
class PgServer:
    """A running server: its folder, port and superuser URL."""

    root: Path
    bindir: Path
    port: int
    prefix: list[str]

    def url(self, database: str = "postgres", user: str = SUPERUSER,
            password: str = PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a fresh database and return its superuser URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> PgServer:
    """Initialise and start a server in a new temporary folder; raise RuntimeError if it fails."""
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl)")
    prefix = _as_server_user()
    # Not under pytest's tmp_path: its parents are private to root and the server user
    # must reach its own folder.
    root = Path(tempfile.mkdtemp(prefix="laserlog-pg-"))
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if prefix:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                        "--pwfile", str(pwfile), "--auth", "scram-sha-256", "-E", "UTF8",
                        "--locale", "C", "--no-sync"],
                       check=True, capture_output=True, text=True, timeout=120)
        port = free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                   f"-c unix_socket_directories={root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                        "-l", str(root / "server.log"), "-w", "-t", "60", "start"],
                       check=True, capture_output=True, text=True, timeout=90)
    except subprocess.CalledProcessError as exc:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"{exc.cmd[len(prefix)]} failed: {exc.stderr}\n{log}") from None
    server = PgServer(root, bindir, port, prefix)
    deadline = time.monotonic() + 30
    while True:  # pg_ctl -w waits for the socket; make sure TCP answers too
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("PostgreSQL started but does not accept TCP connections")
        time.sleep(0.05)
