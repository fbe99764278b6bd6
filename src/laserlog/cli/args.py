"""Shared argument types of the command line: the parser, --db, --profiles, --sync, numbers,
free text."""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from collections.abc import Sequence

#: Exit status for bad input: a broken profile, a wrong argument, a missing file.
EXIT_BAD_INPUT = 2
#: The largest whole number SQLite stores (a session ID, a count).
INT64_MAX = 2**63 - 1
#: The longest note or reason an option takes: a few sentences, never a pasted document.
MAX_TEXT_CHARS = 500
#: How much of a refused argument a message quotes (a 100 kB argument is not echoed whole).
_SHOWN_CHARS = 80
#: argparse's message for a value outside an argument's choices (a command, --by, --format).
_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<given>.*)' \(choose from (?P<choices>.*)\)$")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors say what was expected, exit 2, no traceback.

    A subcommand refuses what it does not know itself, so the usage printed is that
    subcommand's, not the top level's; a near-miss choice gets a "did you mean".
    """

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> None:  # type: ignore[override]
        found = _INVALID_CHOICE.search(message)
        if found:
            from laserlog.config.catalog import near_miss

            choices = re.findall(r"'([^']*)'", found["choices"])
            meant = near_miss(found["given"], choices)
            if meant is not None:
                message += f"; did you mean {meant!r}?"
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"laserlog: error: {message}\n")


def shown(text: str) -> str:
    """Return an argument as a message quotes it: its repr, cut after 80 characters."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text)} characters)"


def not_text(text: str) -> str | None:
    """Return why an argument cannot be stored as text (bytes that are not UTF-8, a control
    character), or None when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"{shown(text)} holds bytes that are not UTF-8 text (character {exc.start + 1}); "
                "expected UTF-8 text")
    for number, char in enumerate(text, start=1):
        if (ord(char) < 32 or 0x7f <= ord(char) < 0xa0) and char not in "\t\n\r":
            return (f"{shown(text)} holds control character U+{ord(char):04X} (character "
                    f"{number}); expected plain text")
    return None


def free_text(text: str) -> str:
    """Parse a note or a reason: UTF-8 text without control characters, at most 500
    characters once runs of white space are made one space ("" for an empty one)."""
    why = not_text(text)
    if why:
        raise argparse.ArgumentTypeError(why)
    collapsed = " ".join(text.split())
    if len(collapsed) > MAX_TEXT_CHARS:
        raise argparse.ArgumentTypeError(f"{shown(text)} is too long; expected at most "
                                         f"{MAX_TEXT_CHARS} characters")
    return collapsed


def person(text: str) -> str:
    """Parse a user ID (--user, --by): never empty, in normal form."""
    from laserlog.domain.ids import normal_id
    from laserlog.errors import LaserlogError

    try:
        return normal_id(text if len(text) <= _SHOWN_CHARS else shown(text), "user ID")
    except LaserlogError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def database(text: str) -> str:
    """Parse --db: a file path (or a server URL), never empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; expected a database file")
    return text


def new_file(text: str) -> str:
    """Parse the path of a file laserlog will create: never empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; expected a new file name")
    return text


def db_arg(p: argparse.ArgumentParser) -> None:
    """Add --db, the database file (or, where a command says so, a central server)."""
    p.add_argument("--db", metavar="PATH", type=database,
                   help="database file (default: $LASERLOG_DB, else laserlog.db in the user data folder)")


def profiles_arg(p: argparse.ArgumentParser) -> None:
    """Add --profiles, folders searched for profiles before the user's and the bundled ones."""
    p.add_argument("--profiles", metavar="DIR", action="append", default=[],
                   help="also search this folder for profiles (first match wins; repeatable)")


def sync_arg(p: argparse.ArgumentParser) -> None:
    """Add --sync, background shipping to a central PostgreSQL."""
    p.add_argument("--sync", metavar="URL", help="also ship committed rows to a central "
                   "PostgreSQL in the background (postgresql://...; retries, never blocks)")


def positive_float(text: str) -> float:
    """Parse a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def whole_number(text: str) -> int:
    """Parse a whole number inside 64 bits, written in ASCII digits (with a sign or not)."""
    digits = text.strip().removeprefix("+").removeprefix("-")
    if not digits.isascii() or not digits.isdigit():  # int() also takes 1_0 and ４
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a whole number")
    if len(digits) > 19 or int(digits) > INT64_MAX:  # no int() of 100 000 digits
        raise argparse.ArgumentTypeError(f"{shown(text)} is too large (at most {INT64_MAX})")
    return int(text)


def positive_int(text: str) -> int:
    """Parse a whole number above 0, written in ASCII digits."""
    value = whole_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{shown(text)} must be above 0")
    return value


def tcp_port(text: str) -> int:
    """Parse a TCP port number, 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} must be a port from 1 to 65535")
    return value


def db_path(args: argparse.Namespace) -> str:
    """Return the database the command works on: --db, else the default one."""
    from laserlog.storage.store import default_db_path

    return args.db or str(default_db_path())


#: What reading a value laserlog never writes raises (a database edited behind its back).
UNREADABLE = (ValueError, TypeError, AttributeError, OverflowError, RecursionError, KeyError,
              IndexError, sqlite3.DatabaseError)


def unreadable(args: argparse.Namespace, exc: BaseException) -> str:
    """Return the one message for a database holding what laserlog never writes."""
    detail = f"{type(exc).__name__}: {exc}"
    if len(detail) > 200:
        detail = detail[:200] + "..."
    return (f"database {db_path(args)} holds a value laserlog never writes ({detail}): if it "
            "was edited outside laserlog, `laserlog verify` says what changed; otherwise "
            "please report this")
