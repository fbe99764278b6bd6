"""People's IDs as laserlog compares them: one rule for users and for session operators.

An ID is compared after case-folding, trimming and dropping surrounding punctuation, so
`TECH-07`, `tech-07` and `tech-07.` are one person. A new ID must already be in normal
form: 1-40 of a-z, 0-9, '.', '_' and '-', starting and ending with a letter or digit.
"""

from __future__ import annotations

import re

from laserlog.errors import LaserlogError

_ID = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,38}[a-z0-9])?")
_PUNCTUATION = " \t._-"


def comparable(person_id: str) -> str:
    """Return an ID as compared everywhere: case-folded, trimmed, surrounding punctuation off."""
    return person_id.casefold().strip().strip(_PUNCTUATION).strip()


def normal_id(person_id: str, what: str = "user ID") -> str:
    """Return a new ID in normal form (case-folded, trimmed), or raise naming what is allowed."""
    normal = person_id.strip().casefold()
    if not _ID.fullmatch(normal) or ".." in normal:
        raise LaserlogError(f"{what} {person_id!r} is not allowed; expected 1-40 letters, digits, "
                            "'.', '_' or '-', starting and ending with a letter or digit "
                            "(e.g. 'tech-07'; case does not count)")
    return normal
