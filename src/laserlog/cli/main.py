"""The command line. Each command imports what it needs when it runs, so --help stays fast."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors say what was expected, exit 2, no traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"laserlog: error: {message}\n")


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH",
                   help="database file (default: $LASERLOG_DB, else laserlog.db in the user data folder)")


def _profiles_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profiles", metavar="DIR", action="append", default=[],
                   help="also search this folder for profiles (first match wins; repeatable)")


def _sync_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sync", metavar="URL", help="also ship committed rows to a central "
                   "PostgreSQL in the background (postgresql://...; retries, never blocks)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every command."""
    parser = _Parser(prog="laserlog", description=(
        "Log every pulse of an aesthetic laser console (duration and regime, fluence, spot, "
        "energy) into SQLite, per treatment session."))
    from laserlog import __version__

    parser.add_argument("--version", action="version", version=f"laserlog {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("record", help="record one session headless and print its summary")
    p.add_argument("--profile", required=True, help="profile name or .toml file")
    p.add_argument("--port", required=True, metavar="URL",
                   help="serial port: device path, pty path, socket://, rfc2217:// or loop://")
    p.add_argument("--operator", metavar="ID", help="operator ID (required unless --resume)")
    p.add_argument("--client", metavar="REF",
                   help="client pseudonym, never a name (required unless --resume)")
    p.add_argument("--resume", nargs="?", const="last", metavar="ID",
                   help="continue an interrupted session (default: the last one on this port) "
                        "as a new session linked to it")
    p.add_argument("--area", metavar="TEXT", help="treatment area, e.g. 'left cheek'")
    p.add_argument("--skin-type", metavar="I..VI", help="Fitzpatrick skin type")
    p.add_argument("--eyewear-checked", action="store_true",
                   help="confirm eyewear rated for this wavelength is worn by everyone present")
    p.add_argument("--serial", metavar="SN", help="refuse a console with another serial number")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S seconds")
    stop.add_argument("--pulses", type=_positive_int, metavar="N", help="stop after N pulses")
    p.add_argument("--transcript", metavar="FILE",
                   help="also save the raw exchange with timestamps (for `profiles replay`)")
    _sync_arg(p)
    _db_arg(p)
    _profiles_arg(p)
    p.set_defaults(func=cmd_record)

    p = commands.add_parser("simulate", help="serve a simulated console on a pseudo-terminal")
    p.add_argument("profile", help="profile name or .toml file")
    p.add_argument("--link", required=True, metavar="PATH", help="symlink path to the pty to create")
    p.add_argument("--seed", type=int, default=0, help="seed for shot-to-shot noise (default 0)")
    p.add_argument("--rate", type=_positive_float, metavar="HZ", help="override the repetition rate")
    p.add_argument("--fire", action="store_true", help="start firing without waiting for a command")
    p.add_argument("--faults", metavar="SPEC", default="",
                   help="faults to inject, seeded by --seed, e.g. 'garble=0.01,unplug=4+3,"
                        "reboot=6,fault=10@3+2' (see laserlog.sim.faults)")
    _profiles_arg(p)
    p.set_defaults(func=cmd_simulate)

    p = commands.add_parser("demo", help="open the TUI on a simulated picosecond console "
                            "(headless: record a few seconds and print the summary)")
    p.add_argument("--profile", default="ps755-ref", help="profile to simulate (default ps755-ref)")
    p.add_argument("--headless", action="store_true",
                   help="record without the TUI and print the summary (also when stdout is not "
                        "a terminal, or with --duration)")
    p.add_argument("--duration", type=_positive_float, metavar="S",
                   help="record headless for S seconds (default 5)")
    p.add_argument("--rate", type=_positive_float, metavar="HZ",
                   help="repetition rate of the simulated console (headless default 10; the "
                        "TUI uses the console's own setting)")
    p.add_argument("--checklist", metavar="FILE", help="site checklist file for the TUI form")
    _sync_arg(p)
    _db_arg(p)
    _profiles_arg(p)
    p.set_defaults(func=cmd_demo)

    p = commands.add_parser("live", help="open the TUI on a console: start, watch and end sessions")
    p.add_argument("--profile", required=True, help="profile name or .toml file")
    p.add_argument("--port", required=True, metavar="URL",
                   help="serial port: device path, pty path, socket://, rfc2217:// or loop://")
    p.add_argument("--serial", metavar="SN", help="refuse a console with another serial number")
    p.add_argument("--checklist", metavar="FILE",
                   help="site checklist file (default: $LASERLOG_CHECKLIST, else checklist.toml "
                        "in the user config folder, else the built-in checklist)")
    _sync_arg(p)
    _db_arg(p)
    _profiles_arg(p)
    p.set_defaults(func=cmd_live)

    p = commands.add_parser("recover", help="import rows a full disk left in a recovery file")
    p.add_argument("file", metavar="FILE", help="the .ndjson recovery file named in the error")
    _db_arg(p)
    p.set_defaults(func=cmd_recover)

    sessions = commands.add_parser("sessions", help="list and show recorded sessions")
    sub = sessions.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser, required=True)
    p = sub.add_parser("list", help="list sessions, newest first")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--limit", type=_positive_int, default=50, help="how many (default 50)")
    _db_arg(p)
    p.set_defaults(func=cmd_sessions_list)
    p = sub.add_parser("show", help="show one session: details, totals, events")
    p.add_argument("id", type=_positive_int, metavar="ID")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--pulses", action="store_true", help="also list its pulses")
    _db_arg(p)
    p.set_defaults(func=cmd_sessions_show)

    profiles = commands.add_parser("profiles", help="list, show, check, scaffold, test and "
                                   "replay device profiles")
    sub = profiles.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser, required=True)
    p = sub.add_parser("list", help="list every profile found, and where")
    p.add_argument("--json", action="store_true", help="print JSON")
    _profiles_arg(p)
    p.set_defaults(func=cmd_profiles_list)
    p = sub.add_parser("show", help="show a profile's parameters, ranges and handpieces")
    p.add_argument("name")
    _profiles_arg(p)
    p.set_defaults(func=cmd_profiles_show)
    p = sub.add_parser("check", help="validate profile files")
    p.add_argument("files", nargs="+", metavar="FILE")
    _profiles_arg(p)  # where the profiles they extend may be
    p.set_defaults(func=cmd_profiles_check)
    from laserlog.cli.profiles import add_profile_commands

    add_profile_commands(sub)  # new, test, replay
    from laserlog.cli.review import add_commands as add_review_commands

    # report, verify, users, signoff, correct, calibrate, export, site, simulate-bench
    add_review_commands(commands, _db_arg, _profiles_arg, _positive_int, _positive_float)
    from laserlog.cli.web import add_serve_command

    add_serve_command(commands, _db_arg)  # serve: the read-only web view
    from laserlog.cli.central import add_sync_command

    add_sync_command(commands, _db_arg)  # sync: ship to a central PostgreSQL
    return parser


