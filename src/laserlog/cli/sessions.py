"""Reading recorded sessions back: `sessions list` and `sessions show`."""

from __future__ import annotations

import argparse
from typing import Any

from laserlog.cli.args import Parser, db_arg, db_path, positive_int


def add_commands(commands: Any) -> None:
    """Add `sessions list` and `sessions show` to the main parser's subcommands."""
    sessions = commands.add_parser("sessions", help="list and show recorded sessions")
    sub = sessions.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser, required=True)
    p = sub.add_parser("list", help="list sessions, newest first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", type=positive_int, default=50, help="how many (default 50)")
    db_arg(p)
    p.set_defaults(func=cmd_sessions_list)
    p = sub.add_parser("show", help="show one session: details, totals, events")
    p.add_argument("id", type=positive_int, metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--pulses", action="store_true", help="also list its pulses")
    db_arg(p)
    p.set_defaults(func=cmd_sessions_show)


def cmd_sessions_list(args: argparse.Namespace) -> int:
    from laserlog.review.summary import format_sessions, to_json
    from laserlog.storage.store import Store

    with Store(db_path(args), readonly=True) as store:
        rows = store.sessions(args.limit)
        from laserlog.review.signoff import annotate

        annotate(store.conn, rows)  # each row's signatures, INVALID where the data changed
        print(to_json(rows) if args.json else format_sessions(rows))
    return 0


def cmd_sessions_show(args: argparse.Namespace) -> int:
    from laserlog.errors import LaserlogError
    from laserlog.review.summary import format_pulses, format_session, session_json
    from laserlog.storage.store import Store

    with Store(db_path(args), readonly=True) as store:
        if store.session(args.id) is None:
            raise LaserlogError(f"no session {args.id} in {store.path} "
                                "(see `laserlog sessions list`)")
        if args.json:
            print(session_json(store, args.id, pulses=args.pulses))
        else:
            print(format_session(store, args.id))
            if args.pulses:
                print(format_pulses(store, args.id))
    return 0
