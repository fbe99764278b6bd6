"""Check a database for tampering: SQLite's integrity, the hash chain, seals, the anchor file.

`verify_database` walks every link of the chain once, streaming each chained table in id
order beside it, so it recomputes hundreds of thousands of rows a second. A finding names
the first row (or link) that is wrong; a tampered link does not hide the links after it,
because each link is recomputed from its own stored predecessor hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sqlite3
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laserlog.storage import chain, definitions, doses, vouch
from laserlog.storage.chain import CHAINED, genesis_hash, parse_ranges
from laserlog.storage.schema import SCHEMA_VERSION

#: Triggers that make the log append-only (schema 1 and 3); a missing one is a finding.
APPEND_ONLY_TABLES = ("pulses", "events", "settings", "chain", "users", "signoffs",
                      "corrections", "calibrations", "calibration_shots", "devices",
                      "user_changes", "courses", "course_closures", "session_kinds",
                      "test_spot_readouts", "assessments", "adverse_events",
                      "adverse_event_changes", "outcomes", "documents", "course_consents",
                      "session_aftercare", "photos", "session_doses")
OTHER_TRIGGERS = ("sessions_no_delete", "sessions_no_replace", "sessions_fixed_details",
                  "devices_keep_first", "users_no_replace_id")
#: Tables whose rows belong to a session's recording (checked against its seal).
SESSION_LOG_TABLES = ("pulses", "events", "settings")
#: A session's totals, as Store.recount computes them from its rows.
TOTAL_COLUMNS = ("pulse_count", "total_energy_j", "min_fluence_j_cm2", "max_fluence_j_cm2",
                 "regimes", "missing_pulses", "event_count")
MAX_LISTED = 50
_BATCH_TABLES = frozenset(vouch.LOG_TABLES)
_FETCH = 8192


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong, with where: table and row, or link."""

    kind: str
    message: str
    table: str | None = None
    row_id: int | None = None
    link_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "table": self.table,
                "row_id": self.row_id, "link_id": self.link_id}


@dataclass(slots=True)
class Walk:
    """What walking a stretch of the chain found."""

    findings: list[Finding] = field(default_factory=list)
    links: int = 0
    rows: int = 0
    last_hash: str = ""
    last_link: int = 0
    seals: dict[int, tuple[int, str, str]] = field(default_factory=dict)  # session -> link, hash, snapshot
    covered: dict[int, dict[str, int]] = field(default_factory=dict)  # session -> table -> rows
    elapsed_s: float = 0.0
    # Per table, the first id the walk started reading at and the last id it read.
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Checkpoint links: (link id, snapshot, stored hash of the link before it).
    checkpoints: list[tuple[int, str, str]] = field(default_factory=list)
    # Batch links that name a table a recording's batch never writes: (link id, ranges).
    odd_batches: list[tuple[int, str]] = field(default_factory=list)
    # Each session's opening link: session -> (link id, snapshot of its details then).
    openings: dict[int, tuple[int, str]] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)


@dataclass(slots=True)
class Report:
    """The outcome of `laserlog verify`."""

    path: str
    findings: list[Finding]
    notes: list[str]
    links: int
    rows: int
    sessions_sealed: int
    chain_elapsed_s: float
    elapsed_s: float
    head_link: int
    head_hash: str

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.chain_elapsed_s if self.chain_elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.path, "ok": self.ok, "links": self.links, "rows": self.rows,
                "sessions_sealed": self.sessions_sealed, "head_link": self.head_link,
                "head_hash": self.head_hash, "chain_rows_per_s": round(self.rows_per_s),
                "elapsed_s": round(self.elapsed_s, 3), "notes": self.notes,
                "findings": [f.as_dict() for f in self.findings]}


