"""One writer thread commits batches of rows with executemany, ~10 times a second.

The recording thread never waits on the disk: it hands over a batch and goes on reading.
Each batch is one transaction that also moves the session's running totals, so the
totals in the sessions table always equal what is committed.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from laserlog.errors import StoreError
from laserlog.storage import chain
from laserlog.storage.rows import PulseAt, SessionEnd
from laserlog.storage.store import (
    INSERT_EVENT,
    INSERT_PULSE,
    INSERT_SETTING,
    connect,
    insert_rows,
    locked,
)

#: Batches handed over but not yet committed, at most.
MAX_QUEUED_BATCHES = 4

#: How often a full disk or a locked database is tried again.
DISK_FULL_RETRY_S = 0.5
#: How long the writer waits on another program's write lock in one attempt: short, so
#: batches gather in memory and the recorder never waits on the lock.
BUSY_TIMEOUT_MS = 200
#: Rows wait in memory for a locked database this long, or up to this many rows; then
#: they go to a recovery file too, and the session goes on.
LOCKED_SPILL_S = 60.0
LOCKED_SPILL_ROWS = 100_000
#: Once a signal asks the program to stop, the end of a session waits this long at most
#: for a locked database before its rows and its end go to a recovery file.
SIGNAL_LOCK_WAIT_S = 1.0

#: Hand a batch to the writer after this long or this many rows, whichever comes first.
FLUSH_INTERVAL_S = 0.1
FLUSH_ROWS = 10_000


@dataclass(slots=True)
class Batch:
    """Rows for one transaction, with the session totals they add."""

    pulses: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    settings: list[tuple] = field(default_factory=list)
    energy_j: float = 0.0
    min_fluence_j_cm2: float | None = None
    max_fluence_j_cm2: float | None = None
    missing_pulses: int = 0

    def __len__(self) -> int:
        return len(self.pulses) + len(self.events) + len(self.settings)


_UPDATE_TOTALS = """
UPDATE sessions SET
    pulse_count = pulse_count + :pulses,
    total_energy_j = total_energy_j + :energy,
    min_fluence_j_cm2 = CASE WHEN :min_f IS NULL THEN min_fluence_j_cm2
        WHEN min_fluence_j_cm2 IS NULL OR :min_f < min_fluence_j_cm2 THEN :min_f
        ELSE min_fluence_j_cm2 END,
    max_fluence_j_cm2 = CASE WHEN :max_f IS NULL THEN max_fluence_j_cm2
        WHEN max_fluence_j_cm2 IS NULL OR :max_f > max_fluence_j_cm2 THEN :max_f
        ELSE max_fluence_j_cm2 END,
    regimes = :regimes,
    missing_pulses = missing_pulses + :missing,
    event_count = event_count + :events
