"""Sign a session off: who, what it means, when, bound to the session's sealed chain head.

A signature is the signer's Ed25519 signature (their key, opened by their passphrase) over
the session's uuid, its latest seal (link and hash), its pulse count and total energy, the
meaning (reviewed or approved), the signer's ID, printed name and role, and the UTC time:
it cannot be copied to another record. It stays VALID while the signature holds under
the key the signer had when signing, the signer was not revoked and had the role the
meaning needs, a checkpoint of the installation key vouches for it, and the data under the
seal still recomputes; anything else shows INVALID, with why. Sign-offs from before keys
show as LEGACY (unkeyed), never VALID.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from laserlog.domain.ids import comparable
from laserlog.errors import LaserlogError
from laserlog.review.users import Registry, Signer, User, registry
from laserlog.storage import chain, signing, vouch
from laserlog.storage.store import Store, utc_now
from laserlog.storage.verify import check_sessions

MEANINGS = ("reviewed", "approved")
#: Who may give which meaning.
ALLOWED_ROLES = {"reviewed": ("technician", "officer", "engineer"), "approved": ("officer",)}
#: How a keyed signature is stored in the `signature` column; older rows hold a bare digest.
KEYED = "ed25519:"
COLUMNS = ("session_id", "user_id", "printed_name", "role", "meaning", "signed_utc", "chain_id",
           "chain_hash", "signature")


class SignoffError(LaserlogError):
    """Raise when a signature is refused: who, which session, why."""


@dataclass(frozen=True, slots=True)
class Signature:
    """A stored signature and whether it still holds."""

    id: int
    session_id: int
    user_id: str
    printed_name: str
    role: str
    meaning: str
    signed_utc: str
    chain_id: int
    chain_hash: str
    valid: bool
    reason: str = ""
    #: "server" for a sign-off given on the central server, "" for the console's own.
    signed_on: str = ""
    legacy: bool = False

    @property
    def status(self) -> str:
        return "VALID" if self.valid else "LEGACY" if self.legacy else "INVALID"

    def line(self) -> str:
        """Return the signature as one line for the terminal."""
        text = (f"{self.status:<7} {self.meaning:<8} {self.printed_name} ({self.role}, "
                f"{self.user_id}) {self.signed_utc}  seal link {self.chain_id} "
                f"{self.chain_hash[:12]}")
        if self.signed_on:
            text += f"  (signed on the {self.signed_on})"
        return text + (f"  -- {self.reason}" if self.reason else "")

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {
            "user_id": self.user_id, "printed_name": self.printed_name, "role": self.role,
            "meaning": self.meaning, "signed_utc": self.signed_utc, "chain_id": self.chain_id,
            "chain_hash": self.chain_hash, "status": self.status,
            "reason": self.reason}
        if self.signed_on:
            found["signed_on"] = self.signed_on
        return found


def signed_message(session_uuid: str, seal_link: int, seal_hash: str, pulse_count: int,
                   total_energy_j: float, user_id: str, printed_name: str, role: str,
                   meaning: str, signed_utc: str) -> bytes:
    """Return what a signer signs: the record (session, seal, totals) and the signing."""
    return json.dumps(["laserlog signoff 2", session_uuid, seal_link, seal_hash, pulse_count,
                       total_energy_j, user_id, printed_name, role, meaning, signed_utc],
                      ensure_ascii=True).encode("ascii")


@dataclass(frozen=True, slots=True)
class Signable:
    """What a new signature binds to: the session's uuid and its latest intact seal."""

    session_uuid: str
    seal_link: int
    seal_hash: str
    pulse_count: int
    total_energy_j: float


