"""The aftercare page: the aftercare text a session's client was given, on one A4 page with
the session's key numbers, for the client to take home.

Printed with the printable record's machinery (its escaping, time and precision helpers; PDF
through the same headless Chromium). The text is the version recorded for the session, read
from the database, never from the site's file as it stands now. Its Markdown is rendered
with raw HTML switched off, so the page holds only what Markdown itself makes.
"""

from __future__ import annotations

import html
import sqlite3
from typing import IO, Any

from laserlog.config.siteconfig import SiteConfig
from laserlog.domain.localtime import local
from laserlog.errors import LaserlogError
from laserlog.review.documents import latest_aftercare
from laserlog.review.printable import _e, _table, css_string, fluence_stats, when

_CSS = """
@page { size: A4; margin: 18mm 16mm 16mm 16mm;
  @top-left { content: HEAD; font: bold 9pt Arial, sans-serif; }
  @bottom-left { content: VERSION; font: 8pt Arial, sans-serif; }
  @bottom-right { content: "page " counter(page) " of " counter(pages);
                  font: bold 9pt Arial, sans-serif; }
}
html { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; color: #000;
       line-height: 1.35; }
body { margin: 0; }
h1 { font-size: 15pt; margin: 0 0 2mm; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 4mm; }
th, td { border: .6pt solid #444; padding: 1pt 4pt; text-align: left; vertical-align: top; }
th { font-weight: bold; border-bottom: 1.2pt solid #000; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.aftercare h1 { font-size: 13pt; } .aftercare h2 { font-size: 11pt; margin: 3mm 0 1mm; }
.aftercare h3 { font-size: 10pt; margin: 2mm 0 1mm; }
.aftercare p, .aftercare li { margin: 1mm 0; }
.aftercare { border-top: 1.5pt solid #000; padding-top: 2mm; }
.version { font-size: 8pt; }
"""


def render_markdown(text: str) -> str:
    """Return a Markdown text as HTML, raw HTML in it shown as text, never as markup."""
    from markdown_it import MarkdownIt

    return str(MarkdownIt("commonmark", {"html": False}).render(text.removeprefix("\ufeff")))


def key_numbers(conn: sqlite3.Connection, session: dict[str, Any]) -> dict[str, Any]:
    """Return the numbers the page prints: pulses, energy (J), fluence (J/cm²), area, date."""
    low, mean, high = fluence_stats(conn, int(session["id"]))
    return {"pulses": int(session["pulse_count"]), "energy_j": session["total_energy_j"],
            "mean_fluence_j_cm2": mean, "max_fluence_j_cm2": high, "min_fluence_j_cm2": low,
            "area": session["area"], "started_utc": session["started_utc"]}


def write_aftercare(conn: sqlite3.Connection, session: dict[str, Any], stream: IO[str], *,
                    site: SiteConfig | None) -> None:
    """Write the aftercare page of one session as an HTML document; raise when the session
    has no aftercare recorded."""
    sid = int(session["id"])
    given = latest_aftercare(conn, sid)
    if given is None:
        raise LaserlogError(f"session {sid} has no aftercare recorded (`laserlog aftercare "
                            f"{sid} --file FILE`, or `record --aftercare FILE`); nothing was "
                            "written")
    where = site.zone if site is not None else None
    clinic = site.clinic_name if site is not None and site.clinic_name else None
    numbers = key_numbers(conn, session)
    try:
        day = f"{local(session['started_utc'], where):%Y-%m-%d}"
    except (ValueError, OverflowError, OSError):
        day = str(session["started_utc"])[:10]
    head = f"Aftercare · session {sid} · client {session['client_ref']} · {day}"
    css = (_CSS.replace("HEAD", css_string(f"{clinic} · {head}" if clinic else head))
           .replace("VERSION", css_string(f"aftercare version {given.version} "
                                          f"({given.file_name})"[:110])))
    stream.write("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                 "style-src 'unsafe-inline'\">"
                 f"<title>Aftercare, session {sid}</title><style>{css}</style></head><body>\n")
    stream.write(f"<h1>Aftercare &middot; session {sid}</h1>")
    stream.write(_table(
        [("Date", "html"), ("Area", ""), ("Pulses", "#"), ("Energy (J)", "energy_j"),
         ("Mean fluence (J/cm²)", "fluence_j_cm2"), ("Max fluence (J/cm²)", "fluence_j_cm2")],
        [[html.escape(day), numbers["area"], numbers["pulses"],
          numbers["energy_j"], numbers["mean_fluence_j_cm2"], numbers["max_fluence_j_cm2"]]]))
    stream.write(f'<div class="aftercare">{render_markdown(given.text)}</div>')
    stream.write(f'<p class="version">Aftercare version {html.escape(given.sha256)} '
                 f"({_e(given.file_name)}), given {when(given.at_utc, where)}.</p>")
    stream.write("</body></html>\n")
