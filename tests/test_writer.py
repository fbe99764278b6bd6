"""The writer: many rows per INSERT, and a chain hashed from the rows it wrote, never other bytes.

The chain link of a batch is computed from the rows in memory instead of reading 10 000
rows back. That is only sound if every value in a stored pulse row is exactly what SQLite
returns; these tests hold the completer to that, and the writer's guard to falling back to
reading back when the first or last row of a batch is not.
"""

from __future__ import annotations

import math
import pickle
import sqlite3
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laserlog.config.profile import open_profile
from laserlog.domain.model import PulseReading
from laserlog.recording.completion import PulseCompleter
from laserlog.storage import chain
from laserlog.storage.rows import PulseAt
from laserlog.storage.store import INSERT_PULSE, ROWS_PER_STATEMENT, Store, insert_rows
from laserlog.storage.verify import verify_database
from laserlog.storage.writer import Batch, BatchWriter


def _session(store: Store) -> int:
    return store.create_session(device_id=None, profile_id="ps755-ref", port="x",
                                operator_id="tech-01", client_ref="C-1", area=None,
                                skin_type=None, eyewear_checked=True, checklist_json=None)


def _row(sid: int, seq: int, **override) -> tuple:
    values = {"session_id": sid, "seq": seq, "received_unix_s": 1_700_000_000.0 + seq,
              "pulse_duration_ps": 650.0, "regime": "ps", "energy_j": 0.1 + seq * 1e-6,
              "fluence_j_cm2": 0.8, "spot_mm": 4.0, "wavelength_nm": 755.0, "rep_rate_hz": 5.0,
              "handpiece": 1, "beamlet_fluence_j_cm2": None, "derived": ""}
    values.update(override)
    return tuple(values.values())


@pytest.mark.parametrize("count", [1, ROWS_PER_STATEMENT - 1, ROWS_PER_STATEMENT,
                                   3 * ROWS_PER_STATEMENT + 7])
def test_many_rows_per_statement_store_what_executemany_stores(tmp_path, count):
    stored = []
    for name, insert in (("many", insert_rows), ("one", None)):
        with Store(tmp_path / f"{name}.db") as store:
            sid = _session(store)
            rows = [_row(sid, i) for i in range(count)]
            with store.conn:
                if insert is None:
                    store.conn.executemany(INSERT_PULSE, rows)
                else:
                    insert(store.conn, INSERT_PULSE, rows)
            stored.append(store.conn.execute("SELECT * FROM pulses ORDER BY id").fetchall())
    assert len(stored[0]) == count
    assert [tuple(r) for r in stored[0]] == [tuple(r) for r in stored[1]]


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_row_sqlite_would_store_differently_still_verifies(tmp_path, where):
    # An int in a REAL column comes back as a float, -0.0 as 0.0 and NaN as NULL: hashing
    # such a row as written would make an honest database fail verify.
    db = tmp_path / "odd.db"
    with Store(db) as store:
        sid = _session(store)
    writer = BatchWriter(db, sid)
    batch = Batch()
    batch.pulses.extend(_row(sid, i) for i in range(500))
    index = {"first": 0, "last": 499}[where]
    batch.pulses[index] = _row(sid, index, spot_mm=4, energy_j=-0.0, wavelength_nm=math.nan)
    # The session's totals, as the recorder adds them up (verify recomputes them too).
    batch.energy_j = sum(row[PulseAt.ENERGY_J] for row in batch.pulses)
    batch.min_fluence_j_cm2 = batch.max_fluence_j_cm2 = 0.8
    writer.submit(batch)
    writer.close()
    report = verify_database(db)
    assert report.ok, report.findings


_maybe_float = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                         st.integers(-10_000, 10_000))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(energy=_maybe_float, fluence=_maybe_float, spot=_maybe_float, wavelength=_maybe_float,
       rate=_maybe_float, duration=st.one_of(st.floats(1e-3, 1e9), st.integers(1, 10**6)),
       fixed_spot=st.one_of(st.none(), st.integers(1, 10)), seq=st.integers(0, 2**40))
def test_completed_rows_hold_exactly_what_sqlite_gives_back(energy, fluence, spot, wavelength,
                                                          rate, duration, fixed_spot, seq):
    completer = PulseCompleter(open_profile("ps755-ref"), 1)
    if fixed_spot is not None:
        completer.settings["spot"] = fixed_spot  # settings may arrive as ints
    reading = PulseReading(1_700_000_000, seq, energy, fluence, spot, duration, wavelength,
                           rate, 1, None)
    row = completer.pulse(reading, [])
    if row is None:
        return
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE pulses (id INTEGER PRIMARY KEY, session_id INTEGER, seq INTEGER,"
        " received_unix_s REAL, pulse_duration_ps REAL, regime TEXT, energy_j REAL,"
        " fluence_j_cm2 REAL, spot_mm REAL, wavelength_nm REAL, rep_rate_hz REAL,"
        " handpiece INTEGER, beamlet_fluence_j_cm2 REAL, derived TEXT)")
    conn.execute(INSERT_PULSE, row)
    back = conn.execute("SELECT * FROM pulses").fetchone()
    assert pickle.dumps((1, *row), 2) == pickle.dumps(back, 2)


@given(st.lists(st.tuples(st.integers(-2**63, 2**63 - 1), st.none() | st.floats(),
                          st.text(max_size=20), st.none() | st.integers(0, 300)), max_size=50))
def test_row_crcs_are_the_crc_of_each_rows_canonical_bytes(rows):
    # verify recomputes one row's CRC from encode(row): the batched form must agree.
    assert list(chain.row_crcs(rows)) == [zlib.crc32(chain.encode(row)) for row in rows]
