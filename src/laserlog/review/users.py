"""People who review, sign, calibrate and manage users: an ID, a name, a role and a key.

Each user has an Ed25519 key pair (laserlog.storage.signing): the private half sealed under
their passphrase, the public half in the chain. Who a user is, and every change to them
(created, key, passphrase, role, revoked), is a row of `user_changes` signed by the person
who authorised it: an administrator or an officer, or for the first user of a database,
themselves (they become its administrator). The registry is rebuilt from those rows each
time it is read, and a row whose signature or checkpoint does not hold authorises nothing.

IDs are compared after normalising (case-folded, trimmed, surrounding punctuation off);
new IDs must already be in normal form: 2-40 of a-z, 0-9, '.', '_', '-', starting and
ending with a letter or digit. Users from before keys (schema 3) get their key the next
time they give their passphrase; until then they sign nothing, and their officers are the
administrators by default.
"""

from __future__ import annotations

import getpass
import hmac
import json
import os
import re
import sqlite3
import sys
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from laserlog.domain.ids import comparable, normal_id
from laserlog.errors import LaserlogError
from laserlog.storage import chain, signing, vouch
from laserlog.storage.store import Store, utc_now

ROLES = ("technician", "officer", "engineer", "administrator")
#: Who may add users, change roles and revoke.
MANAGERS = ("administrator", "officer")
MIN_PASSPHRASE = 10
PASSPHRASE_ENV = "LASERLOG_PASSPHRASE"
#: The authorising user's passphrase when a command needs two (e.g. `users add --as`).
AS_PASSPHRASE_ENV = "LASERLOG_AS_PASSPHRASE"
CHANGE_COLUMNS = ("user_id", "change", "name", "role", "administrator", "public_key_hex",
                  "sealed_key", "by_user_id", "changed_utc", "signature")


class AuthError(LaserlogError):
    """Raise when a user is unknown, the passphrase does not match, or a role does not allow."""


@dataclass(frozen=True, slots=True)
class User:
    """A person laserlog knows, as the registry stands (or stood at one link)."""

    user_id: str
    name: str
    role: str
    created_utc: str
    administrator: bool = False
    public_key: str | None = None
    revoked_utc: str | None = None
    #: "" when every change to this user holds; else why the user authorises nothing.
    untrusted: str = ""
    #: An officer from before keys, an administrator until someone is made one explicitly.
    default_administrator: bool = False
    #: The users row a user from before keys was read from (their old passphrase check).
    source_row: int | None = None

    @property
    def manages(self) -> bool:
        return (self.role in MANAGERS or self.administrator or self.default_administrator) \
            and not self.revoked_utc and not self.untrusted

    def status(self) -> str:
        """Return a short state for listings."""
        if self.untrusted:
            return f"UNTRUSTED ({self.untrusted})"
        if self.revoked_utc:
            return f"revoked {self.revoked_utc}"
        if self.public_key is None:
            return "no key yet (made at the next passphrase)"
        return "key " + signing.fingerprint(self.public_key)


@dataclass(frozen=True, slots=True)
class Signer:
    """A user who just gave their passphrase: their registry entry and their private key."""

    user: User
    key: Ed25519PrivateKey


def validate_user_id(user_id: str) -> str:
    """Return a new ID in normal form, or raise naming what is allowed."""
    return normal_id(user_id, "user ID")


def read_passphrase(prompt: str = "passphrase: ", *, confirm: bool = False,
                    env: str = PASSPHRASE_ENV) -> str:
    """Return a passphrase from $`env`, a prompt, or the next line of stdin."""
    value = os.environ.get(env)
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise AuthError(f"${env} is not UTF-8 text; nothing was written") from None
        return value
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != first:
            raise AuthError("the two passphrases differ; nothing was written")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n")


def validate_new_user(user_id: str, name: str, role: str, passphrase: str) -> str:
    """Return the printed name tidied; refuse a bad ID, an empty name, an unknown role or a
    short passphrase (on a file and on the central server alike)."""
    validate_user_id(user_id)
    name = " ".join(name.split())
    if not name:
        raise LaserlogError("the printed name is empty; expected the name as it should appear "
                            "under a signature")
    if role not in ROLES:
        raise LaserlogError(f"role {role!r} is unknown; expected one of {', '.join(ROLES)}")
    if len(passphrase) < MIN_PASSPHRASE:
        raise AuthError(f"the passphrase is too short: at least {MIN_PASSPHRASE} characters")
    return name


#: The stored columns of a user, in `user_row` order (the users table; the key is elsewhere).
USER_COLUMNS = ("user_id", "name", "role", "kdf", "salt_hex", "key_hex", "created_utc")


