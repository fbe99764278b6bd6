"""The technician's commands: record, simulate, demo, live (the session screen), recover."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from laserlog.cli.args import (
    db_arg,
    db_path,
    new_file,
    positive_float,
    positive_int,
    profiles_arg,
    sync_arg,
)


def add_commands(commands: Any) -> None:
    """Add record, simulate, demo, live and recover to the main parser's subcommands."""
    p = commands.add_parser(
        "record", help="record one session headless and print its summary",
        description="Record one session headless. A session starts only on the start-of-session "
                    "contract (README, 'Starting a session'): --operator, --client (a pseudonym), "
                    "--area, --skin-type and --check KEY for every required item of the site's "
                    "checklist (`laserlog checklist --keys`). While it records, standard input "
                    "takes control lines: 'note TEXT', 'marker [TEXT]', 'end'.")
    p.add_argument("--profile", required=True, help="profile name or .toml file")
    p.add_argument("--port", required=True, metavar="URL",
                   help="serial port: device path, pty path, socket://, rfc2217:// or loop://")
    p.add_argument("--operator", metavar="ID", help="operator ID (required unless --resume)")
    p.add_argument("--client", metavar="REF",
                   help="client pseudonym, never a name, e.g. C-1042 (required unless --resume)")
    p.add_argument("--resume", nargs="?", const="last", metavar="ID",
                   help="continue an interrupted session (default: the last one on this port) "
                        "as a new session linked to it, with its details and checklist")
    p.add_argument("--area", metavar="TEXT",
                   help="treatment area, e.g. 'left cheek' (required unless --resume)")
    p.add_argument("--skin-type", metavar="I..VI",
                   help="Fitzpatrick skin type (required unless --resume)")
    p.add_argument("--check", action="append", default=[], metavar="KEY",
                   help="confirm one item of the site's checklist (repeat for each; "
                        "`laserlog checklist` lists them)")
    p.add_argument("--eyewear-checked", action="store_true",
                   help="the same as --check eyewear")
    p.add_argument("--checklist", metavar="FILE",
                   help="site checklist file (default: $LASERLOG_CHECKLIST, else checklist.toml "
                        "in the user config folder, else the built-in checklist)")
    p.add_argument("--serial", metavar="SN", help="refuse a console with another serial number")
    p.add_argument("--start-over-fault", metavar="REASON", default="",
                   help="start although the console reports a fault or an open interlock, for "
                        "this reason (recorded); the operator must be a registered user and "
                        "gives their passphrase (prompt, stdin or $LASERLOG_PASSPHRASE)")
    p.add_argument("--course", metavar="ID", default="",
                   help="a full session of this treatment course (`laserlog course list`); "
                        "without it the session is a one-off, unless the site requires courses")
    p.add_argument("--test-spot", action="store_true",
                   help="a test spot (with --course: for that course); stops after the site's "
                        "test_spot_max_pulses (default 50)")
    p.add_argument("--override-by", metavar="USER", default="",
                   help="an officer who authorises a course session before its window opens "
                        "(their passphrase: prompt, stdin or $LASERLOG_OFFICER_PASSPHRASE)")
    p.add_argument("--reason", metavar="TEXT", default="",
                   help="why the session starts before its course's window (with --override-by)")
    p.add_argument("--aftercare", metavar="FILE",
                   help="the aftercare text the client is given at the end (Markdown; default: "
                        "the site file's [documents] aftercare, if any)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    stop.add_argument("--pulses", type=positive_int, metavar="N", help="stop after N pulses")
    p.add_argument("--transcript", metavar="FILE", type=new_file,
                   help="also save the raw exchange with timestamps (for `profiles replay`)")
    sync_arg(p)
    db_arg(p)
    profiles_arg(p)
    p.set_defaults(func=cmd_record)

    p = commands.add_parser("checklist", help="list the site's pre-treatment checklist (the "
                            "items `record --check KEY` answers)")
    p.add_argument("--keys", action="store_true", help="print only the keys, one a line")
    p.add_argument("--profile", help="fill in this profile's wavelength(s) in the labels")
    p.add_argument("--checklist", metavar="FILE",
                   help="checklist file (default: $LASERLOG_CHECKLIST, else checklist.toml in "
                        "the user config folder, else the built-in checklist)")
    profiles_arg(p)
    p.set_defaults(func=cmd_checklist)

    p = commands.add_parser("simulate", help="serve a simulated console on a pseudo-terminal")
    p.add_argument("profile", help="profile name or .toml file")
    p.add_argument("--link", required=True, metavar="PATH", help="symlink path to the pty to create")
    p.add_argument("--seed", type=int, default=0, help="seed for shot-to-shot noise (default 0)")
    p.add_argument("--rate", type=positive_float, metavar="HZ", help="override the repetition rate")
    p.add_argument("--fire", action="store_true", help="start firing without waiting for a command")
    p.add_argument("--faults", metavar="SPEC", default="",
                   help="faults to inject, seeded by --seed, e.g. 'garble=0.01,unplug=4+3,"
                        "reboot=6,fault=10@3+2' (see laserlog.sim.faults)")
    profiles_arg(p)
    p.set_defaults(func=cmd_simulate)

    p = commands.add_parser("demo", help="open the TUI on a simulated picosecond console "
                            "(headless: record a few seconds and print the summary)")
    p.add_argument("--profile", default="ps755-ref", help="profile to simulate (default ps755-ref)")
    p.add_argument("--headless", action="store_true",
                   help="record without the TUI and print the summary (also when stdout is not "
                        "a terminal, or with --duration)")
    p.add_argument("--duration", type=positive_float, metavar="S",
                   help="record headless for S seconds (default 5)")
    p.add_argument("--rate", type=positive_float, metavar="HZ",
                   help="repetition rate of the simulated console (headless default 10; the "
                        "TUI uses the console's own setting)")
    p.add_argument("--checklist", metavar="FILE", help="site checklist file for the TUI form")
    sync_arg(p)
    db_arg(p)
    profiles_arg(p)
    p.set_defaults(func=cmd_demo)

    p = commands.add_parser("live", help="open the TUI on a console: start, watch and end sessions")
    p.add_argument("--profile", required=True, help="profile name or .toml file")
    p.add_argument("--port", required=True, metavar="URL",
                   help="serial port: device path, pty path, socket://, rfc2217:// or loop://")
    p.add_argument("--serial", metavar="SN", help="refuse a console with another serial number")
    p.add_argument("--checklist", metavar="FILE",
                   help="site checklist file (default: $LASERLOG_CHECKLIST, else checklist.toml "
                        "in the user config folder, else the built-in checklist)")
    sync_arg(p)
    db_arg(p)
    profiles_arg(p)
    p.set_defaults(func=cmd_live)

    p = commands.add_parser("recover", help="import rows a full disk left in a recovery file")
    p.add_argument("file", metavar="FILE", help="the .ndjson recovery file named in the error")
    db_arg(p)
    p.set_defaults(func=cmd_recover)


# -- commands ----------------------------------------------------------------------------
def cmd_record(args: argparse.Namespace) -> int:
    from laserlog.config.profile import open_profile
    from laserlog.errors import SessionError
    from laserlog.recording.contract import Contract, CourseRequest, SessionInfo, course_id

    if args.resume not in (None, "last") and not args.resume.isdigit():
        raise SessionError(f"--resume {args.resume!r}: expected a session ID or nothing")
    if args.transcript and os.path.abspath(args.transcript) == os.path.abspath(db_path(args)):
        raise SessionError("--transcript is the database file; choose another file")
    profile = open_profile(args.profile, args.profiles)
    contract = Contract.for_database(db_path(args), args.checklist)
    info = None
    if args.resume is None:  # the whole contract, before the console is touched
        checks = contract.answers(args.check, eyewear_checked=args.eyewear_checked)
        info = contract.check(SessionInfo(args.operator or "", args.client or "", args.area,
                                          args.skin_type, checklist=checks),
                              profile.wavelengths_nm, profile=profile)
        # The skin type's envelope on this console, as the form shows it before the start.
        envelope = contract.envelope_line(profile, info.skin_type)
        if envelope:
            print(f"laserlog: {envelope}", file=sys.stderr)
    try:
        course_id(args.course)
    except SessionError as exc:
        raise SessionError(f"the session was not started: --course: {exc}") from None
    if bool(args.override_by.strip()) != bool(args.reason.strip()):
        raise SessionError("the session was not started: --override-by and --reason go "
                           "together: the officer who authorises an early start, and why")
    if args.resume is not None and (args.course or args.test_spot or args.override_by):
        raise SessionError("--resume continues a session with its own course and kind; "
                           "--course, --test-spot and --override-by do not apply")
    course = CourseRequest(args.course, args.test_spot, args.override_by.strip(), "",
                           args.reason)
    from laserlog.config.documents import site_document

    aftercare = site_document("aftercare", args.aftercare, "--aftercare", db_path(args))
    max_pulses = args.pulses
    if args.test_spot:
        limit = contract.courses.test_spot_max_pulses
        max_pulses = min(max_pulses or limit, limit)
    from laserlog.cli.profiles import transcript_wrapper

    shipper = _shipper(args)
    with transcript_wrapper(args.transcript, profile.id, args.port) as wrap_link, \
            _stopping(shipper):
        return _record(profile, args.port, info, db_path(args), serial=args.serial,
                       duration_s=args.duration, max_pulses=max_pulses, resume=args.resume,
                       explicit_db=args.db is not None, wrap_link=wrap_link,
                       profile_dirs=args.profiles, contract=contract,
                       start_over=" ".join(args.start_over_fault.split()), course=course,
                       aftercare=aftercare)


def _shipper(args: argparse.Namespace) -> Any:
    """Return the background shipping `--sync URL` asks for, started; None without it."""
    if not args.sync:
        return None
    from laserlog.recording.shipping import Shipper

    return Shipper(db_path(args), args.sync).start()


@contextlib.contextmanager
def _stopping(shipper: Any) -> Iterator[None]:
    """Ship what the session committed last when it ends; say so if the server is away."""
    try:
        yield
    finally:
        if shipper is not None and not shipper.stop():
            print(f"laserlog: not yet shipped to the central server ({shipper.last_error}); "
                  "`laserlog sync --to URL` ships it later", file=sys.stderr)


def _resumed_info(store, port: str, resume: str, profile_id: str, serial: str | None):
    """Return the interrupted session to resume and the details the new one carries over
    (its checklist as answered at its start).

    Only a session of this profile, on this very console, continues here.
    """
    import json

    from laserlog.errors import SessionError
    from laserlog.recording.contract import SessionInfo

    target = store.latest_interrupted(port) if resume == "last" else store.session(int(resume))
    if target is None:
        raise SessionError(f"no interrupted session to resume on {port}"
                           if resume == "last" else f"no session {resume} to resume")
    if target["status"] != "interrupted":
        raise SessionError(f"session {target['id']} is {target['status']}, not interrupted: "
                           "only an interrupted session can be resumed")
    if target["profile_id"] != profile_id:
        raise SessionError(f"session {target['id']} was recorded with profile "
                           f"{target['profile_id']}, not {profile_id}: resume it with its own "
                           "profile")
    if serial is not None and target.get("serial") not in (None, "", serial):
        raise SessionError(f"session {target['id']} was recorded on console serial "
                           f"{target['serial']}, this is serial {serial}: resume it on its own "
                           "console")
    try:
        answered = json.loads(target["checklist_json"] or "{}")
    except ValueError:
        answered = {}
    checks = ({str(k): v is True for k, v in answered.items()}
              if isinstance(answered, dict) else {})
    info = SessionInfo(target["operator_id"], target["client_ref"], target["area"],
                       target["skin_type"], bool(target["eyewear_checked"]), checks)
    return target["id"], info


def _course_checked(store, contract, course, info, profile_id: str):
    """Hold the start to the course rules before the console is touched; an officer's
    override is authorised by their passphrase only when the start is early. Return the
    request with the officer's role."""
    import dataclasses

    from laserlog.recording.contract import CourseRequest, TooEarly

    course = course or CourseRequest()
    values = {"client": info.client_ref, "area": info.area, "skin": info.skin_type}
    bare = dataclasses.replace(course, override_by="", override_reason="")
    try:
        contract.course_start(store.conn, bare, values, profile_id)
        return bare  # not early: an override has nothing to authorise
    except TooEarly:
        if not course.override_by:
            raise
    from laserlog.review.users import (
        OFFICER_PASSPHRASE_ENV,
        authorise_override,
        read_passphrase,
    )

    passphrase = read_passphrase(f"passphrase for officer {course.override_by}: ",
                                 env=OFFICER_PASSPHRASE_ENV)
    officer = authorise_override(store, course.override_by, passphrase)
    course = dataclasses.replace(course, override_by=officer.user_id, override_role=officer.role)
    contract.course_start(store.conn, course, values, profile_id)
    return course


def _registered_operator(store, info, start_over: str = "") -> None:
    """Where the site requires it, or for a start over a console fault, the operator gives
    their passphrase before the start."""
    from laserlog.config.siteconfig import site_for

    if info is None:
        return
    registered = getattr(site_for(store.path), "operators_registered", False)
    if not (registered or start_over):
        return
    from laserlog.review.users import authorise_start_over, read_passphrase, require_operator

    passphrase = read_passphrase(f"passphrase for operator {info.operator_id}: ")
    if registered:
        require_operator(store, info.operator_id, passphrase)
    if start_over:
        authorise_start_over(store, info.operator_id, passphrase)


def _record(profile, port: str, info, db_file: str, *, serial: str | None = None,
            duration_s: float | None = None, max_pulses: int | None = None,
            before_run: Callable[[], None] | None = None, resume: str | None = None,
            explicit_db: bool = False, wrap_link: Callable[[Any], Any] | None = None,
            profile_dirs: list[str] | None = None, contract: Any = None,
            controls: bool = True, start_over: str = "", course: Any = None,
            aftercare: Any = None) -> int:
    """Record one session headless and print its summary. `contract`: the start-of-session
    contract a new session is held to; `controls`: read control lines from standard input
    (when it is a pipe or a terminal); `start_over`: the reason to start over a console
    fault or an open interlock (the operator's passphrase is asked first); `course`: the
    course rules' request (recording.contract.CourseRequest), checked before the console is
    touched, an early start's officer authorised by their passphrase; `aftercare`: the
    aftercare document (config.documents) the client is given at the session's end."""
    import signal
    import threading

    from laserlog.cli.headless import ControlReader, Steering, stdin_steers
    from laserlog.errors import ConsoleNotReady
    from laserlog.recording.recorder import Recorder
    from laserlog.review.summary import format_session
    from laserlog.storage.store import Store

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    # A --db in a folder that does not exist is more likely a typo than a wish.
    store = Store(db_file, create_dirs=not explicit_db)
    store.interrupted = stop.is_set  # a signal ends a wait for another program's lock
    store.waiting = lambda message: print(f"laserlog: {message}", file=sys.stderr, flush=True)
    try:
        if contract is not None and info is not None and resume is None:
            course = _course_checked(store, contract, course, info, profile.id)
        recorder = Recorder(store, profile, port, expect_serial=serial, wrap_link=wrap_link,
                            profile_dirs=profile_dirs)
        try:
            recorder.connect()
            resumes = None
            if resume is not None:
                resumes, info = _resumed_info(store, port, resume, profile.id,
                                              recorder.identity.serial if recorder.identity
                                              else None)
            for interrupted in recorder.interrupted_sessions:
                print(f"session {interrupted} on {port} was interrupted (its recorder stopped "
                      "without ending it); `laserlog record --resume` continues it",
                      file=sys.stderr)
            _registered_operator(store, info, start_over)
            # A resumed session continues one that met the contract when it started.
            try:
                session_id = recorder.start(info, resumes=resumes,
                                            contract=contract if resumes is None else None,
                                            start_over=start_over, course=course)
            except ConsoleNotReady as exc:
                raise ConsoleNotReady(f"{exc} with --start-over-fault REASON (as a registered "
                                      "operator, with your passphrase); no session was "
                                      "started") from None
        except BaseException:
            recorder.close()  # no session: let go of the console and the port
            raise
        for warning in recorder.warnings:
            print(f"laserlog: warning: {warning}", file=sys.stderr)
        reader = ControlReader().start() if controls and stdin_steers() else None
        steering = Steering(recorder, stop, controls=reader,
                            progress=sys.stderr if sys.stderr.isatty() else None)
        print(f"recording session {session_id} from {profile.name} "
              f"(serial {(recorder.identity.serial if recorder.identity else '') or 'unknown'}) "
              f"on {port}; "
              "Ctrl-C ends it" + ("; type 'note TEXT', 'marker [TEXT]', 'pass N [SUB-AREA]' or "
                                  "'end' and Enter"
                                  if reader is not None else ""), file=sys.stderr)
        if before_run is not None:
            before_run()
        try:
            recorder.run(stop, duration_s=duration_s, max_pulses=max_pulses, between=steering)
        except Exception as exc:  # any failure ends the session, saying why and keeping rows
            steering.clear()
            failure = recorder.fail(exc)
            print(format_session(store, session_id))
            raise failure from None
        except BaseException:
            steering.clear()
            recorder.end("recorder stopped")
            raise
        finally:
            if reader is not None:
                reader.close()
        steering.clear()
        recorder.end("ended from standard input" if steering.ended_by_control
                     else "interrupted by signal" if stop.is_set()
                     else "duration or pulse count reached")
        if aftercare is not None:
            from laserlog.review.documents import record_aftercare

            record_aftercare(store, session_id, aftercare, "end")
        print(format_session(store, session_id))
        if aftercare is not None:
            print(f"aftercare given: {aftercare.version} ({aftercare.path.name}); print it "
                  f"with `laserlog export --format pdf --aftercare --session {session_id} "
                  "--out FILE`", file=sys.stderr)
    finally:
        store.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import signal
    import threading

    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator
    from laserlog.sim.faults import parse_spec

    profile = open_profile(args.profile, args.profiles)
    faults = parse_spec(args.faults, args.seed)
    if not args.link.strip():
        from laserlog.errors import LaserlogError

        raise LaserlogError("--link is empty; expected a new path for the simulated port")
    if os.path.lexists(args.link):  # the link is replaced while serving and removed at exit
        from laserlog.errors import LaserlogError

        raise LaserlogError(f"--link {args.link} already exists; nothing was touched "
                            "(expected a new path for the simulated port)")
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

    from laserlog.config.profile import open_profile
    from laserlog.recording.contract import Contract, SessionInfo
    from laserlog.sim.engine import Simulator

    profile = open_profile(args.profile, args.profiles)
    if not (args.headless or args.duration is not None or not sys.stdout.isatty()):
        from laserlog.tui.launch import run_demo

        return run_demo(profile, db_path(args), rate_hz=args.rate, profile_dirs=args.profiles,
                        checklist_file=args.checklist, sync_url=args.sync)
    with tempfile.TemporaryDirectory(prefix="laserlog-demo-") as tmp:
        link = Path(tmp) / "console"
        with Simulator(profile, link, seed=1, rate_hz=args.rate or 10.0) as sim:
            contract = Contract.for_database(db_path(args), args.checklist)
            info = SessionInfo("demo-tech", "C-0001", "left cheek", "III", True,
                               {item.key: True for item in contract.items})
            print(f"simulated {profile.name} on {link}", file=sys.stderr)

            def fire() -> None:
                sim.console.firing = True

            with _stopping(_shipper(args)):
                return _record(profile, str(link), info, db_path(args),
                               duration_s=args.duration or 5.0, before_run=fire,
                               profile_dirs=args.profiles, contract=contract, controls=False)


def cmd_checklist(args: argparse.Namespace) -> int:
    from laserlog.config.checklist import label_for, load_checklist

    items = load_checklist(args.checklist)
    if args.keys:
        for item in items:
            print(item.key)
        return 0
    wavelengths: tuple[float, ...] = ()
    if args.profile:
        from laserlog.config.profile import open_profile

        wavelengths = open_profile(args.profile, args.profiles).wavelengths_nm
    width = max(len(item.key) for item in items)
    for item in items:
        print(f"{item.key:<{width}}  {'required' if item.required else 'optional'}  "
              f"{label_for(item, wavelengths)}")
    print(f"\nanswer each with `laserlog record ... --check KEY`; "
          f"{sum(i.required for i in items)} of {len(items)} are required")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from laserlog.config.profile import open_profile
    from laserlog.tui.launch import run_live

    profile = open_profile(args.profile, args.profiles)
    return run_live(profile, args.port, db_path(args), serial=args.serial,
                    profile_dirs=args.profiles, checklist_file=args.checklist,
                    sync_url=args.sync)


def cmd_recover(args: argparse.Namespace) -> int:
    from laserlog.storage.recovery import recover
    from laserlog.storage.store import Store

    with Store(db_path(args), create_dirs=False) as store:
        counts = recover(args.file, store)
    ended = counts.pop("session_end")
    print("recovered " + ", ".join(f"{n} {table}" for table, n in counts.items())
          + (f" and ended {ended} session(s) as their recorder had" if ended else "")
          + f" into {db_path(args)}; the recovery file can now be archived")
    return 0
