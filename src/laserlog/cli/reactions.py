"""After the session on the command line: `assess`, `adverse add|update|retract|list`,
`outcome add|import`."""

from __future__ import annotations

import argparse
from typing import Any

from laserlog.cli.args import Parser, db_arg, free_text, person, positive_int, whole_number


def _scale(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        value = text.strip()
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is outside its scale; expected a whole "
                                             f"number {low}-{high}")
        return int(value)
    return parse


def _pass_number(text: str) -> int:
    value = positive_int(text)
    if value > 99:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pass number; expected 1-99")
    return value


def add_commands(commands: Any) -> None:
    """Add `assess` and `adverse` to the main parser's subcommands."""
    from laserlog.domain.reactions import ADVERSE_KINDS, OUTCOMES, SERIOUSNESS

    p = commands.add_parser("assess", help="record a session's immediate endpoints (erythema, "
                            "oedema, pain; within 24 h of its end, later a correction)",
                            description="See docs/reactions.md.")
    p.add_argument("session", type=positive_int, metavar="SESSION")
    p.add_argument("--erythema", required=True, type=_scale(0, 3), metavar="N", help="0-3")
    p.add_argument("--oedema", required=True, type=_scale(0, 3), metavar="N", help="0-3")
    p.add_argument("--pain", required=True, type=_scale(0, 10), metavar="N",
                   help="numeric rating scale 0-10")
    p.add_argument("--blister", action="store_true", help="blistering seen")
    p.add_argument("--purpura", action="store_true", help="purpura seen")
    p.add_argument("--pass", dest="pass_number", type=_pass_number, metavar="N",
                   help="the pass this assessment is of (where the session has passes)")
    p.add_argument("--note", type=free_text, metavar="TEXT")
    p.add_argument("--user", type=person, metavar="ID", help="who assessed")
    db_arg(p)
    p.set_defaults(func=cmd_assess)

    adverse = commands.add_parser("adverse", help="adverse events after a session: add, "
                                  "update, retract, list", description="See docs/reactions.md.")
    sub = adverse.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser,
                                 required=True)
    by_help = ("the user reporting it (default: the session's operator); their passphrase "
               "from a prompt, stdin or $LASERLOG_PASSPHRASE")
    p = sub.add_parser("add", help="report an adverse event against a session")
    p.add_argument("--session", required=True, type=positive_int, metavar="ID")
    p.add_argument("--kind", required=True, choices=ADVERSE_KINDS)
    p.add_argument("--onset", required=True, metavar="DATE", help="YYYY-MM-DD, site-local")
    p.add_argument("--seriousness", required=True, choices=SERIOUSNESS)
    p.add_argument("--area", type=free_text, metavar="AREA", help="default: the session's area")
    p.add_argument("--pass", dest="pass_number", type=_pass_number, metavar="N")
    p.add_argument("--note", type=free_text, metavar="TEXT")
    p.add_argument("--by", type=person, metavar="USER", help=by_help)
    db_arg(p)
    p.set_defaults(func=cmd_adverse_add)

    p = sub.add_parser("update", help="record an adverse event's outcome (a new row)")
    p.add_argument("id", type=positive_int, metavar="ID")
    p.add_argument("--outcome", required=True, choices=OUTCOMES)
    p.add_argument("--date", required=True, metavar="DATE", help="YYYY-MM-DD")
    p.add_argument("--by", type=person, metavar="USER", help=by_help)
    db_arg(p)
    p.set_defaults(func=cmd_adverse_update)

    p = sub.add_parser("retract", help="retract an entry made in error (a new row)")
    p.add_argument("id", type=positive_int, metavar="ID")
    p.add_argument("--reason", required=True, type=free_text, metavar="TEXT")
    p.add_argument("--by", type=person, metavar="USER", help=by_help)
    db_arg(p)
    p.set_defaults(func=cmd_adverse_retract)

    p = sub.add_parser("list", help="adverse events in their newest state")
    p.add_argument("--session", type=positive_int, metavar="ID")
    p.add_argument("--all", action="store_true", help="also retracted entries")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default table); csv and json have the same columns")
    db_arg(p)
    p.set_defaults(func=cmd_adverse_list)

    from laserlog.domain.reactions import SCALES

    outcome = commands.add_parser("outcome", help="outcomes over a course: a score on a scale, "
                                  "or skin-analysis numbers from a CSV",
                                  description="See docs/reactions.md.")
    sub = outcome.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser,
                                 required=True)
    p = sub.add_parser("add", help="record a score: gais 1-5, pore 0-4, satisfaction 1-5")
    p.add_argument("--course", required=True, metavar="ID")
    p.add_argument("--scale", required=True, choices=tuple(SCALES))
    p.add_argument("--score", required=True, type=whole_number, metavar="N")
    p.add_argument("--date", required=True, metavar="DATE", help="YYYY-MM-DD")
    p.add_argument("--by", metavar="USER", help="who assessed; their passphrase from a prompt, "
                   "stdin or $LASERLOG_PASSPHRASE")
    db_arg(p)
    p.set_defaults(func=cmd_outcome_add)
    p = sub.add_parser("import", help="import a long CSV: client,date,area,metric,value "
                       "(UTF-8, at most 100 000 rows; all or nothing)")
    p.add_argument("file", metavar="FILE")
    db_arg(p)
    p.set_defaults(func=cmd_outcome_import)


