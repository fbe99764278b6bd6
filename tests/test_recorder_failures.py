"""The recorder never dies silently and never loses a committed-to-be row.

A failure of its own ends the session with a recorder_error event, keeps what was not
committed in a recovery file and exits 3; another program holding the database's write lock
makes rows wait in memory (and, past the limit, in a recovery file) while recording goes on.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from laserlog.cli.main import main
from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.storage import writer as writer_module
from laserlog.storage.store import Store

from conftest import START, fail_commits, wait_until

INFO = SessionInfo("tech-07", "C-1042", "left cheek", "III", eyewear_checked=True)


def _rows(db, sql, *args):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_a_writer_failure_ends_the_session_saying_why_and_keeps_every_row(
        simulate, db_path, monkeypatch, capsys):
    sim = simulate("ps755-ref", rate_hz=200, fire=True)
    fail_commits(monkeypatch, OverflowError("Python int too large to convert to SQLite "
                                            "INTEGER"), after=5)
    started = time.monotonic()
    status = main(["record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
                   "tech-07", "--client", "C-1042", *START, "--eyewear-checked", "--duration", "60",
                   "--db", str(db_path)])
    elapsed_s = time.monotonic() - started
    err = capsys.readouterr().err
    assert status == 3
    assert elapsed_s < 10  # five commits and the failure: no waiting out the 60 s
    assert "session 1 stopped:" in err and "OverflowError: Python int too large" in err
    assert "laserlog recover" in err and "Traceback" not in err
    ((status_text, reason),) = _rows(db_path, "SELECT status, end_reason FROM sessions")
    assert status_text == "interrupted" and "OverflowError" in reason
    spill = err.split("rows not committed are in ")[1].split(":")[0]
    monkeypatch.undo()
    assert main(["recover", spill, "--db", str(db_path)]) == 0
    seqs = [s for (s,) in _rows(db_path, "SELECT seq FROM pulses ORDER BY seq")]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) > 5
    kinds = [k for (k,) in _rows(db_path, "SELECT kind FROM events")]
    assert "recorder_error" in kinds
    assert main(["verify", "--db", str(db_path)]) == 0


def _hold_write_lock(db, seconds: float, taken: threading.Event) -> threading.Thread:
    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        time.sleep(seconds)  # another program's long write transaction
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def _record_through_a_lock(sim, db_path, hold_s: float):
    store = Store(db_path)
    recorder = Recorder(store, sim.profile, str(sim.path))
    session_id = recorder.start(INFO)
    wait_until(lambda: recorder.step(0.02) or recorder.totals.pulses >= 20, 20, "pulses")
    taken = threading.Event()
    holder = _hold_write_lock(db_path, hold_s, taken)
    taken.wait(5)
    at_lock = recorder.totals.pulses
    wait_until(lambda: recorder.step(0.02) or not holder.is_alive(), hold_s + 10, "the lock")
    wait_until(lambda: recorder.step(0.02) or recorder.totals.pulses >= at_lock + 150, 20,
               "pulses after the lock")
    recorder.end()
    store.close()
    return recorder, session_id, at_lock


def test_a_database_locked_mid_session_raises_an_alarm_and_loses_nothing(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=100, fire=True)
    recorder, session_id, _ = _record_through_a_lock(sim, db_path, 2.0)
    kinds = [k for (k,) in _rows(db_path, "SELECT kind FROM events WHERE session_id = ?",
                                  session_id)]
    assert "database_locked" in kinds and "database_unlocked" in kinds
    assert "gap" not in kinds
    seqs = [s for (s,) in _rows(db_path, "SELECT seq FROM pulses ORDER BY seq")]
    assert len(seqs) == recorder.totals.pulses
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_rows_locked_out_past_the_limit_go_to_a_recovery_file_that_completes_the_record(
        simulate, db_path, monkeypatch):
    monkeypatch.setattr(writer_module, "LOCKED_SPILL_S", 0.5)
    sim = simulate("ps755-ref", rate_hz=100, fire=True)
    recorder, session_id, _ = _record_through_a_lock(sim, db_path, 2.0)
    spills = _rows(db_path, "SELECT raw FROM events WHERE kind = 'rows_spilled'")
    assert spills
    for (path,) in spills:
        assert main(["recover", path, "--db", str(db_path)]) == 0
    seqs = [s for (s,) in _rows(db_path, "SELECT seq FROM pulses ORDER BY seq")]
    assert len(seqs) == recorder.totals.pulses
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_a_database_locked_at_start_is_one_message_naming_the_holder(
        simulate, db_path, monkeypatch, capsys):
    from laserlog.storage import store as store_module

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.5)
    Store(db_path).close()
    sim = simulate("ps755-ref")
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        status = main(["record", "--profile", "ps755-ref", "--port", str(sim.path),
                       "--operator", "tech-07", "--client", "C-1042", *START, "--pulses", "3",
                       "--db", str(db_path)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert f"database {db_path} is locked by another program" in err
    assert _rows(db_path, "SELECT count(*) FROM sessions") == [(0,)]


def test_a_writer_failure_on_the_last_rows_still_keeps_them(simulate, db_path, monkeypatch):
    from laserlog.errors import RecorderError

    sim = simulate("ps755-ref", rate_hz=100, fire=True)
    store = Store(db_path)
    recorder = Recorder(store, sim.profile, str(sim.path))
    recorder.start(INFO)
    wait_until(lambda: recorder.step(0.02) or recorder.totals.pulses >= 30, 20, "pulses")

    fail_commits(monkeypatch, OverflowError("Python int too large to convert to SQLite "
                                            "INTEGER"))
    recorder.step(0.02)
    try:
        recorder.end()
    except RecorderError as exc:
        message = str(exc)
    else:
        raise AssertionError("the failure was not reported")
    store.close()
    assert "OverflowError" in message and "rows not committed are in" in message
    spill = message.split("rows not committed are in ")[1].split(":")[0]
    monkeypatch.undo()
    assert main(["recover", spill, "--db", str(db_path)]) == 0
    seqs = [s for (s,) in _rows(db_path, "SELECT seq FROM pulses ORDER BY seq")]
    assert len(seqs) == recorder.totals.pulses
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_a_database_deleted_mid_session_is_saved_and_the_session_stops_saying_so(
        simulate, db_path, capsys):
    import glob
    import os

    sim = simulate("ps755-ref", rate_hz=100, fire=True)
    deleted = threading.Event()

    def committed() -> int:
        if not db_path.exists():  # connecting would create it
            return 0
        try:
            return _rows(db_path, "SELECT count(*) FROM pulses")[0][0]
        except sqlite3.Error:
            return 0

    def delete_when_recording() -> None:
        deadline = time.monotonic() + 20
        while committed() < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        for file in glob.glob(f"{db_path}*"):
            if not file.endswith((".anchor", ".lock")):
                os.unlink(file)
        deleted.set()

    threading.Thread(target=delete_when_recording, daemon=True).start()
    status = main(["record", "--profile", "ps755-ref", "--port", str(sim.path), "--operator",
                   "tech-07", "--client", "C-1042", *START, "--eyewear-checked", "--duration", "30",
                   "--db", str(db_path)])
    err = capsys.readouterr().err
    assert deleted.is_set() and status == 3
    assert f"the database file {db_path} was deleted or replaced" in err
    rescued = err.split("is saved in ")[1].split(";")[0].split()[0]
    assert _rows(rescued, "SELECT count(*) FROM pulses")[0][0] >= 30


# -- a database another program keeps locked at the start or the end ------------------------
LASERLOG = [sys.executable, "-m", "laserlog"]


def _read_until(proc: subprocess.Popen, text: str, timeout_s: float) -> str:
    """Return what the process wrote to stderr once it holds `text`; fail after timeout_s."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while text.encode() not in seen:
        left_s = deadline - time.monotonic()
        if left_s <= 0 or proc.poll() is not None:
            raise AssertionError(f"no {text!r} from the process; it said: {seen.decode()!r}")
        ready, _, _ = select.select([proc.stderr], [], [], left_s)
        if ready:
            seen += os.read(proc.stderr.fileno(), 4096)
    return seen.decode()


