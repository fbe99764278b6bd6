"""Keys that sign: a person's key sealed under their passphrase, and an installation's key.

Ed25519 throughout (the `cryptography` package). A person's private key is stored with
them, encrypted with ChaCha20-Poly1305 under a key derived from their passphrase by scrypt
(memory-hard); the same derivation gives the passphrase check older rows use, so one
derivation serves both. An installation's key lives in a file of its own outside every
database (0600 in a 0700 folder), made the first time it is needed; it signs the chain's
checkpoints, so a chain rebuilt without it fails `laserlog verify`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from laserlog.config.files import private_folders
from laserlog.errors import LaserlogError

#: scrypt cost: 2^14 x 8 x 1 takes ~50 ms and 16 MiB here; stored per key, so it can grow.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCRYPT_MAXMEM = 256 * 1024 * 1024
INSTALLATION_KEY_ENV = "LASERLOG_INSTALLATION_KEY"
_RAW = serialization.Encoding.Raw


class KeyFileError(LaserlogError):
    """Raise when a key file or a sealed key cannot be used: which, and why."""


def derive(passphrase: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R,
           p: int = SCRYPT_P) -> tuple[bytes, bytes]:
    """Return (passphrase check, sealing key) from one scrypt derivation of 64 bytes.

    The first 32 bytes equal a 32-byte derivation (scrypt ends in PBKDF2, whose blocks are
    independent), so a check stored by older laserlog still matches.
    """
    out = hashlib.scrypt(passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                         maxmem=SCRYPT_MAXMEM, dklen=64)
    return out[:32], out[32:]


def new_key() -> Ed25519PrivateKey:
    """Return a fresh private key."""
    return Ed25519PrivateKey.generate()


def public_hex(key: Ed25519PrivateKey) -> str:
    """Return the public half of a key as 64 hex digits."""
    return key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw).hex()


def fingerprint(public: str) -> str:
    """Return a public key's short fingerprint for people to compare: 'ab12 cd34 ef56 7890'."""
    digest = hashlib.sha256(bytes.fromhex(public)).hexdigest()[:16]
    return " ".join(digest[i:i + 4] for i in range(0, 16, 4))


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    """Return the signature of a message as hex."""
    return key.sign(message).hex()


@functools.lru_cache(maxsize=64)
def _public_key(public: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))


def verifies(public: str | None, message: bytes, signature: str | None) -> bool:
    """Return whether `signature` (hex) is `public`'s signature of `message`."""
    if not isinstance(public, str) or not isinstance(signature, str) or not public:
        return False
    try:
        _public_key(public).verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


# -- a person's key, sealed under their passphrase ----------------------------------------
@dataclass(frozen=True, slots=True)
class Sealed:
    """A private key sealed under a passphrase, and the passphrase check of the same salt."""

    blob: str  # JSON: kdf parameters, salt, nonce, ciphertext
    kdf: str  # "scrypt n=.. r=.. p=.." as the users table stores it
    salt_hex: str
    check_hex: str


def seal_key(key: Ed25519PrivateKey, passphrase: str) -> Sealed:
    """Return `key` sealed under `passphrase` (one scrypt derivation, ~50 ms)."""
    salt = secrets.token_bytes(16)
    check, sealing = derive(passphrase, salt)
    nonce = secrets.token_bytes(12)
    raw = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    box = ChaCha20Poly1305(sealing).encrypt(nonce, raw, b"laserlog user key 1")
    kdf = f"scrypt n={SCRYPT_N} r={SCRYPT_R} p={SCRYPT_P}"
    blob = json.dumps({"format": 1, "kdf": kdf, "salt": salt.hex(), "nonce": nonce.hex(),
                       "sealed": box.hex(), "public": public_hex(key)}, sort_keys=True)
    return Sealed(blob, kdf, salt.hex(), check.hex())


def kdf_params(kdf: str) -> tuple[int, int, int]:
    """Return (n, r, p) from a stored 'scrypt n=.. r=.. p=..' text, bounded to sane costs."""
    try:
        parts = dict(part.split("=") for part in kdf.split()[1:])
        n, r, p = int(parts["n"]), int(parts["r"]), int(parts["p"])
    except (KeyError, ValueError):
        raise KeyFileError(f"key derivation {kdf!r} is not laserlog's") from None
    if not (kdf.startswith("scrypt ") and 2 <= n <= 2**20 and n & (n - 1) == 0
            and 1 <= r <= 32 and 1 <= p <= 16):
        raise KeyFileError(f"key derivation {kdf!r} is outside the costs laserlog uses")
    return n, r, p


def open_key(blob: str, passphrase: str) -> Ed25519PrivateKey | None:
    """Return the private key sealed in `blob`, or None when the passphrase does not open it."""
    try:
        data = json.loads(blob)
        n, r, p = kdf_params(str(data["kdf"]))
        _, sealing = derive(passphrase, bytes.fromhex(data["salt"]), n, r, p)
        raw = ChaCha20Poly1305(sealing).decrypt(bytes.fromhex(data["nonce"]),
                                                bytes.fromhex(data["sealed"]),
                                                b"laserlog user key 1")
    except InvalidTag:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError(f"a stored key is damaged ({exc}); nothing was signed") from None
    key = Ed25519PrivateKey.from_private_bytes(raw)
    if public_hex(key) != data.get("public"):
        raise KeyFileError("a stored key does not match its public half; nothing was signed")
    return key


# -- the installation's key -----------------------------------------------------------------
def installation_key_path() -> Path:
    """Return where this installation's key lives ($LASERLOG_INSTALLATION_KEY first)."""
    env = os.environ.get(INSTALLATION_KEY_ENV)
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("laserlog")) / "installation.key"


def _read_key_file(path: Path) -> Ed25519PrivateKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise KeyFileError(f"installation key {path} cannot be read: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise KeyFileError(f"installation key {path} is not a regular file")
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"installation key {path} is not a key laserlog made (damaged or "
                        "replaced); restore it from its backup") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"installation key {path} is not an Ed25519 key")
    return key


def installation_key(*, create: bool = True) -> tuple[Ed25519PrivateKey | None, Path, bool]:
    """Return (this installation's key, its path, whether it was just made).

    Made at first use with `create`; None without it when there is no key yet.
    """
    path = installation_key_path()
    if path.exists() or path.is_symlink():
        return _read_key_file(path), path, False
    if not create:
        return None, path, False
    private_folders(path.parent)
    key = new_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:  # another laserlog made it first: use theirs
        return _read_key_file(path), path, False
    except OSError as exc:
        raise KeyFileError(f"cannot make the installation key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return key, path, True
