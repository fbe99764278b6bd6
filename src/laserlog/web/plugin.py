"""The laserlog Datasette plugin: signature SQL functions, session report pages, links.

Registered by `laserlog serve` only (laserlog.web.serve), never as an entry point, so a
plain `datasette` run elsewhere is not changed by it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Any

from datasette import hookimpl
from datasette.utils.asgi import Forbidden, NotFound, Request, Response
from markupsafe import Markup, escape

from laserlog.web import cells
from laserlog.web.metadata import DATABASE
from laserlog.web.queries import CLIENT_ROUTE, REPORT_ROUTE

_local = threading.local()
_REPORT_PATH = re.compile(r"^/-/laserlog/sessions/\d+/report$")


def _review_conn(path: str) -> sqlite3.Connection:
    """Return this thread's own read-only connection for chain walks (never Datasette's)."""
    from laserlog.storage.store import connect

    conns: dict[str, sqlite3.Connection] = _local.__dict__.setdefault("conns", {})
    if path not in conns:
        conns[path] = connect(path, readonly=True)
    return conns[path]


def _signature(path: str, signoff_id: int) -> tuple[str, str]:
    """Return a sign-off's status (VALID, INVALID, LEGACY) and the reason."""
    from laserlog.review.signoff import signatures

    conn = _review_conn(path)
    row = conn.execute("SELECT session_id FROM signoffs WHERE id = ?", (signoff_id,)).fetchone()
    if row is None:
        return "INVALID", f"no signature {signoff_id}"
    for sig in signatures(conn, [int(row[0])]).get(int(row[0]), []):
        if sig.id == signoff_id:
            return sig.status, sig.reason
    return "INVALID", f"no signature {signoff_id}"


@hookimpl
def prepare_connection(conn: sqlite3.Connection, database: str, datasette: Any) -> None:
    """Add laserlog_signature_valid(id), _status(id) and _reason(id) to SQL, and the limits
    report's words: laserlog_limit_named(kind, message), laserlog_envelope_text(message, raw)."""
    from laserlog.review.envelopes import recorded_text
    from laserlog.review.reports import limit_named

    conn.create_function("laserlog_limit_named", 2,
                         lambda kind, message: limit_named(str(kind), str(message or "")),
                         deterministic=True)
    conn.create_function("laserlog_envelope_text", 2, recorded_text, deterministic=True)
    db = datasette.databases.get(database)
    path = getattr(db, "path", None)
    if not path:
        return
    conn.create_function("laserlog_signature_valid", 1,
                         lambda sid: int(_signature(path, int(sid))[0] == "VALID")
                         if sid is not None else 0, deterministic=False)
    conn.create_function("laserlog_signature_status", 1,
                         lambda sid: _signature(path, int(sid))[0] if sid is not None
                         else "INVALID", deterministic=False)
    conn.create_function("laserlog_signature_reason", 1,
                         lambda sid: _signature(path, int(sid))[1] if sid is not None else "",
                         deterministic=False)


def _session_html(db_path: str, session_id: int) -> str:
    """Return the printable HTML `laserlog export --format html --session ID` writes."""
    from laserlog.errors import LaserlogError
    from laserlog.review.export import export, select_sessions

    conn = _review_conn(db_path)
    try:
        sessions = select_sessions(conn, session_id, None, None)
    except LaserlogError as exc:
        raise NotFound(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="laserlog-web-") as folder:
        out = Path(folder) / f"session-{session_id}.html"
        export(conn, "html", sessions, out, database=db_path)
        return out.read_text(encoding="utf-8")


async def session_report(request: Request, datasette: Any) -> Response:
    """Serve one session's printable HTML report."""
    if await datasette.permission_allowed(request.actor, "view-instance",
                                          default=True) is False:
        raise Forbidden("view-instance denied")
    session_id = int(request.url_vars["session_id"])
    if not 0 < session_id < 2**63:  # SQLite's integers: a larger ID names no session
        raise NotFound(f"no session {session_id}")
    db = datasette.get_database(DATABASE)
    loop = asyncio.get_running_loop()
    html = await loop.run_in_executor(datasette.executor, _session_html, db.path, session_id)
    return Response.html(html)


