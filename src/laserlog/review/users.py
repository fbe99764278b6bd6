"""People who review, sign and calibrate: an ID, a printed name, a role and a passphrase.

Passphrases are stored as hashlib.scrypt keys with a random salt per user, never as text.
Users are append-only rows in the hash chain: a user cannot be replaced or removed.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import re
import secrets
import sys
from dataclasses import dataclass

from laserlog.errors import LaserlogError
from laserlog.storage import chain
from laserlog.storage.store import Store, utc_now

ROLES = ("technician", "officer", "engineer")
MIN_PASSPHRASE = 10
# scrypt cost: 2^14 x 8 x 1 takes ~50 ms and 16 MiB here; stored per user, so it can grow.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,39}")
PASSPHRASE_ENV = "LASERLOG_PASSPHRASE"


class AuthError(LaserlogError):
    """Raise when a user is unknown or the passphrase does not match."""


@dataclass(frozen=True, slots=True)
class User:
    """A person laserlog knows."""

    user_id: str
    name: str
    role: str
    created_utc: str


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * 1024 * 1024, dklen=32)


def read_passphrase(prompt: str = "passphrase: ", *, confirm: bool = False) -> str:
    """Return a passphrase from $LASERLOG_PASSPHRASE, a prompt, or the first line of stdin."""
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        try:
            env.encode("utf-8")
        except UnicodeEncodeError:
            raise AuthError(f"${PASSPHRASE_ENV} is not UTF-8 text; nothing was written") from None
        return env
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != first:
            raise AuthError("the two passphrases differ; nothing was written")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n")


def validate_user_id(user_id: str) -> str:
    """Return a user ID or raise naming what is allowed."""
    if not _USER_ID.fullmatch(user_id):
        raise LaserlogError(f"user ID {user_id!r} is not allowed; expected 2-40 letters, digits, "
                            "'.', '_' or '-' (e.g. 'lso-01')")
    return user_id


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


#: The stored columns of a user, in `user_row` order.
USER_COLUMNS = ("user_id", "name", "role", "kdf", "salt_hex", "key_hex", "created_utc")


def user_row(user_id: str, name: str, role: str, passphrase: str) -> tuple[str, ...]:
    """Return a validated user's stored row (USER_COLUMNS): a fresh salt and its scrypt key."""
    salt = secrets.token_bytes(16)
    key = _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return (user_id, name, role, f"scrypt n={SCRYPT_N} r={SCRYPT_R} p={SCRYPT_P}", salt.hex(),
            key.hex(), utc_now())


def check_passphrase(row: tuple, passphrase: str) -> User:
    """Return the user of a stored row (user_id, name, role, created_utc, kdf, salt_hex,
    key_hex) when the passphrase matches; raise AuthError otherwise."""
    params = dict(part.split("=") for part in row[4].split()[1:])
    key = _derive(passphrase, bytes.fromhex(row[5]), int(params["n"]), int(params["r"]),
                  int(params["p"]))
    if not hmac.compare_digest(key, bytes.fromhex(row[6])):
        raise AuthError(f"wrong passphrase for user {row[0]}; nothing was written")
    return User(row[0], row[1], row[2], row[3])


def add_user(store: Store, user_id: str, name: str, role: str, passphrase: str) -> User:
    """Record a new user; refuse a taken ID, an empty name, an unknown role, a short passphrase."""
    name = validate_new_user(user_id, name, role, passphrase)
    if find_user(store, user_id) is not None:
        raise LaserlogError(f"user {user_id} already exists; users cannot be replaced")
    row = user_row(user_id, name, role, passphrase)
    created = row[-1]
    with store.conn:
        head = chain.insert(store.conn, "users", [row], USER_COLUMNS, kind="user")
    chain.write_anchor(store.path, head)
    return User(user_id, name, role, created)


def find_user(store: Store, user_id: str) -> User | None:
    """Return a user by ID, or None."""
    row = store.conn.execute("SELECT user_id, name, role, created_utc FROM users WHERE user_id = ?",
                             (user_id,)).fetchone()
    return User(row[0], row[1], row[2], row[3]) if row else None


def list_users(store: Store) -> list[User]:
    """Return every user in the order they were added."""
    return [User(r[0], r[1], r[2], r[3]) for r in store.conn.execute(
        "SELECT user_id, name, role, created_utc FROM users ORDER BY id")]


def authenticate(store: Store, user_id: str, passphrase: str) -> User:
    """Return the user when the passphrase matches; raise AuthError (same words) otherwise."""
    row = store.conn.execute("SELECT user_id, name, role, created_utc, kdf, salt_hex, key_hex"
                             " FROM users WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        raise AuthError(f"unknown user {user_id!r} (see `laserlog users list`)")
    return check_passphrase(row, passphrase)
