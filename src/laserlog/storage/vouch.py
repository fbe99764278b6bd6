"""What the installation keys vouch for: checkpoints read, checked and trusted.

A checkpoint link signs the stored hash of the link before it, so with the chain intact it
vouches for every link up to there. Trust in a key comes from outside the database: this
machine's own installation key, keys the site file lists, or the central server (a
witness). A key found only in the database proves nothing about who wrote it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from laserlog.storage import chain, signing


def trusted_keys(extra: Iterable[str] = (), conn: sqlite3.Connection | None = None) -> set[str]:
    """Return the installation keys trusted here: this machine's (if it has one), `extra`,
    and those the site file of `conn`'s database lists (`[trust] installation_keys`)."""
    keys = {k.strip().lower() for k in extra if k.strip()}
    if conn is not None:
        keys |= _site_keys(conn)
    try:
        local, _, _ = signing.installation_key(create=False)
    except signing.KeyFileError:
        local = None
    if local is not None:
        keys.add(signing.public_hex(local))
    return keys


def _site_keys(conn: sqlite3.Connection) -> set[str]:
    from laserlog.config.siteconfig import site_for

    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return set()
    path = row[2] if row else ""
    return set(site_for(path).installation_keys) if path else set()


@dataclass(slots=True)
class Coverage:
    """What the checkpoints of a chain say, for `laserlog verify`."""

    problems: list[tuple[int, str]] = field(default_factory=list)  # (link id, why)
    notes: list[str] = field(default_factory=list)
    keys: dict[str, int] = field(default_factory=dict)  # key -> checkpoints it signed
    last_vouched: int = 0  # the newest link a trusted, valid checkpoint vouches for


def _fast(checkpoints: list[tuple[int, str, str]], trusted: set[str], out: Coverage,
          untrusted: dict[str, list[int]]) -> bool:
    """Judge the checkpoints by the newest one when it holds and none disowns another.

    Each checkpoint laserlog writes first judges those since the newest that held and
    names the forged ones in what it signs; so when the newest holds and disowns nothing,
    every older one held when it was covered, and its signature need not be checked again
    (~130 us each, one per 10 s recorded). Returns False to judge them one by one.
    """
    link_id, snapshot, prev_hash = checkpoints[-1]
    newest = chain.read_checkpoint(link_id, snapshot)
    if not (newest.valid and newest.signed_link == link_id - 1
            and newest.signed_hash == prev_hash and (not trusted or newest.key in trusted)):
        return False
    keys: list[tuple[int, str]] = []
    for link_id, snapshot, _ in checkpoints:
        try:
            data = json.loads(snapshot)
            if data.get("disowns"):
                return False
            keys.append((link_id, str(data["key"])))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return False
    for link_id, key in keys:
        out.keys[key] = out.keys.get(key, 0) + 1
        if trusted and key not in trusted:
            untrusted.setdefault(key, []).append(link_id)
    out.last_vouched = newest.signed_link
    return True


def _span_text(ids: list[int]) -> str:
    return f"link {ids[0]}" if len(ids) == 1 else f"links {ids[0]}-{ids[-1]}"