async def client_page(request: Request, datasette: Any) -> Response:
    """Serve one client's page: the officer's question answered first, then the sessions."""
    from urllib.parse import urlencode

    from laserlog.web import client

    if await datasette.permission_allowed(request.actor, "view-instance",
                                          default=True) is False:
        raise Forbidden("view-instance denied")
    db = datasette.get_database(DATABASE)
    context: dict[str, Any] = {"error": "", "rows": [], "filters": {
        name: (request.args.get(name) or "").strip() for name in client.PARAMS},
        "choices": await choices(datasette)}
    try:
        filters = client.read_filters(dict(request.args))
        if not filters["client"]:
            raise client.FilterError("client: expected a client pseudonym, e.g. C-1042")
    except client.FilterError as exc:
        context["error"] = str(exc)
        html = await datasette.render_template("laserlog_client.html", context, request=request)
        return Response.html(html, status=400)
    rows = [dict(r) for r in (await db.execute(client.CLIENT_SESSIONS, filters)).rows]
    everything = {**{name: "" for name in client.PARAMS}, "client": filters["client"]}
    all_rows = [dict(r) for r in (await db.execute(client.CLIENT_SESSIONS, everything)).rows]
    sql_url = datasette.urls.database(DATABASE) + "?" + urlencode(
        {"sql": client.CLIENT_SESSIONS.strip(), **filters})
    context.update(client.page_context(rows, filters, all_rows, db.site, sql_url))
    await asyncio.get_running_loop().run_in_executor(datasette.executor, _attach_reactions,
                                                     db.path, rows)
    context.update(_reaction_text())
    context["test_spots_apart"] = [dict(r) for r in (
        await db.execute(client.TEST_SPOTS_APART, filters)).rows]
    context["courses"] = [dict(r) for r in (
        await db.execute(client.CLIENT_COURSES, {"client": filters["client"]})).rows]
    context["course_href"] = course_url
    context["sql_text"] = client.CLIENT_SESSIONS.strip()
    context["cell"] = lambda column, value: (
        cells.cell(column, value, db.zone) or ("-" if value is None else value))
    html = await datasette.render_template("laserlog_client.html", context, request=request)
    return Response.html(html)


async def choices(datasette: Any) -> dict[str, list[str]]:
    """Return the clients, areas, consoles and operators the log holds, for the forms."""
    from laserlog.web.queries import SESSIONS_CTE

    db = datasette.get_database(DATABASE)
    empty = {name: "" for name in ("from", "to", "client", "area", "device", "operator",
                                   "last")}
    out = {}
    for key, column in (("clients", "client_ref"), ("areas", "area"), ("devices", "device"),
                        ("operators", "operator_id")):
        result = await db.execute(f"{SESSIONS_CTE}SELECT DISTINCT {column} AS v FROM selected"
                                  f" WHERE {column} IS NOT NULL ORDER BY 1 LIMIT 500", empty)
        out[key] = [str(r["v"]) for r in result.rows]
    return out


def _course_context(db_path: str, course_id: int, zone: Any) -> dict[str, Any]:
    from laserlog.web import course

    return course.page_context(_review_conn(db_path), course_id, zone)


def _attach_reactions(db_path: str, rows: list[dict[str, Any]]) -> None:
    from laserlog.web import reactions

    reactions.attach(_review_conn(db_path), rows)


def _reaction_text() -> dict[str, Any]:
    """Return the functions the reactions partial words its lines with."""
    from laserlog.review.reaction_history import findings_text, state_text

    return {"findings": findings_text, "adverse_state": state_text}


async def course_page(request: Request, datasette: Any) -> Response:
    """Serve one course on a time axis: windows, dose, test spots, overrides, passes."""
    from laserlog.web import course

    if await datasette.permission_allowed(request.actor, "view-instance",
                                          default=True) is False:
        raise Forbidden("view-instance denied")
    course_id = int(request.url_vars["course_id"])
    db = datasette.get_database(DATABASE)
    loop = asyncio.get_running_loop()
    try:
        if not 0 < course_id < 2**63:  # SQLite's integers: a larger ID names no course
            raise course.NoCourse(f"no course {course_id} in this database")
        context = await loop.run_in_executor(datasette.executor, _course_context, db.path,
                                             course_id, db.zone)
    except course.NoCourse as exc:
        html = await datasette.render_template("laserlog_course.html", {"error": str(exc)},
                                               request=request)
        return Response.html(html, status=404)
    context["client_href"] = client_url(context["course"].client_ref)
    context.update(_reaction_text())
    context["report_href"] = report_url
    context["when"] = lambda value: " · ".join(cells.time_text(value, db.zone) or (value,))
    context["cell"] = lambda column, value: (
        cells.cell(column, value, db.zone) or ("-" if value is None else value))
    html = await datasette.render_template("laserlog_course.html", context, request=request)
    return Response.html(html)


