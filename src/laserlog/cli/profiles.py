"""The engineer's profile commands: list, show, check, new, test, replay.

Each function imports what it needs when it runs, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from laserlog.cli.args import EXIT_BAD_INPUT, Parser, profiles_arg

if TYPE_CHECKING:
    from laserlog.link.transport import Link

#: Exit status when a conformance run or a replay found a failure (2 is kept for bad input).
EXIT_FAILED = 1


def add_commands(commands: Any) -> None:
    """Add `profiles` and its actions to the main parser's subcommands."""
    profiles = commands.add_parser("profiles", help="list, show, check, scaffold, test and "
                                   "replay device profiles")
    sub = profiles.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser, required=True)
    p = sub.add_parser("list", help="list every profile found, and where")
    p.add_argument("--json", action="store_true", help="print JSON")
    profiles_arg(p)
    p.set_defaults(func=cmd_profiles_list)
    p = sub.add_parser("show", help="show a profile's parameters, ranges and handpieces")
    p.add_argument("name")
    profiles_arg(p)
    p.set_defaults(func=cmd_profiles_show)
    p = sub.add_parser("check", help="validate profile files")
    p.add_argument("files", nargs="+", metavar="FILE")
    profiles_arg(p)  # where the profiles they extend may be
    p.set_defaults(func=cmd_profiles_check)
    p = sub.add_parser("upgrade", help="rewrite format 1 profile files as format 2, keeping "
                       "their comments")
    p.add_argument("files", nargs="+", metavar="FILE")
    profiles_arg(p)  # where the profiles they extend may be
    p.set_defaults(func=cmd_profiles_upgrade)
    p = sub.add_parser("new", help="write a new profile to start from, into the user profiles "
                       "folder")
    p.add_argument("name", help="the new profile's name (its device.id and file name)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--like", metavar="PROFILE", help="copy this profile instead of the "
                     "commented skeleton")
    how.add_argument("--extends", metavar="PROFILE", help="write a child that inherits "
                     "everything from this profile")
    p.add_argument("--dir", metavar="DIR", help="write into DIR instead of the user profiles "
                   "folder")
    p.add_argument("--profiles", metavar="DIR", action="append", default=[],
                   help="also search this folder for --like/--extends profiles")
    p.set_defaults(func=cmd_profiles_new)

    p = sub.add_parser("test", help="run the conformance suite against the simulator or a "
                       "console")
    p.add_argument("profile", help="profile name or .toml file")
    p.add_argument("--port", metavar="URL", help="test the real console on this port "
                   "(read-only unless --allow-fire)")
    p.add_argument("--allow-fire", action="store_true", help="with --port: also set values "
                   "and fire the console (protective eyewear, beam into a dump or meter)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    p.add_argument("--profiles", metavar="DIR", action="append", default=[],
                   help="also search this folder for profiles")
    p.set_defaults(func=cmd_profiles_test)

    p = sub.add_parser("replay", help="replay a transcript against the driver and the "
                       "simulator; show where they differ")
    p.add_argument("profile", help="profile name or .toml file")
    p.add_argument("transcript", help="a file written by `laserlog record --transcript`")
    p.add_argument("--all", action="store_true", help="show every command, not only those "
                   "that differ")
    p.add_argument("--profiles", metavar="DIR", action="append", default=[],
                   help="also search this folder for profiles")
    p.set_defaults(func=cmd_profiles_replay)


def cmd_profiles_list(args: argparse.Namespace) -> int:
    from laserlog.config.catalog import profile_files
    from laserlog.config.profile import load_profile
    from laserlog.errors import LaserlogError
    from laserlog.review.summary import to_json

    rows: list[dict[str, Any]] = []
    for entry in profile_files(args.profiles):
        try:
            p = load_profile(entry.path, args.profiles)
            rows.append({"name": entry.name, "title": p.name, "kind": p.kind,
                         "protocol": p.protocol, "wavelengths_nm": list(p.wavelengths_nm),
                         "origin": entry.origin, "path": str(entry.path), "error": None})
        except LaserlogError as exc:
            rows.append({"name": entry.name, "title": "", "kind": "", "protocol": "",
                         "wavelengths_nm": [], "origin": entry.origin, "path": str(entry.path),
                         "error": str(exc)})
    if args.json:
        print(to_json(rows))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        if r["error"]:
            print(f"{r['name']:<{width}}  INVALID  {r['error']}")
        else:
            waves = "/".join(f"{w:g}" for w in r["wavelengths_nm"])
            print(f"{r['name']:<{width}}  {r['kind']:<10} {r['protocol']:<12} {waves:>9} nm  "
                  f"{r['title']}  [{r['origin']}]")
    return 0


