"""`laserlog recover` takes a recovery file once, whole, and only rows it can stand behind."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laserlog.cli.main import main
from laserlog.storage.store import Store

PULSE = [1, 7, 1700000000.5, 650.0, "ps", 0.12, 0.95, 4.0, 755.0, 5.0, 1, None, ""]


def _db_with_session(path) -> None:
    with Store(path) as store:
        store.create_session(device_id=None, profile_id="ps755-ref", port="x",
                             operator_id="tech-07", client_ref="C-1042", area=None,
                             skin_type=None, eyewear_checked=True, checklist_json=None)


def _counts(db) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        return (conn.execute("SELECT count(*) FROM pulses").fetchone()[0],
                conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_a_recovery_file_is_imported_once(tmp_path, capsys):
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    spill.write_text(json.dumps({"table": "pulses", "row": PULSE}) + "\n")
    assert main(["recover", str(spill), "--db", str(db)]) == 0
    assert _counts(db) == (1, 1)  # the pulse, and the event naming the file's hash
    assert main(["recover", str(spill), "--db", str(db)]) == 2
    assert "was already imported (into session 1)" in capsys.readouterr().err
    assert _counts(db) == (1, 1)


def test_rows_for_a_session_the_database_lacks_are_refused_with_their_line(tmp_path, capsys):
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    stranger = [99, *PULSE[1:]]
    spill.write_text("\n".join(json.dumps({"table": "pulses", "row": r})
                               for r in (PULSE, stranger)) + "\n")
    assert main(["recover", str(spill), "--db", str(db)]) == 2
    assert f"{spill}:2: session 99 is not in" in capsys.readouterr().err
    assert _counts(db) == (0, 0)


def _hostile_value():
    return st.one_of(st.integers(min_value=2**63, max_value=2**80), st.just(float("nan")),
                     st.just(float("inf")), st.booleans(), st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(
    st.binary(max_size=200),
    st.builds(lambda i, v: json.dumps({"table": "pulses", "row": PULSE[:i] + [v] + PULSE[i + 1:]},
                                      allow_nan=True).encode(),
              st.integers(0, len(PULSE) - 1), _hostile_value()),
    st.builds(lambda depth: ("[" * depth + "]" * depth).encode(), st.integers(1, 100_000)),
    st.just(b"\xef\xbb\xbf" + json.dumps({"table": "pulses", "row": PULSE}).encode()),
))
def test_a_hostile_recovery_file_imports_nothing_and_says_which_line(tmp_path_factory, content):
    tmp_path = tmp_path_factory.mktemp("recover")
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    spill.write_bytes(content)
    started = time.monotonic()
    status = main(["recover", str(spill), "--db", str(db)])
    assert time.monotonic() - started < 2
    if status == 0:  # only a file whose every line is a storable row of session 1
        assert _counts(db)[0] == sum(1 for line in content.splitlines() if line.strip())
    else:
        assert status == 2
        assert _counts(db) == (0, 0)


@pytest.mark.parametrize("kind", ["directory", "fifo", "missing"])
def test_recover_refuses_what_is_not_a_regular_file_at_once(tmp_path, capsys, kind):
    db, target = tmp_path / "log.db", tmp_path / "spill"
    _db_with_session(db)
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    started = time.monotonic()
    assert main(["recover", str(target), "--db", str(db)]) == 2
    assert time.monotonic() - started < 2
    err = capsys.readouterr().err
    assert str(target) in err and "Traceback" not in err


def test_the_same_rows_with_other_line_ends_are_not_imported_again(tmp_path, capsys):
    db, spill, crlf = tmp_path / "log.db", tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    _db_with_session(db)
    spill.write_text(json.dumps({"table": "pulses", "row": PULSE}) + "\n")
    crlf.write_bytes(spill.read_bytes().replace(b"\n", b"\r\n"))
    assert main(["recover", str(spill), "--db", str(db)]) == 0
    assert main(["recover", str(crlf), "--db", str(db)]) == 2
    assert "already imported" in capsys.readouterr().err
    assert _counts(db)[0] == 1


@pytest.mark.parametrize("column, value", [(3, 0.0), (2, None), (5, "lots"), (6, -5.0),
                                           (1, -1), (10, True)])
def test_rows_the_recorder_could_not_have_written_are_refused(tmp_path, capsys, column, value):
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    row = list(PULSE)
    row[column] = value
    spill.write_text(json.dumps({"table": "pulses", "row": row}) + "\n")
    assert main(["recover", str(spill), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert f"{spill}:1" in err and "Traceback" not in err
    assert _counts(db) == (0, 0)


@pytest.mark.parametrize("row", [
    [1, "2025-01-01T10:00:00.000Z", "deleted", "ended by operator"],  # no such status
    [1, "yesterday", "ended", "ended by operator"],  # not a time
    [1, "2025-01-01T10:00:00.000Z", "ended"],  # a column short
])
def test_a_session_end_that_is_not_one_imports_nothing(tmp_path, capsys, row):
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    spill.write_text(json.dumps({"table": "pulses", "row": PULSE}) + "\n"
                     + json.dumps({"table": "session_end", "row": row}) + "\n")
    assert main(["recover", str(spill), "--db", str(db)]) == 2
    assert f"{spill}:2: not a laserlog recovery line" in capsys.readouterr().err
    assert _counts(db) == (0, 0)


def test_a_session_end_never_replaces_the_end_its_recorder_wrote(tmp_path):
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    with Store(db) as store:
        store.end_session(1, "interrupted", "the recorder stopped: OverflowError")
    spill.write_text(json.dumps({"table": "session_end", "row": [
        1, "2025-01-01T10:00:00.000Z", "ended", "ended by operator"]}) + "\n")
    assert main(["recover", str(spill), "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, end_reason FROM sessions").fetchone() == (
            "interrupted", "the recorder stopped: OverflowError")


def test_a_session_end_replaces_what_a_later_start_guessed(tmp_path):
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    with Store(db) as store:
        assert store.mark_interrupted("x") == [1]  # the next start found it 'recording'
    spill.write_text(json.dumps({"table": "session_end", "row": [
        1, "2025-01-01T10:00:00.000Z", "ended", "ended by operator"]}) + "\n")
    assert main(["recover", str(spill), "--db", str(db)]) == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status, ended_utc, end_reason FROM sessions").fetchone() == (
            "ended", "2025-01-01T10:00:00.000Z", "ended by operator")


def test_a_recovery_file_saved_with_a_byte_order_mark_imports_as_any_laserlog_file(tmp_path):
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    spill.write_bytes(b"\xef\xbb\xbf" + json.dumps({"table": "pulses", "row": PULSE}).encode())
    assert main(["recover", str(spill), "--db", str(db)]) == 0
    assert _counts(db) == (1, 1)


def test_a_recovery_file_that_is_not_utf8_is_named_and_imports_nothing(tmp_path, capsys):
    db, spill = tmp_path / "log.db", tmp_path / "spill.ndjson"
    _db_with_session(db)
    spill.write_bytes(b'{"table": "pulses"}\n\xff\n')
    assert main(["recover", str(spill), "--db", str(db)]) == 2
    assert (f"recovery file {spill} is not UTF-8 text (byte 20); not a laserlog recovery file"
            in capsys.readouterr().err)
    assert _counts(db) == (0, 0)
