"""Helpers for the safety-officer tests: record real sessions, add users, run the CLI."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.review.users import Signer, User, add_user, list_users, unlock
from laserlog.storage.store import Store

from conftest import wait_until

LASERLOG = [sys.executable, "-m", "laserlog"]
PASSPHRASES = {"lso-01": "officer passphrase 1", "lso-02": "officer passphrase 2",
               "tech-01": "technician pass 1", "tech-02": "technician pass 2",
               "eng-01": "engineer passphrase"}
ROLES = {"lso": "officer", "tech": "technician", "eng": "engineer"}


def record(store: Store, sim, info: SessionInfo, *, pulses: int,
           during: Callable[[Recorder], None] | None = None, timeout_s: float = 30.0) -> Recorder:
    """Record from a simulator until at least `pulses` pulses are in; return the ended recorder."""
    recorder = Recorder(store, sim.profile, str(sim.path))
    recorder.start(info)
    sim.console.firing = True

    def step() -> bool:
        recorder.step(0.02)
        if during is not None:
            during(recorder)
        return recorder.totals.pulses >= pulses

    wait_until(step, timeout_s, f"{pulses} pulses")
    with sim._lock:
        sim.console.firing = False
    recorder.end("test done")
    return recorder


def user(store: Store, user_id: str, name: str | None = None) -> User:
    """Add a user whose role follows its ID prefix (lso-, tech-, eng-)."""
    role = ROLES[user_id.split("-")[0]]
    return add_user(store, user_id, name or f"Name of {user_id}", role, PASSPHRASES[user_id],
                    by=manager(store))


def manager(store: Store) -> Signer | None:
    """Return a user who may add users (the first one added, or an officer), unlocked; None
    while the database has no users (the first one needs nobody's authorisation)."""
    for known in list_users(store):
        if known.manages and known.user_id in PASSPHRASES:
            return unlock(store, known.user_id, PASSPHRASES[known.user_id])
    return None


def signer(store: Store, user_id: str) -> Signer:
    """Return a known test user, unlocked with their passphrase."""
    return unlock(store, user_id, PASSPHRASES[user_id])


def cli(*args: str, passphrase: str | None = None, stdin: str | None = None,
        env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run laserlog as a user would; the passphrase goes through $LASERLOG_PASSPHRASE."""
    full_env = {k: v for k, v in os.environ.items() if k != "LASERLOG_PASSPHRASE"}
    if passphrase is not None:
        full_env["LASERLOG_PASSPHRASE"] = passphrase
    full_env.update(env or {})
    return subprocess.run([*LASERLOG, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, input=stdin if stdin is not None else "")


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Check a refusal: exit 2, no traceback, a message naming what was wrong."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def counts(db: Path) -> dict[str, int]:
    """Return the row count of every table a review command may write."""
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("pulses", "events", "settings", "sessions", "chain", "users",
                          "signoffs", "corrections", "calibrations", "calibration_shots")}


def copy_database(source: Path, target: Path) -> Path:
    """Copy a database, its -wal and -shm (a killed recorder leaves them) and its anchor."""
    from laserlog.storage import chain

    for suffix in ("", "-wal", "-shm"):
        path = source.with_name(source.name + suffix)
        if path.exists():
            shutil.copy(path, target.with_name(target.name + suffix))
    shutil.copy(chain.anchor_path(source), chain.anchor_path(target))
    return target


def tamper(db: Path, *statements: str) -> None:
    """Change the database behind laserlog's back, as someone with the sqlite3 shell could."""
    conn = sqlite3.connect(db)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def record_three_sessions(folder: Path, store: Store) -> None:
    """Record three sessions on two simulated consoles (in `folder`), with a gap of 7 pulses
    and an interlock fault in the second."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    state = {"gap": False, "fault": False}

    def incidents(recorder) -> None:
        if recorder.totals.pulses >= 5 and not state["gap"]:
            ps755.console.shot_counter += 7  # seven pulses the recorder never hears about
            state["gap"] = True
        if recorder.totals.pulses >= 10 and not state["fault"]:
            ps755.inject_fault(10)
            with ps755._lock:
                ps755.console.clear_fault()
                ps755.console.firing = True
            state["fault"] = True

    with Simulator(open_profile("ps755-ref"), folder / "ps755", seed=1, rate_hz=60) as ps755, \
            Simulator(open_profile("ps1064-ref"), folder / "ps1064", seed=2, rate_hz=60) as ps1064:
        record(store, ps755, SessionInfo("tech-01", "C-1", "left cheek", eyewear_checked=True),
               pulses=30)
        record(store, ps755, SessionInfo("tech-02", "C-1", "left cheek", eyewear_checked=True),
               pulses=20, during=incidents)
        record(store, ps1064, SessionInfo("tech-01", "C-2", "forehead", eyewear_checked=True),
               pulses=15)


def pre_chain_database(db: Path, pulses: int) -> None:
    """Write a database as laserlog made it before the hash chain (schema 2): one ended
    session holding `pulses` pulses, seq 1.. every 0.2 s. Opening it with Store migrates it."""
    from laserlog.storage.schema import MIGRATIONS

    conn = sqlite3.connect(db)
    for number, script in enumerate(MIGRATIONS[:2], 1):
        conn.executescript(script + f";PRAGMA user_version = {number};")
    conn.execute("INSERT INTO sessions (uuid, profile_id, port, operator_id, client_ref,"
                 " started_utc, status) VALUES ('u1', 'ps755-ref', 'x', 't', 'C-1', 'then',"
                 " 'ended')")
    conn.executemany("INSERT INTO pulses (session_id, seq, received_unix_s, pulse_duration_ps,"
                     " regime, energy_j) VALUES (1, ?, ?, 650, 'ps', 0.1)",
                     [(seq, (seq - 1) * 0.2) for seq in range(1, pulses + 1)])
    conn.commit()
    conn.close()
