"""Sign sessions off on the central server, as the people the server itself knows.

The signers are the server's own users (`central_users`, added by the database's owner),
not the users each console ships: a console's login may append to its shipped tables, so
a console must not decide who signs for it. A signature follows the local rules
(laserlog.review.signoff.check_signable) against the session's seal as the server holds it, and
is appended to `central_signoffs`, which officers may insert into, nobody may change, and
no sync touches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from laserlog.central.pgconn import ConsoleView, find_console
from laserlog.central.pgschema import (
    CENTRAL_SIGNOFF_COLUMNS,
    CENTRAL_SIGNOFFS,
    CENTRAL_USER_KEYS,
    CENTRAL_USERS,
    OFFICER_ROLE,
    SCHEMA,
    SCHEMA_VERSION,
    CentralError,
    check_version,
    migrate,
)
from laserlog.central.server import open_server, redact
from laserlog.errors import LaserlogError
from laserlog.review.signoff import Signature, SignoffError, check_signable, signature_row
from laserlog.review.users import (
    USER_COLUMNS,
    AuthError,
    Signer,
    User,
    passphrase_matches,
    user_row,
    validate_new_user,
    validate_user_id,
)
from laserlog.storage import signing
from laserlog.storage.store import utc_now


@contextmanager
def _server(url: str, doing: str, needs: str) -> Iterator[Any]:
    """Yield a connection whose schema is this laserlog's; turn server refusals into messages."""
    import psycopg

    where = redact(url)
    pg = open_server(url, after=" (nothing was written)")
    pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        version = check_version(pg, where)
        if version == 0:
            raise CentralError(f"{where} holds no laserlog data yet (run `laserlog sync --to` "
                               "first)")
        if version < SCHEMA_VERSION:
            pg.rollback()
            migrate(pg, where)  # as the owner; anyone else is told to ask the owner
            pg.commit()
        yield pg
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CentralError(f"{where} refused to {doing}: {exc.diag.message_primary} ({needs}); "
                           "nothing was written") from None
    except psycopg.OperationalError as exc:
        raise CentralError(f"lost the central server {where} while trying to {doing}: "
                           f"{str(exc).strip().splitlines()[-1]}; nothing was written") from None
    except psycopg.Error as exc:
        raise CentralError(f"{where} refused to {doing}: {exc}; nothing was written") from None
    finally:
        pg.close()


def add_user(url: str, user_id: str, name: str, role: str, passphrase: str) -> User:
    """Add a person who signs on the server; refuse what `laserlog users add` refuses locally."""
    name = validate_new_user(user_id, name, role, passphrase)
    user_id = validate_user_id(user_id)
    where = redact(url)
    if role == "administrator":
        raise LaserlogError(f"{where} has no administrator role: the database's owner manages "
                            "the users who sign there (roles: technician, officer, engineer)")
    with _server(url, "add a user", "users on the server are added by the database's owner"
                 ) as pg:
        pg.execute("SELECT pg_advisory_xact_lock(hashtext('laserlog central users'))")
        if pg.execute(f"SELECT 1 FROM {SCHEMA}.{CENTRAL_USERS} WHERE lower(user_id) = %s",
                      (user_id,)).fetchone():
            raise LaserlogError(f"user {user_id} already exists on {where} (IDs are compared "
                                "ignoring case); users cannot be replaced")
        key = signing.new_key()
        sealed = signing.seal_key(key, passphrase)
        row = (*user_row(user_id, name, role, sealed), signing.public_hex(key), sealed.blob)
        names = (*USER_COLUMNS, "public_key_hex", "sealed_key")
        pg.execute(f"INSERT INTO {SCHEMA}.{CENTRAL_USERS} ({', '.join(names)})"
                   f" VALUES ({', '.join(['%s'] * len(names))})", row)
        pg.commit()
    return User(user_id, name, role, row[6], public_key=signing.public_hex(key))