def _db(args: argparse.Namespace) -> str:
    from laserlog.storage.store import default_db_path

    return args.db or str(default_db_path())


# -- commands ----------------------------------------------------------------------------
def cmd_record(args: argparse.Namespace) -> int:
    from laserlog.config.catalog import open_profile
    from laserlog.errors import SessionError
    from laserlog.recording.recorder import SessionInfo

    if args.resume is None and not (args.operator and args.client):
        raise SessionError("record needs --operator ID and --client REF (or --resume to continue "
                           "an interrupted session)")
    if args.resume not in (None, "last") and not args.resume.isdigit():
        raise SessionError(f"--resume {args.resume!r}: expected a session ID or nothing")
    profile = open_profile(args.profile, args.profiles)
    info = None
    if args.resume is None:
        info = SessionInfo(args.operator, args.client, args.area, args.skin_type,
                           args.eyewear_checked).validated()
    from laserlog.cli.profiles import transcript_wrapper

    shipper = _shipper(args)
    with transcript_wrapper(args.transcript, profile.id, args.port) as wrap_link, \
            _stopping(shipper):
        return _record(profile, args.port, info, _db(args), serial=args.serial,
                       duration_s=args.duration, max_pulses=args.pulses, resume=args.resume,
                       eyewear_checked=args.eyewear_checked, explicit_db=args.db is not None,
                       wrap_link=wrap_link)