def _adverse_context(db_path: str, kind: str | None, edges: tuple[float, ...]) -> dict[str, Any]:
    from laserlog.web import adverse

    return adverse.page_context(_review_conn(db_path), kind, edges)


async def adverse_page(request: Request, datasette: Any) -> Response:
    """Serve the dose-safety chart: the share of sessions with an adverse event per skin type
    and fluence band, for one kind or all."""
    from laserlog.web import adverse

    if await datasette.permission_allowed(request.actor, "view-instance",
                                          default=True) is False:
        raise Forbidden("view-instance denied")
    db = datasette.get_database(DATABASE)
    base = {"route": adverse.ADVERSE_ROUTE, "kinds": adverse.ADVERSE_KINDS}
    try:
        kind = adverse.read_kind(request.args.get("kind"))
    except adverse.BadKind as exc:
        html = await datasette.render_template(
            "laserlog_adverse.html", {**base, "kind": None, "error": str(exc)}, request=request)
        return Response.html(html, status=400)
    edges = tuple(getattr(db.site, "fluence_bands_j_cm2", ()))
    context = await asyncio.get_running_loop().run_in_executor(
        datasette.executor, _adverse_context, db.path, kind, edges)
    html = await datasette.render_template("laserlog_adverse.html", {**base, **context},
                                           request=request)
    return Response.html(html)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(r"^/-/laserlog/sessions/(?P<session_id>\d+)/report$", session_report),
            (r"^/-/laserlog/client$", client_page),
            (r"^/-/laserlog/courses/(?P<course_id>\d+)$", course_page),
            (r"^/-/laserlog/adverse$", adverse_page)]


@hookimpl
def extra_template_vars(template: str, datasette: Any) -> Any:
    """Give the home page the review queries and the log's clients, areas and consoles."""
    if template != "index.html":
        return None

    async def inner() -> dict[str, Any]:
        queries = (datasette.metadata("queries", database=DATABASE) or {})
        return {"laserlog_queries": [{"name": name, **q} for name, q in queries.items()],
                "choices": await choices(datasette)}

    return inner


@hookimpl
def render_cell(row: Any, value: Any, column: str, table: str | None, database: str,
                datasette: Any) -> Markup | None:
    """Link report routes; link a session's uuid (sessions table) to its printed report."""
    if column == "printable_report" and isinstance(value, str) and _REPORT_PATH.match(value):
        return Markup(f'<a href="{escape(datasette.urls.path(value))}">printable report</a>')
    if table == "sessions" and column == "uuid" and isinstance(value, str):
        try:
            session_id = int(row["id"])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        href = escape(datasette.urls.path(report_url(session_id)))
        return Markup(f'{escape(value)} <a href="{href}">(printable report)</a>')
    if column == "course_id" and isinstance(value, int) or (
            table == "courses" and column == "id" and isinstance(value, int)):
        href = escape(datasette.urls.path(course_url(value)))
        return Markup(f'<a href="{href}">course {value}</a>')
    if column in ("client", "client_ref") and isinstance(value, str) and value:
        href = escape(datasette.urls.path(client_url(value)))
        return Markup(f'<a href="{href}">{escape(value)}</a>')
    return cells.cell(column, value, getattr(datasette.databases.get(database), "zone", None))


@hookimpl
def table_actions(datasette: Any, actor: Any, database: str, table: str,
                  request: Request) -> list[dict[str, str]] | None:
    """Offer the canned review queries from the sessions table's cog menu."""
    if table != "sessions":
        return None
    return [{"href": datasette.urls.path(f"/{database}/energy_by_session"),
             "label": "Sessions with energy, signatures and printable reports"}]


def report_url(session_id: int) -> str:
    """Return the path of a session's printable report."""
    return REPORT_ROUTE.format(id=session_id)


def course_url(course_id: int) -> str:
    """Return the path of a course's page."""
    from laserlog.web.course import course_url as path

    return path(course_id)


def client_url(client_ref: str) -> str:
    """Return the path of a client's page."""
    from urllib.parse import quote

    return f"{CLIENT_ROUTE}?client={quote(client_ref)}"