class _Stream:
    """One chained table's rows in id order, read in bulk, handed out by id range."""

    __slots__ = ("cur", "buf", "pos", "done", "table", "start_id", "last_read")

    def __init__(self, conn: sqlite3.Connection, table: str, start_id: int) -> None:
        self.start_id = start_id
        self.last_read = start_id - 1
        cur = conn.cursor()
        cur.row_factory = None
        cur.execute(f"SELECT {', '.join(CHAINED[table])} FROM {table} WHERE id >= ? ORDER BY id",
                    (start_id,))
        self.cur = cur
        self.table = table
        self.buf: list[tuple] = []
        self.pos = 0
        self.done = False

    def _fill(self, need: int) -> None:
        while len(self.buf) - self.pos < need and not self.done:
            more = self.cur.fetchmany(max(_FETCH, need))
            if not more:
                self.done = True
                return
            if self.pos:
                self.last_read = self.buf[self.pos - 1][0]
                del self.buf[:self.pos]
                self.pos = 0
            self.buf.extend(more)

    def take(self, first: int, last: int) -> tuple[list[tuple], list[int], int, int | None]:
        """Return (rows in first..last, ids below first not covered, missing count, first missing)."""
        count = last - first + 1
        if len(self.buf) - self.pos < count:
            self._fill(count)
        pos = self.pos
        rows = self.buf[pos:pos + count]
        if len(rows) == count and rows[0][0] == first and rows[-1][0] == last:
            self.pos = pos + count
            return rows, [], 0, None
        extra: list[int] = []
        got: list[tuple] = []
        while True:
            if self.pos >= len(self.buf):
                self._fill(1)
                if self.pos >= len(self.buf):
                    break
            row = self.buf[self.pos]
            if row[0] < first:
                extra.append(row[0])
            elif row[0] > last:
                break
            else:
                got.append(row)
            self.pos += 1
        first_missing = None
        for index, row in enumerate(got):
            if row[0] != first + index:
                first_missing = first + index
                break
        else:
            if len(got) < count:
                first_missing = first + len(got)
        return got, extra, max(0, count - len(got)), first_missing

    def rest(self, limit: int) -> list[int]:
        """Return the ids left after the last link (up to `limit`), and count them all."""
        ids: list[int] = []
        while True:
            self._fill(1)
            if self.pos >= len(self.buf):
                return ids
            if len(ids) < limit:
                ids.append(self.buf[self.pos][0])
            self.pos += 1


def _legacy(conn: sqlite3.Connection) -> tuple[str, dict[str, int]]:
    row = conn.execute("SELECT ranges FROM chain WHERE id = 0 AND kind = 'genesis'").fetchone()
    if row is None:
        return "", {}
    ranges = row[0]
    return ranges, {t: last for t, _, last in parse_ranges(ranges)}


