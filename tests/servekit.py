"""Helpers for the web view tests: a simulator-filled database and a served `laserlog serve`."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from laserlog.storage.store import Store

from conftest import wait_until
from ports import free_port
from reviewkit import record_three_sessions, signer, user

#: The site file beside the test database: the ps1064 console's fluence is capped low, so
#: its pulses raise out_of_limit alarms.
SITE = """
[limits.ps1064-ref]
max_fluence_j_cm2 = 0.05
"""


def fill(folder: Path) -> Path:
    """Record three sessions on two simulated consoles, with a gap, a fault, out-of-limit
    pulses, a correction, two signatures and two calibration checks; return the database."""
    from laserlog.review.calibration import Check, Shot
    from laserlog.review.calibration import record as record_check
    from laserlog.review.corrections import correct
    from laserlog.review.signoff import sign

    db = folder / "laserlog.db"
    (folder / "site.toml").write_text(SITE)
    with Store(db) as store:
        record_three_sessions(folder, store)
        officer = user(store, "lso-01")
        user(store, "tech-01")
        sign(store, 1, signer(store, "lso-01"), "approved")
        sign(store, 2, signer(store, "tech-01"), "reviewed")
        correct(store, 3, "area", "chin", "the area was entered wrongly", officer)
        now = datetime.now(UTC)
        for serial, profile, model, result, age_days in (
                ("R755-0001", "ps755-ref", "PSR755", "pass", 1),
                ("R1064-0001", "ps1064-ref", "PSR1064", "warn", 45)):
            when = (now - timedelta(days=age_days)).isoformat(timespec="milliseconds")
            when = when.replace("+00:00", "Z")
            deviation = 0.02 if result == "pass" else 0.13
            shot = Shot(1, 0.0, 0.12, 0.12 * (1 + deviation), deviation, result)
            record_check(store, Check(0, profile, model, serial, "2.1.0", "ophir-nova2",
                                      "PE50BF-C", "123456", "", "lso-01", when, when, 755.0,
                                      0.12, 0.12 * (1 + deviation), deviation, deviation, result,
                                      "laserlog", 0.1, 0.2, [shot]))
    return db


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def served(db: Path, *extra: str, timeout_s: float = 60.0) -> Iterator[str]:
    """Run `laserlog serve` on a free loopback port; yield its base URL; stop it after."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LASERLOG_SITE"}
    # A file, not a pipe: nobody reads the server's log while it runs, and a full pipe
    # would stop the server.
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "laserlog", "serve", "--db", str(db),
                                 "--port", str(port), *extra], env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            def up() -> bool:
                if proc.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"laserlog serve exited {proc.returncode}: "
                                         f"{log.read()}")
                return _listening(port)

            wait_until(up, timeout_s, f"laserlog serve on port {port}")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def elapsed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


#: C-1042's sessions in order: (area, console). ps1064 pulses pass the site's fluence limit,
#: so "out of limits" depends on which sessions count: the last six left-cheek sessions hold
#: two such sessions, the two older ones a third that must not be counted.
OFFICER_SESSIONS = [("left cheek", "ps1064"), ("left cheek", "ps755"), ("forehead", "ps755"),
                    ("left cheek", "ps755"), ("left cheek", "ps1064"), ("left cheek", "ps755"),
                    ("forehead", "ps1064"), ("left cheek", "ps755"), ("left cheek", "ps1064"),
                    ("left cheek", "ps755")]


