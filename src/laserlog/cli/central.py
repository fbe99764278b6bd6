"""The central server's commands: `sync`, and `report`/`verify`/`signoff` with `--db postgresql://`.

Registered by laserlog.cli.main; nothing here imports psycopg until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from laserlog.cli.args import db_arg, db_path, positive_int


def add_commands(commands: Any) -> None:
    """Add `laserlog sync` to the main parser's subcommands."""
    p = commands.add_parser("sync", help="ship this console's sessions, pulses, events and "
                            "chain to a central PostgreSQL (what is not there yet)")
    p.add_argument("--to", required=True, metavar="URL",
                   help="the server, postgresql://user:password@host:port/database")
    p.add_argument("--name", metavar="NAME", help="how the server names this console "
                   "(default host:file on first sync)")
    p.add_argument("--site", metavar="SITE", help="the clinic this console belongs to")
    p.add_argument("--new-server", action="store_true",
                   help="allow shipping to a server other than the one this database ships to")
    p.add_argument("--chunk-rows", type=positive_int, metavar="N",
                   help="rows of a table per transaction (default 500000): what a sync cut "
                   "off keeps is every whole chunk before the cut")
    db_arg(p)
    p.set_defaults(func=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    from laserlog.central.sync import sync
    from laserlog.errors import LaserlogError
    from laserlog.storage.location import is_url

    if not is_url(args.to):
        raise LaserlogError(f"--to {args.to!r}: expected postgresql://user:password@host/database")
    from laserlog.central.sync import CHUNK_ROWS, SyncResult

    def progress(so_far: SyncResult) -> None:
        # A first sync of years of records takes a while: at a terminal, say how far each
        # commit got (what a cut-off sync keeps).
        print(f"  committed chunk {so_far.chunks}: {so_far.rows.get('pulses', 0):,} pulses, "
              f"chain link {so_far.head_link}", file=sys.stderr, flush=True)

    result = sync(db_path(args), args.to, name=args.name, site=args.site, new_server=args.new_server,
                  chunk_rows=args.chunk_rows or CHUNK_ROWS,
                  on_chunk=progress if sys.stderr.isatty() else None)
    print(result.line())
    return 0


def report_energy(args: argparse.Namespace, filters: Any) -> int:
    from laserlog.central import fleet
    from laserlog.review.reports import render

    print(render(fleet.energy(args.db, args.by, filters), args.format))
    return 0


def report_faults(args: argparse.Namespace, filters: Any, kinds: tuple[str, ...]) -> int:
    from laserlog.central import fleet
    from laserlog.review.reports import render

    print(render(fleet.faults(args.db, args.by, filters, kinds), args.format))
    return 0


def report_adverse(args: argparse.Namespace, by: tuple[str, ...]) -> int:
    """Print the dose-safety report over every console; the site file $LASERLOG_SITE names
    gives the fluence bands (else quartiles of the fleet's doses per wavelength)."""
    from laserlog.central import fleet
    from laserlog.config.siteconfig import site_for
    from laserlog.review.reports import render

    edges = site_for(None).fluence_bands_j_cm2
    print(render(fleet.adverse(args.db, by, args.kind, edges), args.format))
    return 0


def report_limits(args: argparse.Namespace, filters: Any) -> int:
    from laserlog.central import fleet
    from laserlog.review.reports import render

    print(render(fleet.limits(args.db, filters), args.format))
    return 0


def report_calibration(args: argparse.Namespace, filters: Any) -> int:
    from laserlog.central import fleet
    from laserlog.review.reports import render

    print(render(fleet.calibration(args.db, filters, history=args.history), args.format))
    return 0


def report_signoffs(args: argparse.Namespace, filters: Any) -> int:
    from laserlog.central import fleet
    from laserlog.review.reports import render

    print(render(fleet.signoffs(args.db, filters, user=args.user, unsigned=args.unsigned),
                 args.format))
    return 0


def export(args: argparse.Namespace, filters: Any, progress: Any) -> tuple[int, int, str]:
    """Export one console's sessions from the server (`--console`, by the console's own ids);
    return (sessions, pulses written, the console's name)."""
    from pathlib import Path

    from laserlog.central import fleet

    sessions, rows, name = fleet.export(
        args.db, args.console, args.format, args.session, filters.start_utc if filters else None,
        filters.end_utc if filters else None, Path(args.out), table=args.table,
        progress=progress, force=args.force, pulses=args.pulses)
    return sessions, rows, name


def verify(args: argparse.Namespace) -> int:
    """Recompute every console's chain on the server; exit 1 on any finding."""
    import json

    from laserlog.central import fleet
    from laserlog.storage.verify import MAX_LISTED

    reports = fleet.verify_server(args.db)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
        return 0 if all(r.ok for r in reports) else 1
    bad = 0
    for report in reports:
        print(f"{report.path}: {report.links} link(s), {report.rows} row(s) recomputed, "
              f"{report.sessions_sealed} session(s) sealed, head link {report.head_link} "
              f"{report.head_hash[:16]}")
        for note in report.notes:
            print(f"  note: {note}")
        for finding in report.findings[:MAX_LISTED]:
            print(f"  {finding.kind}: {finding.message}")
        bad += not report.ok
    if not reports:
        print("no console has synced to this server yet")
    if bad:
        print(f"TAMPERED or DAMAGED: {bad} of {len(reports)} console(s) have findings")
        return 1
    print(f"OK: {len(reports)} console(s); every chain recomputes, every seal and synced head "
          "matches", file=sys.stdout)
    return 0


def signoff(args: argparse.Namespace) -> int:
    """Sign a session of one console on the server (`--console`, by the console's own ids)."""
    from laserlog.central.signing import sign
    from laserlog.review.users import read_passphrase

    signature, name = sign(args.db, args.console, args.session, args.user, args.meaning,
                           lambda: read_passphrase(f"passphrase for {args.user}: "))
    print(f"session {args.session} of console {name} {signature.meaning} by "
          f"{signature.printed_name} ({signature.role}) at {signature.signed_utc} on the central "
          f"server, bound to seal link {signature.chain_id} {signature.chain_hash[:16]}")
    return 0


def users_add(args: argparse.Namespace, passphrase: str) -> int:
    """Add a person who signs on the server (as the database's owner)."""
    from laserlog.central.signing import add_user

    user = add_user(args.db, args.user_id, args.name, args.role, passphrase)
    print(f"added {user.role} {user.user_id} ({user.name}) on the central server")
    return 0


def users_list(args: argparse.Namespace) -> list[Any]:
    """Return the people who sign on the server."""
    from laserlog.central.signing import list_users

    return list_users(args.db)
