"""The command line's one dispatch: each subsystem adds its commands, `main` runs one.

Each command imports what it needs when it runs, so `laserlog --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from laserlog.cli.args import EXIT_BAD_INPUT, UNREADABLE, Parser, unreadable


def build_parser() -> Parser:
    """Return the parser for every command."""
    parser = Parser(prog="laserlog", description=(
        "Log every pulse of an aesthetic laser console (duration and regime, fluence, spot, "
        "energy) into SQLite, per treatment session."))
    from laserlog import __version__

    parser.add_argument("--version", action="version", version=f"laserlog {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    from laserlog.cli import (
        central,
        courses,
        documents,
        photos,
        profiles,
        reactions,
        recording,
        review,
        sessions,
        web,
    )

    recording.add_commands(commands)  # record, simulate, demo, live, recover
    sessions.add_commands(commands)  # sessions list, sessions show
    courses.add_commands(commands)  # course new, list, show, close, attach, readout, consent
    documents.add_commands(commands)  # aftercare
    photos.add_commands(commands)  # photo add, list
    reactions.add_commands(commands)  # assess; adverse ...; outcome add, import
    profiles.add_commands(commands)  # profiles list, show, check, new, test, replay
    # report, verify, users, signoff, correct, calibrate, export, site, simulate-bench
    review.add_commands(commands)
    web.add_commands(commands)  # serve: the read-only web view
    central.add_commands(commands)  # sync: ship to a central PostgreSQL
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    from laserlog.errors import LaserlogError

    try:
        return int(args.func(args))
    except LaserlogError as exc:
        print(f"laserlog: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt as exc:
        if str(exc):  # what the interruption left undone, when the command knows
            print(f"laserlog: {exc}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        from laserlog.storage.store import BUSY_TIMEOUT_S, locked

        if not locked(exc):
            if isinstance(exc, UNREADABLE) and hasattr(args, "db"):
                print(f"laserlog: error: {unreadable(args, exc)}", file=sys.stderr)
                return EXIT_BAD_INPUT
            raise
        from laserlog.cli.args import db_path
        from laserlog.storage.location import lock_holders

        path = db_path(args) if hasattr(args, "db") else "the database"
        holders = lock_holders(path)
        named = f" ({'; '.join(holders)})" if holders else ""
        print(f"laserlog: error: database {path} is locked by another program{named}: waited "
              f"{BUSY_TIMEOUT_S:g} s and changed nothing; close that program (or let it finish) "
              "and try again", file=sys.stderr)
        return EXIT_BAD_INPUT