def walk(conn: sqlite3.Connection, first_link: int = 1, last_link: int | None = None, *,
         per_session: bool = False, from_legacy: bool | None = None) -> Walk:
    """Recompute links first_link..last_link and the rows they cover; report what differs.

    Each link is hashed from the stored hash of the link before it, so one tampered link
    is reported once and the links after it are still checked on their own (and stretches
    of the chain can be walked apart, in parallel). `from_legacy` reads every table from
    its first row after the legacy ones, so rows before the first link show as unchained.
    """
    started = time.perf_counter()
    out = Walk()
    genesis_ranges, legacy = _legacy(conn)
    if first_link <= 1:
        first_link = 1
        prev = genesis_hash(genesis_ranges)
    else:
        row = conn.execute("SELECT hash FROM chain WHERE id = ?", (first_link - 1,)).fetchone()
        prev = row[0] if row else ""
    whole = first_link == 1 and last_link is None
    streams: dict[str, _Stream] = {}
    if whole if from_legacy is None else from_legacy:
        for table in CHAINED:
            streams[table] = _Stream(conn, table, legacy.get(table, 0) + 1)
    cur = conn.cursor()
    cur.row_factory = None
    cur.execute("SELECT id, session_id, kind, committed_unix_s, ranges, snapshot, hash"
                " FROM chain WHERE id >= ? AND id <= ? ORDER BY id",
                (first_link, last_link if last_link is not None else 2**62))
    expected = first_link
    rows_total = 0
    links = 0
    sha256 = hashlib.sha256
    # The canonical encoder (chain.Encoder), inlined: this loop runs once per link.
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, 2)
    pickler.fast = True
    dump, seek, truncate, getvalue = pickler.dump, buffer.seek, buffer.truncate, buffer.getvalue
    fmt = chain.FORMAT
    covered = out.covered
    seals = out.seals
    add = out.add
    while True:
        batch = cur.fetchmany(_FETCH)
        if not batch:
            break
        links += len(batch)
        for link_id, session_id, kind, ts, ranges, snapshot, stored in batch:
            if link_id != expected:
                add(Finding("link_missing", f"links {expected}..{link_id - 1} are missing from "
                            "the chain (deleted)", link_id=expected))
            expected = link_id + 1
            lists: list[list[tuple]] = []
            damaged = False  # rows are missing: the hash cannot match, nothing more to name
            if ranges:
                for part in ranges.split(","):
                    table, a, b = part.split(" ")
                    if kind == "batch" and table not in _BATCH_TABLES:
                        out.odd_batches.append((link_id, ranges))
                    first = int(a)
                    last = int(b)
                    stream = streams.get(table)
                    if stream is None:
                        if table not in CHAINED:
                            add(Finding("changed_link", f"link {link_id} names an unknown table "
                                        f"{table!r}", link_id=link_id))
                            continue
                        stream = streams[table] = _Stream(conn, table, first)
                    # Fast path, inline: the next rows are exactly first..last.
                    count = last - first + 1
                    pos = stream.pos
                    if len(stream.buf) - pos < count:
                        stream._fill(count)
                        pos = stream.pos
                    rows = stream.buf[pos:pos + count]
                    if len(rows) == count and rows[0][0] == first and rows[-1][0] == last:
                        stream.pos = pos + count
                    else:
                        rows = _take_slow(stream, table, first, last, link_id, add)
                        if len(rows) != count:
                            damaged = True
                    rows_total += len(rows)
                    lists.append(rows)
                    if table in _BATCH_TABLES:
                        # A recording's rows belong to the link's session (column 1).
                        for row in rows:
                            if row[1] != session_id:
                                add(Finding("changed_link", f"link {link_id} holds {table} row "
                                            f"{row[0]} of session {row[1]}, but belongs to "
                                            f"session {session_id}: written outside laserlog",
                                            table, row[0], link_id))
                                break
                    if per_session:
                        counts = covered.setdefault(session_id, {})
                        counts[table] = counts.get(table, 0) + len(rows)
            seek(0)
            truncate()
            dump((fmt, link_id, session_id, kind, ts, ranges, snapshot, tuple(lists)))
            digest = sha256(prev.encode("ascii") + getvalue()).hexdigest()
            if digest != stored and not damaged:
                add(_diagnose(conn, link_id, ranges, lists))
            if kind == "seal":
                seals[session_id] = (link_id, stored, snapshot)
            elif kind == "session":
                out.openings[session_id] = (link_id, snapshot)
            elif kind == "checkpoint":
                if session_id is not None:  # laserlog's belong to no session
                    add(Finding("checkpoint", f"link {link_id} is a checkpoint of session "
                                f"{session_id}: laserlog writes none, so it was written outside "
                                "laserlog", link_id=link_id))
                out.checkpoints.append((link_id, snapshot, prev))
            prev = stored
        out.last_link = batch[-1][0]
    if whole:
        for table, stream in streams.items():
            left = stream.rest(1)
            if left:
                add(Finding("unchained_row", f"{table} row {left[0]} is not covered by the chain "
                            "(after its last link): inserted outside laserlog, or the chain's "
                            "tail was removed", table, left[0]))
    for table, stream in streams.items():
        last_read = stream.buf[stream.pos - 1][0] if stream.pos else stream.last_read
        out.spans[table] = (stream.start_id, last_read)
    out.links = links
    out.rows = rows_total
    out.last_hash = prev
    out.elapsed_s = time.perf_counter() - started
    return out


def _walk_segment(path: str, first_link: int, last_link: int, from_legacy: bool) -> Walk:
    """Walk one stretch of the chain on a connection of its own (a worker process)."""
    from laserlog.storage.store import connect

    conn = connect(path, readonly=True)
    try:
        return walk(conn, first_link, last_link, from_legacy=from_legacy)
    finally:
        conn.close()


