"""The printable session record, in HTML and as PDF printed by the real headless Chromium:
what the officer signs for is on every page, and its figures are the database's."""

from __future__ import annotations

import html
import json
import os
import sqlite3

import pypdf
import pypdfium2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laserlog.cli.main import main
from laserlog.recording.recorder import SessionInfo
from laserlog.storage.store import Store

from reviewkit import PASSPHRASES, assert_clean_error, cli, record, tamper, user

CLINIC = "Rue Lepic Skin Clinic"
CHECKS = {"eyewear": True, "consent": True, "sun_exposure": True}
SITE = (f'timezone = "Pacific/Auckland"\n[clinic]\nname = "{CLINIC}"\n'
        "[limits]\nmax_fluence_j_cm2 = 0.95\n")
#: Body text of a page lies above the footer's margin (18 mm) and below the header's (24 mm).
FOOTER_PT = 18 / 25.4 * 72


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Three recorded sessions under a site file with a clinic, a zone and a fluence limit:
    1 long and signed, 2 signed then changed behind laserlog's back, 3 never signed."""
    from laserlog.config.profile import open_profile
    from laserlog.sim.engine import Simulator

    folder = tmp_path_factory.mktemp("printable")
    db = folder / "laserlog.db"
    (folder / "site.toml").write_text(SITE)
    with Simulator(open_profile("ps755-ref"), folder / "console", seed=4, rate_hz=60) as sim, \
            Store(db) as store:
        for operator, client, area, skin, pulses in (
                ("tech-01", "C-1042", "left cheek", "III", 200),
                ("tech-02", "C-1043", "forehead", "II", 12),
                ("tech-01", "C-1044", "chin", "IV", 12)):
            record(store, sim, SessionInfo(operator, client, area, skin, eyewear_checked=True,
                                           checklist=dict(CHECKS)), pulses=pulses)
        user(store, "lso-01", "Dr Jane Roe")
    for session in ("1", "2"):
        signed = cli("signoff", session, "--meaning", "approved", "--user", "lso-01", "--db",
                     str(db), passphrase=PASSPHRASES["lso-01"])
        assert signed.returncode == 0, signed.stderr
    tamper(db, "DROP TRIGGER pulses_no_update",
           "UPDATE pulses SET energy_j = energy_j * 2 WHERE id = (SELECT min(id) + 3 FROM pulses"
           " WHERE session_id = 2)")
    return db


def sql(db, query: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def export(db, out, *args: str):
    result = cli("export", *args, "--out", str(out), "--db", str(db))
    assert result.returncode == 0, result.stderr
    return result


def page_texts(pdf) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in pypdf.PdfReader(pdf).pages]


def test_pdf_record_has_the_header_and_page_n_of_m_on_every_page_and_the_databases_figures(
        records, tmp_path):
    out = tmp_path / "session-1.pdf"
    done = export(records, out, "--format", "pdf", "--session", "1", "--pulses")
    assert "200 pulse(s) in the pulse table" in done.stdout
    assert out.read_bytes().startswith(b"%PDF")
    texts = page_texts(out)
    assert len(texts) >= 3
    for number, text in enumerate(texts, 1):
        assert f"{CLINIC} · Session 1 · client C-1042 · " in text, (number, text[:200])
        assert f"page {number} of {len(texts)}" in text, (number, text[-200:])
    whole = " ".join(texts)
    ((pulses, energy, low, mean, high),) = sql(
        records, "SELECT count(*), sum(energy_j), min(fluence_j_cm2), avg(fluence_j_cm2),"
        " max(fluence_j_cm2) FROM pulses WHERE session_id = 1")
    delivered = f"{pulses} {energy:.4f} {low:.3f} {mean:.3f} {high:.3f}"
    assert delivered in texts[0], texts[0]
    for regime, hp, nm, spot, rate, ps, n, joules, f_low, f_mean, f_high in sql(
            records, "SELECT regime, handpiece, wavelength_nm, spot_mm, rep_rate_hz,"
            " avg(pulse_duration_ps), count(*), sum(energy_j), min(fluence_j_cm2),"
            " avg(fluence_j_cm2), max(fluence_j_cm2) FROM pulses WHERE session_id = 1"
            " GROUP BY 1, 2, 3, 4, 5"):
        row = (f"{regime} {hp} {nm:.1f} {spot:.2f} {rate:.2f} {ps:.0f} {n} {joules:.4f} "
               f"{f_low:.3f} {f_mean:.3f} {f_high:.3f}")
        assert row in whole, row
    for seq, energy_j, fluence in sql(records, "SELECT seq, energy_j, fluence_j_cm2 FROM pulses"
                                      " WHERE session_id = 1 ORDER BY id"):
        assert f" {seq} " in whole and f"{energy_j:.4f} {fluence:.3f}" in whole, seq
    out_of_limit = sql(records, "SELECT count(*) FROM events WHERE session_id = 1 AND"
                       " kind = 'out_of_limit'")[0][0]
    assert out_of_limit and f"Out-of-limit events ({out_of_limit})" in whole


