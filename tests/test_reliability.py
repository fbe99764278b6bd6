"""It keeps logging through faults and loses nothing silently. Each test prints its figures."""

from __future__ import annotations

import os
import pwd
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from laserlog.errors import PortError, StoreError
from laserlog.link.portlock import PortLock
from laserlog.recording.recorder import Recorder, SessionInfo
from laserlog.sim.faults import FaultSpecError, parse_spec
from laserlog.storage.store import Store

from conftest import START, wait_until

INFO = SessionInfo("tech-01", "C-1001", eyewear_checked=True)
LASERLOG = [sys.executable, "-m", "laserlog"]


def figure(name: str, **values: object) -> None:
    """Print a test's measured figures on one line: name: key=value ..."""
    print(f"\n{name}: " + " ".join(f"{k}={v}" for k, v in values.items()))


def profile_at_rate(folder, rate_hz: float) -> str:
    """Write ps755-ref declaring `rate_hz` as its top rate into `folder`; return the folder for
    --profiles. A recorder in another process then believes the gaps a simulated console fired
    that fast makes, as one given the simulator's own profile does."""
    from laserlog.config.catalog import bundled_profiles_dir

    text = (bundled_profiles_dir() / "ps755-ref.toml").read_text()
    folder.mkdir(exist_ok=True)
    (folder / "ps755-ref.toml").write_text(
        text.replace("[pulses]\n", f"[pulses]\nmax_rate_hz = {rate_hz}\n", 1))
    return str(folder)


