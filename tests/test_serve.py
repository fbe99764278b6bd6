"""`laserlog serve`: the read-only Datasette view answers as the officer's reports do."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from laserlog.config.siteconfig import site_for
from laserlog.review.reports import (
    calibration_report,
    energy_report,
    faults_report,
    limits_report,
    make_filters,
    signoffs_report,
)
from laserlog.storage.store import Store

from reviewkit import assert_clean_error, cli
from servekit import fill, served

ENERGY_J = 1e-9


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    return fill(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def url(filled):
    with served(filled) as base:
        yield base


def canned(url: str, name: str, **params: str) -> list[dict]:
    """Return a canned query's rows as JSON objects."""
    response = httpx.get(f"{url}/laserlog/{name}.json",
                         params={"_shape": "array", "_size": "max", **params}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def report_rows(db: Path, fn, *args, **kw) -> list[dict]:
    with Store(db, readonly=True) as store:
        return fn(store.conn, *args, **kw).rows


def assert_same(web: list[dict], report: list[dict], keys: list[str]) -> None:
    """Check rows agree: pulses and counts exactly, energy to a nanojoule, text as printed."""
    assert len(web) == len(report), (web, report)
    for w, r in zip(web, report, strict=True):
        for key in keys:
            if key in ("energy_j", "max_fluence_j_cm2") and r[key] is not None:
                assert w[key] == pytest.approx(r[key], abs=ENERGY_J), key
            else:
                assert w[key] == r[key], (key, w, r)


GROUP_KEYS = ["sessions", "first_utc", "last_utc", "pulses", "energy_j", "max_fluence_j_cm2",
              "regimes", "out_of_limit"]


def test_the_database_holds_what_the_review_needs(filled):
    with sqlite3.connect(filled) as conn:
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT kind FROM events")}
        assert {"gap", "fault", "out_of_limit"} <= kinds
        assert conn.execute("SELECT count(*) FROM signoffs").fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM corrections").fetchone()[0] == 1


@pytest.mark.parametrize("query,by,head", [
    ("energy_by_client_area", "client", ["client", "area"]),
    ("energy_by_device", "device", ["device"]),
    ("energy_by_operator", "operator", ["operator"]),
    ("energy_by_month", "month", ["month"]),
])
def test_energy_queries_equal_the_energy_report(filled, url, query, by, head):
    web = canned(url, query)
    report = report_rows(filled, energy_report, by, make_filters())
    assert_same(web, report, head + GROUP_KEYS)
    assert sum(r["pulses"] for r in web) == sum(r["pulses"] for r in report) > 0


def test_corrected_area_counts_under_its_new_name(url):
    areas = {(r["client"], r["area"]) for r in canned(url, "energy_by_client_area")}
    assert areas == {("C-1", "left cheek"), ("C-2", "chin")}


def test_energy_per_device_operator_month_adds_up_to_each_report(filled, url):
    web = canned(url, "energy_by_device_operator_month")
    for by in ("device", "operator", "month"):
        for row in report_rows(filled, energy_report, by, make_filters()):
            mine = [w for w in web if w[by] == row[by]]
            assert sum(w["pulses"] for w in mine) == row["pulses"]
            assert sum(w["energy_j"] for w in mine) == pytest.approx(row["energy_j"], abs=ENERGY_J)


def test_energy_per_session_has_signatures_and_report_links(filled, url):
    web = canned(url, "energy_by_session")
    report = report_rows(filled, energy_report, "session", make_filters())
    assert_same(web, report, ["session", "started_utc", "status", "device", "operator", "client",
                              "area", "pulses", "energy_j", "max_fluence_j_cm2", "regimes",
                              "out_of_limit", "signatures"])
    assert web[0]["signatures"] == "approved:lso-01"
    assert [w["printable_report"] for w in web] == [f"/-/laserlog/sessions/{n}/report"
                                                    for n in (1, 2, 3)]


def test_period_parameters_follow_the_reports_dates(filled, url):
    with sqlite3.connect(filled) as conn:
        day = conn.execute("SELECT min(started_utc) FROM sessions").fetchone()[0][:10]
    assert len(canned(url, "energy_by_session", **{"from": day, "to": day})) == 3
    assert canned(url, "energy_by_session", to="2000-01-01") == []
    assert canned(url, "faults_in_period", **{"from": "2099-01-01"}) == []


def test_faults_in_a_period_equal_the_faults_report(filled, url):
    with sqlite3.connect(filled) as conn:
        day = conn.execute("SELECT min(started_utc) FROM sessions").fetchone()[0][:10]
    web = canned(url, "faults_in_period", **{"from": day, "to": day})
    report = report_rows(filled, faults_report, "event", make_filters(day, day))
    assert_same(web, report, ["received_utc", "session", "device", "kind", "severity", "count",
                              "missing_pulses", "message"])
    gaps = canned(url, "faults_in_period", kind="gap")
    assert [(g["session"], g["missing_pulses"]) for g in gaps] == [(2, 7)]
    only_1064 = canned(url, "faults_in_period", device="R1064-0001")
    assert {r["kind"] for r in only_1064} == {"calibration_missing", "out_of_limit"}


def test_fault_counts_equal_the_report_by_kind(filled, url):
    web = canned(url, "fault_counts_in_period")
    report = report_rows(filled, faults_report, "kind", make_filters())
    assert_same(web, report, ["kind", "events", "count", "missing_pulses", "alarms",
                              "first_utc", "last_utc"])
    assert {r["kind"] for r in web} >= {"gap", "fault", "interlock_open", "out_of_limit"}


def test_limits_query_equals_the_limits_report(filled, url):
    web = canned(url, "limits_in_period")
    report = report_rows(filled, limits_report, make_filters())
    assert_same(web, report, ["session", "started_utc", "device", "operator", "client",
                              "skin_type", "kind", "quantity", "limit", "severity", "pulses",
                              "first", "envelope"])
    assert web and all(r["limit"] == "site" and r["quantity"] == "fluence_j_cm2" for r in web)


def test_calibration_status_equals_the_calibration_report(filled, url):
    web = canned(url, "calibration_status")
    report = report_rows(filled, calibration_report, make_filters(), history=False,
                         site=site_for(filled))
    assert_same(web, report, ["device", "model", "state", "last_check_utc", "result",
                              "deviation", "next_due_utc"])
    assert {r["device"]: r["state"] for r in web} == {"ps1064-ref/R1064-0001": "OVERDUE",
                                                      "ps755-ref/R755-0001": "OK"}


def test_unsigned_sessions_and_signoffs_equal_the_signoffs_report(filled, url):
    web = canned(url, "unsigned_sessions")
    report = report_rows(filled, signoffs_report, make_filters(), user=None, unsigned=True)
    assert_same(web, report, ["session", "started_utc", "status", "device", "operator", "client",
                              "signatures"])
    assert [r["session"] for r in web] == [2, 3]
    web = canned(url, "signoffs")
    report = report_rows(filled, signoffs_report, make_filters(), user=None, unsigned=False)
    assert_same(web, report, ["session", "operator", "client", "meaning", "signer", "role",
                              "user", "signed_utc", "status", "reason"])
    assert canned(url, "signoffs", user="lso-01")[0]["status"] == "VALID"


def test_every_table_and_column_is_described_with_units(filled, url):
    meta = httpx.get(f"{url}/-/metadata.json", timeout=30).json()
    tables = meta["databases"]["laserlog"]["tables"]
    with sqlite3.connect(filled) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN"
                                            " ('table', 'view') AND name NOT LIKE 'sqlite_%'")]
        for name in names:
            assert tables[name]["description"], name
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({name})")]
            assert set(columns) <= set(tables[name]["columns"]), (name, columns)
    assert tables["sessions"]["facets"] == ["profile_id", "operator_id", "area", "status"]
    assert "pseudonym" in tables["sessions"]["columns"]["client_ref"]
    page = httpx.get(f"{url}/laserlog/pulses", timeout=30).text
    assert re.search(r"\d J<", page)  # values carry their unit