def walk_parallel(conn: sqlite3.Connection, path: str | Path, head_link: int,
                  workers: int) -> Walk:
    """Walk the whole chain in `workers` processes, one stretch of links each, and join them.

    Rows between two stretches and after the last one must all be covered too: they are
    checked here, on `conn` (the caller's snapshot), like a single walk would.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    size = -(-head_link // workers)
    bounds = [(1 + k * size, min(head_link, (k + 1) * size)) for k in range(workers)
              if 1 + k * size <= head_link]
    context = multiprocessing.get_context("spawn")  # no SQLite connection crosses a fork
    with ProcessPoolExecutor(len(bounds), mp_context=context) as pool:
        parts = list(pool.map(_walk_segment, [str(path)] * len(bounds), [b[0] for b in bounds],
                              [b[1] for b in bounds], [k == 0 for k in range(len(bounds))]))
    out = Walk()
    _, legacy = _legacy(conn)
    last_read = {t: legacy.get(t, 0) for t in CHAINED}
    for part in parts:
        out.findings += part.findings
        out.links += part.links
        out.rows += part.rows
        out.seals.update(part.seals)
        out.checkpoints += part.checkpoints
        out.odd_batches += part.odd_batches
        out.openings.update(part.openings)
        out.last_hash, out.last_link = part.last_hash, part.last_link
        for table, (start, last) in part.spans.items():
            gap = conn.execute(f"SELECT min(id) FROM {table} WHERE id > ? AND id < ?",
                               (last_read[table], start)).fetchone()[0]
            if gap is not None:
                out.add(Finding("unchained_row", f"{table} row {gap} is not covered by the chain:"
                                " inserted outside laserlog", table, gap))
            last_read[table] = max(last_read[table], last)
    for table in CHAINED:
        left = conn.execute(f"SELECT min(id) FROM {table} WHERE id > ?",
                            (last_read[table],)).fetchone()[0]
        if left is not None:
            out.add(Finding("unchained_row", f"{table} row {left} is not covered by the chain "
                            "(after its last link): inserted outside laserlog, or the chain's "
                            "tail was removed", table, left))
    out.elapsed_s = time.perf_counter() - started
    return out


def _take_slow(stream: _Stream, table: str, first: int, last: int, link_id: int,
               add: Callable[[Finding], None]) -> list[tuple]:
    rows, extra, missing, first_missing = stream.take(first, last)
    if extra:
        add(Finding("unchained_row", f"{table} row {extra[0]} is not covered by the chain "
                    f"({len(extra)} such row(s) before link {link_id}): inserted outside "
                    "laserlog", table, extra[0], link_id))
    if missing:
        add(Finding("missing_row", f"{table} row {first_missing} is missing: link {link_id} "
                    f"recorded {table} {first}..{last}, {missing} row(s) of them are gone "
                    "(deleted)", table, first_missing, link_id))
    return rows


def _diagnose(conn: sqlite3.Connection, link_id: int, ranges: str,
              lists: list[list[tuple]]) -> Finding:
    """Name the first row of a link whose content changed, from the link's row CRCs."""
    row = conn.execute("SELECT row_crcs FROM chain WHERE id = ?", (link_id,)).fetchone()
    stored = array("I")
    if row is not None and row[0]:
        stored.frombytes(bytes(row[0]))
    tables = [t for t, _, _ in parse_ranges(ranges)]
    index = 0
    for table, rows in zip(tables, lists, strict=False):
        for r in rows:
            crc = chain.row_crcs([r])[0]
            if index >= len(stored) or stored[index] != crc:
                return Finding("changed_row", f"{table} row {r[0]} differs from what link "
                               f"{link_id} recorded: edited after it was committed",
                               table, r[0], link_id)
            index += 1
    where = f" ({ranges})" if ranges else ""
    return Finding("changed_link", f"link {link_id}{where} does not match its hash: the link, "
                   "a seal's snapshot or the link before it was rewritten", link_id=link_id)


def _snapshot_diff(old: str, new: str | None) -> str:
    if new is None:
        return "the session row is gone"
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return "the snapshot is unreadable"
    changes = []
    for part in ("session", "device"):
        before, after = a.get(part) or {}, b.get(part) or {}
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                changes.append(f"{part}.{key} {before.get(key)!r} -> {after.get(key)!r}")
    return "; ".join(changes[:6]) or "the rows differ"


def check_seals(conn: sqlite3.Connection, seals: dict[int, tuple[int, str, str]],
                legacy_sessions: int) -> list[Finding]:
    """Compare every session's latest seal with its row now; find ended sessions never sealed."""
    findings: list[Finding] = []
    for session_id, (link_id, _, snapshot) in sorted(seals.items()):
        now = chain.snapshot_text(conn, session_id)
        if now != snapshot:
            findings.append(Finding("session_changed", f"session {session_id} changed after its "
                                    f"seal (link {link_id}): {_snapshot_diff(snapshot, now)}",
                                    "sessions", session_id, link_id))
    for (session_id,) in conn.execute(
            "SELECT id FROM sessions WHERE status != 'recording' AND id > ? ORDER BY id",
            (legacy_sessions,)):
        if session_id not in seals:
            findings.append(Finding("session_unsealed", f"session {session_id} has ended but was "
                                    "never sealed into the chain", "sessions", session_id))
    return findings


def _opened_otherwise(conn: sqlite3.Connection, session_id: int,
                      sealed: tuple[int, str, str] | None) -> str:
    """Return why a session's seal holds other details than its opening link, or ""."""
    row = conn.execute("SELECT id, snapshot FROM chain WHERE session_id = ? AND kind ="
                       " 'session' ORDER BY id LIMIT 1", (session_id,)).fetchone()
    if row is None or sealed is None:
        return ""
    then, now = chain.session_details(row[1]), chain.session_details(sealed[2])
    changed = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
    return (f"its seal holds other details than it was opened with (link {row[0]}): "
            f"{', '.join(changed)}") if changed else ""


