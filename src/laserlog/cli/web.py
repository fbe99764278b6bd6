"""`laserlog serve`: the command line for the read-only web view (imports Datasette on run)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from laserlog.cli.args import db_arg, tcp_port


def add_commands(commands: Any) -> None:
    """Add `serve` to the main parser's subcommands."""
    p = commands.add_parser(
        "serve", help="a read-only web view of the log for the safety officer (Datasette)",
        description="Serve the database read-only on Datasette: every table described with "
        "its units, the officer's report queries, a dashboard of charts, and each session's "
        "printable report. Listens on 127.0.0.1 unless --host says otherwise; any other "
        "address needs --passwords.")
    db_arg(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; off loopback needs --passwords)")
    p.add_argument("--port", type=tcp_port, default=8001, help="port (default 8001)")
    p.add_argument("--passwords", metavar="FILE",
                   help="officers who may log in: TOML lines `lso-01 = \"<hash>\"`")
    p.add_argument("--hash-password", action="store_true",
                   help="read a password (prompt, or standard input) and print its hash for "
                   "the --passwords file, then exit")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from laserlog.errors import LaserlogError

    try:
        from laserlog.web import serve
    except ImportError as exc:
        raise LaserlogError(f"the web view needs Datasette and its plugins ({exc.name} is "
                            "missing): pip install 'laserlog[web]'") from None
    if args.hash_password:
        if sys.stdin.isatty():
            import getpass

            password = getpass.getpass("Password: ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise LaserlogError("no password given: nothing to hash")
        print(serve.hash_password(password))
        return 0
    from laserlog.storage.store import default_db_path

    db = Path(args.db) if args.db else default_db_path()
    serve.serve(db, args.host, args.port,
                password_file=Path(args.passwords) if args.passwords else None)
    return 0
