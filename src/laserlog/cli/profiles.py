"""The engineer's profile commands: `profiles new`, `profiles test`, `profiles replay`.

Kept apart from cli.py so that file stays the map of every command; each function here
imports what it needs when it runs, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from laserlog.link.transport import Link

#: Exit status when a conformance run or a replay found a failure (2 is kept for bad input).
EXIT_FAILED = 1


def add_profile_commands(sub: argparse._SubParsersAction) -> None:
    """Add `new`, `test` and `replay` to the `profiles` command's subparsers."""
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
    from laserlog.config.catalog import open_profile
    from laserlog.proving.conformance import Suite

    profile = open_profile(args.profile, args.profiles)
    suite = Suite(profile, port=args.port, allow_fire=args.allow_fire, seed=args.seed)
    print(suite.report.format().splitlines()[0], flush=True)
    suite.log = lambda line: print(line, flush=True)
    report = suite.run()
    print(report.format().splitlines()[-1])
    return 0 if report.ok else EXIT_FAILED


def cmd_profiles_replay(args: argparse.Namespace) -> int:
    from laserlog.config.catalog import open_profile
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