def headings_stranded(pdf) -> list[str]:
    """Return the headings printed with no body text below them on their page."""
    names = ("Pre-treatment checklist", "Delivered", "Per setting", "Out-of-limit events",
             "Unknown-dose events", "Faults and alarms", "Other events", "Corrections",
             "Signatures", "Record integrity", "Pulses of session")
    stranded = []
    document = pypdfium2.PdfDocument(str(pdf))
    for number in range(len(document)):
        text = document[number].get_textpage()
        boxes = [text.get_charbox(i) for i in range(text.count_chars())]
        body = [b for b in boxes if b[1] > FOOTER_PT]
        for name in names:
            searcher = text.search(name)
            found = searcher.get_next()
            while found:
                bottom = text.get_charbox(found[0])[1]
                if not any(top < bottom - 2 for _, _, _, top in body):
                    stranded.append(f"page {number + 1}: {name}")
                found = searcher.get_next()
    return stranded


def test_no_heading_is_left_alone_at_a_page_foot(records, tmp_path):
    for session in ("1", "2", "3"):
        out = tmp_path / f"{session}.pdf"
        export(records, out, "--format", "pdf", "--session", session, "--pulses")
        assert headings_stranded(out) == []


def test_record_shows_checklist_times_duration_calibration_once_and_every_signature_state(
        records, tmp_path):
    out = tmp_path / "all.html"
    export(records, out, "--format", "html", "--from", "2000-01-01")
    parts = out.read_text().split('<section class="session"')[1:]
    assert len(parts) == 3
    for part in parts:
        for item in ("consent", "sun exposure", "eyewear"):
            assert f"<td>{item}</td><td>ticked</td>" in part, item
        assert "NZ" in part and "UTC" in part and "Pacific/Auckland" in part
        assert "<td>Duration</td><td>0:0" in part
        assert part.count("no calibration check recorded for this console") == 1
    first, tampered, unsigned = parts
    assert '<span class="flag">VALID</span> <b>approved</b> by Dr Jane Roe' in first
    assert '<span class="flag">INVALID</span> <b>approved</b> by Dr Jane Roe' in tampered
    assert "the session&#x27;s data changed" in tampered
    assert '<span class="flag">UNSIGNED</span>' in unsigned and "VALID" not in unsigned


def test_a_pdf_of_several_sessions_heads_each_page_with_its_own_session(records, tmp_path):
    out = tmp_path / "all.pdf"
    export(records, out, "--format", "pdf", "--from", "2000-01-01")
    texts = page_texts(out)
    heads = [next(f"{s} {c}" for s, c in (("1", "C-1042"), ("2", "C-1043"), ("3", "C-1044"))
                  if f"Session {s} · client {c}" in t) for t in texts]
    assert heads == sorted(heads) and {h[0] for h in heads} == {"1", "2", "3"}
    by_session: dict[str, str] = {}
    for head, text in zip(heads, texts, strict=True):  # a session may run over two pages
        by_session[head[0]] = by_session.get(head[0], "") + text
    assert "VALID approved by Dr Jane Roe" in by_session["1"]
    assert "INVALID approved by Dr Jane Roe" in by_session["2"]
    assert "UNSIGNED" in by_session["3"]
    assert all(f"of {len(texts)}" in t for t in texts)