def test_passphrase_keys_never_leave_the_database(url):
    rows = httpx.get(f"{url}/laserlog.json", params={
        "sql": "SELECT user_id, salt_hex, key_hex FROM users", "_shape": "array"}, timeout=30).json()
    assert rows and all(r["salt_hex"] is None and r["key_hex"] is None for r in rows)
    sealed = httpx.get(f"{url}/laserlog.json", params={
        "sql": "SELECT user_id, sealed_key, public_key_hex FROM user_changes",
        "_shape": "array"}, timeout=30).json()
    assert sealed and all(r["sealed_key"] is None and r["public_key_hex"] for r in sealed)


def test_session_links_to_its_printable_report(url):
    page = httpx.get(f"{url}/laserlog/energy_by_session", timeout=30).text
    assert 'href="/-/laserlog/sessions/1/report"' in page
    report = httpx.get(f"{url}/-/laserlog/sessions/1/report", timeout=30)
    assert report.status_code == 200
    assert "Treatment record &middot; session 1" in report.text and "VALID" in report.text
    assert httpx.get(f"{url}/-/laserlog/sessions/99/report", timeout=30).status_code == 404
    for huge in (2**63, 10**40):  # past SQLite's integers: no session, not a server error
        assert httpx.get(f"{url}/-/laserlog/sessions/{huge}/report",
                         timeout=30).status_code == 404
    sessions = httpx.get(f"{url}/laserlog/sessions", timeout=30).text
    assert "/-/laserlog/sessions/3/report" in sessions