def check_signable(conn: sqlite3.Connection, session_id: int, user: User, meaning: str,
                   where: str) -> Signable:
    """Return what `user` would sign for `meaning`, or raise SignoffError saying why not.

    The same rules hold on a console's file and on the central server (`conn` a
    central.pgconn.ConsoleView): not one's own session, the role the meaning needs, an
    ended session whose data matches its seal, not the same meaning twice.
    """
    if meaning not in MEANINGS:
        raise SignoffError(f"meaning {meaning!r} is unknown; expected one of {', '.join(MEANINGS)}")
    session = conn.execute("SELECT id, uuid, operator_id, status, pulse_count, total_energy_j"
                           " FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if session is None:
        raise SignoffError(f"no session {session_id} in {where}")
    if comparable(user.user_id) == comparable(str(session["operator_id"])):
        raise SignoffError(f"user {user.user_id} operated session {session_id}: nobody signs a "
                           "session they operated; nothing was written")
    if user.role not in ALLOWED_ROLES[meaning]:
        raise SignoffError(f"user {user.user_id} is a {user.role}: '{meaning}' needs the role "
                           f"{' or '.join(ALLOWED_ROLES[meaning])}; nothing was written")
    if session["status"] == "recording":
        raise SignoffError(f"session {session_id} is still recording (or its recorder stopped "
                           "without ending it): sign it after it has ended")
    seal = check_sessions(conn, [session_id])[session_id]
    if not seal.intact or seal.seal_link is None or seal.seal_hash is None:
        raise SignoffError(f"session {session_id} cannot be signed: its data does not match its "
                           f"seal ({seal.reason}); run `laserlog verify`")
    for existing in signatures(conn, [session_id]).get(session_id, []):
        if existing.valid and existing.user_id == user.user_id and existing.meaning == meaning:
            raise SignoffError(f"user {user.user_id} already signed session {session_id} as "
                               f"{meaning} at {existing.signed_utc}")
    return Signable(session["uuid"], seal.seal_link, seal.seal_hash, int(session["pulse_count"]),
                    float(session["total_energy_j"]))


def signature_row(session_id: int, signer: Signer, meaning: str,
                  target: Signable) -> tuple[str | int, ...]:
    """Return a new signature's values in COLUMNS order, signed now with the signer's key."""
    user = signer.user
    signed = utc_now()
    message = signed_message(target.session_uuid, target.seal_link, target.seal_hash,
                             target.pulse_count, target.total_energy_j, user.user_id, user.name,
                             user.role, meaning, signed)
    return (session_id, user.user_id, user.name, user.role, meaning, signed, target.seal_link,
            target.seal_hash, KEYED + signing.sign(signer.key, message))


def sign(store: Store, session_id: int, signer: Signer, meaning: str) -> Signature:
    """Record a signature of an ended session; refuse what must not be signed."""
    target = check_signable(store.conn, session_id, signer.user, meaning,
                            f"{store.path} (see `laserlog sessions list`)")
    row = signature_row(session_id, signer, meaning, target)
    with store.conn:
        head = chain.insert(store.conn, "signoffs", [row], COLUMNS, session_id=session_id,
                            kind="signoff")
    chain.write_anchor(store.path, head)
    new_id = int(store.conn.execute("SELECT max(id) FROM signoffs").fetchone()[0])
    user = signer.user
    return Signature(new_id, session_id, user.user_id, user.name, user.role, meaning,
                     str(row[5]), target.seal_link, target.seal_hash, True)


def signatures(conn: sqlite3.Connection, session_ids: list[int]) -> dict[int, list[Signature]]:
    """Return each session's signatures with their current validity (one chain walk for all).

    On the central server (a connection whose `central_signoffs` is True) the sign-offs
    given there follow the console's own, judged against the same seals.
    """
    found: dict[int, list[Signature]] = {}
    if not session_ids:
        return found
    tables = [("signoffs", "")]
    if getattr(conn, "central_signoffs", False):
        tables.append(("central_signoffs", "server"))
    rows: list[tuple[str, tuple]] = []
    unique = sorted(set(session_ids))
    for table, signed_on in tables:
        for start in range(0, len(unique), 500):
            part = unique[start:start + 500]
            rows += [(signed_on, tuple(r)) for r in conn.execute(
                "SELECT g.id, g.session_id, g.user_id, g.printed_name, g.role, g.meaning,"
                " g.signed_utc, g.chain_id, g.chain_hash, g.signature, s.uuid"
                f" FROM {table} g JOIN sessions s ON s.id = g.session_id"
                f" WHERE g.session_id IN ({', '.join('?' * len(part))}) ORDER BY g.id",
                part).fetchall()]
    if not rows:
        return found
    seals = check_sessions(conn, sorted({int(r[1]) for _, r in rows}))
    trusted = trusted_here(conn)
    reg = registry(conn, trusted)
    totals = {int(r[0]): (int(r[1]), float(r[2])) for r in conn.execute(
        "SELECT id, pulse_count, total_energy_j FROM sessions WHERE id IN"
        f" ({', '.join(str(int(i)) for i in seals)})")}
    for signed_on, r in rows:
        sig_id, session_id, user_id, name, role, meaning, signed, chain_id, chain_hash, stored, \
            session_uuid = r
        seal = seals[session_id]
        pulses, energy = totals.get(session_id, (0, 0.0))
        legacy = not str(stored).startswith(KEYED)
        if legacy:
            reason = ("legacy (unkeyed): signed before laserlog's signatures had keys; "
                      "sign it again to make it VALID")
        else:
            message = signed_message(session_uuid, chain_id, chain_hash, pulses, energy,
                                     user_id, name, role, meaning, signed)
            if signed_on == "server":
                reason = _server_signer(conn, user_id, role, message, str(stored))
            else:
                reason = _console_signer(conn, reg, trusted, sig_id, user_id, role, meaning,
                                         message, str(stored))
        if not reason and not seal.intact:
            reason = f"the session's data changed: {seal.reason}"
        elif not reason and (seal.seal_link != chain_id or seal.seal_hash != chain_hash):
            reason = (f"the session was sealed again after signing (link {seal.seal_link}): its "
                      "data changed since")
        found.setdefault(session_id, []).append(Signature(
            sig_id, session_id, user_id, name, role, meaning, signed, chain_id, chain_hash,
            not reason, reason, signed_on, legacy))
    return found


def trusted_here(conn: sqlite3.Connection) -> set[str]:
    """Return the installation keys trusted for this connection's checkpoints: on the
    central server, the keys the console registered; on a file, this machine's and the site's."""
    keys: Callable[[], set[str]] | None = getattr(conn, "installation_keys", None)
    return keys() if keys is not None else vouch.trusted_keys(conn=conn)


def _console_signer(conn: sqlite3.Connection, reg: Registry, trusted: set[str], sig_id: int,
                    user_id: str, role: str, meaning: str, message: bytes, stored: str) -> str:
    """Return why a console's own sign-off does not hold, or ""."""
    link = vouch.link_of(conn, "signoffs", sig_id)
    signer = reg.at(user_id, link)
    if signer is None:
        return f"{user_id} is not a user of this database (or was added after signing)"
    if not signing.verifies(signer.public_key, message, stored[len(KEYED):]):
        return (f"the signature does not hold under {signer.user_id}'s key: forged, copied from "
                "another record, or the record was edited")
    if signer.untrusted:
        return f"{signer.user_id} is not a trusted user: {signer.untrusted}"
    if signer.revoked_utc:
        return f"{signer.user_id} was revoked at {signer.revoked_utc}, before signing"
    if signer.role != role or role not in ALLOWED_ROLES.get(meaning, ()):
        return f"{signer.user_id} was a {signer.role} when signing: '{meaning}' needs another role"
    if link is None:
        return "the sign-off is not in the chain (added outside laserlog)"
    why = vouch.vouched(conn, link, trusted)
    return f"the sign-off is not vouched for: {why}" if why else ""


def _server_signer(conn: sqlite3.Connection, user_id: str, role: str, message: bytes,
                   stored: str) -> str:
    """Return why a sign-off given on the central server does not hold, or ""."""
    lookup: Callable[[str], tuple[str | None, str]] | None = getattr(conn, "server_user", None)
    public, server_role = lookup(user_id) if lookup is not None else (None, "")
    if public is None:
        return f"{user_id} has no key on the server"
    if not signing.verifies(public, message, stored[len(KEYED):]):
        return (f"the signature does not hold under {user_id}'s key on the server: forged, "
                "copied from another record, or the record was edited")
    if server_role != role:
        return f"{user_id} is a {server_role} on the server, not a {role}"
    return ""


def signature_lines(conn: sqlite3.Connection, session_id: int) -> list[str]:
    """Return the lines `sessions show` prints about a session's signatures."""
    sigs = signatures(conn, [session_id]).get(session_id, [])
    if not sigs:
        return ["  signatures: none"]
    return ["  signatures:"] + [f"    {s.line()}" for s in sigs]


def signature_summary(sigs: list[Signature]) -> str:
    """Return a short cell for report tables: 'approved:lso-01 reviewed:eng-02' or INVALID."""
    if not sigs:
        return "-"
    return " ".join(f"{s.meaning}:{s.user_id}" + ("" if s.valid else f"({s.status})")
                    for s in sigs)


def review_lines(conn: sqlite3.Connection, session_id: int) -> list[str]:
    """Return a session's corrections and signatures as lines for `sessions show`."""
    from laserlog.review.corrections import corrections_for

    lines = []
    for c in corrections_for(conn, session_id):
        lines.append(f"  corrected {c['corrected_utc']} {c['column_name']} {c['old_value']!r} -> "
                     f"{c['new_value']!r} by {c['user_id']}: {c['reason']}")
    return lines + signature_lines(conn, session_id)


def review_data(conn: sqlite3.Connection, session_id: int) -> dict[str, object]:
    """Return a session's corrections and signatures for JSON views."""
    from laserlog.review.corrections import corrections_for

    return {"corrections": corrections_for(conn, session_id),
            "signatures": [s.as_dict() for s in signatures(conn, [session_id]).get(session_id, [])]}


def annotate(conn: sqlite3.Connection, sessions: list[dict[str, object]]) -> None:
    """Add to each session dict a 'signatures' summary ('approved:lso-01', '-', ...(INVALID))."""
    found = signatures(conn, [int(str(s["id"])) for s in sessions])
    for s in sessions:
        s["signatures"] = signature_summary(found.get(int(str(s["id"])), []))


def signature_problems(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """Return (session id, what) for every signature that is not VALID, for `verify`."""
    ids = [int(r[0]) for r in conn.execute("SELECT DISTINCT session_id FROM signoffs")]
    out = []
    for session_id, sigs in sorted(signatures(conn, ids).items()):
        out += [(session_id, f"session {session_id} {s.meaning} by {s.user_id} is {s.status}: "
                 f"{s.reason}") for s in sigs if not s.valid and not s.legacy]
    return out