def cpu_s(pid: int) -> float:
    """Return the user+system CPU seconds a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def session_rows(db, session_id=None):
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    where = "" if session_id is None else f" WHERE session_id = {int(session_id)}"
    pulses = conn.execute(f"SELECT * FROM pulses{where} ORDER BY id").fetchall()
    events = conn.execute(f"SELECT * FROM events{where} ORDER BY id").fetchall()
    conn.close()
    return pulses, events


def test_fault_spec_is_seeded_so_a_failing_run_repeats():
    frames = [f"P {n} E120.00 F0.955 S4.0 D650 H1\r\n".encode() for n in range(2000)]
    spec = "garble=0.05,drop=0.05,truncate=0.05,badcrc=0.05,garbage=0.1"
    first = [parse_spec(spec, seed=9) for _ in range(2)]
    outputs = [b"".join(p.corrupt(f) + p.garbage_after_pulse() for f in frames) for p in first]
    assert outputs[0] == outputs[1]
    other = parse_spec(spec, seed=10)
    assert b"".join(other.corrupt(f) + other.garbage_after_pulse() for f in frames) != outputs[0]
    counts = first[0].counts
    figure("fault_spec", **counts)
    assert all(counts[k] > 0 for k in ("garble", "drop", "truncate", "badcrc", "garbage"))


@pytest.mark.parametrize("spec", ["garble=2", "unplug=x", "teleport=1", "burst=-1"])
def test_bad_fault_spec_is_named(spec):
    with pytest.raises(FaultSpecError, match="cannot read"):
        parse_spec(spec)
    result = subprocess.run([*LASERLOG, "simulate", "ps755-ref", "--link", "/tmp/never",
                             "--faults", spec], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert spec.split(",")[0] in result.stderr


@pytest.mark.realtime
def test_unplug_3s_mid_session_reconnects_within_1s_and_counts_the_gap(simulate, tmp_path):
    sim = simulate("ps755-ref", rate_hz=50, fire=True, faults=parse_spec("unplug=1.5+3"))
    db = tmp_path / "log.db"
    proc = subprocess.Popen([*LASERLOG, "record", "--profile", "ps755-ref", "--port", str(sim.path),
                             "--profiles", profile_at_rate(tmp_path / "profiles", 50),
                             "--operator", "t1", "--client", "C-9001", *START, "--duration", "7",
                             "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_until(lambda: any(k == "unplug" for _, k, _ in sim.fault_log), 10, "unplug")
    time.sleep(0.5)  # measure CPU in the middle of the outage, not at its edges
    cpu_before, t_before = cpu_s(proc.pid), time.monotonic()
    time.sleep(2.0)
    cpu_pct = 100 * (cpu_s(proc.pid) - cpu_before) / (time.monotonic() - t_before)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    pulses, events = session_rows(db)
    kinds = {e["kind"]: e for e in events}
    replug_t = next(t for t, k, _ in sim.fault_log if k == "unplug_end")
    unplug = next(c for _, k, c in sim.fault_log if k == "unplug")
    replug = next(c for _, k, c in sim.fault_log if k == "unplug_end")
    reconnect_s = kinds["link_restored"]["received_unix_s"] - replug_t
    missing = sum(e["missing_pulses"] or 0 for e in events if e["kind"] == "gap")
    seqs = [p["seq"] for p in pulses]
    figure("reconnect", reconnect_s=round(reconnect_s, 3), cpu_while_unplugged_pct=round(cpu_pct, 2),
           fired_while_unplugged=replug - unplug, gap_recorded=missing, stored=len(seqs))
    assert "link_lost" in kinds
    assert 0 <= reconnect_s <= 1.0
    assert cpu_pct < 5.0
    assert len(set(seqs)) == len(seqs), "no duplicated pulse"
    assert seqs[-1] - seqs[0] + 1 == len(seqs) + missing, "every pulse stored or counted as a gap"
    assert missing >= replug - unplug


def test_console_reboot_is_a_counter_reset_without_duplicates(simulate, db_path):
    sim = simulate("ps1064-ref", rate_hz=50, fire=True, faults=parse_spec("reboot=1"))
    with Store(db_path) as store:
        rec = Recorder(store, sim.profile, str(sim.path))
        rec.start(INFO)
        sim.console.firing = True
        wait_until(lambda: rec.step(0.02) or bool(sim.fault_log), 10, "reboot")
        sim.console.firing = True  # the reboot stopped firing; the technician fires again
        wait_until(lambda: rec.step(0.02) or rec.totals.pulses >= 80, 20, "pulses after reboot")
        rec.end()
        pulses, events = session_rows(db_path, rec.session_id)
    seqs = [p["seq"] for p in pulses]
    resets = [e for e in events if e["kind"] == "counter_reset"]
    figure("reboot", pulses=len(seqs), resets=len(resets), restart_at=seqs.index(1) if 1 in seqs else -1)
    assert len(resets) == 1
    restart = seqs.index(1, 1)
    assert seqs[:restart] == list(range(seqs[0], seqs[0] + restart))
    assert seqs[restart:] == list(range(1, len(seqs) - restart + 1))


@pytest.mark.parametrize("profile", ["ps755-ref", "ps1064-ref"])
def test_100k_garbage_frames_among_100k_pulses_store_every_valid_pulse_only(profile, simulate, db_path):
    total = 100_000
    sim = simulate(profile, rate_hz=200_000, max_pulses=total, seed=4,
                   faults=parse_spec("garbage=1", seed=4))
    with Store(db_path) as store:
        rec = Recorder(store, sim.profile, str(sim.path))
        rec.start(INFO)
        start = time.monotonic()
        rec.driver.command("fire")
        wait_until(lambda: rec.step(0.02) or rec.totals.pulses >= total
                   or (sim.pulses_sent >= total and time.monotonic() - start > 60), 120, "pulses")
        rec.end()
        pulses, events = session_rows(db_path, rec.session_id)
    garbled = sum(e["count"] for e in events if e["kind"] == "garbled")
    figure("garbage", profile=profile, garbage_sent=sim.faults.counts.get("garbage", 0),
           garbled_counted=garbled, valid_stored=len(pulses),
           invalid_stored=sum(1 for p in pulses if not p["energy_j"] or p["energy_j"] <= 0))
    assert sim.faults.counts["garbage"] == total
    assert len(pulses) == total
    assert [p["seq"] for p in pulses] == list(range(1, total + 1))
    assert all(p["energy_j"] > 0 and p["fluence_j_cm2"] > 0 for p in pulses)
    assert garbled >= total * 0.9  # adjacent garbage may frame as one run


@pytest.mark.realtime
def test_kill_9_at_random_moments_loses_at_most_one_flush_window(simulate, tmp_path):
    trials = 20
    rate_hz = 1000
    sim = simulate("ps755-ref", rate_hz=rate_hz, fire=True, seed=5)
    db = tmp_path / "log.db"
    rng = random.Random(5)
    lost_ms: list[float] = []
    previous: int | None = None
    profiles = profile_at_rate(tmp_path / "profiles", rate_hz)
    for trial in range(trials):
        args = [*LASERLOG, "record", "--profile", "ps755-ref", "--port", str(sim.path),
                "--profiles", profiles, "--db", str(db)]
        args += ["--resume"] if previous is not None else ["--operator", "t1", "--client", "C-9001", *START]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        session = trial + 1

        def committed(session: int = session) -> int:
            try:
                with sqlite3.connect(db) as conn:
                    return conn.execute("SELECT count(*) FROM pulses WHERE session_id = ?",
                                        (session,)).fetchone()[0]
            except sqlite3.OperationalError:
                return 0

        wait_until(lambda p=proc: committed() > 0 or p.poll() is not None, 20, "first commit")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.6))  # the experiment: a random moment, not a wait
        proc.send_signal(signal.SIGKILL)
        sent_at_kill = sim.console.shot_counter
        proc.wait(timeout=10)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            seqs = [r[0] for r in conn.execute(
                "SELECT seq FROM pulses WHERE session_id = ? ORDER BY id", (session,))]
            resumes = conn.execute("SELECT resumes_session_id FROM sessions WHERE id = ?",
                                   (session,)).fetchone()[0]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "committed pulses are whole"
        assert resumes == previous
        lost_ms.append((sent_at_kill - seqs[-1]) * 1000 / rate_hz)
        previous = session
    # The last one is still 'recording' until the next start finds it interrupted.
    final = subprocess.run([*LASERLOG, "record", "--profile", "ps755-ref", "--port", str(sim.path),
                            "--profiles", profiles, "--db", str(db), "--resume", "--pulses", "50"],
                           capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stderr
    with sqlite3.connect(db) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM sessions ORDER BY id")]
        gaps = conn.execute("SELECT count(*), sum(missing_pulses) FROM events WHERE kind = 'gap'"
                            " AND session_id > 1").fetchone()
    figure("crash", trials=trials, lost_ms_max=max(lost_ms), lost_ms_median=sorted(lost_ms)[trials // 2],
           resumed_gaps=gaps[0], resumed_missing=gaps[1])
    assert statuses == ["interrupted"] * trials + ["ended"]
    assert max(lost_ms) <= 150
    assert gaps[0] == trials, "each resumed session records what the crash lost"


def test_second_recorder_on_a_port_is_refused_with_the_holders_pid(tmp_path):
    port = str(tmp_path / "ttyUSB0")
    code = ("import sys, time; from laserlog.link.portlock import PortLock; "
            f"PortLock({port!r}).acquire(); print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(PortError, match=f"PID {holder.pid}"):
        PortLock(port).acquire()
    holder.kill()
    holder.wait()
    PortLock(port).acquire().release()  # a dead holder's lock is free at once


def test_files_are_private_even_under_umask_022(tmp_path):
    code = ("import os; os.umask(0o022); from laserlog.storage.store import Store; "
            f"s = Store({str(tmp_path / 'new' / 'log.db')!r}); "
            "s.conn.execute('CREATE TABLE IF NOT EXISTS t (x)'); s.conn.commit(); input()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    folder = tmp_path / "new"
    wait_until(lambda: (folder / "log.db-shm").exists() and (folder / "log.db.anchor").exists(),
               what="database files")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]}
    proc.communicate("\n", timeout=10)
    figure("privacy", **{k: oct(v) for k, v in modes.items()})
    # A new database has its anchor (the schema link is its first link) from the start.
    assert modes == {"new": 0o700, "log.db": 0o600, "log.db-wal": 0o600, "log.db-shm": 0o600,
                     "log.db.anchor": 0o600, "log.db.anchor.lock": 0o600}


def test_full_disk_at_start_is_a_clear_error(tmp_path):
    db = tmp_path / "full.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA page_size = 512")
    conn.execute("CREATE TABLE filler (x)")
    conn.commit()
    conn.close()
    code = ("import sqlite3, laserlog.storage.store as s\n"
            "real = s.connect\n"
            "def tight(*a, **k):\n"
            "    c = real(*a, **k); c.execute('PRAGMA max_page_count = 3'); return c\n"
            "s.connect = tight\n"
            "from laserlog.cli.main import main\n"
            f"raise SystemExit(main(['record', '--profile', 'ps755-ref', '--port', 'loop://',"
            f" '--operator', 't', '--client', 'C-9001', '--db', {str(db)!r}] + {START!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "full" in result.stderr and str(db) in result.stderr


def test_corrupt_database_is_a_clear_error_and_is_left_alone(tmp_path):
    db = tmp_path / "broken.db"
    Store(db).close()
    data = bytearray(db.read_bytes())
    data[0:16] = b"garbage garbage!"
    db.write_bytes(bytes(data))
    result = subprocess.run([*LASERLOG, "sessions", "list", "--db", str(db)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "damaged or not a laserlog database" in result.stderr
    assert db.read_bytes() == bytes(data)


#: Runs the command line from the Python of the tests' environment, whichever Python runs it.
BOOT = ("import site, sys; site.addsitedir(sys.argv.pop(1)); from laserlog.cli.main import "
        "main; sys.exit(main(sys.argv[1:]))")


def laserlog_as_a_user() -> tuple[list[str], object]:
    """Return the command line and a preexec_fn that run laserlog as a user who is not root:
    this one, or nobody when the tests run as root (root writes read-only files anyway)."""
    if os.geteuid() != 0:
        return LASERLOG, None
    nobody = pwd.getpwnam("nobody")

    def demote() -> None:
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    # The tests' own Python may sit in root's home, where nobody cannot reach it.
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = sysconfig.get_paths()["purelib"]
    for python in (sys.executable, shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")):
        if python is None:
            continue
        argv = [python, "-c", BOOT, site]
        try:
            probe = subprocess.run([*argv, "--version"], capture_output=True, text=True,
                                   preexec_fn=demote, cwd="/", timeout=60)
        except PermissionError:
            continue
        if probe.returncode == 0:
            return argv, demote
    pytest.skip(f"no {version} that user nobody may run")


@pytest.mark.parametrize("where", ["file", "folder"])
@pytest.mark.parametrize("command", ["record", "recover"])
def test_a_read_only_database_is_one_message_exit_2_and_stays_as_it_was(where, command):
    laserlog, preexec = laserlog_as_a_user()
    owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
    folder = Path(tempfile.mkdtemp(prefix="laserlog-ro-"))  # not tmp_path: root's, 0700
    try:
        db, spill = folder / "ro.db", folder / "spill.ndjson"
        Store(db).close()
        spill.write_text("")
        spill.chmod(0o444)
        if where == "file":  # the user's own database, made read-only, in the user's folder
            for path in (folder, db, spill):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            db.chmod(0o400)
            folder.chmod(0o700)
        else:  # a database in a folder the user may not write
            db.chmod(0o444)
            folder.chmod(0o555)
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        argv = {"record": ["record", "--profile", "ps755-ref", "--port", "/dev/null/none",
                           "--operator", "tech-07", "--client", "C-1042", *START, *START],
                "recover": ["recover", str(spill)]}[command]
        result = subprocess.run([*laserlog, *argv, "--db", str(db)], capture_output=True,
                                text=True, timeout=60, preexec_fn=preexec, cwd="/",
                                env={**os.environ, "HOME": str(folder)})
        after = {p.name: p.read_bytes() for p in folder.iterdir()}
    finally:
        folder.chmod(0o700)
        shutil.rmtree(folder)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert f"cannot open database {db}" in result.stderr and "read-only" in result.stderr
    assert after == before  # nothing created beside it, nothing changed in it


def _fill_disk(rec: Recorder) -> None:
    """Make the writer's database full: no page beyond those it has."""
    conn = rec.writer._conn  # the writer's own connection is where the disk fills
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def test_disk_full_mid_session_raises_an_alarm_and_writes_everything_when_space_returns(
        simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=500, fire=True)
    alarms = []
    with Store(db_path) as store:
        rec = Recorder(store, sim.profile, str(sim.path), on_event=alarms.append)
        rec.start(INFO)
        wait_until(lambda: rec.step(0.02) or rec.totals.pulses >= 100, 20, "pulses")
        _fill_disk(rec)
        wait_until(lambda: rec.step(0.02) or rec.writer.disk_full, 20, "disk full")
        held_at = rec.totals.pulses
        wait_until(lambda: rec.step(0.02) or rec.totals.pulses >= held_at + 300, 20, "more pulses")
        waiting = rec.writer.waiting_rows
        rec.writer._conn.execute("PRAGMA max_page_count = 1073741823")
        wait_until(lambda: rec.step(0.02) or not rec.writer.disk_full, 20, "space again")
        rec.end()
        pulses, events = session_rows(db_path, rec.session_id)
    kinds = [e["kind"] for e in events]
    figure("disk_full", rows_waiting_in_memory=waiting, stored=len(pulses), counted=rec.totals.pulses)
    assert [a.kind for a in alarms if a.kind.startswith("disk")] == ["disk_full", "disk_space_restored"]
    assert "disk_full" in kinds and "disk_space_restored" in kinds
    assert waiting > 0
    seqs = [p["seq"] for p in pulses]
    assert len(seqs) == rec.totals.pulses and seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_disk_still_full_at_the_end_spills_to_a_recovery_file_that_recover_imports(
        simulate, db_path):
    sim = simulate("ps755-ref", rate_hz=500, fire=True)
    with Store(db_path) as store:
        rec = Recorder(store, sim.profile, str(sim.path))
        rec.start(INFO)
        wait_until(lambda: rec.step(0.02) or rec.totals.pulses >= 50, 20, "pulses")
        _fill_disk(rec)
        wait_until(lambda: rec.step(0.02) or rec.writer.disk_full, 20, "disk full")
        wait_until(lambda: rec.step(0.02) or rec.writer.waiting_rows >= 200, 20, "rows waiting")
        with pytest.raises(StoreError, match="laserlog recover") as caught:
            rec.end()
        recovery = rec.writer.recovery_file
        counted = rec.totals.pulses
    assert recovery is not None and recovery.exists()
    assert stat.S_IMODE(recovery.stat().st_mode) == 0o600
    before = len(session_rows(db_path, rec.session_id)[0])
    result = subprocess.run([*LASERLOG, "recover", str(recovery), "--db", str(db_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    pulses, _ = session_rows(db_path, rec.session_id)
    seqs = [p["seq"] for p in pulses]
    figure("disk_full_spill", committed_before=before, recovered=len(pulses) - before,
           counted=counted)
    assert str(recovery) in str(caught.value)
    assert len(seqs) == counted and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT pulse_count FROM sessions WHERE id = ?",
                            (rec.session_id,)).fetchone()[0] == counted


def test_a_damaged_recovery_file_imports_nothing(db_path, tmp_path):
    Store(db_path).close()
    bad = tmp_path / "x.ndjson"
    bad.write_text('{"table": "pulses", "row": [1]}\n')
    result = subprocess.run([*LASERLOG, "recover", str(bad), "--db", str(db_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and f"{bad}:1" in result.stderr and "Traceback" not in result.stderr


_FSYNC_PROBE = """
import sys
from laserlog.storage.store import Store
from laserlog.storage.writer import Batch, BatchWriter
store = Store(sys.argv[1])
sid = store.create_session(device_id=None, profile_id="p", port="x", operator_id="o",
                           client_ref="C-9001", area=None, skin_type=None, eyewear_checked=True,
                           checklist_json=None)
writer = BatchWriter(store.path, sid)
for i in range(int(sys.argv[2])):
    batch = Batch()
    batch.pulses.append((sid, i, 0.0, 650.0, "ps", 0.1, 0.8, 4.0, 755.0, 5.0, 1, None, ""))
    writer.submit(batch)
    writer.drain()
writer.close()
"""


def _fsyncs(tmp_path, commits: int) -> int:
    db = tmp_path / f"fsync-{commits}.db"
    result = subprocess.run(["strace", "-f", "-qq", "-c", "-e", "trace=fsync,fdatasync",
                             sys.executable, "-c", _FSYNC_PROBE, str(db), str(commits)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return sum(int(line.split()[3]) for line in result.stderr.splitlines()
               if line.strip().endswith(("fsync", "fdatasync")) and line.split()[3].isdigit())


def test_every_commit_is_fsynced_for_power_loss(tmp_path):
    import shutil

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed: fsyncs per commit cannot be counted here")
    few, many = _fsyncs(tmp_path, 10), _fsyncs(tmp_path, 60)
    per_commit = (many - few) / 50
    figure("fsync", per_commit=round(per_commit, 2), commits_10=few, commits_60=many)
    assert per_commit >= 1.0


@pytest.mark.parametrize("shm", ["kept", "lost"])
def test_truncated_wal_is_refused_at_start_with_what_is_missing(simulate, tmp_path, shm):
    sim = simulate("ps755-ref", rate_hz=500, fire=True)
    db = tmp_path / "log.db"
    proc = subprocess.Popen([*LASERLOG, "record", "--profile", "ps755-ref", "--port", str(sim.path),
                             "--operator", "t1", "--client", "C-9001", *START, "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def committed() -> int:
        try:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT count(*) FROM chain").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    wait_until(lambda: committed() > 20, 20, "twenty commits")
    proc.send_signal(signal.SIGKILL)  # no clean close: the WAL keeps the recent commits
    proc.wait(timeout=10)
    wal = db.with_name(db.name + "-wal")
    wal_bytes = wal.stat().st_size
    with open(wal, "r+b") as f:
        f.truncate(wal_bytes // 2)
    if shm == "lost":  # as after a reboot: SQLite rebuilds its index from what the WAL holds
        db.with_name(db.name + "-shm").unlink()
    before = (db.read_bytes(), wal.read_bytes()) if shm == "kept" else None
    result = subprocess.run([*LASERLOG, "record", "--profile", "ps755-ref", "--port", str(sim.path),
                             "--operator", "t1", "--client", "C-9001", *START, "--db", str(db), "--pulses", "5"],
                            capture_output=True, text=True, timeout=60)
    figure("truncated_wal", shm=shm, wal_bytes=wal_bytes, kept_bytes=wal_bytes // 2,
           exit_status=result.returncode)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    unreadable = "may be truncated or damaged" in result.stderr
    if shm == "lost" or not unreadable:
        # SQLite reads what is left (after a reboot, or when a checkpoint had restarted the
        # WAL so that the cut half held only frames already copied): the chain says what
        # is missing.
        assert "committed rows are missing" in result.stderr and ".anchor" in result.stderr
    if shm == "kept" and unreadable:  # SQLite cannot read it: the files stay as they were
        assert (db.read_bytes(), wal.read_bytes()) == before, "nothing written"