def check_openings(conn: sqlite3.Connection, openings: dict[int, tuple[int, str]],
                   seals: dict[int, tuple[int, str, str]]) -> list[Finding]:
    """Compare each session's details (who, which client, where) with what its opening link
    recorded, sealed or not; find sessions laserlog never opened.

    Sessions made before laserlog opened them with a link have none: only sessions after
    the first one that has must.
    """
    findings: list[Finding] = []
    for session_id, (link_id, snapshot) in sorted(openings.items()):
        then = chain.session_details(snapshot)
        sealed = seals.get(session_id)
        now = chain.session_details(sealed[2] if sealed else
                                    chain.snapshot_text(conn, session_id))
        if then != now:
            changed = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
            where = "its seal holds" if sealed else "its row holds"
            findings.append(Finding("session_changed", f"session {session_id}: {where} other "
                                    f"details than it was opened with (link {link_id}): "
                                    f"{', '.join(changed) or 'the row is gone'}",
                                    "sessions", session_id, link_id))
    # A recording's batches come after its session was opened (rows planted for a session
    # not yet opened would be counted into it).
    for session_id, first_batch in conn.execute(
            "SELECT session_id, min(id) FROM chain WHERE kind = 'batch' AND session_id IS NOT"
            " NULL GROUP BY session_id"):
        opened = openings.get(session_id)
        if opened is not None and first_batch < opened[0]:
            findings.append(Finding("session_changed", f"link {first_batch} writes rows of "
                                    f"session {session_id} before it was opened (link "
                                    f"{opened[0]}): written outside laserlog", "sessions",
                                    session_id, first_batch))
        elif opened is None and openings and session_id > min(openings):
            findings.append(Finding("session_unopened", f"link {first_batch} writes rows of "
                                    f"session {session_id}, which was never opened in the "
                                    "chain: written outside laserlog", "sessions", session_id,
                                    first_batch))
    if openings:
        first = min(openings)
        for (session_id,) in conn.execute("SELECT id FROM sessions WHERE id > ? ORDER BY id",
                                          (first,)):
            if session_id not in openings:
                findings.append(Finding("session_unopened", f"session {session_id} was never "
                                        "opened in the chain: inserted outside laserlog",
                                        "sessions", session_id))
    return findings


