"""The dose-safety chart in the web view: the same numbers as `laserlog report adverse`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date
from pathlib import Path

import pytest
from test_serve_browser import FLAGS, chromium

from laserlog.storage.store import Store

from reviewkit import cli, signer
from servekit import served

#: Skin types the sessions are corrected to (the rest stay III); session 3 is the only II.
SKIN = {1: "V", 2: "V", 5: "IV", 6: "IV", 3: "II"}
#: (session, kind) of the standing events; session 3's PIH is retracted.
EVENTS = [(1, "pih"), (2, "pih"), (6, "pih"), (5, "blister")]
RETRACTED = (3, "pih")


@pytest.fixture(scope="module")
def adverse_db(tmp_path_factory) -> Path:
    """C-1042's sessions on two consoles (755 and 1064 nm) with skin types II to V, three PIH
    in types IV and V at both wavelengths, a blister, and a retracted PIH."""
    from laserlog.review.corrections import correct
    from laserlog.review.reactions import add_adverse, change_adverse

    from reviewkit import user
    from servekit import fill_officer

    db = fill_officer(tmp_path_factory.mktemp("adverse"))
    with Store(db) as store:
        officer = user(store, "lso-02")
        user(store, "tech-01")
        reporter = signer(store, "tech-01")
        for session, skin in SKIN.items():
            correct(store, session, "skin-type", skin, "read from the consent form", officer)
        days = dict(store.conn.execute("SELECT id, substr(started_utc, 1, 10) FROM sessions"))
        ids = {}
        for session, kind in [*EVENTS, RETRACTED]:
            ids[session, kind] = add_adverse(
                store, session, kind=kind, onset=date.fromisoformat(days[session]),
                seriousness="non-serious", by="tech-01", unlock=lambda _: reporter, where=UTC)
        change_adverse(store, ids[RETRACTED], by="tech-01", unlock=lambda _: reporter,
                       where=UTC, reason="entered for the wrong client")
    return db


def cli_report(db: Path, kind: str | None) -> dict:
    """Return `laserlog report adverse --by skin-type,fluence-band [--kind K]` as JSON."""
    result = cli("report", "adverse", "--by", "skin-type,fluence-band",
                 *(["--kind", kind] if kind else []), "--format", "json", "--db", str(db),
                 env={"LASERLOG_SITE": ""})
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_chart_shows_the_reports_n_of_n_and_shares_without_overlapping_labels(
        adverse_db, tmp_path):
    from cdp import Browser

    expected = cli_report(adverse_db, "pih")
    rows = expected["rows"]
    hit = [r for r in rows if r["with_adverse"]]
    assert len({r["skin_type"] for r in hit}) >= 2 and len({r["fluence_band"] for r in hit}) >= 2
    assert expected["total"]["with_adverse"] == 3  # the retracted PIH counts nowhere
    read = """({
        bars: [...document.querySelectorAll('#adverse-chart g.bar')].map(g => ({
          skin: g.dataset.skinType, band: g.dataset.band, share: Number(g.dataset.share),
          label: g.querySelector('text.value').textContent})),
        table: [...document.querySelectorAll('#adverse-table tbody tr')].map(tr =>
          [...tr.cells].map(td => td.textContent)),
        notes: [...document.querySelectorAll('#band-notes li')].map(li => li.textContent),
        current: document.querySelector('.laserlog-kinds [aria-current]').textContent})"""
    # Pairs of the chart's texts whose boxes meet, as laid out at the current width.
    overlaps = """(() => {
        const boxes = [...document.querySelectorAll('#adverse-chart text')]
          .filter(t => t.textContent.trim()).map(t => [t.textContent, t.getBoundingClientRect()]);
        const out = [];
        boxes.forEach(([a, p], i) => boxes.slice(i + 1).forEach(([b, q]) => {
          if (p.left < q.right - 0.5 && q.left < p.right - 0.5 && p.top < q.bottom - 0.5
              && q.top < p.bottom - 0.5) out.push([a, b]);
        }));
        return out;
      })()"""
    browser = Browser(chromium(), tmp_path / "profile", FLAGS)
    try:
        with served(adverse_db) as base:
            browser.open(base + "/")
            browser.click_and_wait("#adverse-link")
            browser.click_and_wait(".laserlog-kinds a[data-kind='pih']")
            shown = browser.evaluate(read)
            shots, overlapping = [], {}
            for width in (1280, 800):
                shots.append(browser.screenshot(tmp_path / f"adverse-{width}.png", width))
                overlapping[width] = browser.evaluate(overlaps)
    finally:
        browser.close()
    assert shown["current"] == "pih"
    bars = [b for b in shown["bars"] if b["skin"] != "all"]
    assert [(b["skin"], b["band"]) for b in bars] == [
        (r["skin_type"], r["fluence_band"]) for r in rows]
    for bar, row, line in zip(bars, rows, shown["table"], strict=False):
        n_of_n = f"{row['with_adverse']}/{row['sessions']}"
        percent = f"{row['share'] * 100:.1f}%"
        assert bar["share"] == row["share"]
        assert bar["label"] == f"{n_of_n} ({percent})"
        assert line[:4] == [row["skin_type"], row["fluence_band"], n_of_n, percent]
    total = expected["total"]
    assert shown["table"][-1][2] == f"{total['with_adverse']}/{total['sessions']}"
    assert [r[2] for r in shown["table"] if r[0] == "II"] == ["0/1"]  # retracted: not counted
    assert shown["notes"] == [n.strip() for n in expected["notes"]]
    assert shown["notes"][0].startswith("fluence bands: quartiles")
    assert overlapping == {1280: [], 800: []}
    assert browser.errors == []
    for shot in shots:
        print(f"screenshot: {shot}")


def page(db: Path, path: str) -> tuple[int, str]:
    """Return the status and HTML of a page served in process."""
    from laserlog.web.serve import build

    async def get() -> tuple[int, str]:
        ds = build(db)
        await ds.invoke_startup()
        response = await ds.client.get(path)
        return response.status_code, response.text

    return asyncio.run(get())


def test_an_empty_log_is_one_sentence_and_an_unknown_kind_one_message(tmp_path):
    db = tmp_path / "laserlog.db"
    with Store(db):
        pass
    status, html = page(db, "/-/laserlog/adverse")
    assert status == 200
    assert "No session in this log has delivered pulses yet" in html
    assert 'id="adverse-chart"' not in html and 'id="adverse-table"' not in html
    status, html = page(db, "/-/laserlog/adverse?kind=rash")
    assert status == 400
    assert "kind &#39;rash&#39; is unknown; expected one of pih," in html


def test_site_file_bands_and_every_kind_give_the_reports_numbers(adverse_db, tmp_path):
    """With `[adverse] fluence_bands_j_cm2` the bands are the site file's, every kind counts,
    and the table's n/N are the command's."""
    import re

    from conftest import copy_with_anchor

    db = copy_with_anchor(adverse_db, tmp_path / "laserlog.db")
    (tmp_path / "site.toml").write_text("[adverse]\nfluence_bands_j_cm2 = [0.7, 0.955]\n")
    expected = cli_report(db, None)
    status, html = page(db, "/-/laserlog/adverse")
    assert status == 200
    shown = re.findall(r'<tr class="[^"]*" data-skin-type="([^"]+)" data-band="([^"]+)">.*?'
                       r'<td class="n">(\d+/\d+)</td>', html, re.S)
    assert shown == [(r["skin_type"], r["fluence_band"].replace("<", "&lt;").replace(
        ">", "&gt;"), f"{r['with_adverse']}/{r['sessions']}")
        for r in [*expected["rows"], {**expected["total"], "skin_type": "all",
                                      "fluence_band": "all sessions"}]]
    assert expected["total"]["with_adverse"] == 4  # three PIH and a blister, not the retracted
    assert "fluence bands (J/cm2, from the site file): &lt;0.7, 0.7-0.955, &gt;=0.955" in html
    assert 'aria-current="page" class="kind-current" data-kind="">all kinds' in html
