"""One console's rows on the server, read through the sqlite3 calls laserlog already makes.

`ConsoleView` is what the report and verify code gets instead of a sqlite3 connection: it
shadows the console tables with temporary views of one console (its own ids, its own
columns, so `SELECT * FROM sessions` reads as on the console), turns `?` and `:name`
parameters into psycopg's, and SQLite's `strftime(..., 'unixepoch')` into `to_char`.
Values are bound client-side by psycopg's escaping (never pasted from user text), and
queries that stream in id order run on server-side cursors, so a 100 M pulse table is
walked in pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from psycopg.adapt import Loader

from laserlog.central.pgschema import (
    CENTRAL_SIGNOFFS,
    CENTRAL_USER_KEYS,
    CENTRAL_USERS,
    SCHEMA,
    TABLES,
    columns,
)

_STRFTIME = re.compile(
    r"strftime\('%Y-%m-%dT%H:%M:%fZ',\s*([\w.]+),\s*'unixepoch'\)", re.IGNORECASE)
# SQLite's 'unixepoch' keeps whole milliseconds of the Julian day, rounded in double
# arithmetic: floor(t * 1000 + 210866760000000 + 0.5). The same sums in float8 give the
# same millisecond, so times read on the server print exactly as on the console.
_MS = ("(floor(({0})::float8 * 1000 + 210866760000000::float8 + 0.5::float8)"
       " - 210866760000000::float8)")
_ISO_MS = ("to_char(to_timestamp(" + _MS + " / 1000) AT TIME ZONE 'UTC',"
           " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
_STRFTIME_S = re.compile(
    r"strftime\('%Y-%m-%dT%H:%M:%SZ',\s*([\w.]+),\s*'unixepoch'\)", re.IGNORECASE)
# %S: the same millisecond, its fraction dropped.
_ISO_S = ("to_char(to_timestamp(floor(" + _MS + " / 1000)) AT TIME ZONE 'UTC',"
          " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
_GROUP_CONCAT = re.compile(r"group_concat\((DISTINCT\s+)?([\w.]+)\)", re.IGNORECASE)
_NAMED = re.compile(r"(?<!:):([A-Za-z_]\w*)")


def translate(sql: str) -> str:
    """Return SQLite-flavoured SQL as psycopg SQL: placeholders, %, strftime, group_concat."""
    sql = _STRFTIME.sub(lambda m: _ISO_MS.format(m.group(1)), sql)
    sql = _STRFTIME_S.sub(lambda m: _ISO_S.format(m.group(1)), sql)
    sql = _GROUP_CONCAT.sub(lambda m: f"string_agg({m.group(1) or ''}{m.group(2)}, ',')", sql)
    out = []
    for index, part in enumerate(re.split(r"('(?:[^']|'')*')", sql)):
        part = part.replace("%", "%%")
        if index % 2 == 0:  # outside string literals
            part = _NAMED.sub(r"%(\1)s", part.replace("?", "%s"))
        out.append(part)
    return "".join(out)


class _NumericLoader(Loader):
    """Load numeric as int when whole, else float (what SQLite returns for the same sums)."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode("ascii")
        return int(text) if text.lstrip("-").isdigit() else float(text)


class Row(tuple):
    """A result row read by position or by column name, like sqlite3.Row."""

    _names: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_class(description: Sequence[Any] | None) -> type[Row]:
    names = {d[0]: i for i, d in enumerate(description or ())}
    return type("Row", (Row,), {"_names": names})