def check_triggers(conn: sqlite3.Connection) -> list[Finding]:
    """Find append-only triggers that someone dropped."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    wanted = [f"{t}_no_{w}" for t in APPEND_ONLY_TABLES for w in ("update", "delete", "replace")]
    wanted += list(OTHER_TRIGGERS)
    return [Finding("trigger_missing", f"trigger {name} is missing: the append-only guard was "
                    "removed, rows could have been changed", name.split("_no_")[0])
            for name in wanted if name not in have]


def _first_difference(have: str, want: str) -> str:
    """Return where two definitions part, white space folded: a few words of each."""
    have, want = " ".join(have.split()), " ".join(want.split())
    if have == want:
        return "it differs in white space only"
    at = next((i for i, (a, b) in enumerate(zip(have, want, strict=False)) if a != b),
              min(len(have), len(want)))
    start = max(0, at - 12)
    return f"it reads {have[start:at + 36]!r} where laserlog's reads {want[start:at + 36]!r}"


def _schema_finding(kind: str, name: str, problem: str) -> Finding:
    table = name if kind == "table" else None
    return Finding("schema_changed", f"{kind} {name} {problem}", table)


def check_schema(conn: sqlite3.Connection, version: int) -> list[Finding]:
    """Compare every table, view, trigger and index with laserlog's definition of it.

    The reference is what the migrations up to the database's schema version make (the
    known tables made outside them may also be there, exactly as laserlog makes them), and
    the chain's latest `schema` link, which recorded the definitions when they were made.
    A dropped guard trigger is named by `check_triggers`.
    """
    findings = check_triggers(conn)
    if version > len(definitions.MIGRATIONS):
        return findings + [Finding("schema", f"database schema {version} is newer than this "
                                   f"laserlog ({len(definitions.MIGRATIONS)}): upgrade laserlog "
                                   "to check its definitions")]
    named = {f.message.split()[1] for f in findings}  # "trigger NAME is missing: ..."
    found = definitions.read(conn)
    want = definitions.expected(version)
    extra = definitions.outside_migrations()
    for kind, name in sorted(set(found) | set(want)):
        have, sql = found.get((kind, name)), want.get((kind, name))
        if have == sql or (sql is None and have == extra.get((kind, name))):
            continue
        if have is None:
            if not (kind == "trigger" and name in named):
                findings.append(_schema_finding(kind, name, "is missing"))
        elif sql is None:
            known = " (laserlog makes one, but not like this)" if (kind, name) in extra else ""
            findings.append(_schema_finding(kind, name, f"is not laserlog's{known}: made "
                                            "outside laserlog"))
        elif kind == "view":
            findings.append(_schema_finding(kind, name, "was redefined: "
                                            + _first_difference(have, sql)))
        else:
            findings.append(_schema_finding(kind, name, "differs from laserlog's definition: "
                                            + _first_difference(have, sql)))
    findings += _check_schema_record(conn, found, want)
    return findings


def _foreign_reads(conn: sqlite3.Connection, version: int) -> list[tuple[str, str]]:
    """Return the tables, views and indexes that are not laserlog's (triggers fire only on
    writes, so a foreign one cannot change what verify reads)."""
    found = definitions.read(conn)
    want = definitions.expected(version)
    extra = definitions.outside_migrations()
    return [(kind, name) for kind, name in sorted(set(found) | set(want))
            if kind != "trigger" and found.get((kind, name)) != want.get((kind, name))
            and not (want.get((kind, name)) is None
                     and found.get((kind, name)) == extra.get((kind, name)))]


def _check_schema_record(conn: sqlite3.Connection, found: definitions.Definitions,
                         want: definitions.Definitions) -> list[Finding]:
    """Compare the definitions with those the latest `schema` link recorded.

    A difference that `check_schema` already named is not named twice: what is left are
    definitions that match this laserlog's but not the ones the database was made with.
    """
    latest = definitions.latest_record(conn)
    if latest is None:
        return []  # made before laserlog recorded its schema: the comparison above stands
    link_id, text = latest
    recorded = definitions.from_snapshot(text)
    if recorded is None:
        return [Finding("schema_changed", f"schema link {link_id} holds no readable "
                        "definitions", link_id=link_id)]
    now = definitions.migrated(found)
    differ = [f"{kind} {name}" for kind, name in sorted(set(now) | set(recorded))
              if now.get((kind, name)) != recorded.get((kind, name))
              and now.get((kind, name)) == want.get((kind, name))]
    if not differ:
        return []
    return [Finding("schema_changed", f"the schema differs from what chain link {link_id} "
                    f"recorded when it was made ({', '.join(differ[:6])}): this laserlog's "
                    "own definitions were changed, or the database was made by another",
                    link_id=link_id)]


def check_totals(conn: sqlite3.Connection, legacy_sessions: int) -> list[Finding]:
    """Recompute every session's totals from its rows and compare them with its row.

    The same sums as Store.recount, in one pass over pulses and one over events. The
    writer adds energy batch by batch, so totals agree within a relative 1e-9 (plus
    1e-12 J); counts, fluence bounds and regimes must be equal. Sessions recorded before
    the chain are left out, like their rows.
    """
    # Grouped by session alone, the rows come in the index's order (half the time of
    # grouping by session and regime); the distinct regimes are sorted here.
    pulses = {r[0]: (r[1], r[2], r[3], r[4], ",".join(sorted(r[5].split(","))))
              for r in conn.execute(
                  "SELECT session_id, count(*), coalesce(sum(energy_j), 0), min(fluence_j_cm2),"
                  " max(fluence_j_cm2), group_concat(DISTINCT regime) FROM pulses"
                  " WHERE session_id > ? GROUP BY session_id", (legacy_sessions,))}
    events = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT session_id, coalesce(sum(missing_pulses), 0), count(*) FROM events"
        " WHERE session_id > ? GROUP BY session_id", (legacy_sessions,))}
    findings: list[Finding] = []
    for row in conn.execute(
            "SELECT id, pulse_count, total_energy_j, min_fluence_j_cm2, max_fluence_j_cm2,"
            " regimes, missing_pulses, event_count FROM sessions WHERE id > ? ORDER BY id",
            (legacy_sessions,)):
        session_id = row[0]
        recomputed = (*pulses.get(session_id, (0, 0.0, None, None, "")),
                      *events.get(session_id, (0, 0)))
        for column, stored, value in zip(TOTAL_COLUMNS, tuple(row)[1:], recomputed, strict=True):
            if column == "total_energy_j" and isinstance(stored, int | float) \
                    and abs(stored - value) <= 1e-9 * max(abs(stored), abs(value)) + 1e-12:
                continue
            if stored != value:
                findings.append(Finding("session_totals", f"session {session_id} {column}: "
                                        f"stored {stored!r}, recomputed from its rows "
                                        f"{value!r}", "sessions", session_id))
    return findings


def check_doses(conn: sqlite3.Connection) -> list[Finding]:
    """Recompute each current dose row (laserlog.storage.doses) from the session's pulses and
    compare: a row the hash chain vouches for may still be one a chain's rewriter made."""
    stored = {int(r[1]): (int(r[0]), r[2:]) for r in conn.execute(doses.CURRENT)}
    findings: list[Finding] = []
    recomputed = doses.compute(conn, stored)
    for session_id, (row_id, values) in sorted(stored.items()):
        dose = recomputed.get(session_id, doses.Dose(None, None, None))
        for column, have, want in zip(doses.COLUMNS[3:], values, (
                dose.mean_fluence_j_cm2, dose.wavelength_nm, dose.pass_fluence_j_cm2),
                strict=True):
            if not doses.agree(have, want):
                findings.append(Finding("session_doses", f"session {session_id} {column}: "
                                        f"stored {have!r} (session_doses row {row_id}), "
                                        f"recomputed from its pulses {want!r}",
                                        "session_doses", row_id))
    return findings