def _locked(db) -> sqlite3.Connection:
    """Hold the database's write lock, as another program's long write transaction does."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.realtime
def test_a_signal_while_waiting_for_a_locked_database_at_start_ends_it_within_2s(
        simulate, db_path, signum):
    Store(db_path).close()
    sim = simulate("ps755-ref")
    holder = _locked(db_path)
    try:
        proc = subprocess.Popen([*LASERLOG, "record", "--profile", "ps755-ref", "--port",
                                 str(sim.path), "--operator", "tech-07", "--client", "C-1042", *START,
                                 "--pulses", "3", "--db", str(db_path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        said = _read_until(proc, "is locked by another program: waiting", 20)
        proc.send_signal(signum)
        sent = time.monotonic()
        proc.wait(timeout=10)
        elapsed_s = time.monotonic() - sent
        said += proc.stderr.read().decode()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert elapsed_s < 2, f"took {elapsed_s:.1f} s to honour the signal"
    assert proc.returncode == 130 and "Traceback" not in said
    assert f"interrupted while waiting for another program's write lock on {db_path}" in said
    assert _rows(db_path, "SELECT count(*) FROM sessions") == [(0,)]


def _end_while_locked(sim, db_path, monkeypatch, *, committed: int, rows_waiting: bool):
    """Record until `committed` pulses are in, lock the database (and record on until rows
    wait for it, if `rows_waiting`), then end the session with the lock held for longer than
    rows may wait. Return the session, the recorder, the error's message and the recovery
    file it names."""
    from laserlog.errors import StoreError

    monkeypatch.setattr(writer_module, "LOCKED_SPILL_S", 0.5)
    store = Store(db_path)
    recorder = Recorder(store, sim.profile, str(sim.path))
    session_id = recorder.start(INFO)
    sim.console.firing = True
    wait_until(lambda: recorder.step(0.02) or recorder.writer.committed_pulses >= committed,
               20, "committed pulses")
    holder = _locked(db_path)
    try:
        if rows_waiting:
            wait_until(lambda: recorder.step(0.02) or recorder.writer.waiting_rows > 0, 20,
                       "rows waiting for the lock")
        with pytest.raises(StoreError) as caught:
            recorder.end("ended by operator")
        state = _rows(db_path, "SELECT status FROM sessions WHERE id = ?", session_id)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()
    assert state == [("recording",)]  # the database could not take the end...
    message = str(caught.value)
    kept = message.split("kept in ")[1].split(";")[0].split()[0]
    return session_id, recorder, message, kept


def test_a_database_locked_at_the_end_keeps_rows_and_end_for_recover_to_close_the_session(
        simulate, db_path, monkeypatch, capsys):
    sim = simulate("ps755-ref", rate_hz=100)
    session_id, recorder, message, kept = _end_while_locked(sim, db_path, monkeypatch,
                                                            committed=20, rows_waiting=True)
    assert "stayed locked by another program" in message
    assert "laserlog recover" in message and "ends the session" in message
    with open(kept) as file:
        end = json.loads(file.read().splitlines()[-1])  # ...the recovery file holds it
    assert end["table"] == "session_end"
    assert [end["row"][0], *end["row"][2:]] == [session_id, "ended", "ended by operator"]
    assert main(["recover", kept, "--db", str(db_path)]) == 0
    assert "ended 1 session(s)" in capsys.readouterr().out
    ((status, ended_utc, reason, pulses),) = _rows(
        db_path, "SELECT status, ended_utc, end_reason, pulse_count FROM sessions")
    assert (status, ended_utc, reason) == ("ended", end["row"][1], "ended by operator")
    assert pulses == recorder.totals.pulses
    assert main(["verify", "--db", str(db_path)]) == 0


def test_a_session_end_alone_locked_out_goes_to_a_recovery_file_and_recover_ends_it(
        simulate, db_path, monkeypatch):
    sim = simulate("ps755-ref", rate_hz=100, max_pulses=30)
    session_id, _, message, kept = _end_while_locked(sim, db_path, monkeypatch, committed=30,
                                                     rows_waiting=False)
    assert f"session {session_id} could not be ended in {db_path}" in message
    assert "ends the session" in message
    assert main(["recover", kept, "--db", str(db_path)]) == 0
    assert _rows(db_path, "SELECT status, pulse_count FROM sessions") == [("ended", 30)]
    assert main(["verify", "--db", str(db_path)]) == 0


def test_a_lock_let_go_while_the_session_ends_is_waited_for(simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=100, fire=True)
    store = Store(db_path)
    recorder = Recorder(store, sim.profile, str(sim.path))
    session_id = recorder.start(INFO)
    wait_until(lambda: recorder.step(0.02) or recorder.totals.pulses >= 20, 20, "pulses")
    taken = threading.Event()
    holder = _hold_write_lock(db_path, 1.5, taken)
    taken.wait(5)
    recorder.end("ended by operator")  # no error: it waited for the lock to go
    store.close()
    holder.join(5)
    assert _rows(db_path, "SELECT status, pulse_count FROM sessions WHERE id = ?",
                 session_id) == [("ended", recorder.totals.pulses)]
    assert not list(db_path.parent.glob("*.recovery-*"))


@pytest.mark.realtime
def test_ctrl_c_while_the_database_is_locked_ends_within_2s_and_recover_closes_the_session(
        simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=100, fire=True)
    proc = subprocess.Popen([*LASERLOG, "record", "--profile", "ps755-ref", "--port",
                             str(sim.path), "--operator", "tech-07", "--client", "C-1042", *START,
                             "--duration", "60",
                             "--db", str(db_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _read_until(proc, "Ctrl-C ends it", 20)
    wait_until(lambda: _rows(db_path, "SELECT count(*) FROM pulses")[0][0] > 0, 20, "pulses")
    holder = _locked(db_path)
    try:
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        proc.wait(timeout=10)
        elapsed_s = time.monotonic() - sent
        said = proc.stderr.read().decode()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert elapsed_s < 2, f"took {elapsed_s:.1f} s to honour Ctrl-C"
    assert proc.returncode == 2 and "Traceback" not in said
    assert "stayed locked by another program" in said and "ends the session" in said
    kept = said.split("kept in ")[1].split(";")[0].split()[0]
    assert main(["recover", kept, "--db", str(db_path)]) == 0
    assert _rows(db_path, "SELECT status, end_reason FROM sessions") == [
        ("ended", "interrupted by signal")]