def cmd_profiles_show(args: argparse.Namespace) -> int:
    from laserlog.config.profile import open_profile
    from laserlog.review.summary import format_profile

    print(format_profile(open_profile(args.name, args.profiles)))
    return 0


def cmd_profiles_check(args: argparse.Namespace) -> int:
    from laserlog.config.profile import FORMAT_VERSION, load_profile
    from laserlog.errors import LaserlogError

    failed = 0
    for name in args.files:
        try:
            profile = load_profile(name, args.profiles)
        except LaserlogError as exc:
            failed += 1
            print(f"INVALID {exc}", file=sys.stderr)
        else:
            print(f"ok      {name}: {profile.id} ({profile.name})")
            if profile.format_version < FORMAT_VERSION:
                print(f"note    {name} is profile format {profile.format_version}; run "
                      f"`laserlog profiles upgrade {name}` to rewrite it as format "
                      f"{FORMAT_VERSION} (comments are kept)")
    return EXIT_BAD_INPUT if failed else 0


def cmd_profiles_upgrade(args: argparse.Namespace) -> int:
    from laserlog.config.upgrade import upgrade_file
    from laserlog.errors import LaserlogError

    failed = 0
    for name in args.files:
        try:
            done = upgrade_file(name, args.profiles)
        except LaserlogError as exc:
            failed += 1
            print(f"INVALID {exc}", file=sys.stderr)
            continue
        if not done.changed:
            print(f"ok      {name}: already format {done.from_version}")
            continue
        renamed = f"; renamed {', '.join(done.renamed)}" if done.renamed else ""
        print(f"upgraded {name}: format {done.from_version} -> 2{renamed}")
    return EXIT_BAD_INPUT if failed else 0


def cmd_profiles_new(args: argparse.Namespace) -> int:
    from laserlog.config import scaffold
    from laserlog.config.catalog import find_profile, user_profiles_dir

    folder = Path(args.dir) if args.dir else user_profiles_dir()
    if args.like:
        path = scaffold.copy_of(args.name, find_profile(args.like, args.profiles), folder)
    elif args.extends:
        from laserlog.config.profile import load_profile

        parent = load_profile(find_profile(args.extends, args.profiles), args.profiles)
        path = scaffold.child_of(args.name, parent.id, parent.identity.model, folder)
    else:
        path = scaffold.skeleton(args.name, folder)
    print(f"wrote {path}")
    print(f"next: laserlog profiles check {path}")
    print(f"      laserlog profiles test {path}")
    return 0


def cmd_profiles_test(args: argparse.Namespace) -> int:
    from laserlog.config.profile import open_profile
    from laserlog.proving.conformance import Suite

    profile = open_profile(args.profile, args.profiles)
    suite = Suite(profile, port=args.port, allow_fire=args.allow_fire, seed=args.seed)
    print(suite.report.format().splitlines()[0], flush=True)
    suite.log = lambda line: print(line, flush=True)
    report = suite.run()
    print(report.format().splitlines()[-1])
    return 0 if report.ok else EXIT_FAILED


def cmd_profiles_replay(args: argparse.Namespace) -> int:
    from laserlog.config.profile import open_profile
    from laserlog.link.transcript_file import read_transcript
    from laserlog.proving.replay import replay

    profile = open_profile(args.profile, args.profiles)
    report = replay(profile, read_transcript(args.transcript))
    print(report.format(every_step=args.all))
    return 0 if report.ok else EXIT_FAILED


@contextmanager
def transcript_wrapper(path: str | None, profile_id: str,
                       port: str) -> Iterator[Callable[[Link], Link] | None]:
    """Yield a link wrapper that saves the raw exchange to `path` (None when no path)."""
    if not path:
        yield None
        return
    from laserlog.link.transcript_file import TranscriptWriter

    with TranscriptWriter(path, profile=profile_id, port=port) as writer:
        print(f"saving the raw exchange to {path}", file=sys.stderr)
        yield writer.wrap