class Cursor:
    """The part of sqlite3.Cursor laserlog uses, over a psycopg cursor."""

    def __init__(self, view: ConsoleView) -> None:
        self._view = view
        self._cur: Any = None
        self._row: type[Row] | None = None
        self.row_factory: Any = "row"  # None: plain tuples (the chain hashes them as read)

    def execute(self, sql: str, params: Any = None) -> Cursor:
        text = self._view.bind(sql, params)
        head = text.lstrip()[:6].upper()
        stream = head == "SELECT" and "ORDER BY" in text.upper() and "LIMIT" not in text.upper()
        if stream:
            self._view.cursors += 1
            self._cur = self._view.pg.cursor(name=f"laserlog_{self._view.cursors}")
            self._cur.itersize = 8192
        else:
            self._cur = self._view.pg.cursor()
        self._cur.execute(text)
        self._row = _row_class(self._cur.description) if self.row_factory is not None else None
        return self

    @property
    def description(self) -> Any:
        return self._cur.description

    def _wrap(self, rows: list[tuple]) -> list[Any]:
        if self._row is None:
            return rows
        make = self._row
        return [make(r) for r in rows]

    def fetchone(self) -> Any:
        row = self._cur.fetchone()
        if row is None or self._row is None:
            return row
        return self._row(row)

    def fetchmany(self, size: int = 1) -> list[Any]:
        return self._wrap(self._cur.fetchmany(size))

    def fetchall(self) -> list[Any]:
        return self._wrap(self._cur.fetchall())

    def __iter__(self) -> Iterator[Any]:
        while True:
            rows = self.fetchmany(8192)
            if not rows:
                return
            yield from rows


class ConsoleView:
    """A psycopg connection that shows the laserlog tables of one console, as on the console.

    Sign-offs given on the server show as the view `central_signoffs` (the `signoffs`
    columns), and `central_signoffs` is True, when the server holds them.
    """

    def __init__(self, pg: Any, console_id: int, name: str) -> None:
        from psycopg import ClientCursor

        self.pg = pg
        self.console_id = console_id
        self.name = name
        self.cursors = 0
        self.central_signoffs = pg.execute(
            "SELECT to_regclass(%s)", (f"{SCHEMA}.{CENTRAL_SIGNOFFS}",)).fetchone()[0] is not None
        if self.central_signoffs:
            pg.execute(f"CREATE OR REPLACE TEMP VIEW {CENTRAL_SIGNOFFS} AS SELECT"
                       f" {', '.join(columns('signoffs'))} FROM {SCHEMA}.{CENTRAL_SIGNOFFS}"
                       f" WHERE console_id = {int(console_id)}")
        self._binder = ClientCursor(pg)
        # sum() of integers is numeric in PostgreSQL: read it back as SQLite gives it.
        pg.adapters.register_loader("numeric", _NumericLoader)
        for table in TABLES:
            pg.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT {', '.join(columns(table))}"
                       f" FROM {SCHEMA}.{table} WHERE console_id = {int(console_id)}")
        # The console schema's two readable views (laserlog.storage.schema), over the views above.
        pg.execute("CREATE OR REPLACE TEMP VIEW pulse_log AS SELECT p.id, p.session_id, p.seq, "
                   + _ISO_MS.format("p.received_unix_s") + " AS received_utc,"
                   " p.pulse_duration_ps, p.regime, p.energy_j, p.fluence_j_cm2, p.spot_mm,"
                   " p.wavelength_nm, p.rep_rate_hz, p.handpiece, p.beamlet_fluence_j_cm2,"
                   " p.derived FROM pg_temp.pulses p")
        pg.execute("CREATE OR REPLACE TEMP VIEW event_log AS SELECT e.id, e.session_id, "
                   + _ISO_MS.format("e.received_unix_s") + " AS received_utc,"
                   " e.kind, e.severity, e.code, e.message, e.missing_pulses, e.count, e.raw"
                   " FROM pg_temp.events e")
        # The course schema's views (laserlog.storage.schema, migration 5), the same way.
        pg.execute("CREATE OR REPLACE TEMP VIEW session_kind AS SELECT s.id AS session_id,"
                   " coalesce(k.kind, 'one_off') AS kind, k.course_id, k.override_by,"
                   " k.override_reason FROM pg_temp.sessions s LEFT JOIN pg_temp.session_kinds k"
                   " ON k.id = (SELECT max(id) FROM pg_temp.session_kinds WHERE session_id = s.id)")
        pg.execute("CREATE OR REPLACE TEMP VIEW pass_starts AS SELECT e.id, e.session_id,"
                   " e.code AS pass_number, e.raw AS sub_area, e.received_unix_s AS"
                   " started_unix_s, " + _ISO_MS.format("e.received_unix_s") + " AS started_utc"
                   " FROM pg_temp.events e WHERE e.kind = 'pass'")
        pg.execute("CREATE OR REPLACE TEMP VIEW pulse_passes AS SELECT p.id AS pulse_id,"
                   " p.session_id, ps.pass_number, ps.sub_area FROM pg_temp.pulses p"
                   " LEFT JOIN pg_temp.pass_starts ps ON ps.id = (SELECT e.id FROM"
                   " pg_temp.events e WHERE e.session_id = p.session_id AND e.kind = 'pass'"
                   " AND e.received_unix_s <= p.received_unix_s"
                   " ORDER BY e.received_unix_s DESC, e.id DESC LIMIT 1)")

        # The reactions schema's view (migration 6): each adverse event in its newest state;
        # `retracted` 0 or 1 as SQLite gives it, so reports read the same from both.
        pg.execute("CREATE OR REPLACE TEMP VIEW adverse_event_state AS SELECT a.id,"
                   " a.session_id, a.kind, a.onset_date, a.seriousness, a.area, a.pass_number,"
                   " a.note, a.by_user_id, a.recorded_utc, (SELECT c.outcome FROM"
                   " pg_temp.adverse_event_changes c WHERE c.adverse_event_id = a.id AND"
                   " c.change = 'update' ORDER BY c.id DESC LIMIT 1) AS outcome, (SELECT"
                   " c.outcome_date FROM pg_temp.adverse_event_changes c WHERE"
                   " c.adverse_event_id = a.id AND c.change = 'update' ORDER BY c.id DESC"
                   " LIMIT 1) AS outcome_date, EXISTS (SELECT 1 FROM"
                   " pg_temp.adverse_event_changes c WHERE c.adverse_event_id = a.id AND"
                   " c.change = 'retraction')::int AS retracted FROM pg_temp.adverse_events a")

    def installation_keys(self) -> set[str]:
        """Return the installation keys this console registered with the server."""
        row = self.pg.execute(f"SELECT installation_keys FROM {SCHEMA}.consoles"
                              " WHERE console_id = %s", (self.console_id,)).fetchone()
        return {k for k in str(row[0] if row else "").split(",") if k}

    def server_user(self, user_id: str) -> tuple[str | None, str]:
        """Return (public key, role) of a user who signs on the server (None: no key)."""
        row = self.pg.execute(
            f"SELECT coalesce(u.public_key_hex, k.public_key_hex), u.role FROM"
            f" {SCHEMA}.{CENTRAL_USERS} u LEFT JOIN {SCHEMA}.{CENTRAL_USER_KEYS} k"
            " ON k.user_id = u.user_id WHERE u.user_id = %s", (user_id,)).fetchone()
        return (row[0], str(row[1])) if row else (None, "")

    def bind(self, sql: str, params: Any) -> str:
        """Return the query with its values escaped in (psycopg's client-side binding)."""
        text = translate(sql)
        if params is None:
            return text.replace("%%", "%")
        if isinstance(params, dict):
            return str(self._binder.mogrify(text, params))
        return str(self._binder.mogrify(text, list(params)))

    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute(self, sql: str, params: Any = None) -> Cursor:
        return Cursor(self).execute(sql, params)