def user_row(user_id: str, name: str, role: str, sealed: signing.Sealed) -> tuple[str, ...]:
    """Return a validated user's stored row (USER_COLUMNS): the passphrase check of `sealed`."""
    return (user_id, name, role, sealed.kdf, sealed.salt_hex, sealed.check_hex, utc_now())


def passphrase_matches(kdf: object, salt_hex: object, check_hex: object,
                       passphrase: str) -> bool:
    """Return whether a passphrase matches a stored check (users rows, central_users rows);
    a check that is not laserlog's (edited, damaged) matches nothing."""
    try:
        n, r, p = signing.kdf_params(str(kdf))
        salt, stored = bytes.fromhex(str(salt_hex)), bytes.fromhex(str(check_hex))
        check, _ = signing.derive(passphrase, salt, n, r, p)
    except (signing.KeyFileError, ValueError, MemoryError):
        return False
    return hmac.compare_digest(check, stored)


# -- the registry ----------------------------------------------------------------------------
def change_message(values: dict[str, object]) -> bytes:
    """Return what the authoriser of a user change signs: every column but the signature."""
    return json.dumps(["laserlog user change 1", *(values[c] for c in CHANGE_COLUMNS[:-1])],
                      ensure_ascii=True).encode("ascii")


@dataclass(frozen=True, slots=True)
class Registry:
    """Every user as their signed changes make them, and each user as they stood at each link
    (to judge a signature by the signer's key and role when they signed)."""

    users: dict[str, User]
    #: comparable ID -> [(link id from which it holds, the user then)], oldest first.
    history: dict[str, list[tuple[int, User]]]

    def find(self, user_id: str) -> User | None:
        return self.users.get(comparable(user_id))

    def at(self, user_id: str, link_id: int | None) -> User | None:
        """Return the user as they stood just before link `link_id` (None: not yet known)."""
        found = None
        for since, state in self.history.get(comparable(user_id), []):
            if link_id is not None and since >= link_id:
                break
            found = state
        return found


def registry(conn: sqlite3.Connection, trusted: set[str] | None = None) -> Registry:
    """Build the registry from the users table and every signed change, in chain order.

    `trusted`: the installation keys whose checkpoints count (default: this machine's).
    """
    if trusted is None:
        trusted = vouch.trusted_keys(conn=conn)
    users: dict[str, User] = {}
    history: dict[str, list[tuple[int, User]]] = {}
    # Each user row and change is written by a link of its own: `users 7 7`.
    links: dict[tuple[str, int], int] = {}
    for link_id, ranges in conn.execute(
            "SELECT id, ranges FROM chain WHERE id > 0 AND kind IN ('user', 'user_change')"):
        found = _ONE_ROW.fullmatch(str(ranges))
        if found:
            links[(found[1], int(found[2]))] = int(link_id)
    first_checkpoint = conn.execute(
        "SELECT min(id) FROM chain WHERE kind = 'checkpoint'").fetchone()[0]
    created_ids = {_text_id(r[0]) for r in conn.execute(
        "SELECT user_id FROM user_changes WHERE change = 'created'")}
    events: list[tuple[int, str, tuple]] = []
    seen: set[str] = set()
    for row in conn.execute("SELECT id, user_id, name, role, created_utc FROM users"
                            " WHERE id > 0 ORDER BY id"):
        key = _text_id(row[1])
        if key in created_ids or key in seen:
            continue  # made with keys (its change says who), or a second row for one ID
        seen.add(key)
        link = links.get(("users", int(row[0])))
        # A user from before keys must have been chained before the first checkpoint.
        before_keys = link is not None and (first_checkpoint is None or link < first_checkpoint)
        # Without a link it sorts last: a row slipped in must not become "the first user".
        events.append((link if link is not None else -1, "legacy", (*tuple(row), before_keys)))
    cols = ", ".join(("id", *CHANGE_COLUMNS))
    for row in conn.execute(f"SELECT {cols} FROM user_changes WHERE id > 0 ORDER BY id"):
        events.append((links.get(("user_changes", int(row[0])), -1), "change", tuple(row)))
    events.sort(key=lambda e: (e[0] if e[0] >= 0 else 2**62, e[1] != "legacy"))
    explicit_admin = False
    for link_id, what, row in events:
        if what == "legacy":
            row_id, user_id, name, role, created, before_keys = row
            state = User(_text_id(user_id), str(name), str(role), str(created),
                         default_administrator=role == "officer", source_row=int(row_id),
                         untrusted="" if before_keys else
                         "added outside laserlog (a user without keys that was not in the "
                         "chain before its first checkpoint)")
        else:
            state, explicit_admin = _apply(conn, users, row, link_id, trusted, explicit_admin)
        key = state.user_id
        users[key] = state
        history.setdefault(key, []).append((max(link_id, 0), state))
    if explicit_admin:  # once someone is an administrator, defaults end
        for key, state in users.items():
            if state.default_administrator:
                users[key] = replace(state, default_administrator=False)
    return Registry(users, history)


