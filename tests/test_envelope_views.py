"""The skin-type envelope where the officer looks: `laserlog site`, `report limits`, the
printable record and the session page in a browser, each from what the session recorded."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from laserlog.recording.recorder import SessionInfo
from laserlog.storage.store import Store

from reviewkit import cli, record

#: Type V at 755 nm: recommended 0.5 and at most 0.9 J/cm2, through handpiece 2 at most 0.8.
SITE = """[clinic]
name = "North Clinic"

[envelope.V.755]
recommended_fluence_j_cm2 = 0.5
max_fluence_j_cm2 = 0.9

[envelope.V]
wavelength_nm = 755
max_fluence_j_cm2 = 0.8
handpiece = 2
"""


@pytest.fixture(scope="module")
def held(tmp_path_factory) -> Path:
    """A type V session on ps755-ref (~0.95 J/cm2, above the maximum) whose site file was
    made laxer after it: what the record shows must be what was in force then."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("envelope")
    (folder / "site.toml").write_text(SITE)
    db = folder / "laserlog.db"
    with Simulator(open_profile("ps755-ref"), folder / "sim", seed=4, rate_hz=400) as sim, \
            Store(db) as store:
        record(store, sim, SessionInfo("tech-01", "C-5001", "left cheek", "V",
                                       eyewear_checked=True), pulses=30)
    (folder / "site.toml").write_text(SITE.replace("0.9", "5").replace("0.5", "4"))
    return db


@pytest.fixture(scope="module")
def held_url(held):
    from servekit import served

    with served(held) as base:
        yield base


def breaches(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT severity, sum(count) FROM events WHERE kind ="
                                 " 'out_of_envelope' GROUP BY severity").fetchall())


def test_limits_report_gives_the_envelope_and_the_pulses_beyond_it_in_every_format(held):
    passed = breaches(held)
    assert passed.get("alarm"), "the simulator's ~0.95 J/cm2 passes the 0.9 maximum"
    source = f"site file {held.parent / 'site.toml'} [envelope.V.755]"
    data = json.loads(cli("report", "limits", "--format", "json", "--db", str(held)).stdout)
    rows = [r for r in data["rows"] if r["kind"] == "out_of_envelope"]
    assert {r["limit"]: r["pulses"] for r in rows if r["severity"] == "alarm"} == {
        "skin type V maximum 0.9 J/cm2 at 755 nm": passed["alarm"]}
    assert all(r["skin_type"] == "V" and r["quantity"] == "fluence_j_cm2" for r in rows)
    assert rows[0]["envelope"] == ("755 nm: recommended 0.5, max 0.9 J/cm2; 755 nm, "
                                   "handpiece 2: recommended 0.5, max 0.8 J/cm2")
    (every, hp2) = rows[0]["envelope_cells"]
    assert (every["max_fluence_j_cm2"], every["max_by"]) == (0.9, source)
    assert (hp2["recommended_by"], hp2["max_fluence_j_cm2"]) == (source, 0.8)
    assert hp2["max_by"].endswith("[envelope.V]")
    text = cli("report", "limits", "--db", str(held)).stdout
    assert "out_of_envelope" in text and "skin type V maximum 0.9 J/cm2 at 755 nm" in text
    table = list(csv.DictReader(io.StringIO(
        cli("report", "limits", "--format", "csv", "--db", str(held)).stdout)))
    assert [r["envelope"] for r in table if r["kind"] == "out_of_envelope"] == [
        r["envelope"] for r in rows]
    assert sum(int(r["pulses"]) for r in table if r["severity"] == "alarm"
               and r["kind"] == "out_of_envelope") == passed["alarm"]