def _shipper(args: argparse.Namespace) -> Any:
    """Return the background shipping `--sync URL` asks for, started; None without it."""
    if not args.sync:
        return None
    from laserlog.central.shipper import Shipper

    return Shipper(_db(args), args.sync).start()


@contextlib.contextmanager
def _stopping(shipper: Any) -> Iterator[None]:
    """Ship what the session committed last when it ends; say so if the server is away."""
    try:
        yield
    finally:
        if shipper is not None and not shipper.stop():
            print(f"laserlog: not yet shipped to the central server ({shipper.last_error}); "
                  "`laserlog sync --to URL` ships it later", file=sys.stderr)


def _resumed_info(store, port: str, resume: str, eyewear_checked: bool):
    """Return the interrupted session to resume and the details the new one carries over."""
    from laserlog.errors import SessionError
    from laserlog.recording.recorder import SessionInfo

    target = store.latest_interrupted(port) if resume == "last" else store.session(int(resume))
    if target is None:
        raise SessionError(f"no interrupted session to resume on {port}"
                           if resume == "last" else f"no session {resume} to resume")
    if target["status"] != "interrupted":
        raise SessionError(f"session {target['id']} is {target['status']}, not interrupted: "
                           "only an interrupted session can be resumed")
    info = SessionInfo(target["operator_id"], target["client_ref"], target["area"],
                       target["skin_type"], eyewear_checked or bool(target["eyewear_checked"]))
    return target["id"], info