_ONE_ROW = re.compile(r"(users|user_changes) ([1-9][0-9]{0,17}) \2")


def _text_id(value: object) -> str:
    """Return a stored ID as compared; a value that is not text compares as nobody."""
    return comparable(value) if isinstance(value, str) else f"\x00{value!r}"


def _apply(conn: sqlite3.Connection, users: dict[str, User], row: tuple, link_id: int,
           trusted: set[str], explicit_admin: bool) -> tuple[User, bool]:
    """Return the user after one change row, and whether an administrator now exists."""
    values = dict(zip(("id", *CHANGE_COLUMNS), row, strict=True))
    user_id = _text_id(values["user_id"])
    change = values["change"]
    by = _text_id(values["by_user_id"])
    before = users.get(user_id)
    why = ("its change is not in the chain" if link_id < 0
           else vouch.vouched(conn, link_id, trusted))
    message = change_message(values)
    signature = str(values["signature"])
    if change == "created":
        first = not any(not u.untrusted for u in users.values())
        if by == user_id and first:
            signer_key = values["public_key_hex"]
        else:
            authoriser = users.get(by)
            signer_key = authoriser.public_key if authoriser else None
            if not why and (authoriser is None or not authoriser.manages):
                why = f"added by {by}, who may not add users"
        if not why and not signing.verifies(str(signer_key or ""), message, signature):
            why = f"the authorisation by {by} does not hold (forged or edited)"
        admin = bool(values["administrator"]) or (first and by == user_id)
        state = User(user_id, str(values["name"]), str(values["role"]), str(values["changed_utc"]),
                     administrator=admin, public_key=str(values["public_key_hex"]),
                     untrusted=why)
        return state, explicit_admin or (admin and not why)
    if before is None:
        return User(user_id, "?", "?", str(values["changed_utc"]),
                    untrusted=f"a {change} change for an unknown user"), explicit_admin
    if change in ("key", "passphrase"):
        # A user's own act: signed with the key it sets (key) or keeps (passphrase).
        own = values["public_key_hex"] if change == "key" else before.public_key
        if not why and change == "key" and before.public_key is not None:
            why = "a second key for a user who has one"
        if not why and (by != user_id or not signing.verifies(str(own or ""), message, signature)):
            why = f"the {change} change does not hold (forged or edited)"
        if why:
            return replace(before, untrusted=before.untrusted or why), explicit_admin
        return replace(before, public_key=str(own)), explicit_admin
    authoriser = users.get(by)
    if not why and (authoriser is None or not authoriser.manages):
        why = f"changed by {by}, who may not manage users"
    if not why and not signing.verifies(str(authoriser.public_key or "") if authoriser else "",
                                        message, signature):
        why = f"the {change} change by {by} does not hold (forged or edited)"
    if why:
        return replace(before, untrusted=before.untrusted or why), explicit_admin
    if change == "role":
        admin = bool(values["administrator"]) or str(values["role"]) == "administrator"
        return replace(before, role=str(values["role"]), administrator=admin,
                       default_administrator=False), explicit_admin or admin
    return replace(before, revoked_utc=str(values["changed_utc"])), explicit_admin


def find_user(store: Store, user_id: str) -> User | None:
    """Return a user by ID (compared after normalising), or None."""
    return registry(store.conn).find(user_id)


def list_users(store: Store) -> list[User]:
    """Return every user in the order they were added."""
    return list(registry(store.conn).users.values())


# -- changes -----------------------------------------------------------------------------
def _append_change(store: Store, values: dict[str, object], key: Ed25519PrivateKey,
                   user_row_values: tuple[str, ...] | None = None) -> None:
    """Sign and append one change (and a new user's row), each link checkpointed."""
    values["signature"] = signing.sign(key, change_message(values))
    row = tuple(values[c] for c in CHANGE_COLUMNS)
    with store.conn:
        head = None
        if user_row_values is not None:
            head = chain.insert(store.conn, "users", [user_row_values], USER_COLUMNS, kind="user")
        head = chain.insert(store.conn, "user_changes", [row], CHANGE_COLUMNS,
                            kind="user_change")
    chain.write_anchor(store.path, head)