def check_anchor(conn: sqlite3.Connection, anchor: dict[str, Any] | None, head_link: int,
                 anchor_file: Path) -> tuple[list[Finding], list[str]]:
    """Compare the anchor file's chain head with the database's."""
    if anchor is None:
        if head_link == 0:
            return [], ["no anchor file yet (nothing has been chained)"]
        return [Finding("anchor", f"anchor file {anchor_file} is missing: the chain's tail "
                        "cannot be checked")], []
    link = int(anchor["link"])
    if link > head_link:
        findings = [Finding("truncated", f"the anchor records link {link} but the chain ends at "
                            f"link {head_link}: links {head_link + 1}..{link} and their rows were "
                            "removed (truncated tail or lost WAL)", link_id=head_link + 1)]
        for table, last in sorted((anchor.get("last_ids") or {}).items()):
            if table not in CHAINED:
                continue
            have = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            if isinstance(last, int) and have < last:
                findings.append(Finding("truncated", f"{table} row {have + 1} is missing: the "
                                        f"anchor records {table} up to row {last}, the database "
                                        f"ends at {have}", table, have + 1))
        return findings, []
    row = conn.execute("SELECT hash FROM chain WHERE id = ?", (link,)).fetchone()
    if row is None or row[0] != anchor["hash"]:
        return [Finding("anchor", f"the anchor file does not match: it records link {link} with "
                        f"hash {anchor['hash'][:16]}..., the database has "
                        f"{(row[0][:16] + '...') if row else 'no such link'}", link_id=link)], []
    if link < head_link:
        return [], [f"the anchor is {head_link - link} link(s) behind the database (the last "
                    "commit's anchor update did not happen: a crash?)"]
    return [], []


#: Chains at least this long are walked by several processes (one per core, at most 4).
PARALLEL_MIN_LINKS = 150_000


