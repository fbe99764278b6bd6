"""Consent and aftercare on the command line: `course consent`, `aftercare`, and the options
`course new --consent --witness` and `record --aftercare` share."""

from __future__ import annotations

import argparse
from typing import Any

from laserlog.cli.args import db_arg, db_path, positive_int

WITNESS_HELP = ("the registered user who witnessed the client's consent; their passphrase "
                "from a prompt, stdin or $LASERLOG_PASSPHRASE")


def add_consent_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    """Add --consent FILE and --witness USER to a course command."""
    p.add_argument("--consent", metavar="FILE",
                   help="the consent text the client agreed (Markdown; default: the site "
                        "file's [documents] consent)")
    p.add_argument("--witness", metavar="USER", required=required, help=WITNESS_HELP)


def add_commands(commands: Any) -> None:
    """Add `aftercare` to the main parser's subcommands."""
    p = commands.add_parser("aftercare", help="record the aftercare text a session's client "
                            "was given (after the session)", description="See docs/courses.md.")
    p.add_argument("session", type=positive_int, metavar="SESSION")
    p.add_argument("--file", metavar="FILE",
                   help="the aftercare text (Markdown; default: the site file's [documents] "
                        "aftercare)")
    db_arg(p)
    p.set_defaults(func=cmd_aftercare)


def consent_to_record(args: argparse.Namespace) -> Any:
    """Return the consent document `--consent` (or the site's) names; raise when --consent
    comes without --witness, or neither it nor the site names one."""
    from laserlog.config.documents import site_document
    from laserlog.errors import LaserlogError

    if args.consent is not None and not args.witness:
        raise LaserlogError("--consent needs --witness USER: the registered user who "
                            "witnessed the client's consent; nothing was written")
    if not args.witness:
        return None
    document = site_document("consent", args.consent, "--consent", db_path(args))
    if document is None:
        raise LaserlogError("--witness without --consent, and the site file names no consent "
                            "text ([documents] consent = \"consent.md\"); give --consent FILE; "
                            "nothing was written")
    return document


def witness(store: Any, user_id: str) -> Any:
    """Return the witness unlocked by their passphrase, or raise naming them."""
    from laserlog.domain.ids import normal_id
    from laserlog.review.documents import unlock_witness
    from laserlog.review.users import PASSPHRASE_ENV, read_passphrase

    who = normal_id(user_id, "--witness")
    return unlock_witness(store, who, read_passphrase(f"passphrase for {who}: ",
                                                      env=PASSPHRASE_ENV), "--witness")


def consent_line(course_id: int, document: Any, signer: Any) -> str:
    """Return what a recorded consent prints."""
    return (f"course {course_id}: consent {document.version} ({document.path.name}) agreed, "
            f"witnessed by {signer.user.user_id}")


def cmd_aftercare(args: argparse.Namespace) -> int:
    from laserlog.cli.review import _write_store
    from laserlog.config.documents import site_document
    from laserlog.errors import LaserlogError
    from laserlog.recording import courses
    from laserlog.review.documents import record_aftercare

    document = site_document("aftercare", args.file, "--file", db_path(args))
    if document is None:
        raise LaserlogError("no --file, and the site file names no aftercare text "
                            "([documents] aftercare = \"aftercare.md\"); nothing was written")
    with _write_store(args) as store:
        session = courses.require_session(store.conn, args.session, store.path)
        status = store.conn.execute("SELECT status FROM sessions WHERE id = ?",
                                    (session["id"],)).fetchone()[0]
        if status == "recording":
            raise LaserlogError(f"session {args.session} in {store.path} is still recording: "
                                "its end records the aftercare given; nothing was written")
        record_aftercare(store, args.session, document, "later")
    print(f"session {args.session}: aftercare {document.version} ({document.path.name}) "
          "recorded as given")
    return 0