def list_users(url: str) -> list[User]:
    """Return the people who sign on the server, in the order they were added."""
    with _server(url, "list its users", f"reading them needs the {OFFICER_ROLE} role") as pg:
        return [User(*r) for r in pg.execute(
            f"SELECT user_id, name, role, created_utc FROM {SCHEMA}.{CENTRAL_USERS}"
            " ORDER BY id").fetchall()]


def _authenticate(pg: Any, where: str, user_id: str, passphrase: Callable[[], str]) -> Signer:
    row = pg.execute(f"SELECT u.user_id, u.name, u.role, u.created_utc, u.kdf, u.salt_hex,"
                     " u.key_hex, coalesce(u.sealed_key, k.sealed_key),"
                     " coalesce(u.public_key_hex, k.public_key_hex)"
                     f" FROM {SCHEMA}.{CENTRAL_USERS} u LEFT JOIN {SCHEMA}.{CENTRAL_USER_KEYS} k"
                     " ON k.user_id = u.user_id WHERE lower(u.user_id) = %s",
                     (user_id.strip().casefold(),)).fetchone()
    if row is None:
        raise AuthError(f"unknown user {user_id!r} on {where}: people who sign on the central "
                        "server are its own users (see `laserlog users list --db URL`; the "
                        "database's owner adds them with `laserlog users add ID --name NAME "
                        "--role ROLE --db URL`)")
    given = passphrase()
    user = User(row[0], row[1], row[2], row[3], public_key=row[8])
    if row[7] is not None:
        key = signing.open_key(row[7], given)
        if key is None or signing.public_hex(key) != row[8]:
            raise AuthError(f"wrong passphrase for user {row[0]}; nothing was written")
        return Signer(user, key)
    # A server user from before keys: the old check, then their key, as a row of its own.
    if not passphrase_matches(row[4], row[5], row[6], given):
        raise AuthError(f"wrong passphrase for user {row[0]}; nothing was written")
    key = signing.new_key()
    sealed = signing.seal_key(key, given)
    pg.execute(f"INSERT INTO {SCHEMA}.{CENTRAL_USER_KEYS} (user_id, public_key_hex, sealed_key,"
               " created_utc) VALUES (%s, %s, %s, %s)",
               (row[0], signing.public_hex(key), sealed.blob, utc_now()))
    return Signer(User(row[0], row[1], row[2], row[3], public_key=signing.public_hex(key)), key)


def sign(url: str, console: str | None, session_id: int, user_id: str, meaning: str,
         passphrase: Callable[[], str]) -> tuple[Signature, str]:
    """Sign one console's session on the server; return the signature and the console's name.

    `passphrase` is asked only once the session is known to exist.
    """
    where = redact(url)
    with _server(url, "record the sign-off",
                 f"signing on the server needs a login in the {OFFICER_ROLE} role") as pg:
        found = find_console(pg, console, where)
        console_id, name = found[0], found[1]
        view: Any = ConsoleView(pg, console_id, name)
        if view.execute("SELECT id FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
            raise SignoffError(f"no session {session_id} of console {name} on {where} (see "
                               "`laserlog report energy --by session --db URL`)")
        signer = _authenticate(pg, where, user_id, passphrase)
        user = signer.user
        pg.commit()
        # Two officers signing the same console take turns; the snapshot that decides comes
        # after the turn (a session-level lock: it outlives the commit that follows it).
        pg.execute("SELECT pg_advisory_lock(hashtext('laserlog central signoff'), %s)",
                   (console_id,))
        pg.commit()
        target = check_signable(view, session_id, user, meaning,
                                f"console {name} on {where}")
        row = (console_id, *signature_row(session_id, signer, meaning, target))
        new_id = pg.execute(
            f"INSERT INTO {SCHEMA}.{CENTRAL_SIGNOFFS} ({', '.join(CENTRAL_SIGNOFF_COLUMNS)})"
            f" VALUES ({', '.join(['%s'] * len(row))}) RETURNING id", row).fetchone()[0]
        pg.commit()
    return Signature(int(new_id), session_id, user.user_id, user.name, user.role, meaning,
                     str(row[6]), target.seal_link, target.seal_hash, True, "", "server"), name