def _record(profile, port: str, info, db_path: str, *, serial: str | None = None,
            duration_s: float | None = None, max_pulses: int | None = None,
            before_run: Callable[[], None] | None = None, resume: str | None = None,
            eyewear_checked: bool = False, explicit_db: bool = False,
            wrap_link: Callable[[Any], Any] | None = None) -> int:
    import signal
    import threading

    from laserlog.recording.recorder import Recorder
    from laserlog.review.summary import format_session
    from laserlog.storage.store import Store

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    # A --db in a folder that does not exist is more likely a typo than a wish.
    store = Store(db_path, create_dirs=not explicit_db)
    try:
        recorder = Recorder(store, profile, port, expect_serial=serial, wrap_link=wrap_link)
        recorder.connect()
        resumes = None
        if resume is not None:
            resumes, info = _resumed_info(store, port, resume, eyewear_checked)
        for interrupted in recorder.interrupted_sessions:
            print(f"session {interrupted} on {port} was interrupted (its recorder stopped without "
                  "ending it); `laserlog record --resume` continues it", file=sys.stderr)
        session_id = recorder.start(info, resumes=resumes)
        print(f"recording session {session_id} from {profile.name} "
              f"(serial {recorder.identity.serial if recorder.identity else '?'}) on {port}; "
              "Ctrl-C ends it", file=sys.stderr)
        if before_run is not None:
            before_run()
        try:
            recorder.run(stop, duration_s=duration_s, max_pulses=max_pulses)
            reason = "interrupted by signal" if stop.is_set() else "duration or pulse count reached"
        finally:
            recorder.end(reason if "reason" in locals() else "recorder error")
        print(format_session(store, session_id))
    finally:
        store.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import signal
    import threading

    from laserlog.config.catalog import open_profile
    from laserlog.sim.engine import Simulator
    from laserlog.sim.faults import parse_spec

    profile = open_profile(args.profile, args.profiles)
    faults = parse_spec(args.faults, args.seed)
    try:
        sim = Simulator(profile, args.link, seed=args.seed, rate_hz=args.rate, fire=args.fire,
                        faults=faults)
    except OSError as exc:
        from laserlog.errors import LaserlogError

        raise LaserlogError(f"cannot create the simulated port at {args.link}: {exc.strerror}") from None
    done = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: done.set())
    sim.start()
    print(f"simulating {profile.name} (serial {profile.simulator.serial}) on {args.link}",
          file=sys.stderr, flush=True)
    done.wait()
    sim.stop()
    injected = ", ".join(f"{k} {v}" for k, v in sorted(faults.counts.items()))
    print(f"stopped after {sim.pulses_sent} pulses" + (f"; faults injected: {injected}" if injected else ""),
          file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from laserlog.config.catalog import open_profile
    from laserlog.recording.recorder import SessionInfo
    from laserlog.sim.engine import Simulator

    profile = open_profile(args.profile, args.profiles)
    if not (args.headless or args.duration is not None or not sys.stdout.isatty()):
        from laserlog.tui.launch import run_demo

        return run_demo(profile, _db(args), rate_hz=args.rate, profile_dirs=args.profiles,
                        checklist_file=args.checklist, sync_url=args.sync)
    with tempfile.TemporaryDirectory(prefix="laserlog-demo-") as tmp:
        link = Path(tmp) / "console"
        with Simulator(profile, link, seed=1, rate_hz=args.rate or 10.0) as sim:
            info = SessionInfo("demo-tech", "C-0001", "left cheek", "III", eyewear_checked=True)
            print(f"simulated {profile.name} on {link}", file=sys.stderr)

            def fire() -> None:
                sim.console.firing = True

            with _stopping(_shipper(args)):
                return _record(profile, str(link), info, _db(args),
                               duration_s=args.duration or 5.0, before_run=fire)


def cmd_live(args: argparse.Namespace) -> int:
    from laserlog.config.catalog import open_profile
    from laserlog.tui.launch import run_live

    profile = open_profile(args.profile, args.profiles)
    return run_live(profile, args.port, _db(args), serial=args.serial,
                    profile_dirs=args.profiles, checklist_file=args.checklist,
                    sync_url=args.sync)


def cmd_recover(args: argparse.Namespace) -> int:
    from laserlog.storage.recovery import recover
    from laserlog.storage.store import Store

    with Store(_db(args), create_dirs=False) as store:
        counts = recover(args.file, store)
    print("recovered " + ", ".join(f"{n} {table}" for table, n in counts.items())
          + f" into {_db(args)}; the recovery file can now be archived")
    return 0


def cmd_sessions_list(args: argparse.Namespace) -> int:
    from laserlog.review.summary import format_sessions, to_json
    from laserlog.storage.store import Store

    with Store(_db(args), readonly=True) as store:
        rows = store.sessions(args.limit)
        from laserlog.review.signoff import annotate

        annotate(store.conn, rows)  # each row's signatures, INVALID where the data changed
        print(to_json(rows) if args.json else format_sessions(rows))
    return 0


def cmd_sessions_show(args: argparse.Namespace) -> int:
    from laserlog.errors import LaserlogError
    from laserlog.review.summary import format_pulses, format_session, session_json
    from laserlog.storage.store import Store

    with Store(_db(args), readonly=True) as store:
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
    from laserlog.config.catalog import open_profile
    from laserlog.review.summary import format_profile

    print(format_profile(open_profile(args.name, args.profiles)))
    return 0


def cmd_profiles_check(args: argparse.Namespace) -> int:
    from laserlog.config.profile import load_profile
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
    return EXIT_BAD_INPUT if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    from laserlog.errors import LaserlogError

    try:
        return int(args.func(args))
    except LaserlogError as exc:
        print(f"laserlog: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