@pytest.mark.parametrize("target", ["folder", "fifo", "dangling"])
def test_pdf_out_that_is_not_a_new_file_is_refused(records, tmp_path, target):
    out = tmp_path / "out.pdf"
    if target == "folder":
        out.mkdir()
    elif target == "fifo":
        os.mkfifo(out)
    else:
        out.symlink_to(tmp_path / "nowhere" / "x.pdf")
    result = cli("export", "--format", "pdf", "--session", "1", "--out", str(out), "--db",
                 str(records))
    assert_clean_error(result, "--out")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("session,needle", [("99", "no session 99"), ("-1", "-1"),
                                            ("0", "0")])
def test_pdf_of_a_session_that_does_not_exist_is_refused(records, tmp_path, session, needle):
    out = tmp_path / "x.pdf"
    result = cli("export", "--format", "pdf", "--session", session, "--out", str(out), "--db",
                 str(records))
    assert_clean_error(result, needle)
    assert not out.exists()


def test_pdf_without_chromium_is_one_message_and_no_file(records, tmp_path):
    out = tmp_path / "x.pdf"
    result = cli("export", "--format", "pdf", "--session", "3", "--out", str(out), "--db",
                 str(records), env={"LASERLOG_CHROMIUM": str(tmp_path / "no-chromium")})
    assert_clean_error(result, "needs headless Chromium")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_pulses_outside_the_printable_record_is_refused(records, tmp_path):
    result = cli("export", "--format", "csv", "--session", "3", "--pulses", "--out",
                 str(tmp_path / "x.csv"), "--db", str(records))
    assert_clean_error(result, "--pulses")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=130))
def test_any_clinic_name_is_printed_as_text_or_refused_naming_the_key(
        records, tmp_path, monkeypatch, capsys, name):
    site = tmp_path / "site.toml"
    site.write_text(f"[clinic]\nname = {json.dumps(name, ensure_ascii=False)}\n",
                    encoding="utf-8", errors="surrogatepass")
    monkeypatch.setenv("LASERLOG_SITE", str(site))
    out = tmp_path / "r.html"
    out.unlink(missing_ok=True)
    try:
        status = main(["export", "--format", "html", "--session", "3", "--out", str(out),
                       "--db", str(records)])
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status != 0:
        assert status == 2 and "site.toml" in err, err
        assert not out.exists()
        return
    text = out.read_text()
    style = text.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "<" not in style and html.escape(name.strip()) in text.split("</style>", 1)[1]


def test_a_clinic_name_that_is_not_one_line_is_refused(tmp_path):
    (tmp_path / "site.toml").write_text('[clinic]\nname = "A\\nB"\n')
    assert_clean_error(cli("site", "--db", str(tmp_path / "laserlog.db")), "clinic.name")



def test_a_retracted_event_prints_struck_and_a_corrected_assessment_prints_its_latest(
        tmp_path):
    from tui_support import add_reactions, build_history

    from laserlog.config.profile import open_profile

    db = tmp_path / "laserlog.db"
    build_history(db, open_profile("ps755-ref"))
    add_reactions(db, session_id=3)
    out = tmp_path / "s3.html"
    assert main(["export", "--format", "html", "--session", "3", "--out", str(out),
                 "--db", str(db)]) == 0
    page = out.read_text()
    reactions = page[page.index("<h2>Reactions</h2>"):page.index("<h2>Signatures</h2>")]
    assert "erythema 1, oedema 0, pain 2/10, blister" in reactions
    assert "erythema 2," not in reactions and '<span class="flag">CORRECTED</span>' in reactions
    assert "<s>#2 blister</s>" in reactions
    assert ('<span class="flag">RETRACTED</span>: entered for the wrong client'
            in reactions)
    assert "<s>#1" not in reactions and "outcome resolving (2026-03-02)" in reactions
    assert "2026-03-01: not-resolved" in reactions and "2026-03-02: resolving" in reactions
    assert "Outcomes of course" not in reactions  # a one-off session: no course
