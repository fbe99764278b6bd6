"""The safety officer's commands: report, verify, users, signoff, correct, calibrate, export.

Registered on the main parser by `add_commands`; like the rest of the command line, each
command imports what it needs when it runs, so `laserlog --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from laserlog.cli.args import db_arg, db_path, positive_float, positive_int, profiles_arg


def _filters(p: argparse.ArgumentParser, *, client: bool = True) -> None:
    p.add_argument("--from", dest="start", metavar="DATE", help="from this UTC date or time")
    p.add_argument("--to", dest="end", metavar="DATE", help="up to this UTC date (inclusive) or time")
    p.add_argument("--device", metavar="ID", help="only this console: profile name or serial")
    p.add_argument("--operator", metavar="ID", help="only sessions this operator ran")
    if client:
        p.add_argument("--client", metavar="REF", help="only this client pseudonym")
        p.add_argument("--area", metavar="AREA", help="only this treatment area (as recorded, "
                       "corrections applied; case does not matter)")
        p.add_argument("--last", type=positive_int, metavar="N",
                       help="only the N most recent full sessions that match (e.g. of "
                       "--client on --area); test spots are listed apart")


def _format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default table)")


def _authoriser(p: argparse.ArgumentParser, func: Any) -> None:
    """Finish a user-management command: who authorises it (--as), the database, the handler."""
    p.add_argument("--as", dest="as_user", required=True, metavar="ID",
                   help="the administrator or officer who authorises it (passphrase from a "
                   "prompt, stdin or $LASERLOG_AS_PASSPHRASE)")
    db_arg(p)
    p.set_defaults(func=func)


def add_commands(commands: Any) -> None:
    """Add the review commands to the main parser's subcommands."""
    report = commands.add_parser("report", help="energy, faults, limits, calibration and "
                                 "sign-off reports for the safety officer")
    sub = report.add_subparsers(dest="report", metavar="REPORT", required=True,
                                parser_class=type(report))
    p = sub.add_parser("energy", help="pulses, total energy, max fluence and regimes")
    p.add_argument("--by", default="session", choices=("session", "day", "week", "month",
                                                       "device", "operator", "client", "area",
                                                       "pass", "console", "site"),
                   help="one row per session (default) or per group; day, week (ISO 8601) "
                   "and month in the site's time zone; client = per client and area, summed "
                   "across sessions; pass = per pass of each session with passes marked; "
                   "console and site: on a central server")
    _filters(p)
    _format(p)
    db_arg(p)
    p.set_defaults(func=cmd_report_energy)
    p = sub.add_parser("faults", help="console faults, interlocks, link losses, gaps, "
                       "disagreements, out-of-limit pulses")
    p.add_argument("--by", default="event",
                   choices=("event", "kind", "device", "session", "day", "month", "console",
                            "site"),
                   help="list every event (default) or count them per group")
    p.add_argument("--kind", action="append", metavar="KIND",
                   help="only this event kind (repeatable), e.g. fault, interlock_open, gap")
    _filters(p)
    _format(p)
    db_arg(p)
    p.set_defaults(func=cmd_report_faults)
    p = sub.add_parser("adverse", help="adverse events against the dose: sessions, sessions "
                       "with an event and their share, events by kind, doses, per group")
    p.add_argument("--by", default="skin-type", metavar="GROUPS",
                   help="one or more of skin-type, fluence-band, device, indication, separated "
                   "by commas (default skin-type)")
    p.add_argument("--kind", metavar="KIND", help="count only this kind of adverse event")
    _format(p)
    db_arg(p)
    p.set_defaults(func=cmd_report_adverse)
    p = sub.add_parser("limits", help="sessions that ran outside a profile's or the site's limits")
    _filters(p)
    _format(p)
    db_arg(p)
    p.set_defaults(func=cmd_report_limits)
    p = sub.add_parser("calibration", help="each console's calibration status, or the history")
    p.add_argument("--history", action="store_true", help="list every check instead")
    p.add_argument("--from", dest="start", metavar="DATE")
    p.add_argument("--to", dest="end", metavar="DATE")
    p.add_argument("--device", metavar="ID", help="only this console: profile name or serial")
    _format(p)
    db_arg(p)
    p.set_defaults(func=cmd_report_calibration)
    p = sub.add_parser("signoffs", help="who signed which session, and whether it still holds")
    _filters(p)
    p.add_argument("--user", metavar="ID", help="only this signer")
    p.add_argument("--unsigned", action="store_true",
                   help="list ended sessions without a valid approval instead")
    _format(p)
    db_arg(p)
    p.set_defaults(func=cmd_report_signoffs)

    p = commands.add_parser("verify", help="check the database for tampering: integrity, hash "
                            "chain, checkpoints, seals, anchor file, schema, session totals, "
                            "signatures")
    p.add_argument("--anchor", metavar="FILE", help="anchor file (default: beside the database;"
                   " e.g. the second anchor on a removable disk)")
    p.add_argument("--witness", metavar="URL", help="compare the chain with what the central "
                   "server (postgresql://...) received, and trust the installation key the "
                   "console registered there")
    p.add_argument("--photos", action="store_true", help="also check every recorded photo "
                   "against its file in the site's photo folder (changed ones fail; missing "
                   "ones are listed)")
    p.add_argument("--json", action="store_true", help="print JSON")
    db_arg(p)
    p.set_defaults(func=cmd_verify)

    users = commands.add_parser("users", help="add and list the people who sign and calibrate")
    sub = users.add_subparsers(dest="action", metavar="ACTION", required=True,
                               parser_class=type(users))
    p = sub.add_parser("add", help="add a user (passphrase from a prompt, stdin or "
                       "$LASERLOG_PASSPHRASE)")
    p.add_argument("user_id", metavar="ID")
    p.add_argument("--name", required=True, help="printed name, as under a signature")
    p.add_argument("--role", required=True,
                   choices=("technician", "officer", "engineer", "administrator"))
    p.add_argument("--as", dest="as_user", metavar="ID",
                   help="the administrator or officer who authorises it (passphrase from a "
                   "prompt, stdin or $LASERLOG_AS_PASSPHRASE); not needed for the first user")
    db_arg(p)
    p.set_defaults(func=cmd_users_add)
    p = sub.add_parser("role", help="give a user another role (an administrator or officer "
                       "authorises it)")
    p.add_argument("user_id", metavar="ID")
    p.add_argument("role", choices=("technician", "officer", "engineer", "administrator"))
    _authoriser(p, cmd_users_role)
    p = sub.add_parser("revoke", help="revoke a user: their later signatures are INVALID, "
                       "earlier ones stand")
    p.add_argument("user_id", metavar="ID")
    _authoriser(p, cmd_users_revoke)
    p = sub.add_parser("passphrase", help="change your own passphrase (your key is sealed "
                       "again under it)")
    p.add_argument("user_id", metavar="ID")
    db_arg(p)
    p.set_defaults(func=cmd_users_passphrase)
    p = sub.add_parser("list", help="list users")
    p.add_argument("--json", action="store_true", help="print JSON")
    db_arg(p)
    p.set_defaults(func=cmd_users_list)

    p = commands.add_parser("signoff", help="sign a session off (reviewed or approved)")
    p.add_argument("session", type=positive_int, metavar="SESSION")
    p.add_argument("--meaning", required=True, choices=("reviewed", "approved"))
    p.add_argument("--user", required=True, metavar="ID", help="your user ID")
    p.add_argument("--console", metavar="NAME", help="on a central server (--db postgresql://"
                   "...): the console whose session this is, by name or UUID")
    db_arg(p)
    p.set_defaults(func=cmd_signoff)

    p = commands.add_parser("correct", help="correct a session detail with a new row (who, "
                            "when, old and new value, reason)")
    p.add_argument("session", type=positive_int, metavar="SESSION")
    p.add_argument("--field", required=True, choices=("client", "area", "skin-type"))
    p.add_argument("--value", required=True, help="the correct value")
    p.add_argument("--reason", required=True, help="why the recorded value was wrong")
    p.add_argument("--user", required=True, metavar="ID", help="your user ID")
    db_arg(p)
    p.set_defaults(func=cmd_correct)

    p = commands.add_parser("calibrate", help="check a console's output energy with a meter")
    p.add_argument("--profile", required=True, help="the console's profile")
    p.add_argument("--port", required=True, metavar="URL", help="the console's port")
    p.add_argument("--meter", required=True, metavar="METER_PROFILE",
                   help="the meter's profile, e.g. ophir-nova2 or gentec-maestro")
    p.add_argument("--meter-port", required=True, metavar="URL", help="the meter's port")
    p.add_argument("--shots", type=positive_int, metavar="N",
                   help="shots to measure (default: the site file's, else 5)")
    p.add_argument("--user", required=True, metavar="ID", help="who makes the check")
    p.add_argument("--serial", metavar="SN", help="refuse a console with another serial number")
    p.add_argument("--meter-serial", metavar="SN",
                   help="the head's serial number (required when the meter cannot report it)")
    fire = p.add_mutually_exclusive_group()
    fire.add_argument("--fire", dest="fire", action="store_true", default=None,
                      help="fire through the console's profile (default when it can)")
    fire.add_argument("--no-fire", dest="fire", action="store_false",
                      help="wait while the technician fires")
    p.add_argument("--timeout", type=positive_float, metavar="S",
                   help="longest wait for one shot (default 10 s fired, 120 s by hand)")
    p.add_argument("--json", action="store_true", help="print the check as JSON")
    db_arg(p)
    profiles_arg(p)
    p.set_defaults(func=cmd_calibrate)

    p = commands.add_parser("export", help="export sessions: csv, json, ndjson, the printable "
                            "record as html or pdf, or a client's record as a FHIR R5 Bundle")
    p.add_argument("--format", required=True,
                   choices=("csv", "json", "ndjson", "html", "pdf", "fhir"),
                   help="html/pdf: the printable record (pdf through headless Chromium); fhir: "
                        "a FHIR R5 Bundle of one client, session or course (docs/reactions.md)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", type=positive_int, metavar="ID")
    which.add_argument("--from", dest="start", metavar="DATE", help="sessions started from")
    which.add_argument("--client", metavar="REF", help="fhir: every session of this client "
                       "(pseudonym), their courses and outcomes")
    which.add_argument("--course", type=positive_int, metavar="ID",
                       help="fhir: a course, its sessions and outcomes")
    p.add_argument("--to", dest="end", metavar="DATE", help="... up to this date (with --from)")
    p.add_argument("--table", choices=("pulses", "events", "sessions", "passes"),
                   default="pulses", help="what a CSV export holds (default pulses; passes: "
                   "per pass of each session, as `report energy --by pass`)")
    p.add_argument("--pulses", action="store_true",
                   help="html/pdf: add the full pulse table to the printable record")
    p.add_argument("--aftercare", action="store_true",
                   help="html/pdf with --session: the aftercare page the client takes home "
                        "(the aftercare text given, with the session's key numbers)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="a new file (an existing one only with --force)")
    p.add_argument("--force", action="store_true", help="replace --out if it is a file")
    p.add_argument("--console", metavar="NAME", help="on a central server (--db postgresql://"
                   "...): the console whose sessions these are, by name or UUID")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    db_arg(p)
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("site", help="show the site configuration (limits, calibration "
                            "policy, skin-type envelopes)")
    p.add_argument("--profile", metavar="PROFILE", help="also show the skin-type envelopes in "
                   "force on this console: its profile's and the site's, the stricter winning")
    p.add_argument("--json", action="store_true", help="print JSON")
    profiles_arg(p)
    db_arg(p)
    p.set_defaults(func=cmd_site)

    p = commands.add_parser("simulate-bench", help="serve a simulated console firing into a "
                            "simulated energy meter (two ptys), for calibration checks")
    p.add_argument("profile", help="console profile")
    p.add_argument("--link", required=True, metavar="PATH", help="symlink for the console's pty")
    p.add_argument("--meter", required=True, metavar="METER_PROFILE")
    p.add_argument("--meter-link", required=True, metavar="PATH", help="symlink for the meter's pty")
    p.add_argument("--bias", type=float, default=None, metavar="FRACTION",
                   help="the meter reads the delivered energy times (1 + FRACTION)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=positive_float, metavar="HZ", help="override the repetition rate")
    profiles_arg(p)
    p.set_defaults(func=cmd_simulate_bench)


# -- helpers ----------------------------------------------------------------------------
def _read_store(args: argparse.Namespace):
    from laserlog.errors import LaserlogError
    from laserlog.storage.location import is_url
    from laserlog.storage.store import Store

    if is_url(args.db):
        raise LaserlogError("this command reads a console's SQLite file; on a central server "
                            "use `report`, `export`, `verify`, `signoff` or `users` (--db postgresql://...)")

    return Store(db_path(args), readonly=True)


def _write_store(args: argparse.Namespace):
    from pathlib import Path

    from laserlog.errors import StoreError
    from laserlog.storage.store import Store

    path = db_path(args)
    if not Path(path).exists():
        raise StoreError(f"database {path} does not exist (record a session first, or pass --db)")
    return Store(path)


def _central(args: argparse.Namespace) -> bool:
    from laserlog.storage.location import is_url

    return is_url(getattr(args, "db", None))


def _filters_of(args: argparse.Namespace):
    from laserlog.review.reports import make_filters

    return make_filters(getattr(args, "start", None), getattr(args, "end", None),
                        device=getattr(args, "device", None),
                        operator=getattr(args, "operator", None),
                        client=getattr(args, "client", None), area=getattr(args, "area", None),
                        last=getattr(args, "last", None))


def _client_hint(store: Any, f: Any) -> None:
    """Say on standard error when --client names no recorded client, with the nearest."""
    from laserlog.review.reports import client_hint

    hint = client_hint(store.conn, f)
    if hint:
        print(f"laserlog: {hint}", file=sys.stderr)


def _central_last(args: argparse.Namespace, f: Any) -> None:
    """Refuse --last where a central server cannot answer it: it takes the last sessions of
    each console, which make the fleet's last N only when listed session by session."""
    if f.last is not None and not (args.report == "energy" and args.by == "session"):
        from laserlog.review.reports import ReportError

        raise ReportError(f"--last with a central server works with `report energy --by "
                          f"session` only, not `report {args.report}`; narrow by --from/--to "
                          "or ask the console's own database")


def _site_zone(store: Any):
    """Return the time zone the site counts days and weeks in (None: the machine's)."""
    from laserlog.config.siteconfig import site_for

    return site_for(store.path).zone


def _authenticate(store: Any, user_id: str, *, env: str | None = None):
    """Return the user as a Signer once their passphrase opens their key."""
    from laserlog.review.users import PASSPHRASE_ENV, read_passphrase, unlock

    return unlock(store, user_id, read_passphrase(f"passphrase for {user_id}: ",
                                                  env=env or PASSPHRASE_ENV))


# -- reports ----------------------------------------------------------------------------
def cmd_report_energy(args: argparse.Namespace) -> int:
    from laserlog.review.reports import energy_report, render

    f = _filters_of(args)
    if _central(args):
        from laserlog.cli.central import report_energy

        _central_last(args, f)
        return report_energy(args, f)
    with _read_store(args) as store:
        print(render(energy_report(store.conn, args.by, f, zone=_site_zone(store)),
                     args.format))
        _client_hint(store, f)
    return 0


def cmd_report_faults(args: argparse.Namespace) -> int:
    from laserlog.review.reports import FAULT_KINDS, faults_report, render

    f = _filters_of(args)
    kinds = tuple(args.kind) if args.kind else FAULT_KINDS
    if _central(args):
        from laserlog.cli.central import report_faults

        _central_last(args, f)
        return report_faults(args, f, kinds)
    with _read_store(args) as store:
        print(render(faults_report(store.conn, args.by, f, kinds, zone=_site_zone(store)),
                     args.format))
        _client_hint(store, f)
    return 0


def cmd_report_adverse(args: argparse.Namespace) -> int:
    from laserlog.config.siteconfig import site_for
    from laserlog.review.adverse_report import adverse_report, parse_groups
    from laserlog.review.reports import render

    by = parse_groups(args.by)
    if _central(args):
        from laserlog.cli.central import report_adverse

        return report_adverse(args, by)
    with _read_store(args) as store:
        edges = site_for(store.path).fluence_bands_j_cm2
        print(render(adverse_report(store.conn, by, kind=args.kind, edges=edges),
                     args.format))
    return 0


def cmd_report_limits(args: argparse.Namespace) -> int:
    from laserlog.review.reports import limits_report, render

    f = _filters_of(args)
    if _central(args):
        from laserlog.cli.central import report_limits

        _central_last(args, f)
        return report_limits(args, f)
    with _read_store(args) as store:
        print(render(limits_report(store.conn, f), args.format))
        _client_hint(store, f)
    return 0


def cmd_report_calibration(args: argparse.Namespace) -> int:
    from laserlog.config.siteconfig import site_for
    from laserlog.review.reports import calibration_report, render

    f = _filters_of(args)
    if _central(args):
        from laserlog.cli.central import report_calibration

        return report_calibration(args, f)
    with _read_store(args) as store:
        site = site_for(store.path)
        print(render(calibration_report(store.conn, f, history=args.history, site=site),
                     args.format))
    return 0


def cmd_report_signoffs(args: argparse.Namespace) -> int:
    from laserlog.review.reports import render, signoffs_report

    f = _filters_of(args)
    if _central(args):
        from laserlog.cli.central import report_signoffs

        _central_last(args, f)
        return report_signoffs(args, f)
    with _read_store(args) as store:
        print(render(signoffs_report(store.conn, f, user=args.user, unsigned=args.unsigned),
                     args.format))
        _client_hint(store, f)
    return 0


# -- verify -----------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from laserlog.cli.args import UNREADABLE, unreadable
    from laserlog.storage.verify import MAX_LISTED

    if _central(args):
        from laserlog.cli.central import verify
        from laserlog.errors import LaserlogError

        if args.photos:
            raise LaserlogError("--photos checks the photo files where they are kept: run it "
                                "against the console's database file (--db FILE) on the "
                                "clinic's machine; the central server holds no photo files")
        return verify(args)
    testimony = None
    if args.witness:
        from laserlog.central.witness import testify

        testimony = testify(db_path(args), args.witness)
    try:
        report = _verified(args, testimony)
    except UNREADABLE as exc:  # values no laserlog writes: damaged or edited, either way
        print(f"TAMPERED or DAMAGED: {unreadable(args, exc)}")
        return 1
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0 if report.ok else 1
    print(f"{report.path}: {report.links} link(s), {report.rows} row(s) recomputed, "
          f"{report.sessions_sealed} session(s) sealed, head link {report.head_link} "
          f"{report.head_hash[:16]} ({report.rows_per_s:,.0f} rows/s)")
    for note in report.notes:
        print(f"note: {note}")
    if report.ok:
        print("OK: integrity check passed, the chain recomputes, every seal and the anchor "
              "match, the schema is laserlog's and every session's totals recompute")
        return 0
    first = report.findings[0]
    where = (f"{first.table} row {first.row_id}" if first.row_id is not None and first.table
             else f"link {first.link_id}" if first.link_id is not None else "database")
    print(f"TAMPERED or DAMAGED: {len(report.findings)} finding(s); first bad: {where}")
    for finding in report.findings[:MAX_LISTED]:
        print(f"  {finding.kind}: {finding.message}")
    if len(report.findings) > MAX_LISTED:
        print(f"  ... {len(report.findings) - MAX_LISTED} more")
    return 1


def _verified(args: argparse.Namespace, testimony: Any):
    """Return verify's report with the witness's and the signatures' findings added."""
    from laserlog.storage.verify import Finding, verify_database

    report = verify_database(db_path(args), anchor_file=args.anchor,
                             trusted=testimony.keys if testimony else ())
    if testimony is not None:
        report.notes.append(f"witness: {testimony.console} holds {testimony.links} link(s) of "
                            "this chain")
        report.findings += [Finding("witness", what, link_id=link)
                            for link, what in testimony.problems]
    if args.photos:
        _check_photos(args, report)
    if report.head_link:
        from laserlog.review.signoff import signature_problems
        from laserlog.storage.store import Store

        with Store(db_path(args), readonly=True) as store:
            report.findings += [Finding("signature", what, "signoffs", session)
                                for session, what in signature_problems(store.conn)]
    return report


def _check_photos(args: argparse.Namespace, report: Any) -> None:
    """Add a finding for each recorded photo whose file changed (or cannot be read), and a
    note for each whose file is missing (a photo moved away is not a tampered record)."""
    from laserlog.config.photos import photo_folder, shown
    from laserlog.config.siteconfig import site_for
    from laserlog.recording import photos
    from laserlog.storage.store import Store
    from laserlog.storage.verify import MAX_LISTED, Finding

    site = site_for(db_path(args))
    folder = photo_folder(site.photo_folder, site.source)
    with Store(db_path(args), readonly=True) as store:
        held = store.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND"
                                  " name = 'photos'").fetchone()
        checks = photos.check(store.conn, folder) if held else []
    missing = 0
    for c in checks:
        where = f"photo {c.photo.id} ({shown(c.photo.relative_path)}, course {c.photo.course_id})"
        if c.state == "missing":
            missing += 1
            if missing <= MAX_LISTED:  # a whole archived folder is not ten thousand lines
                report.notes.append(f"photo missing: {where}: no file in {folder}")
        elif c.state == "changed":
            report.findings.append(Finding("photo", f"{where} changed since it was added: "
                                           f"{c.detail}", "photos", c.photo.id))
        elif c.state == "unreadable":
            report.findings.append(Finding("photo", c.detail, "photos", c.photo.id))
    if missing > MAX_LISTED:
        report.notes.append(f"photo missing: ... {missing - MAX_LISTED} more")
    present = len(checks) - missing
    report.notes.append(f"photos: {present} of {len(checks)} recorded photo(s) present in "
                        f"{folder}, {sum(c.state == 'ok' for c in checks)} unchanged")


# -- users, sign-off, corrections ----------------------------------------------------------
def cmd_users_add(args: argparse.Namespace) -> int:
    from laserlog.review.users import (
        AS_PASSPHRASE_ENV,
        add_user,
        find_user,
        list_users,
        read_passphrase,
        validate_user_id,
    )
    from laserlog.storage import signing

    validate_user_id(args.user_id)
    if _central(args):
        from laserlog.cli.central import users_add

        passphrase = read_passphrase(f"passphrase for {args.user_id}: ", confirm=True)
        return users_add(args, passphrase)
    with _write_or_new_store(args) as store:
        by = None
        if list_users(store):
            if not args.as_user:
                from laserlog.review.users import AuthError

                raise AuthError("adding a user needs an administrator or officer: give --as ID "
                                "and their passphrase; nothing was written")
            by = _authenticate(store, args.as_user, env=AS_PASSPHRASE_ENV)
        passphrase = read_passphrase(f"passphrase for {args.user_id}: ", confirm=True)
        user = add_user(store, args.user_id, args.name, args.role, passphrase, by=by)
        user = find_user(store, user.user_id) or user
    print(f"added {user.role} {user.user_id} ({user.name}), key "
          f"{signing.fingerprint(user.public_key or '00')}")
    if by is None:
        print(f"notice: {user.user_id} is the first user of {store.path}, so they are also its "
              "administrator: adding users, changing roles and revoking now need an "
              "administrator's or an officer's passphrase (--as)")
    return 0


def _write_or_new_store(args: argparse.Namespace):
    from laserlog.storage.store import Store

    return Store(db_path(args))


def cmd_users_role(args: argparse.Namespace) -> int:
    from laserlog.review.users import AS_PASSPHRASE_ENV, change_role

    _local_only(args, "users role")
    with _write_store(args) as store:
        by = _authenticate(store, args.as_user, env=AS_PASSPHRASE_ENV)
        user = change_role(store, args.user_id, args.role, by)
    print(f"{user.user_id} is now a{'n' if user.role[0] in 'aeio' else ''} {user.role} "
          f"(authorised by {by.user.user_id})")
    return 0


def cmd_users_revoke(args: argparse.Namespace) -> int:
    from laserlog.review.users import AS_PASSPHRASE_ENV, revoke

    _local_only(args, "users revoke")
    with _write_store(args) as store:
        by = _authenticate(store, args.as_user, env=AS_PASSPHRASE_ENV)
        user = revoke(store, args.user_id, by)
    print(f"revoked {user.user_id} at {user.revoked_utc} (authorised by {by.user.user_id}): "
          "their signatures from now on are INVALID; earlier ones stand")
    return 0


def cmd_users_passphrase(args: argparse.Namespace) -> int:
    from laserlog.review.users import change_passphrase, read_passphrase

    _local_only(args, "users passphrase")
    with _write_store(args) as store:
        signer = _authenticate(store, args.user_id, env="LASERLOG_OLD_PASSPHRASE")
        new = read_passphrase(f"new passphrase for {signer.user.user_id}: ", confirm=True)
        change_passphrase(store, signer, new)
    print(f"the key of {signer.user.user_id} is now sealed under the new passphrase")
    return 0


def _local_only(args: argparse.Namespace, command: str) -> None:
    from laserlog.errors import LaserlogError

    if _central(args):
        raise LaserlogError(f"`laserlog {command}` manages the users of a console's file; on "
                            "the central server, users are managed by the database's owner")


def cmd_users_list(args: argparse.Namespace) -> int:
    import json

    from laserlog.review.users import list_users

    if _central(args):
        from laserlog.cli.central import users_list

        users = users_list(args)
    else:
        with _read_store(args) as store:
            users = list_users(store)
    if args.json:
        print(json.dumps([{"user_id": u.user_id, "name": u.name, "role": u.role,
                           "administrator": u.administrator or u.default_administrator,
                           "created_utc": u.created_utc, "status": u.status()}
                          for u in users], indent=2))
    elif not users:
        print("no users yet: add one with `laserlog users add ID --name NAME --role ROLE`")
    else:
        width = max(len(u.user_id) for u in users)
        for u in users:
            admin = (" +administrator" if u.administrator and u.role != "administrator" else
                     " +administrator (by default: an officer from before keys)"
                     if u.default_administrator else "")
            print(f"{u.user_id:<{width}}  {u.role:<13}  {u.name}  (added {u.created_utc}; "
                  f"{u.status()}){admin}")
    return 0


def cmd_signoff(args: argparse.Namespace) -> int:
    from laserlog.errors import LaserlogError
    from laserlog.review.signoff import sign

    if _central(args):
        from laserlog.cli.central import signoff

        return signoff(args)
    if args.console is not None:
        raise LaserlogError("--console picks a console on a central server (--db postgresql://...)")
    with _write_store(args) as store:
        if store.session(args.session) is None:
            raise LaserlogError(f"no session {args.session} in {store.path} "
                                "(see `laserlog sessions list`)")
        signer = _authenticate(store, args.user)
        signature = sign(store, args.session, signer, args.meaning)
    print(f"session {args.session} {signature.meaning} by {signature.printed_name} "
          f"({signature.role}) at {signature.signed_utc}, bound to seal link "
          f"{signature.chain_id} {signature.chain_hash[:16]}")
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    from laserlog.errors import LaserlogError
    from laserlog.review.corrections import correct

    with _write_store(args) as store:
        if store.session(args.session) is None:
            raise LaserlogError(f"no session {args.session} in {store.path} "
                                "(see `laserlog sessions list`)")
        user = _authenticate(store, args.user).user
        row = correct(store, args.session, args.field, args.value, args.reason, user)
    print(f"session {args.session} {args.field}: {row['old_value']!r} -> {row['new_value']!r} "
          f"(by {row['user_id']}: {row['reason']})")
    return 0


# -- calibration ------------------------------------------------------------------------
def cmd_calibrate(args: argparse.Namespace) -> int:
    import json

    from laserlog.config.profile import open_profile
    from laserlog.config.siteconfig import site_for
    from laserlog.review.calibration import run_check, vars_of

    console = open_profile(args.profile, args.profiles)
    meter = open_profile(args.meter, args.profiles)
    with _write_store(args) as store:
        user = _authenticate(store, args.user).user
        site = site_for(store.path)
        check = run_check(store, console, args.port, meter, args.meter_port, user=user,
                          site=site, shots=args.shots or site.calibration_shots, fire=args.fire,
                          console_serial=args.serial, meter_serial=args.meter_serial,
                          timeout_s=args.timeout,
                          say=lambda text: print(text, file=sys.stderr, flush=True))
    if args.json:
        data = {k: getattr(check, k) for k in ("calibration_id", "profile_id", "console_serial",
                                                 "meter_model", "meter_serial", "user_id",
                                                 "started_utc", "set_energy_j",
                                                 "mean_measured_energy_j", "deviation",
                                                 "max_abs_deviation", "result", "fired_by")}
        data["shots"] = [vars_of(s) for s in check.shots]
        print(json.dumps(data, indent=2))
    else:
        print(f"calibration check {check.calibration_id}: {check.profile_id} serial "
              f"{check.console_serial or '-'} set {check.set_energy_j:.4g} J, measured mean "
              f"{check.mean_measured_energy_j:.4g} J over {len(check.shots)} shot(s): "
              f"{check.deviation:+.1%} -> {check.result.upper()} (warn beyond "
              f"{check.warn_deviation:.0%}, fail beyond {check.fail_deviation:.0%}); meter "
              f"{check.meter_model} serial {check.meter_serial}; by {check.user_id}")
    return 1 if check.result == "fail" else 0


def cmd_simulate_bench(args: argparse.Namespace) -> int:
    import signal
    import threading

    from laserlog.config.profile import open_profile
    from laserlog.errors import LaserlogError
    from laserlog.sim.beam import couple
    from laserlog.sim.engine import Simulator

    console = open_profile(args.profile, args.profiles)
    meter = open_profile(args.meter, args.profiles)
    if meter.kind != "meter":
        raise LaserlogError(f"profile {meter.id} is not an energy meter (kind = \"meter\")")
    try:
        console_sim = Simulator(console, args.link, seed=args.seed, rate_hz=args.rate)
        meter_sim = Simulator(meter, args.meter_link, seed=args.seed + 1)
    except OSError as exc:
        raise LaserlogError(f"cannot create the simulated ports: {exc.strerror}") from None
    if args.bias is not None:
        meter_sim.device.bias = args.bias
    couple(console_sim, meter_sim)
    done = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: done.set())
    console_sim.start()
    meter_sim.start()
    print(f"simulating {console.name} on {args.link} firing into {meter.name} on "
          f"{args.meter_link} (bias {meter_sim.device.bias:+.0%})", file=sys.stderr, flush=True)
    done.wait()
    console_sim.stop()
    meter_sim.stop()
    return 0


