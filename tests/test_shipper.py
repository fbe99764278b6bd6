"""Background shipping runs in a child process: nicer than the recorder, gone with it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import test_sync
from test_sync import _server_count

from laserlog.config.profile import open_profile
from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.recording.shipping import Shipper, ShipperStatus
from laserlog.sim.engine import Simulator
from laserlog.storage.store import Store

from conftest import START, wait_until
from reviewkit import assert_clean_error, cli

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'laserlog[central]')")

INFO = SessionInfo("tech-01", "C-9", eyewear_checked=True)

# The PostgreSQL server and a fresh database on it (tests/test_sync.py).
server = test_sync.server
url = test_sync.url


def _gone(pid: int) -> bool:
    """Return True when a process has exited (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _local_pulses(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM pulses").fetchone()[0])


def test_shipping_runs_in_a_nicer_child_process_and_reports_to_the_recorder(url, tmp_path):
    db = tmp_path / "live.db"
    Store(db).close()
    shipper = Shipper(db, url, interval_s=0.2).start()
    try:
        wait_until(lambda: shipper.status().state == "ok", 30, "the first sync")
        assert shipper.pid is not None and shipper.pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, shipper.pid) > os.getpriority(os.PRIO_PROCESS, 0)
        status = shipper.status()
        assert status.syncs >= 1 and status.failures == 0 and status.last_success_unix_s
        assert status.text().startswith("sync ok ")
    finally:
        assert shipper.stop() is True
    assert _gone(shipper.pid)


@contextmanager
def _recording_at_200_hz(db: Path, folder: Path) -> Iterator[Recorder]:
    """Record a simulated console firing at 200 Hz into `db`; stop firing and end on exit."""
    with Simulator(open_profile("ps755-ref"), folder / "sim", seed=4, rate_hz=200) as sim, \
            Store(db) as store:
        recorder = Recorder(store, sim.profile, str(sim.path))
        recorder.start(INFO)
        sim.console.firing = True
        try:
            yield recorder
        finally:
            with sim._lock:
                sim.console.firing = False
            recorder.end("test done")


def test_shipping_defers_while_the_recorder_is_saturated_and_catches_up_after(url, tmp_path):
    db = tmp_path / "busy.db"
    Store(db).close()
    # "Saturated" here is anything above 5 rows/s: the console below fires at 200 Hz.
    shipper = Shipper(db, url, interval_s=0.2, busy_rows_per_s=5, max_defer_s=600).start()
    with _recording_at_200_hz(db, tmp_path) as recorder:

        def deferred() -> bool:
            recorder.step(0.02)
            return shipper.status().state == "deferred"

        wait_until(deferred, 30, "the shipping to defer")
        assert "deferred while the recorder is busy" in shipper.status().text()
    local = _local_pulses(db)
    assert local > 0
    try:
        wait_until(lambda: _server_count(url, "pulses") == local, 30, "the catch-up")
        wait_until(lambda: shipper.status().state == "ok", 30, "the state after the catch-up")
    finally:
        assert shipper.stop() is True
    assert cli("verify", "--db", url).returncode == 0


def test_a_long_saturation_still_ships_a_small_chunk_now_and_then(url, tmp_path):
    db = tmp_path / "long.db"
    Store(db).close()
    shipper = Shipper(db, url, interval_s=0.2, busy_rows_per_s=5, max_defer_s=0.5).start()
    with _recording_at_200_hz(db, tmp_path) as recorder:

        def shipped_while_busy() -> bool:
            recorder.step(0.02)
            status = shipper.status()
            return status.deferrals >= 3 and status.shipped_pulses > 0

        wait_until(shipped_while_busy, 60, "shipping between deferrals")
    assert shipper.stop() is True
    assert _server_count(url, "pulses") == _local_pulses(db)


def test_the_shipping_leaves_when_the_recorder_is_killed(url, tmp_path):
    db = tmp_path / "orphan.db"
    Store(db).close()
    script = ("import sys, time\n"
              "from laserlog.recording.shipping import Shipper\n"
              "s = Shipper(sys.argv[1], sys.argv[2], interval_s=0.2).start()\n"
              "print(s.pid, flush=True)\n"
              "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script, str(db), url],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not _gone(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(30)
    wait_until(lambda: _gone(child), 30, "the shipping process to leave with its recorder")


def test_a_bad_sync_url_is_refused_before_recording(tmp_path):
    for command in (["record", "--profile", "ps755-ref", "--port", str(tmp_path / "none"),
                     "--operator", "tech-01", "--client", "C-9001", *START],
                    ["live", "--profile", "ps755-ref", "--port", str(tmp_path / "none")],
                    ["demo", "--headless"]):
        result = cli(*command, "--db", str(tmp_path / "x.db"), "--sync", "mysql://x")
        assert_clean_error(result, "--sync 'mysql://x': expected postgresql://")
    assert not (tmp_path / "x.db").exists()


def test_status_text_says_what_a_technician_needs():
    retrying = ShipperStatus(state="retrying", failures=3, shipped_pulses=1234,
                             retry_unix_s=1000.0, last_error=(
                                 "cannot reach the central server u@127.0.0.1:9/x: Connection "
                                 "refused (nothing was written; the next sync retries)"))
    assert retrying.text(992.0) == ("sync retrying in 8 s | 1,234 pulses shipped | "
                                    "unreachable: Connection refused")
    ok = ShipperStatus(state="ok", syncs=2, last_success_unix_s=1772443800.0, shipped_pulses=5)
    assert ok.text() == "sync ok 09:30:00 UTC | 5 pulses shipped"
    assert ShipperStatus().text() == "sync starting"
