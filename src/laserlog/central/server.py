"""Open a connection to the central server, with messages a technician can act on."""

from __future__ import annotations

import re
from typing import Any

from laserlog.central.pgschema import CentralError


def redact(url: str) -> str:
    """Return the URL without its password, fit for messages and the console's records."""
    return re.sub(r"^(\w+://[^:/@]*):[^@]*@", r"\1@", url)


def open_server(url: str, *, connect_timeout_s: float = 10,
                after: str = " (nothing was written; the next sync retries)") -> Any:
    """Return a psycopg connection (not autocommit), or raise CentralError saying why not."""
    try:
        import psycopg
    except ImportError:
        raise CentralError("the central server needs psycopg: pip install 'laserlog[central]'"
                           ) from None
    where = redact(url)
    try:
        return psycopg.connect(url, connect_timeout=max(1, int(connect_timeout_s)),
                               application_name="laserlog")
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password authentication failed" in text or "no password supplied" in text:
            raise CentralError(f"{where} refused the login: wrong user name or password "
                               "(nothing was written)") from None
        if "does not exist" in text:
            detail = text.strip().splitlines()[-1].split("FATAL:")[-1].strip()
            raise CentralError(f"{where}: {detail} (nothing was written)") from None
        raise CentralError(f"cannot reach the central server {where}: {_reason(text)}{after}"
                           ) from None
    except psycopg.ProgrammingError as exc:
        raise CentralError(f"{where} is not a usable PostgreSQL address: {exc}") from None


def _reason(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if "refused" in line or "timeout" in line or "resolve" in line or "unreachable" in line:
            return line.split(":")[-1].strip() or line
    return lines[-1] if lines else "no answer"