def test_dashboard_page_and_every_chart_query_answer(url):
    from laserlog.web.dashboard import SLUG, dashboards

    page = httpx.get(f"{url}/-/dashboards/{SLUG}", timeout=30)
    assert page.status_code == 200 and "vega-lite.min.js" in page.text
    for slug, chart in dashboards("laserlog")[SLUG]["charts"].items():
        sql = re.sub(r"\[\[.*?\]\]", "", chart["query"])
        response = httpx.get(f"{url}/laserlog.json", params={"sql": sql, "_shape": "array"},
                             timeout=30)
        assert response.status_code == 200, (slug, response.text)
        assert response.json(), slug


def test_the_web_view_cannot_write(filled, url):
    before = filled.read_bytes()
    response = httpx.get(f"{url}/laserlog.json", params={"sql": "DELETE FROM users"}, timeout=30)
    assert response.status_code == 400
    assert filled.read_bytes() == before


def test_recorder_keeps_committing_while_the_view_is_read(tmp_path, simulate):
    from reviewkit import record

    db = tmp_path / "live.db"
    sim = simulate("ps755-ref", seed=3, rate_hz=200)
    with Store(db):
        pass
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    with served(db) as base:
        def read_all_the_time() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    for name in ("energy_by_session", "faults_in_period"):
                        r = client.get(f"{base}/laserlog/{name}.json", params={"_shape": "array"})
                        if r.status_code != 200:
                            errors.append(r.text)
                    r = client.get(f"{base}/laserlog.json", params={
                        "sql": "SELECT count(*) AS n FROM pulses", "_shape": "array"})
                    seen.append(r.json()[0]["n"])

        reader = threading.Thread(target=read_all_the_time)
        reader.start()
        try:
            with Store(db) as store:
                from laserlog.recording.recorder import SessionInfo

                rec = record(store, sim, SessionInfo("tech-01", "C-9", eyewear_checked=True),
                             pulses=300)
        finally:
            stop.set()
            reader.join(30)
        final = canned(base, "energy_by_session")
    assert errors == []
    assert rec.totals.pulses >= 300 and final[0]["pulses"] == rec.totals.pulses
    assert len(set(seen)) > 2  # the view saw the pulses arrive while the recorder wrote


def test_serving_off_loopback_without_passwords_is_refused(filled):
    result = cli("serve", "--db", str(filled), "--host", "0.0.0.0", "--port", "8999", timeout=60)
    assert_clean_error(result, "refusing to serve on 0.0.0.0", "--passwords")


def test_missing_database_and_bad_password_file_exit_2(filled, tmp_path):
    assert_clean_error(cli("serve", "--db", str(tmp_path / "none.db")), "does not exist")
    bad = tmp_path / "passwords.toml"
    bad.write_text('lso-01 = "secret"\n')
    assert_clean_error(cli("serve", "--db", str(filled), "--passwords", str(bad)),
                       "lso-01", "pbkdf2_sha256$")


def test_officers_must_log_in_when_passwords_are_set(filled, tmp_path):
    hashed = cli("serve", "--hash-password", stdin="correct horse\n")
    assert hashed.returncode == 0 and hashed.stdout.startswith("pbkdf2_sha256$")
    passwords = tmp_path / "passwords.toml"
    passwords.write_text(f'lso-01 = "{hashed.stdout.strip()}"\n')
    with served(filled, "--passwords", str(passwords)) as base, httpx.Client(timeout=30) as c:
        assert c.get(f"{base}/laserlog/energy_by_session.json").status_code == 403
        assert c.get(f"{base}/-/laserlog/sessions/1/report").status_code == 403
        login = c.get(f"{base}/-/login")
        token = re.search(r'name="csrftoken" value="([^"]+)"', login.text)
        assert token
        wrong = c.post(f"{base}/-/login", data={"username": "lso-01", "password": "nope",
                                                 "csrftoken": token.group(1)})
        assert "Invalid username or password" in wrong.text
        c.post(f"{base}/-/login", data={"username": "lso-01", "password": "correct horse",
                                         "csrftoken": token.group(1)})
        assert c.get(f"{base}/laserlog/energy_by_session.json").status_code == 200
        assert c.get(f"{base}/-/laserlog/sessions/1/report").status_code == 200