def test_web_limits_query_lists_the_rows_report_limits_lists_for_the_period(held, held_url):
    import httpx

    with sqlite3.connect(held) as conn:
        day = conn.execute("SELECT substr(started_utc, 1, 10) FROM sessions").fetchone()[0]
    columns = ["session", "started_utc", "device", "operator", "client", "skin_type", "kind",
               "quantity", "limit", "severity", "pulses", "first", "envelope"]
    shown = {}
    for name, period in (("day", {"from": day, "to": day}), ("later", {"from": "2099-01-01"})):
        argv = [f"--{k}={v}" for k, v in period.items()]
        data = json.loads(cli("report", "limits", "--format", "json", *argv,
                              "--db", str(held)).stdout)
        response = httpx.get(f"{held_url}/laserlog/limits_in_period.json",
                             params={"_shape": "array", "_size": "max", **period}, timeout=30)
        assert response.status_code == 200, response.text
        shown[name] = response.json()
        assert [[w[c] for c in columns] for w in shown[name]] == [
            [r[c] for c in columns] for r in data["rows"]], name
    assert shown["later"] == []
    envelope = [w for w in shown["day"] if w["kind"] == "out_of_envelope"]
    assert {w["limit"] for w in envelope if w["severity"] == "alarm"} == {
        "skin type V maximum 0.9 J/cm2 at 755 nm"}
    assert envelope and all(w["skin_type"] == "V" and w["envelope"].startswith(
        "755 nm: recommended 0.5, max 0.9 J/cm2") for w in envelope)


def test_site_with_a_profile_names_the_rule_that_won_each_cell(tmp_path):
    (tmp_path / "site.toml").write_text(SITE + "\n[envelope.VI.755]\navoid = true\n")
    db = tmp_path / "log.db"
    result = cli("site", "--profile", "ps755-ref", "--db", str(db))
    assert result.returncode == 0, result.stderr
    text = result.stdout.split("Skin-type envelopes in force on ps755-ref", 1)[1]
    lines = [line.split() for line in text.splitlines()[3:]]
    assert lines[0][:2] == ["V", "755.0"] and "0.500" in lines[0] and "0.900" in lines[0]
    assert lines[1][3:9] == ["2", "0.500", "site", "[envelope.V.755]", "0.800", "site"]
    assert lines[1][9] == "[envelope.V]"
    assert lines[2][-2:] == ["site", "[envelope.VI.755]"]
    data = json.loads(cli("site", "--json", "--profile", "ps755-ref", "--db", str(db)).stdout)
    cells = data["envelopes_in_force"]["cells"]
    assert [(c["skin_type"], c["for"], c["max_fluence_j_cm2"]) for c in cells] == [
        ("V", "every handpiece and spot", 0.9), ("V", "handpiece 2", 0.8),
        ("VI", "every handpiece and spot", None)]
    assert data["envelopes"]["on_avoid"] == "refuse" and len(data["envelopes"]["rules"]) == 3


def test_printable_record_holds_the_envelope_in_force_at_the_start(held, tmp_path):
    out = tmp_path / "record.html"
    result = cli("export", "--format", "html", "--session", "1", "--out", str(out),
                 "--db", str(held))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    section = page.split("<h2>Skin-type envelope (type V)</h2>", 1)[1].split("</table>", 1)[0]
    assert "recommended (J/cm²)" in section and "maximum (J/cm²)" in section
    assert '<td class="num">0.500</td><td class="num">0.900</td>' in section
    assert f"maximum: site file {held.parent / 'site.toml'} [envelope.V]" in section
    assert "kJ/m" not in page
    assert f"<h2>Out-of-envelope events ({len(breaches(held))})</h2>" in page


def test_session_page_in_a_browser_shows_the_envelope_in_j_cm2(held_url, tmp_path):
    from cdp import Browser
    from test_serve_browser import FLAGS, chromium

    browser = Browser(chromium(), tmp_path / "profile", FLAGS)
    try:
        browser.open(held_url + "/-/laserlog/sessions/1/report")
        shown = browser.evaluate("""(() => {
          const h = [...document.querySelectorAll('h2')]
            .find(e => e.textContent.startsWith('Skin-type envelope'));
          const table = h && h.nextElementSibling;
          return {head: h ? h.textContent : null,
                  columns: table ? [...table.querySelectorAll('th')].map(t => t.textContent)
                                 : [],
                  cells: table ? [...table.querySelectorAll('tbody tr')].map(
                    tr => [...tr.cells].map(td => td.innerText)) : [],
                  body: document.body.innerText};
        })()""")
        browser.screenshot(tmp_path / "session-envelope.png", 1000)
    finally:
        browser.close()
    assert shown["head"] == "Skin-type envelope (type V)"
    assert shown["columns"][2:4] == ["recommended (J/cm²)", "maximum (J/cm²)"]
    assert [row[:4] for row in shown["cells"]] == [
        ["755.0", "every handpiece and spot", "0.500", "0.900"],
        ["755.0", "handpiece 2", "0.500", "0.800"]]
    assert "kJ/m" not in shown["body"] and "Out-of-envelope events" in shown["body"]