def find_console(pg: Any, ref: str | None,
                 where: str) -> tuple[int, str, str | None, str, int, str, str]:
    """Return the console a --console value names (its name, UUID or server number).

    Without one, the server must hold exactly one console.
    """
    from laserlog.central.pgschema import CentralError

    known = consoles(pg)
    if ref is None:
        if len(known) == 1:
            return known[0]
        names = ", ".join(c[1] for c in known) or "none yet"
        raise CentralError(f"{where} holds {len(known)} consoles ({names}): say which with "
                           "--console NAME (or its UUID)")
    found = [c for c in known if ref in (c[1], c[3], str(c[0]))]
    if len(found) != 1:
        names = ", ".join(f"{c[1]} ({c[3]})" for c in known) or "none yet"
        what = "no console" if not found else f"{len(found)} consoles"
        raise CentralError(f"{where} has {what} named {ref!r}; its consoles: {names}")
    return found[0]


def consoles(pg: Any) -> list[tuple[int, str, str | None, str, int, str, str]]:
    """Return (id, name, site, uuid, head link, head hash, last ids) of every console."""
    return [tuple(r) for r in pg.execute(
        f"SELECT console_id, name, site, console_uuid::text, head_link, head_hash, last_ids"
        f" FROM {SCHEMA}.consoles ORDER BY name, console_id").fetchall()]