def test_times_read_as_dates_and_values_in_clinical_units(url):
    meta = httpx.get(f"{url}/-/metadata.json", timeout=30).json()
    assert all("units" not in t for t in meta["databases"]["laserlog"]["tables"].values())
    page = httpx.get(f"{url}/laserlog/pulses", timeout=30).text
    assert not re.search(r"\d\s*(&nbsp;)?[GM]s<", page)  # not `1.796198 Gs`
    assert "kJ/m" not in page and "J/m²" not in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)
    assert re.search(r">\d+\.\d{3} J/cm²<", page)  # fluence at 0.001 J/cm²


def test_canned_query_shows_results_first_without_float_noise_and_sql_collapsed(url):
    page = httpx.get(f"{url}/laserlog/energy_by_session", timeout=30).text
    table = page.index('<table class="rows-and-columns"')
    sql = page.index('id="sql-query"')
    assert table < sql
    assert re.search(r'<details class="laserlog-sql">\s*<summary>', page[table:])
    cells = page[table:sql]
    assert not re.search(r"\d\.\d{6,}", cells), re.findall(r"\d\.\d{6,}", cells)
    assert re.search(r">\d+\.\d{4} J<", cells)


def test_home_page_offers_the_officers_questions_and_the_dashboard(url):
    page = httpx.get(f"{url}/", timeout=30).text
    for name in ("client", "area", "last", "from", "to", "device", "operator"):
        assert re.search(rf'<input[^>]+name="{name}"', page), name
    assert 'href="/-/dashboards/review"' in page
    from laserlog.web.queries import canned_queries

    for name in canned_queries(30):
        assert f'/laserlog/{name}"' in page, name
    first_table = re.search(r'href="/laserlog/(\w+)"', page.split("The log itself")[1])
    assert first_table and first_table.group(1) == "sessions"
    assert page.index("Ask the log") < page.index("The log itself")


def test_no_log_in_link_when_no_accounts_are_configured(url):
    page = httpx.get(f"{url}/", timeout=30).text
    assert "/-/login" not in page and "Log in" not in page


def test_fluence_histogram_bins_follow_the_data(filled, url):
    from laserlog.web.dashboard import SLUG, dashboards

    sql = re.sub(r"\[\[.*?\]\]", "", dashboards("laserlog")[SLUG]["charts"]
                 ["fluence-per-regime"]["query"])
    bins = httpx.get(f"{url}/laserlog.json", params={"sql": sql, "_shape": "array"},
                     timeout=30).json()
    with sqlite3.connect(filled) as conn:
        low, high, n = conn.execute("SELECT min(fluence_j_cm2), max(fluence_j_cm2), count(*)"
                                    " FROM pulses WHERE fluence_j_cm2 IS NOT NULL").fetchone()
    assert len({b["bin_from_j_cm2"] for b in bins}) >= 5  # not one bar
    assert min(b["bin_from_j_cm2"] for b in bins) == pytest.approx(low)
    assert max(b["bin_to_j_cm2"] for b in bins) >= high
    assert all(b["bin_to_j_cm2"] - b["bin_from_j_cm2"] <= (high - low) / 4 for b in bins)
    assert sum(b["pulses"] for b in bins) == n


def test_queries_narrow_by_client_area_operator_and_last_sessions(url):
    assert [r["session"] for r in canned(url, "energy_by_session", client="c-1")] == [1, 2]
    assert [r["session"] for r in canned(url, "energy_by_session", client="C-1",
                                         area="left cheek", last="1")] == [2]
    assert [r["session"] for r in canned(url, "energy_by_session", operator="tech-02")] == [2]
    assert [r["session"] for r in canned(url, "energy_by_session", area="chin")] == [3]
    assert canned(url, "energy_by_session", area="chin")[0]["corrected"] == "area"
    assert {r["session"] for r in canned(url, "faults_in_period", client="C-2")} == {3}


def test_client_page_shows_corrected_areas_and_sign_off_states(url):
    page = httpx.get(f"{url}/-/laserlog/client", params={"client": "C-2"}, timeout=30).text
    assert re.search(r"chin <span[^>]*>\(corrected, recorded as forehead\)", page)
    page = httpx.get(f"{url}/-/laserlog/client", params={"client": "C-1"}, timeout=30).text
    assert "approved VALID" in page and "unsigned" in page
    bad = httpx.get(f"{url}/-/laserlog/client", params={"client": "C-1", "last": "six"},
                    timeout=30)
    assert bad.status_code == 400 and "expected a whole number" in bad.text
