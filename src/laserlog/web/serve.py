"""Serve a laserlog database read-only on Datasette: metadata, canned queries, dashboard.

The database is opened with `mode=ro` and `PRAGMA query_only` on every connection, and the
Datasette database refuses to open a write connection at all: a WAL reader never blocks the
recorder writing the same file, and nothing here can write to it. (Datasette's immutable
mode is not used: it ignores the WAL, so it would miss what the recorder is committing and
could read a half-written page.) Off loopback, officers must log in.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from datetime import tzinfo
from pathlib import Path
from typing import Any

from datasette.app import Datasette
from datasette.database import Database

from laserlog.domain import localtime
from laserlog.errors import LaserlogError
from laserlog.web.metadata import DATABASE, HIDDEN_COLUMNS, build_metadata

#: Datasette settings: charts read up to 5000 rows (five years of weeks per console).
SETTINGS = {"max_returned_rows": 5000, "sql_time_limit_ms": 3000, "facet_time_limit_ms": 300,
            "allow_download": False, "allow_csv_stream": True}


class ServeError(LaserlogError):
    """Raise when the web view cannot start: which database, host or password file."""


def is_loopback(host: str) -> bool:
    """Return whether `host` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None,
               _source: str | None) -> int:
    if action == sqlite3.SQLITE_READ and (arg1, arg2) in HIDDEN_COLUMNS:
        return sqlite3.SQLITE_IGNORE  # the column reads as NULL
    return sqlite3.SQLITE_OK


class ReadOnlyDatabase(Database):
    """A Datasette database that only ever opens read-only, query-only connections.

    Each connection has laserlog_period(time, period): days, ISO weeks and months in the
    site's time zone `zone` (None: the machine's), as the reports count them.
    """

    def __init__(self, *args: Any, zone: tzinfo | None = None, site: Any = None,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.zone = zone
        self.site = site  # the site file: the client page draws its fluence limits

    def connect(self, write: bool = False) -> sqlite3.Connection:
        if write:
            raise ServeError(f"{self.path} is served read-only: nothing may write to it")
        conn = sqlite3.connect(Path(self.path).resolve().as_uri() + "?mode=ro", uri=True,
                               check_same_thread=False)
        conn.execute("PRAGMA query_only = 1")
        conn.set_authorizer(_authorize)
        localtime.register(conn, self.zone)
        self._all_file_connections.append(conn)
        return conn


def check_database(db_path: Path) -> None:
    """Refuse a missing file or one that is not a laserlog database."""
    from laserlog.storage.schema import SCHEMA_VERSION
    from laserlog.storage.store import connect, schema_version

    conn = connect(db_path, readonly=True)  # StoreError names a missing file
    try:
        version = schema_version(conn, db_path)  # a newer laserlog's database: StoreError
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ServeError(f"cannot read {db_path}: {exc}") from None
    finally:
        conn.close()
    if version != SCHEMA_VERSION:
        raise ServeError(f"{db_path} has schema {version}, this laserlog serves schema "
                         f"{SCHEMA_VERSION}: open it once with this laserlog's `record` or "
                         "`sessions list` to upgrade it, or use the matching laserlog")


def load_passwords(path: Path) -> dict[str, str]:
    """Read officers' password hashes: TOML lines `user-id = "pbkdf2_sha256$..."`."""
    import tomllib

    from laserlog.config.files import loads_toml, read_text

    try:
        data = loads_toml(read_text(path, "password file"))
    except FileNotFoundError:
        raise ServeError(f"password file {path} does not exist") from None
    except OSError as exc:
        raise ServeError(f"cannot read password file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ServeError(f"{path}: TOML syntax error: {exc}") from None
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    users = data.get("passwords", data)
    out = {}
    for user, digest in users.items():
        if not isinstance(digest, str) or not digest.startswith("pbkdf2_sha256$"):
            raise ServeError(f"{path}: key {user!r} must be a password hash from `laserlog serve "
                             "--hash-password` (text starting pbkdf2_sha256$)")
        out[str(user)] = digest
    if not out:
        raise ServeError(f"{path} names no officer: add lines such as lso-01 = \"pbkdf2_sha256$"
                         "...\" (hashes from `laserlog serve --hash-password`)")
    return out


def hash_password(password: str) -> str:
    """Return the hash datasette-auth-passwords checks a log-in against."""
    from datasette_auth_passwords.utils import hash_password as _hash

    return str(_hash(password))


def build(db_path: Path, *, passwords: dict[str, str] | None = None,
          site: Any = None) -> Datasette:
    """Return a Datasette serving the database read-only with laserlog's metadata."""
    from datasette.plugins import pm

    from laserlog.config.siteconfig import site_for
    from laserlog.web import plugin

    check_database(db_path)
    if site is None:
        site = site_for(db_path)
    if not pm.is_registered(plugin):
        pm.register(plugin, name="laserlog")
    _offer_log_in(pm, bool(passwords))
    metadata = build_metadata(interval_days=site.calibration_interval_days,
                              passwords=passwords)
    ds = Datasette([], metadata=metadata, settings=SETTINGS,
                   template_dir=str(Path(__file__).with_name("templates")))
    ds.add_database(ReadOnlyDatabase(ds, path=str(db_path), is_mutable=True, zone=site.zone,
                                     site=site), name=DATABASE)
    if "_memory" in ds.databases:
        ds.remove_database("_memory")  # the log is the only database on show
    return ds


def _offer_log_in(pm: Any, accounts: bool) -> None:
    """Offer `Log in` only when officers' accounts exist: without them it leads nowhere."""
    import datasette_auth_passwords

    registered = pm.is_registered(datasette_auth_passwords)
    if accounts and not registered:
        pm.register(datasette_auth_passwords, name="auth_passwords")
    elif not accounts and registered:
        pm.unregister(datasette_auth_passwords)


def _check_port_free(host: str, port: int) -> None:
    """Raise ServeError naming the port when something already listens there."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ServeError(f"--host {host}: not an address this machine can listen on "
                         f"({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror}): another "
                             "program (another `laserlog serve`?) uses it; choose --port") from None


def serve(db_path: Path, host: str, port: int, *, password_file: Path | None = None) -> None:
    """Serve until interrupted; off loopback only with officers' passwords configured."""
    import asyncio

    import uvicorn

    passwords = load_passwords(password_file) if password_file else None
    if not is_loopback(host) and not passwords:
        raise ServeError(f"refusing to serve on {host}: off this machine officers must log in. "
                         "Give --passwords FILE (lines `lso-01 = \"<hash>\"`, hashes from "
                         "`laserlog serve --hash-password`), or serve on 127.0.0.1")
    ds = build(db_path, passwords=passwords)
    _check_port_free(host, port)
    asyncio.run(ds.invoke_startup())
    where = f"[{host}]" if ":" in host else host
    print(f"laserlog serve: http://{where}:{port}/ (read-only view of {db_path}; "
          f"dashboard /-/dashboards/review; {'log in at /-/login' if passwords else 'no log-in'})",
          flush=True)
    uvicorn.run(ds.app(), host=host, port=port, log_level="warning", lifespan="on")
