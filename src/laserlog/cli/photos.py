"""A course's photos on the command line: `photo add|list` (by reference: docs/courses.md)."""

from __future__ import annotations

import argparse
from typing import Any

from laserlog.cli.args import Parser, db_arg, db_path, free_text, person, positive_int


def add_commands(commands: Any) -> None:
    """Add `photo` and its actions to the main parser's subcommands."""
    from laserlog.recording.photos import KINDS, VIEWS

    photo = commands.add_parser("photo", help="a course's photos, kept by reference",
                                description="Photos by reference (docs/courses.md).")
    sub = photo.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser,
                               required=True)
    p = sub.add_parser("add", help="record a photo file of the site's photo folder (its path "
                       "and SHA-256; the file stays where it is)")
    p.add_argument("file", metavar="FILE", help="the photo, inside the site file's photos folder")
    p.add_argument("--course", required=True, metavar="ID", help="the course it documents")
    p.add_argument("--session", type=positive_int, metavar="ID",
                   help="the session of that course it was taken at")
    p.add_argument("--view", required=True, choices=VIEWS)
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--area", type=free_text, metavar="AREA", help="the sub-area shown, e.g. 'left cheek'")
    p.add_argument("--user", required=True, type=person, metavar="ID",
                   help="who adds it, e.g. tech-07")
    db_arg(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="list recorded photos in the order added")
    p.add_argument("--course", metavar="ID", help="only this course's photos")
    db_arg(p)
    p.set_defaults(func=cmd_list)


def cmd_add(args: argparse.Namespace) -> int:
    from laserlog.cli.courses import _course
    from laserlog.cli.review import _write_store
    from laserlog.config.photos import photo_folder, read_photo
    from laserlog.config.siteconfig import site_for
    from laserlog.errors import LaserlogError
    from laserlog.recording import courses, photos

    area = args.area or None
    if area is not None and len(area) > 200:
        raise LaserlogError("--area: longer than 200 characters; expected a sub-area such as "
                            "'left cheek'; nothing was written")
    site = site_for(db_path(args))
    found = read_photo(args.file, photo_folder(site.photo_folder, site.source))
    with _write_store(args) as store:
        course = _course(store, args.course)
        if args.session is not None:
            courses.require_session(store.conn, args.session, store.path)
            kind, of = courses.kind_of(store.conn, args.session)
            if of != course.id:
                now = f"course {of}" if of is not None else f"a {kind.replace('_', '-')}"
                raise LaserlogError(f"--session {args.session}: not a session of course "
                                    f"{course.id} in {store.path} (it is {now}); expected one "
                                    "of the course's sessions (`laserlog course show "
                                    f"{course.id}`); nothing was written")
        new_id = photos.record(store, course, args.session, found, view=args.view,
                               kind=args.kind, area=area, added_by=args.user)
        consent = store.conn.execute("SELECT consent_sha256 FROM photos WHERE id = ?",
                                     (new_id,)).fetchone()[0]
    covered = f"consent {consent[:12]}" if consent else "no consent recorded for the course"
    print(f"photo {new_id}: {args.kind} {args.view} of course {course.id}"
          + (f" session {args.session}" if args.session is not None else "")
          + f", {found.relative_path} ({found.size_bytes} bytes, SHA-256 {found.sha256[:12]}),"
          f" {covered}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from laserlog.cli.courses import _course
    from laserlog.recording import photos
    from laserlog.review.coursepage import photo_lines
    from laserlog.storage.store import Store

    with Store(db_path(args), readonly=True) as store:
        course_id = _course(store, args.course).id if args.course is not None else None
        rows = photos.listed(store.conn, course_id)
    if not rows:
        print("no photos")
        return 0
    print("\n".join(photo_lines(rows)))
    return 0