def verify_database(path: str | Path, *, anchor_file: str | Path | None = None,
                    integrity: bool = True, workers: int | None = None,
                    trusted: Iterable[str] = ()) -> Report:
    """Run every check on a database file; return the report (findings first-bad-first).

    `workers` processes walk the chain (default: one per core, up to 4, for chains of
    PARALLEL_MIN_LINKS links or more; else 1).
    """
    from laserlog.storage.store import connect, schema_version

    started = time.perf_counter()
    path = Path(path)
    anchor_path = Path(anchor_file) if anchor_file else chain.anchor_path(path)
    notes: list[str] = []
    findings: list[Finding] = []
    # The anchor is read before the snapshot below: a commit racing us can only make the
    # database newer than the anchor, never older.
    anchor_readable = True
    try:
        anchor = _read_anchor(anchor_path)
    except ValueError as exc:
        anchor, anchor_readable = None, False
        findings.append(Finding("anchor", str(exc)))
    conn = connect(path, readonly=True)
    try:
        conn.execute("BEGIN")  # one snapshot for every query below
        version = schema_version(conn, path)  # a newer laserlog's database: StoreError
        if version < SCHEMA_VERSION:
            conn.rollback()
            from laserlog.storage.store import truncated

            emptied = truncated(path, version)
            what = "the hash chain (3)" if version < 3 else f"signed checkpoints ({SCHEMA_VERSION})"
            return Report(str(path), [Finding("schema", emptied or (
                f"database schema {version} predates {what}; open it once with any "
                "recording command to upgrade it"))], [], 0, 0, 0,
                          0.0, time.perf_counter() - started, 0, "")
        # The definitions first: the checks below read tables, views and indexes, and one
        # someone else defined (a view in a table's place, an index on a costly expression)
        # could make them lie or never end. Such a file is not checked further.
        schema_findings = check_schema(conn, version)
        if _foreign_reads(conn, version):
            conn.rollback()
            notes.append("the schema holds definitions that are not laserlog's: the other "
                         "checks were not run (they would read them)")
            return Report(str(path), findings + schema_findings, notes, 0, 0, 0, 0.0,
                          time.perf_counter() - started, 0, "")
        if integrity:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
            if problems != ["ok"]:
                findings += [Finding("integrity", f"SQLite integrity check: {p}") for p in problems]
        head_link, head_hash = chain.head(conn)
        if workers is None:
            workers = min(os.cpu_count() or 1, 4) if head_link >= PARALLEL_MIN_LINKS else 1
        if workers > 1 and head_link >= 2 * workers:
            result = walk_parallel(conn, path, head_link, workers)
        else:
            result = walk(conn)
        findings += result.findings
        coverage = vouch.check(conn, result.checkpoints, head_link,
                               vouch.trusted_keys(trusted, conn), result.odd_batches)
        findings += [Finding("checkpoint", why, link_id=link) for link, why in coverage.problems]
        notes += coverage.notes
        _, legacy = _legacy(conn)
        findings += check_seals(conn, result.seals, legacy.get("sessions", 0))
        if anchor_readable:
            more, anchor_notes = check_anchor(conn, anchor, head_link, anchor_path)
            findings += more
            notes += anchor_notes
        findings += schema_findings
        findings += check_openings(conn, result.openings, result.seals)
        findings += check_totals(conn, legacy.get("sessions", 0))
        findings += check_doses(conn)
        legacy_rows = sum(last for t, last in legacy.items() if t in CHAINED)
        if legacy_rows:
            notes.append(f"{legacy_rows} row(s) were recorded before the chain existed and are "
                         "not covered by it")
        conn.rollback()
    finally:
        conn.close()
    return Report(str(path), findings, notes, result.links, result.rows, len(result.seals),
                  result.elapsed_s, time.perf_counter() - started, head_link, head_hash)


def _read_anchor(path: Path) -> dict[str, Any] | None:
    try:
        return chain.read_anchor(path)
    except OSError as exc:
        raise ValueError(f"anchor file {path} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise ValueError(f"anchor file {path} is not a laserlog anchor: edited or damaged") \
            from None


# -- sessions: is what was signed still what is stored? --------------------------------------
@dataclass(frozen=True, slots=True)
class SessionSeal:
    """Whether a session's stored data still matches its latest seal."""

    session_id: int
    seal_link: int | None
    seal_hash: str | None
    intact: bool
    reason: str = ""


def check_sessions(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, SessionSeal]:
    """Return each session's seal status, recomputing in one walk the links they span."""
    spans: dict[int, tuple[int, int, str]] = {}
    out: dict[int, SessionSeal] = {}
    for session_id in session_ids:
        row = conn.execute("SELECT min(id) FROM chain WHERE session_id = ?", (session_id,)).fetchone()
        seal = conn.execute("SELECT id, hash FROM chain WHERE session_id = ? AND kind = 'seal'"
                            " ORDER BY id DESC LIMIT 1", (session_id,)).fetchone()
        if seal is None or row[0] is None:
            out[session_id] = SessionSeal(session_id, None, None, False,
                                          "not sealed: still recording, or ended without a seal")
            continue
        spans[session_id] = (int(row[0]), int(seal[0]), seal[1])
    if not spans:
        return out
    low = min(s[0] for s in spans.values())
    high = max(s[1] for s in spans.values())
    result = walk(conn, low, high, per_session=True)
    for session_id, (first, seal_link, seal_hash) in spans.items():
        bad = [f for f in result.findings
               if f.link_id is not None and first <= f.link_id <= seal_link]
        reason = bad[0].message if bad else ""
        if not reason:
            _, _, snapshot = result.seals.get(session_id, (0, "", ""))
            now = chain.snapshot_text(conn, session_id)
            if now != snapshot:
                reason = f"changed after its seal: {_snapshot_diff(snapshot, now)}"
        if not reason:
            reason = _opened_otherwise(conn, session_id, result.seals.get(session_id))
        if not reason:
            covered = result.covered.get(session_id, {})
            for table in SESSION_LOG_TABLES:
                have = conn.execute(f"SELECT count(*) FROM {table} WHERE session_id = ?",
                                    (session_id,)).fetchone()[0]
                if have != covered.get(table, 0):
                    reason = (f"{table}: {have} row(s) stored, {covered.get(table, 0)} sealed: "
                              "rows were added or removed after the seal")
                    break
        out[session_id] = SessionSeal(session_id, seal_link, seal_hash, not reason, reason)
    return out