def add_user(store: Store, user_id: str, name: str, role: str, passphrase: str, *,
             by: Signer | None = None) -> User:
    """Record a new user with a fresh key sealed under their passphrase.

    The first user of a database needs no `by` and becomes its administrator; every later
    one needs an administrator or officer who just gave their passphrase.
    """
    name = validate_new_user(user_id, name, role, passphrase)
    user_id = validate_user_id(user_id)
    reg = registry(store.conn)
    if reg.find(user_id) is not None:
        raise LaserlogError(f"user {user_id} already exists (IDs are compared ignoring case); "
                            "users cannot be replaced")
    first = not reg.users
    if by is None and not first:
        raise AuthError("adding a user needs an administrator or officer: give --as ID "
                        "and their passphrase; nothing was written")
    if by is not None:
        require_manager(by.user, "add users")
    key = signing.new_key()
    sealed = signing.seal_key(key, passphrase)
    values: dict[str, object] = {
        "user_id": user_id, "change": "created", "name": name, "role": role,
        "administrator": int(by is None), "public_key_hex": signing.public_hex(key),
        "sealed_key": sealed.blob, "by_user_id": user_id if by is None else by.user.user_id,
        "changed_utc": utc_now()}
    _append_change(store, values, key if by is None else by.key,
                   user_row(user_id, name, role, sealed))
    found = find_user(store, user_id)
    assert found is not None
    return found


def require_manager(user: User, doing: str) -> None:
    """Refuse unless `user` may manage users."""
    if not user.manages:
        raise AuthError(f"user {user.user_id} is a {user.role}: to {doing} needs an "
                        "administrator or an officer; nothing was written")


def change_role(store: Store, user_id: str, role: str, by: Signer) -> User:
    """Give a user another role, authorised by an administrator or officer."""
    if role not in ROLES:
        raise LaserlogError(f"role {role!r} is unknown; expected one of {', '.join(ROLES)}")
    require_manager(by.user, "change roles")
    target = _existing(store, user_id)
    if target.role == role:
        raise LaserlogError(f"user {target.user_id} already is a {role}; nothing was written")
    _append_change(store, {"user_id": target.user_id, "change": "role", "name": None,
                           "role": role, "administrator": int(role == "administrator"),
                           "public_key_hex": None, "sealed_key": None,
                           "by_user_id": by.user.user_id, "changed_utc": utc_now()}, by.key)
    return _existing(store, user_id)


def revoke(store: Store, user_id: str, by: Signer) -> User:
    """Revoke a user: their later signatures are INVALID, earlier ones stand."""
    require_manager(by.user, "revoke users")
    target = _existing(store, user_id)
    if target.revoked_utc:
        raise LaserlogError(f"user {target.user_id} was revoked at {target.revoked_utc}")
    if target.user_id == by.user.user_id:
        raise AuthError("nobody revokes themselves: ask another administrator or officer; "
                        "nothing was written")
    _append_change(store, {"user_id": target.user_id, "change": "revoked", "name": None,
                           "role": None, "administrator": 0, "public_key_hex": None,
                           "sealed_key": None, "by_user_id": by.user.user_id,
                           "changed_utc": utc_now()}, by.key)
    return _existing(store, user_id)


def change_passphrase(store: Store, signer: Signer, new_passphrase: str) -> User:
    """Seal a user's key under a new passphrase (their own act: the key itself signs it)."""
    if len(new_passphrase) < MIN_PASSPHRASE:
        raise AuthError(f"the passphrase is too short: at least {MIN_PASSPHRASE} characters")
    sealed = signing.seal_key(signer.key, new_passphrase)
    _append_change(store, {"user_id": signer.user.user_id, "change": "passphrase",
                           "name": None, "role": None, "administrator": 0,
                           "public_key_hex": None, "sealed_key": sealed.blob,
                           "by_user_id": signer.user.user_id, "changed_utc": utc_now()},
                   signer.key)
    return _existing(store, signer.user.user_id)


def _existing(store: Store, user_id: str) -> User:
    found = find_user(store, user_id)
    if found is None:
        raise AuthError(f"unknown user {user_id!r} (see `laserlog users list`)")
    return found