def check(conn: sqlite3.Connection, checkpoints: list[tuple[int, str, str]], head_link: int,
          trusted: set[str], odd_batches: Sequence[tuple[int, str]] = ()) -> Coverage:
    """Judge every checkpoint found by a chain walk, and the links no checkpoint covers."""
    out = Coverage()
    untrusted: dict[str, list[int]] = {}
    if checkpoints and _fast(checkpoints, trusted, out, untrusted):
        checkpoints_to_judge: list[tuple[int, str, str]] = []
    else:
        checkpoints_to_judge = checkpoints
    for link_id, snapshot, prev_hash in checkpoints_to_judge:
        cp = chain.read_checkpoint(link_id, snapshot)
        if not cp.valid:
            out.problems.append((link_id, f"checkpoint link {link_id} does not hold: its "
                                 "installation signature is missing or forged"))
            continue
        out.keys[cp.key] = out.keys.get(cp.key, 0) + 1
        if cp.signed_link != link_id - 1 or cp.signed_hash != prev_hash:
            out.problems.append((link_id, f"checkpoint link {link_id} vouches for link "
                                 f"{cp.signed_link} with hash {cp.signed_hash[:16]}..., but the "
                                 f"chain now holds {prev_hash[:16]}...: the links before it "
                                 "were rebuilt without the installation key"))
            continue
        for forged in cp.disowns:
            out.problems.append((forged, f"checkpoint link {forged} is forged: laserlog found "
                                 f"it so when it wrote checkpoint link {link_id}"))
        if trusted and cp.key not in trusted:
            untrusted.setdefault(cp.key, []).append(link_id)
            continue
        out.last_vouched = max(out.last_vouched, cp.signed_link)
    for key, links in untrusted.items():
        out.problems.append((links[0], f"{_span_text(links)}: checkpoint(s) signed by "
                             f"installation key {signing.fingerprint(key)}, which is neither "
                             "this machine's key nor one the site file trusts: the chain was "
                             "signed again elsewhere"))
    if not trusted and out.keys:
        prints = ", ".join(signing.fingerprint(k) for k in out.keys)
        out.notes.append(f"no trusted installation key here: the checkpoints hold under "
                         f"key(s) {prints}; compare with the fingerprint the officer keeps "
                         "(`laserlog site`), or run `verify --witness`")
    if head_link and not checkpoints:
        out.problems.append((1, f"the chain has {head_link} link(s) and not one signed "
                             "checkpoint: its signatures were removed, or it was written "
                             "outside laserlog"))
        return out
    if checkpoints:
        first = checkpoints[0][0]
        if first > 2:
            out.notes.append(f"links 1-{first - 1} predate signed checkpoints (an older "
                             "laserlog): they recompute, but only an anchor copy or the "
                             "central server can show they were not rebuilt")
        out.problems += _tail(conn, checkpoints[-1][0], head_link, out.notes)
        out.problems += _unsigned(conn, first, checkpoints[-1][0])
    out.problems += _misplaced(conn, odd_batches)
    return out


#: The tables a recording's `batch` links may write; everything else is signed at once.
LOG_TABLES = ("pulses", "events", "settings")


def _unsigned(conn: sqlite3.Connection, first_checkpoint: int,
              last_checkpoint: int) -> list[tuple[int, str]]:
    """Find links other than a recording's batches, between the first and the last
    checkpoint, that no checkpoint followed at once: laserlog signs every such link in the
    transaction that writes it, so a later checkpoint adopting one (after a crash) is not
    enough. Those after the last checkpoint are `_tail`'s to name."""
    rows = conn.execute(
        "SELECT c.id, c.kind FROM chain c LEFT JOIN chain n ON n.id = c.id + 1"
        " WHERE c.id > ? AND c.id < ? AND c.kind NOT IN ('batch', 'checkpoint')"
        " AND (n.kind IS NULL OR n.kind != 'checkpoint' OR n.session_id IS NOT NULL)"
        " ORDER BY c.id LIMIT 20",
        (first_checkpoint, last_checkpoint)).fetchall()
    return [(int(r[0]), f"link {r[0]} ({r[1]}) was not signed by a checkpoint when it was "
             "written: added outside laserlog") for r in rows]