def fill_officer(folder: Path) -> Path:
    """Record C-1042's ten sessions (eight on the left cheek, two on the forehead) and one of
    C-2077's, sign one off and correct one's area; return the database."""
    from laserlog.config.profile import open_profile
    from laserlog.recording.recorder import SessionInfo
    from laserlog.review.corrections import correct
    from laserlog.review.signoff import sign
    from laserlog.sim.engine import Simulator

    from reviewkit import record

    db = folder / "laserlog.db"
    (folder / "site.toml").write_text('timezone = "Europe/Berlin"\n' + SITE)
    checks = {"eyewear": True, "consent": True, "sun_exposure": True}
    with Store(db) as store, \
            Simulator(open_profile("ps755-ref"), folder / "ps755", seed=7, rate_hz=100) as p755, \
            Simulator(open_profile("ps1064-ref"), folder / "ps1064", seed=8,
                      rate_hz=100) as p1064:
        sims = {"ps755": p755, "ps1064": p1064}
        plan = [("C-1042", area, console) for area, console in OFFICER_SESSIONS]
        plan.insert(3, ("C-2077", "left cheek", "ps755"))
        for n, (client_ref, area, console) in enumerate(plan):
            info = SessionInfo("tech-01" if n % 2 else "tech-02", client_ref,
                               "chin" if n == 5 else area, skin_type="III",
                               eyewear_checked=True, checklist=checks)
            record(store, sims[console], info, pulses=8 + n)
        officer = user(store, "lso-01")
        sign(store, 2, signer(store, "lso-01"), "approved")
        # Session 6 was entered as chin: corrected to the left cheek, it counts there.
        correct(store, 6, "area", "left cheek", "entered as chin by mistake", officer)
    return db


@contextlib.contextmanager
def course_clock(start: datetime) -> Iterator[list[datetime]]:
    """Hold the course rules' clock (laserlog.recording.courses.now) at a moment the caller
    moves: yield a one-item list whose item is the time now."""
    from laserlog.recording import courses

    moment = [start]
    real = courses.now
    courses.now = lambda: moment[0]
    try:
        yield moment
    finally:
        courses.now = real


def fill_course(folder: Path) -> Path:
    """Record C-1042's pores course on the left cheek (window 21-42 days): a test spot read out
    three days later with erythema 1, the first session in two passes, a second ten days
    after it on an officer's override, and a third 50 days after that (late); a one-off of
    the same client stays out of the course. Return the database."""
    from laserlog.config.courses import Window
    from laserlog.config.profile import open_profile
    from laserlog.recording import courses
    from laserlog.recording.contract import Contract, CourseRequest
    from laserlog.recording.recorder import Recorder, SessionInfo
    from laserlog.sim.engine import Simulator

    db = folder / "laserlog.db"
    (folder / "site.toml").write_text('timezone = "Europe/Berlin"\n')
    checks = {"eyewear": True, "consent": True, "sun_exposure": True}
    contract = Contract.for_database(db)
    plan = [(0.0, CourseRequest("1", test_spot=True), 6, False),
            (4.0, CourseRequest("1"), 12, True),
            (14.0, CourseRequest("1", override_by="lso-01", override_role="officer",
                                 override_reason="client travels for two months"), 10, False),
            (64.0, CourseRequest("1"), 8, False),
            (65.0, CourseRequest(), 5, False)]
    with Store(db) as store, course_clock(datetime(2026, 3, 2, 8, 30, tzinfo=UTC)) as clock, \
            Simulator(open_profile("ps755-ref"), folder / "ps755", seed=5, rate_hz=200) as sim:
        start = clock[0]
        courses.create(store, client="C-1042", area="left cheek", indication="pores",
                       sessions=4, window=Window(21, 42, 28), profile_id="ps755-ref",
                       note="PIH history: conservative")
        for day, request, pulses, passes in plan:
            clock[0] = start + timedelta(days=day)
            recorder = Recorder(store, sim.profile, str(sim.path))
            recorder.start(SessionInfo("tech-01", "C-1042", "left cheek", skin_type="III",
                                       eyewear_checked=True, checklist=checks),
                           contract=contract, course=request)
            if passes:
                recorder.mark_pass(time.time(), 1, "upper cheek")
            sim.console.firing = True

            def step(recorder: Recorder = recorder, pulses: int = pulses,
                     passes: bool = passes) -> bool:
                recorder.step(0.02)
                if passes and recorder.totals.pulses >= 6 and recorder.current_pass[0] == 1:
                    recorder.mark_pass(time.time(), 2, "lower cheek")
                return recorder.totals.pulses >= pulses

            wait_until(step, 30, f"{pulses} pulses")
            with sim._lock:
                sim.console.firing = False
            recorder.end("test done")
            if request.test_spot:
                clock[0] = start + timedelta(days=3)
                courses.record_readout(store, recorder.session_id or 0, {"erythema": 1},
                                       "slight redness", "lso-01")
    return db