WHERE id = :session
"""


class LockPatience:
    """Tell the end of a session when to stop waiting for a database another program keeps
    locked: rows wait LOCKED_SPILL_S in all (from when the lock began), and no more than
    SIGNAL_LOCK_WAIT_S once a signal asks the program to stop. Call it: True means give up."""

    def __init__(self, locked_since: float | None, interrupted: Callable[[], bool]) -> None:
        self.began = locked_since if locked_since is not None else time.monotonic()
        self.interrupted = interrupted
        self.signalled: float | None = None

    def __call__(self) -> bool:
        now = time.monotonic()
        if self.signalled is None and self.interrupted():
            self.signalled = now
        return now >= self.began + LOCKED_SPILL_S or (
            self.signalled is not None and now >= self.signalled + SIGNAL_LOCK_WAIT_S)


class BatchWriter:
    """The writer thread and its queue of batches."""

    def __init__(self, path: str | Path, session_id: int) -> None:
        self.path = Path(path)
        self.session_id = session_id
        self.regimes: set[str] = set()
        self.committed_pulses = 0
        self.committed_events = 0
        self.error: BaseException | None = None
        #: True while the disk is full: batches wait in memory and are retried.
        self.disk_full = False
        self.recovery_file: Path | None = None
        #: Since when (monotonic) another program has held the write lock; None when not.
        self.locked_since: float | None = None
        #: Recovery files written while the database stayed locked, and their row count.
        self.spilled: list[tuple[Path, int]] = []
        self._closing = False  # close spills what waits, with the session's end
        self._pending: list[Batch] = []
        # Bounded: a reader faster than the disk waits here (the console's bytes wait in the
        # port's buffer) instead of queueing batches until memory runs out.
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=MAX_QUEUED_BATCHES)
        self._conn: sqlite3.Connection = connect(self.path)
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._thread = threading.Thread(target=self._run, name="laserlog-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        """Queue a batch for commit; raise if the writer has failed."""
        self._raise_if_failed()
        if len(batch):
            self._queue.put(batch)

    def drain(self) -> None:
        """Wait until every submitted batch is committed."""
        self._queue.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise StoreError(f"writing to {self.path} failed: {_named(self.error)}")

    def abandon(self, batch: Batch) -> None:
        """Keep a batch the recorder could not hand over (the writer failed) for the spill."""
        if len(batch):
            self._pending.append(batch)

    def close(self, *, end: SessionEnd | None = None,
              give_up: Callable[[], bool] | None = None) -> None:
        """Commit what is queued and stop the thread; while another program holds the
        write lock, wait (retrying) until `give_up` says to stop.

        Rows that cannot be committed (a full disk, a database still locked, a failed
        writer) go to a recovery file beside the database, for `laserlog recover`, with the
        session's `end` (recover then ends the session); the error then names it. Nothing
        is dropped silently.
        """
        self._closing = True
        while (give_up is not None and self._pending and self.locked_since is not None
               and self.error is None and not give_up()):
            time.sleep(0.05)  # the writer thread retries every DISK_FULL_RETRY_S
        self._queue.put(None)
        self._thread.join(timeout=5)
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        if self._pending:
            self.recovery_file = spill(self.path, self.session_id, self._pending, end)
            self._pending = []
            why = (f"writing to {self.path} failed ({_named(self.error)})" if self.error is not None
                   else f"the disk holding {self.path} is full" if self.disk_full
                   else f"{self.path} stayed locked by another program")
            raise StoreError(f"{why}: the session's last rows{' and its end' if end else ''} "
                             f"are kept in {self.recovery_file}; then run "
                             f"`laserlog recover {self.recovery_file} --db {self.path}`"
                             + (", which ends the session" if end else ""))
        self._raise_if_failed()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # the thread must never die silently
            self.error = exc
            while True:  # keep taking batches, so nobody waits on a full queue
                batch = self._queue.get()
                if batch is not None:
                    self._pending.append(batch)
                self._queue.task_done()
                if batch is None:
                    return

    def _serve(self) -> None:
        while True:
            try:
                batch = self._queue.get(timeout=DISK_FULL_RETRY_S if self._pending else None)
            except queue.Empty:
                self._commit_pending()  # retry: space may have come back
                continue
            try:
                if batch is None:
                    self._commit_pending()
                    return
                self._pending.append(batch)
                self._commit_pending()
            finally:
                self._queue.task_done()

    def _commit_pending(self) -> None:
        """Commit waiting batches in order; on a full disk keep them and say so."""
        while self._pending and self.error is None:
            try:
                self._commit(self._conn, self._pending[0])
            except sqlite3.OperationalError as exc:
                if "full" in str(exc):
                    self.disk_full = True
                elif locked(exc):
                    self._locked()
                else:
                    self.error = exc
                return
            except Exception as exc:  # any other failure ends the session, saying what
                self.error = exc
                return
            self._pending.pop(0)
            self.disk_full = False
            self.locked_since = None

    def _locked(self) -> None:
        """Keep rows in memory while another program holds the write lock; past a minute
        (or 100 000 rows) put them in a recovery file as well, so memory stays bounded."""
        now = time.monotonic()
        if self.locked_since is None:
            self.locked_since = now
        if self._closing:
            return  # close spills what waits, in one file with the session's end
        if now - self.locked_since >= LOCKED_SPILL_S or self.waiting_rows >= LOCKED_SPILL_ROWS:
            rows = self.waiting_rows
            self.spilled.append((spill(self.path, self.session_id, self._pending), rows))
            self._pending = []
            self.locked_since = now

    @property
    def waiting_rows(self) -> int:
        """Return how many rows wait in memory for disk space."""
        return sum(len(b) for b in self._pending)

    def _commit(self, conn: sqlite3.Connection, batch: Batch) -> None:
        at_regime = PulseAt.REGIME
        regimes = self.regimes | {row[at_regime] for row in batch.pulses}
        with conn:
            if batch.pulses:
                insert_rows(conn, INSERT_PULSE, batch.pulses)
            if batch.events:
                conn.executemany(INSERT_EVENT, batch.events)
            if batch.settings:
                conn.executemany(INSERT_SETTING, batch.settings)
            conn.execute(_UPDATE_TOTALS, {
                "pulses": len(batch.pulses), "energy": batch.energy_j,
                "min_f": batch.min_fluence_j_cm2, "max_f": batch.max_fluence_j_cm2,
                "regimes": ",".join(sorted(regimes)), "missing": batch.missing_pulses,
                "events": len(batch.events), "session": self.session_id,
            })
            # Tamper evidence: this commit's rows join the hash chain in the same transaction.
            head = chain.append_batch(conn, self.session_id, {
                "pulses": len(batch.pulses), "events": len(batch.events),
                "settings": len(batch.settings)}, written={"pulses": batch.pulses})
        chain.write_anchor(self.path, head)
        self.regimes = regimes
        self.committed_pulses += len(batch.pulses)
        self.committed_events += len(batch.events)


def _named(error: BaseException) -> str:
    """Return an error as its type and message, e.g. 'OverflowError: int too large'."""
    return f"{type(error).__name__}: {error}"


def spill(db_path: Path, session_id: int, batches: list[Batch],
          end: SessionEnd | None = None) -> Path:
    """Write batches that could not be committed, and the session's end if it could not be
    written either, to a recovery file (JSON lines, fsynced)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**9:09d}"
    target = db_path.with_name(f"{db_path.name}.recovery-{session_id}-{stamp}.ndjson")
    try:
        fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    except OSError:
        # No room even for the file: the home folder is the last place left.
        target = Path.home() / target.name
        fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        for batch in batches:
            for table, rows in (("pulses", batch.pulses), ("events", batch.events),
                                ("settings", batch.settings)):
                for row in rows:
                    out.write(json.dumps({"table": table, "row": list(row)}) + "\n")
        if end is not None:  # last: recover ends the session after its rows are in
            out.write(json.dumps({"table": "session_end", "row": list(end)}) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return target
