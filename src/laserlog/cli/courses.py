"""Treatment courses on the command line: `course new|list|show|close|attach|readout`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from laserlog.cli.args import (
    Parser,
    db_arg,
    db_path,
    free_text,
    person,
    positive_int,
    profiles_arg,
)
from laserlog.cli.documents import add_consent_options


def _grade(text: str) -> int:
    if text.strip() not in ("0", "1", "2", "3"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a grade; expected 0, 1, 2 or 3")
    return int(text)


def add_commands(commands: Any) -> None:
    """Add `course` and its actions to the main parser's subcommands."""
    from laserlog.config.courses import FINDINGS

    course = commands.add_parser("course", help="treatment courses: plan, sessions, test spots",
                                 description="Treatment courses (docs/courses.md).")
    sub = course.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser,
                                required=True)
    p = sub.add_parser("new", help="plan a course for a client's area; prints its ID")
    p.add_argument("--client", required=True, metavar="REF", help="client pseudonym, e.g. C-1042")
    p.add_argument("--area", required=True, type=free_text, metavar="AREA", help="treatment area, e.g. 'left cheek'")
    p.add_argument("--indication", required=True, metavar="NAME",
                   help="pores, pigmentation, texture, acne_scars, rejuvenation, or one the "
                        "site file adds")
    p.add_argument("--sessions", required=True, metavar="N",
                   help="planned number of sessions, 1-100")
    p.add_argument("--interval", metavar="MIN-MAX",
                   help="days between sessions, e.g. 21-42 (default: the site file's window "
                        "for the indication)")
    p.add_argument("--target", default="", metavar="DAYS",
                   help="target days between sessions")
    p.add_argument("--console", metavar="PROFILE", help="the console's profile, e.g. ps755-ref")
    p.add_argument("--note", type=free_text, metavar="TEXT", help="a note on the plan")
    add_consent_options(p, required=False)
    db_arg(p)
    profiles_arg(p)
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("consent", help="record a consent version the course's client agreed "
                       "(a later version of the text), with its witness")
    p.add_argument("id", metavar="ID")
    add_consent_options(p, required=True)
    db_arg(p)
    p.set_defaults(func=cmd_consent)

    p = sub.add_parser("list", help="list courses, newest first")
    p.add_argument("--client", type=free_text, metavar="REF", help="only this client's courses")
    db_arg(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="a course on a time axis: sessions, window, dose, test spots")
    p.add_argument("id", metavar="ID")
    db_arg(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("close", help="close a course, saying why")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason", required=True, type=free_text, metavar="TEXT")
    db_arg(p)
    p.set_defaults(func=cmd_close)

    p = sub.add_parser("attach", help="make past sessions sessions of a course")
    p.add_argument("id", metavar="ID")
    p.add_argument("sessions", nargs="+", type=positive_int, metavar="SESSION")
    db_arg(p)
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("readout", help="record a test spot's read-out, each finding graded 0-3")
    p.add_argument("session", type=positive_int, metavar="SESSION")
    for name in FINDINGS:
        p.add_argument(f"--{name}", type=_grade, default=0, metavar="N",
                       help=f"{name} grade 0-3 (default 0)")
    p.add_argument("--note", type=free_text, metavar="TEXT")
    p.add_argument("--user", type=person, metavar="ID", help="who read it out")
    db_arg(p)
    p.set_defaults(func=cmd_readout)


def _course(store: Any, text: str) -> Any:
    """Return the course an ID names, or raise naming the database."""
    from laserlog.errors import LaserlogError
    from laserlog.recording import courses
    from laserlog.recording.contract import course_id

    wanted = course_id(text)
    found = courses.find(store.conn, wanted) if wanted is not None else None
    if found is None:
        raise LaserlogError(f"course {text!r}: no such course in {store.path} "
                            "(`laserlog course list`); nothing was written")
    return found


def cmd_new(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from laserlog.cli.documents import consent_line, consent_to_record, witness
    from laserlog.recording.contract import Contract
    from laserlog.recording.course_plan import checked_plan, create
    from laserlog.review.documents import consent_writer
    from laserlog.storage.store import Store

    contract = Contract.for_database(db_path(args))
    plan = checked_plan(contract, {"client": args.client, "area": args.area,
                                   "indication": args.indication, "sessions": args.sessions,
                                   "interval": args.interval, "target": args.target,
                                   "note": args.note})
    if args.console is not None:
        from laserlog.config.profile import open_profile

        plan = replace(plan, profile_id=open_profile(args.console, args.profiles).id)
    consent = consent_to_record(args)
    with Store(db_path(args)) as store:
        signer = witness(store, args.witness) if consent is not None else None
        # The course and the consent it rests on are one transaction: both or neither.
        new_id = create(store, plan, consent_writer(consent, signer)
                        if consent is not None else None)
    print(new_id)
    if consent is not None:
        print(consent_line(new_id, consent, signer), file=sys.stderr)
    return 0


def cmd_consent(args: argparse.Namespace) -> int:
    from laserlog.cli.documents import consent_line, consent_to_record, witness
    from laserlog.cli.review import _write_store
    from laserlog.errors import LaserlogError
    from laserlog.review.documents import record_consent

    consent = consent_to_record(args)
    with _write_store(args) as store:
        course = _course(store, args.id)
        if not course.is_open:
            raise LaserlogError(f"course {course.id} was closed on "
                                f"{(course.closed_utc or '')[:10]}: a closed course takes no "
                                "new consent; nothing was written")
        signer = witness(store, args.witness)
        record_consent(store, course, consent, signer)
    print(consent_line(course.id, consent, signer))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from laserlog.recording import courses
    from laserlog.storage.store import Store

    with Store(db_path(args), readonly=True) as store:
        rows = courses.listed(store.conn, args.client.strip() if args.client else None)
        if not rows:
            print("no courses")
            return 0
        print(f"{'ID':>4}  {'client':<10} {'area':<16} {'indication':<13} {'sessions':>8}  "
              f"{'window':<8} state")
        for c in rows:
            done = sum(1 for s in courses.course_sessions(store.conn, c.id)
                       if s["kind"] == "course" and s["pulse_count"] > 0
                       and s["resumes_session_id"] is None)
            state = "open" if c.is_open else f"closed {(c.closed_utc or '')[:10]}"
            print(f"{c.id:>4}  {c.client_ref:<10} {c.area[:16]:<16} {c.indication:<13} "
                  f"{done:>3} of {c.planned_sessions:<2}  {c.window.text():<8} {state}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from laserlog.review.coursepage import format_course
    from laserlog.storage.store import Store

    with Store(db_path(args), readonly=True) as store:
        print(format_course(store, _course(store, args.id)))
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    from laserlog.cli.review import _write_store
    from laserlog.errors import LaserlogError
    from laserlog.recording import courses

    reason = " ".join(args.reason.split())[:500]
    if not reason:
        raise LaserlogError("--reason is empty; say why the course is closed")
    with _write_store(args) as store:
        course = _course(store, args.id)
        if not course.is_open:
            raise LaserlogError(f"course {course.id} was already closed on "
                                f"{(course.closed_utc or '')[:10]}; nothing was written")
        courses.close(store, course, reason)
    print(f"course {course.id} closed")
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from laserlog.cli.review import _write_store
    from laserlog.errors import LaserlogError
    from laserlog.recording import courses
    from laserlog.recording.contract import course_refusal

    with _write_store(args) as store:
        course = _course(store, args.id)
        wanted = list(dict.fromkeys(args.sessions))
        for session_id in wanted:  # every session checked before any is attached
            row = courses.require_session(store.conn, session_id, store.path)
            refusal = course_refusal(course, course.id, row["client_ref"], row["area"] or "")
            if refusal:
                raise LaserlogError(f"session {session_id}: {refusal}; nothing was written")
            kind, current = courses.kind_of(store.conn, session_id)
            if current == course.id:
                raise LaserlogError(f"session {session_id} is already in course {course.id}; "
                                    "nothing was written")
        courses.attach(store, course, wanted)
    print(f"attached {len(wanted)} session(s) to course {course.id}")
    return 0


def cmd_readout(args: argparse.Namespace) -> int:
    from laserlog.cli.review import _write_store
    from laserlog.config.courses import FINDINGS
    from laserlog.domain import localtime
    from laserlog.errors import LaserlogError
    from laserlog.recording import courses
    from laserlog.recording.contract import Contract

    contract = Contract.for_database(db_path(args))
    with _write_store(args) as store:
        session = courses.require_session(store.conn, args.session, store.path)
        kind, _ = courses.kind_of(store.conn, args.session)
        if kind != "test_spot":
            raise LaserlogError(f"session {args.session} is a {kind.replace('_', '-')} "
                                f"session in {store.path}, not a test spot: only a test spot "
                                "has a read-out; nothing was written")
        grades = {name: getattr(args, name) for name in FINDINGS}
        early = courses.early_readout_refusal(session, grades, contract.courses,
                                              courses.now(), localtime.zone(contract.timezone))
        if early:
            raise LaserlogError(early)
        courses.record_readout(store, args.session, grades, args.note or None, args.user)
    found = ", ".join(f"{k} {v}" for k, v in grades.items() if v) or "no finding"
    print(f"read-out of test spot {args.session} recorded: {found}")
    return 0