def _existing_store(args: argparse.Namespace, *, readonly: bool = False) -> Any:
    """Return the database the command works on (writing: it must exist already)."""
    from laserlog.cli.review import _read_store, _write_store

    return _read_store(args) if readonly else _write_store(args)


def _unlocker(store: Any) -> Any:
    from laserlog.domain.ids import normal_id
    from laserlog.review.users import PASSPHRASE_ENV, read_passphrase, unlock

    def opened(user_id: str) -> Any:
        who = normal_id(user_id, "--by")
        return unlock(store, who, read_passphrase(f"passphrase for {who}: ", env=PASSPHRASE_ENV))
    return opened


def cmd_assess(args: argparse.Namespace) -> int:
    from laserlog.review.reactions import assess, recorded_text

    with _existing_store(args) as store:
        row = assess(store, args.session, erythema=args.erythema, oedema=args.oedema,
                     pain_nrs=args.pain, blister=args.blister, purpura=args.purpura,
                     note=args.note, pass_number=args.pass_number, user_id=args.user)
    print(recorded_text(row))
    return 0


def cmd_adverse_add(args: argparse.Namespace) -> int:
    from laserlog.config.siteconfig import site_for
    from laserlog.review.reactions import add_adverse, parse_day

    onset = parse_day(args.onset, "--onset")
    with _existing_store(args) as store:
        new_id = add_adverse(store, args.session, kind=args.kind, onset=onset,
                             seriousness=args.seriousness, by=args.by, unlock=_unlocker(store),
                             where=site_for(store.path).zone, area=args.area,
                             pass_number=args.pass_number, note=args.note)
    print(f"adverse event {new_id}: {args.kind} ({args.seriousness}) after session "
          f"{args.session}, onset {onset.isoformat()}")
    return 0


def cmd_adverse_update(args: argparse.Namespace) -> int:
    from laserlog.config.siteconfig import site_for
    from laserlog.review.reactions import change_adverse, parse_day

    day = parse_day(args.date, "--date")
    with _existing_store(args) as store:
        change_adverse(store, args.id, by=args.by, unlock=_unlocker(store),
                       where=site_for(store.path).zone, outcome=args.outcome, outcome_day=day)
    print(f"adverse event {args.id}: {args.outcome} on {day.isoformat()}")
    return 0


def cmd_adverse_retract(args: argparse.Namespace) -> int:
    from laserlog.config.siteconfig import site_for
    from laserlog.review.reactions import change_adverse

    with _existing_store(args) as store:
        change_adverse(store, args.id, by=args.by, unlock=_unlocker(store),
                       where=site_for(store.path).zone, reason=args.reason)
    print(f"adverse event {args.id} retracted")
    return 0


def cmd_adverse_list(args: argparse.Namespace) -> int:
    from laserlog.review.reactions import adverse_events

    with _existing_store(args, readonly=True) as store:
        rows = adverse_events(store.conn, [args.session] if args.session else None,
                              retracted=args.all)
    if args.format != "table":
        from laserlog.review.reports import Report, render

        columns = ["id", "session_id", "kind", "onset_date", "seriousness", "area",
                   "pass_number", "outcome", "outcome_date", "retracted", "by_user_id",
                   "recorded_utc", "note"]
        print(render(Report("Adverse events", columns, [
            {c: bool(r[c]) if c == "retracted" else r[c] for c in columns} for r in rows]),
            args.format))
        return 0
    if not rows:
        print("no adverse events")
        return 0
    print(f"{'ID':>4}  {'session':>7}  {'kind':<16} {'onset':<10}  {'seriousness':<11}  "
          f"{'outcome':<24} by")
    for r in rows:
        outcome = f"{r['outcome']} {r['outcome_date']}" if r["outcome"] else "-"
        if r["retracted"]:
            outcome = "RETRACTED"
        print(f"{r['id']:>4}  {r['session_id']:>7}  {r['kind']:<16} {r['onset_date']:<10}  "
              f"{r['seriousness']:<11}  {outcome:<24} {r['by_user_id']}")
    return 0


def cmd_outcome_add(args: argparse.Namespace) -> int:
    from laserlog.cli.courses import _course
    from laserlog.review import outcomes

    with _existing_store(args) as store:
        course = _course(store, args.course)
        new_id = outcomes.add(store, course, args.scale, args.score, args.date, args.by,
                              _unlocker(store))
    print(f"outcome {new_id}: course {course.id} {args.scale} {args.score} on {args.date}")
    return 0


def cmd_outcome_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from laserlog.review import outcomes

    with _existing_store(args) as store:
        count = outcomes.import_csv(store, Path(args.file))
    print(f"imported {count} outcome row(s) from {args.file}")
    return 0