# -- giving a passphrase ---------------------------------------------------------------------
def _sealed_key(conn: sqlite3.Connection, user: User) -> str | None:
    """Return the newest sealed copy of the user's own key (one sealed for another public
    key, written outside laserlog, is passed over)."""
    rows = conn.execute("SELECT user_id, sealed_key FROM user_changes WHERE sealed_key IS NOT"
                        " NULL AND id > 0 ORDER BY id DESC").fetchall()
    for row in rows:
        if _text_id(row[0]) != user.user_id:
            continue
        try:
            public = json.loads(str(row[1])).get("public")
        except (ValueError, AttributeError, RecursionError):
            continue
        if public == user.public_key:
            return str(row[1])
    return None


def unlock(store: Store, user_id: str, passphrase: str) -> Signer:
    """Return the user with their private key when the passphrase opens it.

    A user from before keys whose passphrase matches gets their key now (on a writable
    store). Unknown, revoked or untrusted users, and a wrong passphrase, raise AuthError.
    """
    user = find_user(store, user_id)
    if user is None:
        raise AuthError(f"unknown user {user_id!r} (see `laserlog users list`)")
    if user.untrusted:
        raise AuthError(f"user {user.user_id} cannot sign: {user.untrusted}")
    if user.revoked_utc:
        raise AuthError(f"user {user.user_id} was revoked at {user.revoked_utc}; nothing was "
                        "written")
    blob = _sealed_key(store.conn, user) if user.public_key else None
    if blob is not None:
        key = signing.open_key(blob, passphrase)
        if key is None or signing.public_hex(key) != user.public_key:
            raise AuthError(f"wrong passphrase for user {user.user_id}; nothing was written")
        return Signer(user, key)
    return _first_key(store, user, passphrase)


def _first_key(store: Store, user: User, passphrase: str) -> Signer:
    """Give a user from before keys their key, once their old passphrase check matches."""
    row = store.conn.execute("SELECT user_id, kdf, salt_hex, key_hex FROM users WHERE id = ?",
                             (user.source_row,)).fetchone()
    if row is None or not passphrase_matches(row[1], row[2], row[3], passphrase):
        raise AuthError(f"wrong passphrase for user {user.user_id}; nothing was written")
    if store.readonly:
        raise AuthError(f"user {user.user_id} has no key yet: give the passphrase once to a "
                        "command that writes (e.g. `laserlog users passphrase`)")
    key = signing.new_key()
    sealed = signing.seal_key(key, passphrase)
    _append_change(store, {"user_id": user.user_id, "change": "key", "name": None,
                           "role": None, "administrator": 0,
                           "public_key_hex": signing.public_hex(key), "sealed_key": sealed.blob,
                           "by_user_id": user.user_id, "changed_utc": utc_now()}, key)
    return Signer(_existing(store, user.user_id), key)


def authenticate(store: Store, user_id: str, passphrase: str) -> User:
    """Return the user when the passphrase matches; raise AuthError (same words) otherwise."""
    return unlock(store, user_id, passphrase).user


def authorise_start_over(store: Store, operator_id: str, passphrase: str) -> User:
    """Return the operator who starts a session although the console reports a fault or an
    open interlock: a registered user whose passphrase opens their key; raise AuthError."""
    try:
        return unlock(store, operator_id, passphrase).user
    except AuthError as exc:
        raise AuthError(f"starting a session over a console fault or an open interlock needs "
                        f"the operator to be a registered user who gives their passphrase "
                        f"(`laserlog users add`): {exc}") from None


def require_operator(store: Store, operator_id: str, passphrase: str) -> User:
    """Return the operator as a registered user whose passphrase opens their key, for a site
    that requires it (site file `[operators] registered = true`); raise AuthError otherwise."""
    try:
        return unlock(store, operator_id, passphrase).user
    except AuthError as exc:
        raise AuthError(f"this site requires operators to be registered users who give their "
                        f"passphrase at the start: {exc}") from None


#: Roles whose passphrase authorises a session before its course's window opens.
OVERRIDE_ROLES = ("officer", "administrator")
#: Where a script gives the authorising officer's passphrase (a prompt otherwise).
OFFICER_PASSPHRASE_ENV = "LASERLOG_OFFICER_PASSPHRASE"


def authorise_override(store: Store, user_id: str, passphrase: str) -> User:
    """Return the officer who authorises a course session before its window opens: a
    registered officer or administrator whose passphrase opens their key; raise AuthError."""
    try:
        user = unlock(store, user_id, passphrase).user
    except AuthError as exc:
        raise AuthError(f"an early course session needs an officer's authority: {exc}") from None
    if user.role not in OVERRIDE_ROLES and not user.administrator:
        raise AuthError(f"user {user.user_id} is a {user.role}: only an officer or an "
                        "administrator may authorise a session before its course's window "
                        "opens; nothing was written")
    return user
