"""Consent and aftercare texts: the site's Markdown files, read whole and named by SHA-256.

A version of a document is the SHA-256 of the file's bytes, so the same text is the same
version wherever it comes from, and one changed byte is a new version. The file is opened
once and checked on the open descriptor (a regular file, at most 1 MB, UTF-8 text with no
control characters but tab and line breaks): a folder, a FIFO or a device is refused without
blocking, and a file swapped after the check is not the one read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from laserlog.config.files import NotARegularFile, control_character, open_regular
from laserlog.errors import LaserlogError

KINDS = ("consent", "aftercare")
#: The largest document laserlog keeps: a consent or aftercare text runs to a few pages.
MAX_DOCUMENT_BYTES = 2**20


class DocumentError(LaserlogError):
    """Raise when a consent or aftercare file cannot be taken as a document."""


@dataclass(frozen=True, slots=True)
class Document:
    """One version of a consent or aftercare text, as read from its file."""

    kind: str
    path: Path
    sha256: str
    text: str
    size_bytes: int

    @property
    def version(self) -> str:
        """Return the short form of the version people read (the SHA-256's first 12 digits)."""
        return self.sha256[:12]


def read_document(path: str | Path, kind: str, what: str) -> Document:
    """Return the document a file holds; raise DocumentError naming `what` (the option or the
    site file's key) and the file, and what was expected."""
    if kind not in KINDS:
        raise ValueError(f"unknown document kind {kind!r}")
    path = Path(path)
    expected = (f"expected a UTF-8 Markdown file of at most {MAX_DOCUMENT_BYTES} bytes, e.g. "
                f"{kind}.md; nothing was written")
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise DocumentError(f"{what} {path}: no such file; {expected}") from None
    except NotARegularFile as exc:
        raise DocumentError(f"{what} {path}: {exc.kind.removeprefix('not ')} is not a "
                            f"Markdown file; {expected}") from None
    except OSError as exc:
        raise DocumentError(f"{what} {path}: cannot be read ({exc.strerror}); {expected}"
                            ) from None
    try:
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_DOCUMENT_BYTES + 1)
    except IsADirectoryError:  # some systems refuse read() on a folder before fstat says so
        raise DocumentError(f"{what} {path}: a folder is not a Markdown file; {expected}"
                            ) from None
    except OSError as exc:
        raise DocumentError(f"{what} {path}: cannot be read ({exc.strerror}); {expected}"
                            ) from None
    finally:
        os.close(fd)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{what} {path}: larger than {MAX_DOCUMENT_BYTES} bytes; "
                            f"{expected}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{what} {path}: not UTF-8 text (byte {exc.start}); {expected}"
                            ) from None
    body = text.removeprefix("\ufeff")
    if not body.strip():
        raise DocumentError(f"{what} {path}: empty; {expected}")
    number = control_character(body)
    if number is not None:
        line = body.count("\n", 0, number) + 1
        raise DocumentError(f"{what} {path}: control character U+{ord(body[number]):04X} on "
                            f"line {line}, so not Markdown text; {expected}")
    return Document(kind, path, hashlib.sha256(data).hexdigest(), text, len(data))


def site_document(kind: str, given: str | Path | None, what: str,
                  db_file: str | Path) -> Document | None:
    """Return the document a file names (`given`, refused naming `what`), else the site
    file's for this database; None when neither names one."""
    from laserlog.config.siteconfig import site_for

    if given is not None:
        return read_document(Path(given), kind, what)
    site = site_for(db_file)
    configured = site.consent_file if kind == "consent" else site.aftercare_file
    if configured is None:
        return None
    return read_document(configured, kind, f"the site file {site.source}: [documents] {kind}")