def _misplaced(conn: sqlite3.Connection,
               odd_batches: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """Find batch links that write more than a recording writes (the walk lists them), or
    write to a session after its latest seal (a recovery seals the session again after its
    rows), and links or rows with ids laserlog never gives (below 1)."""
    found: list[tuple[int, str]] = []
    for link_id, ranges in sorted(set(odd_batches))[:20]:
        found.append((int(link_id), f"link {link_id} is a recording's batch but writes "
                      f"{ranges}: only pulses, events and settings come in batches"))
    for session_id, link_id in conn.execute(
            "SELECT b.session_id, min(b.id) FROM chain b JOIN (SELECT session_id,"
            " max(id) AS sealed FROM chain WHERE kind = 'seal' GROUP BY session_id) s"
            " ON s.session_id = b.session_id WHERE b.kind = 'batch' AND b.id > s.sealed"
            " GROUP BY b.session_id ORDER BY 2 LIMIT 20"):
        found.append((int(link_id), f"link {link_id} adds rows to session {session_id} after "
                      "it was sealed, and no seal follows: added outside laserlog"))
    low = conn.execute("SELECT min(id) FROM chain WHERE id < 0").fetchone()[0]
    if low is not None:
        found.append((int(low), f"chain link {low} has an id laserlog never gives: added "
                      "outside laserlog"))
    for table in (*chain.CHAINED, "sessions", "devices"):
        low = conn.execute(f"SELECT min(id) FROM {table} WHERE id < 1").fetchone()[0]
        if low is not None:
            found.append((0, f"{table} row {low} has an id laserlog never gives (below 1): "
                          "inserted outside laserlog"))
    return found


def _tail(conn: sqlite3.Connection, last_checkpoint: int, head_link: int,
          notes: list[str]) -> list[tuple[int, str]]:
    """Judge the links after the last checkpoint: a recording's last seconds may wait for
    their checkpoint; anything else must have been signed when it was written."""
    if head_link <= last_checkpoint:
        return []
    rows = conn.execute("SELECT id, kind, session_id FROM chain WHERE id > ? ORDER BY id",
                        (last_checkpoint,)).fetchall()
    problems = [(int(r[0]), f"link {r[0]} ({r[1]}) is not covered by a signed checkpoint: "
                 "laserlog signs such a link when it writes it, so it was added outside "
                 "laserlog") for r in rows if r[1] != "batch"]
    batches = [int(r[0]) for r in rows if r[1] == "batch"]
    if batches:
        sessions = sorted({int(r[2]) for r in rows if r[1] == "batch" and r[2] is not None})
        notes.append(f"{_span_text(batches)} (session(s) {', '.join(map(str, sessions))}: "
                     "recording, or stopped without ending) are not yet covered by a signed "
                     "checkpoint")
    return problems


def vouched(conn: sqlite3.Connection, link_id: int, trusted: set[str]) -> str:
    """Return why link `link_id` is not vouched for, or "" when a checkpoint right after it
    signs its hash and the link recomputes (how every user change and sign-off is written)."""
    rows = conn.execute("SELECT id, kind, snapshot, hash, session_id FROM chain WHERE id IN"
                        " (?, ?) ORDER BY id", (link_id, link_id + 1)).fetchall()
    if len(rows) != 2 or rows[1][1] != "checkpoint" or rows[1][4] is not None:
        return "it is not covered by a signed checkpoint (added outside laserlog)"
    cp = chain.read_checkpoint(int(rows[1][0]), rows[1][2])
    if not cp.valid or cp.signed_link != link_id or cp.signed_hash != rows[0][3]:
        return "its checkpoint does not hold (the chain was rebuilt or the checkpoint forged)"
    if trusted and cp.key not in trusted:
        return (f"its checkpoint is signed by installation key {signing.fingerprint(cp.key)}, "
                "which this site does not trust")
    if not chain.recomputes(conn, link_id):
        return f"its link {link_id} does not recompute: the rows it wrote were edited"
    return ""


def link_of(conn: sqlite3.Connection, table: str, row_id: int) -> int | None:
    """Return the chain link that wrote row `row_id` of `table` (rows written one per link)."""
    found = conn.execute("SELECT id FROM chain WHERE ranges = ?",
                         (f"{table} {row_id} {row_id}",)).fetchone()
    return int(found[0]) if found else None
