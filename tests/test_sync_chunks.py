"""A sync ships in chunks: each commits on its own, and the server verifies after every one."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_sync
from test_sync import _console_db, _copy, _server_count

from laserlog.storage import chain
from laserlog.storage.store import Store

from conftest import wait_until
from reviewkit import cli, pre_chain_database

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install "
                              "'laserlog[central]')")

#: Rows per chunk in these tests: a few links each, so a small console makes many chunks.
CHUNK_ROWS = 7

# The PostgreSQL server and a fresh database on it (tests/test_sync.py).
server = test_sync.server
url = test_sync.url


def _add_after_the_end(db: Path, session_id: int) -> None:
    """Record an event into an ended session and recount it: the session is sealed again."""
    with Store(db) as store:
        with store.conn:
            head = chain.insert(store.conn, "events",
                                [(session_id, time.time(), "note", "info", "added after the end")],
                                ("session_id", "received_unix_s", "kind", "severity", "message"),
                                session_id=session_id)
        chain.write_anchor(store.path, head)
        store.recount(session_id)


@pytest.fixture(scope="module")
def console(tmp_path_factory) -> Path:
    """Three recorded sessions; the first sealed again after the other two were recorded."""
    db = _console_db(tmp_path_factory.mktemp("chunks"), "ps755-ref", 11,
                     [("C-1", 30), ("C-2", 20), ("C-3", 25)])
    _add_after_the_end(db, 1)
    with sqlite3.connect(db) as conn:
        seals = conn.execute("SELECT count(*) FROM chain WHERE kind = 'seal' AND session_id = 1"
                             ).fetchone()[0]
    assert seals == 2
    return db


def _local_count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _findings(url: str) -> list[str]:
    from laserlog.central import fleet

    return [f"{f.kind}: {f.message}" for r in fleet.verify_server(url) for f in r.findings]


def test_every_chunk_boundary_verifies_on_the_server(url, console, tmp_path):
    from laserlog.central.sync import sync

    db = _copy(console, tmp_path)
    on_server: list[int] = []

    def check(result) -> None:
        assert _findings(url) == [], f"after chunk {result.chunks}"
        on_server.append(_server_count(url, "pulses"))

    result = sync(db, url, chunk_rows=CHUNK_ROWS, on_chunk=check)
    local = _local_count(db, "pulses")
    assert result.chunks == len(on_server) > 5
    assert on_server == sorted(on_server) and 0 < on_server[1] < local == on_server[-1]
    assert result.rows["pulses"] == local
    assert _server_count(url, "events") == _local_count(db, "events")
    assert _server_count(url, "chain") == _local_count(db, "chain")
    with psycopg.connect(url) as pg:
        statuses = pg.execute("SELECT id, status, event_count FROM laserlog.sessions ORDER BY id"
                              ).fetchall()
    with sqlite3.connect(db) as conn:
        assert statuses == conn.execute("SELECT id, status, event_count FROM sessions ORDER BY id"
                                        ).fetchall()
    again = sync(db, url, chunk_rows=CHUNK_ROWS)
    assert again.chunks == 1 and not any(again.rows.values()), "a re-run ships nothing twice"


def test_sync_killed_after_some_chunks_keeps_them_and_the_rerun_ships_only_the_rest(
        url, console, tmp_path):
    from laserlog.central.sync import sync

    db = _copy(console, tmp_path)
    # The third chunk holds inside its transaction (after its COPY of pulses) until killed.
    script = (
        "import sys\n"
        "from laserlog.central.sync import sync\n"
        "done = []\n"
        "def hold(table, rows):\n"
        "    if len(done) >= 2 and table == 'pulses':\n"
        "        print('holding', flush=True)\n"
        "        sys.stdin.read()\n"
        f"sync(sys.argv[1], sys.argv[2], chunk_rows={CHUNK_ROWS}, on_table=hold,"
        " on_chunk=done.append)\n"
        "print('finished', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(db), url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "holding", proc.stderr.read()  # type: ignore[union-attr]
        kept = _server_count(url, "pulses")
        local = _local_count(db, "pulses")
        assert 0 < kept < local
        verified = cli("verify", "--db", url)  # the committed chunks verify on their own
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    with psycopg.connect(url, autocommit=True) as watch:
        wait_until(lambda: not watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'laserlog'"
        ).fetchone()[0], 30, "the server to drop the killed session")
    assert _server_count(url, "pulses") == kept, "the killed chunk left nothing behind"

    rest = sync(db, url, chunk_rows=CHUNK_ROWS)
    assert rest.rows["pulses"] == local - kept, "the rerun ships only what is missing"
    assert _server_count(url, "pulses") == local
    assert _server_count(url, "chain") == _local_count(db, "chain")
    verified = cli("verify", "--db", url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_rows_from_before_the_chain_ship_in_chunks_too(url, tmp_path):
    from laserlog.central.sync import sync

    db = tmp_path / "old.db"
    pre_chain_database(db, 20)
    Store(db).close()  # migrates to the chain: those 20 pulses are hashed by no link
    _add_after_the_end(db, 1)
    on_server: list[int] = []

    def check(result) -> None:
        assert _findings(url) == [], f"after chunk {result.chunks}"
        on_server.append(_server_count(url, "pulses"))

    result = sync(db, url, chunk_rows=CHUNK_ROWS, on_chunk=check)
    assert on_server == [7, 14, 20], "the rows from before the chain, seven at a time"
    assert result.rows["events"] == 1 and _server_count(url, "sessions") == 1


def test_a_sync_may_stop_after_some_chunks_and_the_next_ships_the_rest(url, console, tmp_path):
    from laserlog.central.sync import sync

    db = _copy(console, tmp_path)
    part = sync(db, url, chunk_rows=CHUNK_ROWS, max_chunks=2)
    assert part.chunks == 2 and part.complete is False
    assert 0 < _server_count(url, "pulses") == part.rows["pulses"] < _local_count(db, "pulses")
    assert _findings(url) == []
    rest = sync(db, url, chunk_rows=CHUNK_ROWS)
    assert rest.complete is True
    assert part.rows["pulses"] + rest.rows["pulses"] == _local_count(db, "pulses")
    assert _server_count(url, "pulses") == _local_count(db, "pulses")


def test_the_sync_command_takes_a_chunk_size(url, console, tmp_path):
    db = _copy(console, tmp_path)
    done = cli("sync", "--to", url, "--db", str(db), "--chunk-rows", str(CHUNK_ROWS))
    assert done.returncode == 0, done.stderr
    chunks = int(done.stdout.rsplit(", ", 1)[1].split(" transactions")[0])
    assert chunks > 2, done.stdout  # a small chunk size made many transactions
    assert _server_count(url, "pulses") == _local_count(db, "pulses")


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_bad_chunk_size_is_refused_before_anything_ships(url, console, tmp_path, value):
    db = _copy(console, tmp_path)
    refused = cli("sync", "--to", url, "--db", str(db), "--chunk-rows", value)
    assert refused.returncode == 2 and "--chunk-rows" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _server_count(url, "pulses") == 0