# -- export, site -----------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from laserlog.config.siteconfig import site_for
    from laserlog.errors import LaserlogError
    from laserlog.review.export import export, select_sessions
    from laserlog.review.reports import make_filters

    if args.end and not args.start:
        raise LaserlogError("--to needs --from")
    if args.format == "fhir":
        return _export_fhir(args)
    if args.client is not None or args.course is not None:
        raise LaserlogError(f"--{'client' if args.client is not None else 'course'} selects a "
                            "client's record for --format fhir; the other formats take "
                            "--session ID or --from DATE [--to DATE]")
    if args.pulses and args.format not in ("html", "pdf"):
        raise LaserlogError(f"--pulses adds the pulse table to the printable record (--format "
                            f"html or pdf); --format {args.format} always holds every pulse")
    if args.aftercare and (args.format not in ("html", "pdf") or args.session is None
                           or args.pulses):
        raise LaserlogError("--aftercare prints one session's aftercare page: give --format "
                            "html or pdf and --session ID (and not --pulses); nothing was "
                            "written")
    f = make_filters(args.start, args.end) if args.start else None
    show = sys.stderr.isatty() if args.progress is None else args.progress

    def progress(done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = int(share * 30)
        print(f"\rexporting [{'#' * filled}{' ' * (30 - filled)}] {share:4.0%} "
              f"{done}/{total} pulses", end="", file=sys.stderr, flush=True)

    if _central(args) and args.aftercare:
        raise LaserlogError("--aftercare prints from a console's SQLite file; nothing was "
                            "written")
    if _central(args):
        from laserlog.cli.central import export as export_central

        count, rows, name = export_central(args, f, progress if show else None)
        if show:
            print(file=sys.stderr)
        print(export_line(count, rows, args).replace(" to ", f" of console {name} to ", 1))
        return 0
    if args.console is not None:
        raise LaserlogError("--console picks a console on a central server (--db postgresql://...)")
    with _read_store(args) as store:
        site = site_for(store.path) if args.format in ("html", "pdf") else None
        sessions = select_sessions(store.conn, args.session, f.start_utc if f else None,
                                   f.end_utc if f else None)
        rows = export(store.conn, args.format, sessions, Path(args.out), table=args.table,
                      progress=progress if show else None, database=str(store.path),
                      force=args.force, pulses=args.pulses, site=site,
                      aftercare=args.aftercare)
    if show:
        print(file=sys.stderr)
    if args.aftercare:
        print(f"exported the aftercare page of session {args.session} to {args.out} "
              f"({args.format})")
        return 0
    print(export_line(len(sessions), rows, args))
    return 0


def _export_fhir(args: argparse.Namespace) -> int:
    """Write one client's, session's or course's record as a FHIR R5 Bundle."""
    from pathlib import Path

    from laserlog.config.siteconfig import site_for
    from laserlog.errors import LaserlogError
    from laserlog.review import fhir
    from laserlog.review.export import export_fhir

    if args.start is not None:
        raise LaserlogError("--format fhir exports one client's record: give --client REF, "
                            "--session ID or --course ID, not --from")
    if args.pulses:
        raise LaserlogError("--pulses adds the pulse table to the printable record; a FHIR "
                            "Bundle holds each session's dose, not its pulses")
    if args.table != "pulses":
        raise LaserlogError("--table chooses what a CSV export holds; not with --format fhir")
    if _central(args) or args.console is not None:
        raise LaserlogError("--format fhir reads a console's SQLite file, not a central server")
    with _read_store(args) as store:
        selection = fhir.select(store.conn, client=args.client, session=args.session,
                                course=args.course)
        export_fhir(store.conn, selection, Path(args.out), database=str(store.path),
                    force=args.force, site=site_for(store.path))
    print(f"exported the record of {selection.what} ({len(selection.sessions)} session(s)) to "
          f"{args.out} (FHIR R5 Bundle): {fhir.counts_line(selection.counts)}")
    return 0


def export_line(sessions: int, pulses: int, args: argparse.Namespace) -> str:
    """Return what an export wrote: a printable record says whether it lists the pulses."""
    if args.format in ("html", "pdf") and not args.pulses:
        return (f"exported {sessions} session record(s) to {args.out} ({args.format}): "
                f"{pulses} pulse(s) summarised per setting, no pulse table (add --pulses)")
    if args.format in ("html", "pdf"):
        return (f"exported {sessions} session record(s) to {args.out} ({args.format}) with "
                f"{pulses} pulse(s) in the pulse table")
    return f"exported {sessions} session(s), {pulses} pulse(s) to {args.out} ({args.format})"


def cmd_site(args: argparse.Namespace) -> int:
    import json

    from laserlog.config.profile import open_profile
    from laserlog.config.siteconfig import site_for
    from laserlog.domain.localtime import zone_name
    from laserlog.review.envelopes import CELL_COLUMNS, cell_row, in_force_rows, rule_cell
    from laserlog.review.precision import row_text
    from laserlog.review.reports import Report, render

    site = site_for(db_path(args))
    data = {"source": site.source, "calibration_interval_days": site.calibration_interval_days,
            "warn_deviation": site.warn_deviation, "fail_deviation": site.fail_deviation,
            "calibration_shots": site.calibration_shots,
            "profile_tolerance": site.profile_tolerance,
            "limits": {k: list(v) for k, v in site.limits.items()},
            "profile_limits": {p: {k: list(v) for k, v in b.items()}
                               for p, b in site.profile_limits.items()},
            "second_anchor": str(site.second_anchor) if site.second_anchor else None,
            "operators_registered": site.operators_registered,
            "timezone": site.timezone, "clinic_name": site.clinic_name}
    from laserlog.storage import signing

    key, key_path, _ = signing.installation_key(create=False)
    data["installation_key"] = {"path": str(key_path),
                                "public": signing.public_hex(key) if key else None,
                                "fingerprint": signing.fingerprint(signing.public_hex(key))
                                if key else None}
    envelopes = [Report("Skin-type envelopes of the site file", CELL_COLUMNS,
                        [cell_row(rule_cell(r)) for r in site.envelopes.rules],
                        notes=["on a wavelength to avoid: " + ("warn" if site.envelopes.warn_only
                                                               else "refuse the start")])]
    data["envelopes"] = {"on_avoid": "warn" if site.envelopes.warn_only else "refuse",
                         "rules": envelopes[0].rows}
    if args.profile:
        profile = open_profile(args.profile, args.profiles)
        envelopes.append(Report(f"Skin-type envelopes in force on {profile.id} (its profile "
                                "and the site file, the stricter value winning)", CELL_COLUMNS,
                                in_force_rows(profile, site.envelopes)))
        data["envelopes_in_force"] = {"profile": profile.id, "cells": envelopes[1].rows}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"site configuration: {site.source}")
    print(f"  clinic: {site.clinic_name or '(not set: [clinic] name, printed on session records)'}")
    print(f"  calibration: every {site.calibration_interval_days:g} days, {site.calibration_shots}"
          f" shots, warn beyond {site.warn_deviation:.0%}, fail beyond {site.fail_deviation:.0%}")
    print(f"  profile ranges widened by {site.profile_tolerance:.0%}")
    print(f"  installation key {key_path}: " + (
        f"fingerprint {signing.fingerprint(signing.public_hex(key))} (keep it with the "
        "officer's records)" if key else "none yet (made by the first recording here)"))
    for scope, bounds in [("all consoles", site.limits), *site.profile_limits.items()]:
        for column, (low, high) in sorted(bounds.items()):
            print(f"  {scope}: {column} min {low if low is not None else '-'} max "
                  f"{high if high is not None else '-'}")
    print(f"  second anchor: {site.second_anchor or 'none'}")
    print(f"  operators registered: {'yes' if site.operators_registered else 'no'}")
    print(f"  time zone (days and weeks): {zone_name(site.zone)}")
    # The site file's rules are named by their table alone: the path is the first line's.
    ours = f"site file {site.source} "
    for table in envelopes:
        if not table.rows:
            print(f"  {table.title}: none declared")
            continue
        rows = [{k: v.replace(ours, "site ") if isinstance(v, str) else v
                 for k, v in row_text(r).items()} for r in table.rows]
        print("\n".join("  " + line for line in render(
            Report(table.title, table.columns, rows, notes=table.notes), "table").splitlines()))
    return 0
