"""The FHIR R5 export: every resource validated with `fhir.resources`, numbers held to SQL.

One database is recorded through the real command line from simulated consoles on real ptys:
a course of two sessions for C-1042 (an assessment, a PIH adverse event with its update, a
burn entered for the wrong client and retracted, outcome scores entered and imported), a
one-off session of C-1042 on a second console, and a session of another client. The clock the
course rules read is moved from the test side only.
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources import get_fhir_model_class
from fhir.resources.bundle import Bundle
from pydantic import BaseModel
from test_courses import Clock, cli, rows

from laserlog.recording import courses

from conftest import START, copy_with_anchor

PASSPHRASE = "tech seven passphrase"
SITE = 'timezone = "Europe/Paris"\nphotos = "photos"\n[calibration]\ninterval_days = 30\n'
#: Course 1's photos: (file in the photo folder, session, view, kind, area).
PHOTOS = (("C-1042/front 0.jpg", None, "front", "baseline", None),
          ("C-1042/s1-left.PNG", "1", "left", "before", "upper cheek"),
          ("C-1042/s4-front.raw", "4", "front", "after", None))
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from laserlog.config.profile import open_profile
    from laserlog.review.users import add_user
    from laserlog.sim.engine import Simulator
    from laserlog.storage.store import Store

    folder = tmp_path_factory.mktemp("fhir")
    (folder / "site.toml").write_text(SITE)
    db = folder / "laserlog.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LASERLOG_SITE", raising=False)
        mp.setenv("LASERLOG_PASSPHRASE", PASSPHRASE)
        clock = Clock(datetime.now(UTC).replace(microsecond=0))
        mp.setattr(courses, "now", clock)
        ps755 = Simulator(open_profile("ps755-ref"), folder / "ps755", seed=5,
                          rate_hz=40.0).start()
        ps1064 = Simulator(open_profile("ps1064-ref"), folder / "ps1064", seed=6,
                           rate_hz=40.0).start()
        ps755.console.firing = ps1064.console.firing = True

        def ok(*argv: str) -> str:
            status, out, err = cli(*argv, "--db", str(db))
            assert status == 0, (argv, err)
            return out

        def record(sim: Simulator, client: str, pulses: int, *more: str) -> None:
            ok("record", "--profile", sim.profile.id, "--port", str(sim.path), "--operator",
               "tech-07", "--client", client, *START, "--pulses", str(pulses), *more)

        def day() -> str:
            return clock.at.date().isoformat()

        try:
            assert ok("course", "new", "--client", "C-1042", "--area", "left cheek",
                      "--indication", "pores", "--sessions", "4", "--interval", "21-42",
                      "--target", "28", "--console", "ps755-ref").strip() == "1"
            with Store(db) as store:
                add_user(store, "tech-07", "Tech Seven", "technician", PASSPHRASE)
            record(ps755, "C-1042", 14, "--course", "1")                        # session 1
            clock.advance(hours=1)
            ok("assess", "1", "--erythema", "2", "--oedema", "1", "--pain", "4", "--purpura",
               "--note", "marked redness", "--user", "tech-07")
            record(ps1064, "C-1042", 10, "--area", "forehead")                  # session 2
            record(ps755, "C-2001", 8)                                          # session 3
            clock.advance(days=25)
            record(ps755, "C-1042", 16, "--course", "1")                        # session 4
            for n, (name, session, view, kind, area) in enumerate(PHOTOS):
                photo = folder / "photos" / name
                photo.parent.mkdir(parents=True, exist_ok=True)
                photo.write_bytes(b"\xff\xd8\xff photo %d " % n * (n + 7))
                ok("photo", "add", str(photo), "--course", "1", "--view", view, "--kind", kind,
                   "--user", "tech-07", *(["--session", session] if session else []),
                   *(["--area", area] if area else []))
            ok("adverse", "add", "--session", "4", "--kind", "pih", "--onset", day(),
               "--seriousness", "non-serious", "--note", "brown patch at the jaw line")
            ok("adverse", "add", "--session", "1", "--kind", "burn", "--onset", day(),
               "--seriousness", "serious")
            ok("adverse", "retract", "2", "--reason", "entered for the wrong client")
            clock.advance(days=10)
            ok("adverse", "update", "1", "--outcome", "resolving", "--date", day())
            ok("outcome", "add", "--course", "1", "--scale", "gais", "--score", "4", "--date",
               day(), "--by", "tech-07")
            ok("outcome", "add", "--course", "1", "--scale", "satisfaction", "--score", "5",
               "--date", day())
            csv = folder / "skin-analysis.csv"
            csv.write_text("client,date,area,metric,value\n"
                           f"C-1042,{day()},left cheek,pore_count,183.5\n"
                           f"C-2001,{day()},left cheek,pore_count,90\n")
            ok("outcome", "import", str(csv))
        finally:
            ps755.stop()
            ps1064.stop()
    return db


@pytest.fixture
def db(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the recorded database (with its site file) for one test."""
    monkeypatch.delenv("LASERLOG_SITE", raising=False)
    copy = tmp_path / "laserlog.db"
    copy_with_anchor(recorded, copy)
    copy.chmod(0o600)
    (tmp_path / "site.toml").write_text(SITE)
    return copy


def export(db: Path, *selection: str, name: str = "bundle.json") -> dict[str, Any]:
    out = db.with_name(name)
    status, said, err = cli("export", "--format", "fhir", *selection, "--out", str(out),
                            "--db", str(db), "--force")
    assert status == 0, err
    assert "(FHIR R5 Bundle)" in said
    return json.loads(out.read_text(encoding="utf-8"))


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def code_of(resource: dict[str, Any]) -> str | None:
    codings = resource["code"].get("coding") or [{}]
    return codings[0].get("code")


def references(model: BaseModel) -> list[tuple[str | None, list[str] | None]]:
    """Return every Reference inside a validated resource, with the resource types its
    element allows (None: any), as the R5 definitions the models carry name them."""
    found: list[tuple[str | None, list[str] | None]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name, None)
        if value is None:
            continue
        targets = (info.json_schema_extra or {}).get("enum_reference_types") \
            if isinstance(info.json_schema_extra, dict) else None
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, BaseModel):
                continue
            kind = type(item).__name__
            if kind == "Reference":
                found.append((item.reference, targets))  # type: ignore[attr-defined]
            elif kind == "CodeableReference" and item.reference is not None:  # type: ignore[attr-defined]
                found.append((item.reference.reference, targets))  # type: ignore[attr-defined]
            found += references(item)
    return found


def validated(bundle: dict[str, Any]) -> None:
    """Validate the Bundle and each resource in it; every reference resolves inside the
    Bundle to a resource of a type its element allows."""
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    assert len(by_url) == len(bundle["entry"]), "two entries share a fullUrl"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        for reference, targets in references(model):
            if reference is None:
                continue  # a logical reference (an operator's ID)
            assert reference in by_url, (resource["resourceType"], reference)
            target = by_url[reference]["resourceType"]
            assert targets is None or target in targets or "Resource" in targets, (
                f"{resource['resourceType']} refers to a {target}, allowed {targets}")


def test_a_clients_bundle_validates_and_names_them_by_pseudonym_only(db):
    bundle = export(db, "--client", "C-1042")
    validated(bundle)
    (patient,) = resources(bundle, "Patient")
    assert "name" not in patient and "telecom" not in patient and "address" not in patient
    assert [i["value"] for i in patient["identifier"]] == ["C-1042"]
    text = json.dumps(bundle)
    assert "C-2001" not in text  # another client's session and outcome stay out
    assert "Tech Seven" not in text  # users' names stay out; their IDs are the performers
    systems = {r["url"]: r for r in resources(bundle, "CodeSystem")}
    quantities = systems["https://laserlog.example/fhir/CodeSystem/laser-quantities"]
    defined = {c["code"] for c in quantities["concept"]}
    for observation in resources(bundle, "Observation"):
        for coding in observation["code"].get("coding", []):
            assert coding["code"] in {c["code"] for c in systems[coding["system"]]["concept"]}
        if "valueQuantity" in observation and observation["code"].get("coding"):
            assert observation["valueQuantity"]["system"] == "http://unitsofmeasure.org"
            assert code_of(observation) in defined
    devices = resources(bundle, "Device")
    assert sorted(d["identifier"][0]["value"].split("/")[0] for d in devices) == [
        "ps1064-ref", "ps755-ref"]


def test_the_numbers_are_those_sql_finds_in_the_same_database(db):
    bundle = export(db, "--client", "C-1042")
    procedures = resources(bundle, "Procedure")
    mine = [r[0] for r in rows(db, "SELECT id FROM sessions WHERE client_ref = 'C-1042'"
                                   " ORDER BY id")]
    assert len(procedures) == len(mine) == 3
    session_of = {f"urn:uuid:{p['id']}": int(next(i["value"] for i in p["identifier"]
                                                   if i["system"].endswith("session-id")))
                  for p in procedures}
    assert sorted(session_of.values()) == mine
    dose: dict[int, dict[str, float]] = {}
    for o in resources(bundle, "Observation"):
        if o["code"].get("coding", [{}])[0].get("system", "").endswith("laser-quantities"):
            (part_of,) = o["partOf"]
            dose.setdefault(session_of[part_of["reference"]], {})[code_of(o)] = \
                o["valueQuantity"]["value"]
    for session_id in mine:
        count, energy, mean, top, duration, spot = rows(
            db, "SELECT count(*), sum(energy_j), avg(fluence_j_cm2), max(fluence_j_cm2),"
                " avg(pulse_duration_ps), avg(spot_mm) FROM pulses WHERE session_id = ?",
            session_id)[0]
        got = dose[session_id]
        assert got["pulse-count"] == count > 0
        assert got["total-energy"] == pytest.approx(energy, rel=1e-12)
        assert got["total-energy"] == pytest.approx(rows(
            db, "SELECT total_energy_j FROM sessions WHERE id = ?", session_id)[0][0])
        assert got["fluence-mean"] == pytest.approx(mean, rel=1e-12)
        assert got["fluence-max"] == pytest.approx(top, rel=1e-12)
        assert got["pulse-duration-mean"] == pytest.approx(duration, rel=1e-12)
        assert got["spot-size-mean"] == pytest.approx(spot, rel=1e-12)
    # Adverse events: the standing ones count; the retracted one is marked, no complication.
    events = resources(bundle, "AdverseEvent")
    standing = rows(db, "SELECT count(*) FROM adverse_event_state WHERE NOT retracted AND"
                        f" session_id IN ({', '.join(map(str, mine))})")[0][0]
    live = [e for e in events if e["status"] != "entered-in-error"]
    assert len(live) == standing == 1
    assert [e["status"] for e in events if e not in live] == ["entered-in-error"]
    (pih,) = live
    assert code_of(pih) == "pih" and pih["seriousness"]["coding"][0]["code"] == "non-serious"
    assert pih["outcome"][0]["coding"][0]["code"] == "recovering"
    assert pih["status"] == "in-progress"
    assert pih["occurrenceDateTime"] == rows(db, "SELECT onset_date FROM adverse_events"
                                                 " WHERE id = 1")[0][0]
    suspect = pih["suspectEntity"][0]["instanceReference"]["reference"]
    assert session_of[suspect] == 4
    complications = {session_of[f"urn:uuid:{p['id']}"]: p.get("complication", [])
                     for p in procedures}
    assert [c["concept"]["coding"][0]["code"] for c in complications[4]] == ["pih"]
    assert complications[4][0]["extension"][0]["valueReference"]["reference"] == \
        f"urn:uuid:{pih['id']}"
    assert complications[1] == [] and complications[2] == []
    # Procedures: status, period, area, console, operator, course.
    (care_plan,) = resources(bundle, "CarePlan")
    for p in procedures:
        session_id = session_of[f"urn:uuid:{p['id']}"]
        status, started, ended, area = rows(db, "SELECT status, started_utc, ended_utc, area"
                                                " FROM sessions WHERE id = ?", session_id)[0]
        assert (p["status"], p["occurrencePeriod"]) == (
            {"ended": "completed", "interrupted": "stopped"}[status],
            {"start": started, "end": ended})
        assert p["bodySite"] == [{"text": area}]
        assert p["performer"][0]["actor"]["identifier"]["value"] == "tech-07"
        based = [b["reference"] for b in p.get("basedOn", [])]
        assert based == ([f"urn:uuid:{care_plan['id']}"] if session_id in (1, 4) else [])
    # The course: planned sessions, window, sessions delivered.
    extensions = {e["url"].rsplit("/", 1)[1]: e for e in care_plan["extension"]}
    assert extensions["planned-sessions"]["valueInteger"] == 4
    window = extensions["interval-window"]["valueRange"]
    assert (window["low"]["value"], window["high"]["value"]) == (21, 42)
    assert "every 21-42 days (target 28)" in care_plan["description"]
    assert len(care_plan["activity"][0]["performedActivity"]) == 2
    # The immediate assessment and the outcomes.
    assessments = [o for o in resources(bundle, "Observation") if code_of(o) == "assessment"]
    assert len(assessments) == rows(db, "SELECT count(*) FROM assessments")[0][0] == 1
    parts = {c["code"]["coding"][0]["code"]: c.get("valueInteger", c.get("valueBoolean"))
             for c in assessments[0]["component"]}
    assert parts == {"erythema": 2, "oedema": 1, "pain-nrs": 4, "blister": False,
                     "purpura": True}
    outcomes = [o for o in resources(bundle, "Observation")
                if o["code"].get("text") == "pore_count" or code_of(o) in ("gais",
                                                                           "satisfaction")]
    assert len(outcomes) == rows(db, "SELECT count(*) FROM outcomes WHERE client_ref ="
                                     " 'C-1042'")[0][0] == 3
    values = sorted((o["code"].get("text"), o.get("valueInteger", o.get("valueQuantity")))
                    for o in outcomes)
    assert values == [("GAIS", 4), ("Satisfaction", 5), ("pore_count", {"value": 183.5})]


def test_a_session_or_a_course_exports_only_its_own_part(db):
    one = export(db, "--session", "4", name="session.json")
    validated(one)
    assert len(resources(one, "Procedure")) == 1 and len(resources(one, "CarePlan")) == 1
    assert [code_of(e) for e in resources(one, "AdverseEvent")] == ["pih"]
    assert not [o for o in resources(one, "Observation") if o.get("basedOn")]  # no outcomes
    course = export(db, "--course", "1", name="course.json")
    validated(course)
    periods = sorted(p["occurrencePeriod"]["start"] for p in resources(course, "Procedure"))
    assert periods == [r[0] for r in rows(db, "SELECT started_utc FROM sessions WHERE id IN"
                                              " (1, 4) ORDER BY started_utc")]
    assert len(resources(course, "Device")) == 1  # the one-off on the second console is out
    outcomes = [o for o in resources(course, "Observation") if o.get("basedOn")]
    assert len(outcomes) == rows(db, "SELECT count(*) FROM outcomes WHERE course_id = 1")[0][0]


def test_each_photo_is_a_document_reference_naming_its_file_and_sha256_once(db):
    bundle = export(db, "--client", "C-1042")
    validated(bundle)
    documents = resources(bundle, "DocumentReference")
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    sha256_system = "https://laserlog.example/fhir/NamingSystem/photo-sha256"
    shown = {}
    for d in documents:
        (sha256,) = [i["value"] for i in d["identifier"] if i["system"] == sha256_system]
        assert sha256 not in shown, "a photo is listed twice"
        shown[sha256] = d
    recorded = rows(db, "SELECT sha256, relative_path, size_bytes, session_id, kind, view,"
                        " area, added_by, added_utc FROM photos WHERE course_id = 1")
    assert len(recorded) == len(PHOTOS) and set(shown) == {r[0] for r in recorded}
    (care_plan,) = resources(bundle, "CarePlan")
    for sha256, path, size, session, kind, view, area, by, added in recorded:
        d = shown[sha256]
        assert d["status"] == "current" and d["date"] == added
        assert by_url[d["subject"]["reference"]]["resourceType"] == "Patient"
        (content,) = d["content"]
        assert "data" not in content["attachment"]  # by reference: never the bytes
        assert content["attachment"]["url"] == path.replace(" ", "%20")
        assert int(content["attachment"]["size"]) == size
        assert content["attachment"].get("contentType") == {
            ".jpg": "image/jpeg", ".PNG": "image/png"}.get(Path(path).suffix)
        assert (d["category"][0]["coding"][0]["code"], d["type"]["coding"][0]["code"]) == (
            kind, view)
        assert [b["reference"] for b in d["basedOn"]] == [f"urn:uuid:{care_plan['id']}"]
        events = [by_url[e["reference"]["reference"]] for e in d.get("event", [])]
        assert [next(i["value"] for i in p["identifier"] if i["system"].endswith("session-id"))
                for p in events] == ([] if session is None else [str(session)])
        assert d.get("bodySite", [{}])[0].get("concept", {}).get("text") == area
        assert d["author"][0]["identifier"]["value"] == by
    photos = {c["code"] for c in next(
        r for r in resources(bundle, "CodeSystem") if r["url"].endswith("/photos"))["concept"]}
    assert {"baseline", "before", "after", "follow-up", "front", "left", "right"} <= photos
    one = export(db, "--session", "4", name="session.json")
    validated(one)
    assert [d["category"][0]["coding"][0]["code"]
            for d in resources(one, "DocumentReference")] == ["after"]


def test_the_same_record_exported_twice_keeps_its_resource_ids(db):
    first = export(db, "--client", "C-1042", name="one.json")
    second = export(db, "--client", "C-1042", name="two.json")
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in second["entry"]]
    assert [e["resource"] for e in first["entry"]] == [e["resource"] for e in second["entry"]]


def test_a_console_metric_says_whether_its_output_was_checked_in_the_sites_interval(db):
    from laserlog.review.calibration import Check, Shot, record
    from laserlog.storage.store import Store

    def states() -> dict[str, str]:
        bundle = export(db, "--client", "C-1042")
        validated(bundle)
        device = {f"urn:uuid:{d['id']}": d["identifier"][0]["value"].split("/")[0]
                  for d in resources(bundle, "Device")}
        return {device[m["device"]["reference"]]: m["calibration"][0]["state"]
                for m in resources(bundle, "DeviceMetric")}

    def check(days_ago: float, result: str = "pass") -> None:
        model, serial, firmware = rows(db, "SELECT model, serial, firmware FROM devices WHERE"
                                           " profile_id = 'ps755-ref'")[0]
        when = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        with Store(db) as store:
            record(store, Check(0, "ps755-ref", model, serial, firmware, "ophir-nova2",
                                "PE50BF-C", "123456", "", "lso-01", when, when, 755.0, 0.12,
                                0.12, 0.0, 0.0, result, "laserlog", 0.1, 0.2,
                                [Shot(1, 0.0, 0.12, 0.12, 0.0, result)]))

    assert states() == {"ps755-ref": "not-calibrated", "ps1064-ref": "not-calibrated"}
    check(40)  # older than the site's 30 days
    assert states()["ps755-ref"] == "calibration-required"
    check(2)
    assert states() == {"ps755-ref": "calibrated", "ps1064-ref": "not-calibrated"}
    check(1, "fail")
    assert states()["ps755-ref"] == "calibration-required"


@pytest.mark.parametrize(("selection", "needle"), [
    (["--client", "C-9999"], "client 'C-9999' has no sessions"),
    (["--session", "99"], "no session 99"),
    (["--course", "7"], "no course 7"),
    (["--client", "C-1042", "--session", "1"], "not allowed with argument"),
    (["--session", "1", "--course", "1"], "not allowed with argument"),
    (["--from", "2026-01-01"], "give --client REF, --session ID or --course ID"),
])
def test_a_selection_naming_nothing_or_two_things_is_refused_and_nothing_written(
        db, selection, needle):
    out = db.with_name("refused.json")
    status, _, err = cli("export", "--format", "fhir", *selection, "--out", str(out),
                         "--db", str(db))
    assert status == 2 and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    assert needle in err
    assert not out.exists()
    assert not list(db.parent.glob(".refused.json*"))


def test_client_and_course_select_for_fhir_only_and_an_existing_file_needs_force(db):
    out = db.with_name("out.json")
    status, _, err = cli("export", "--format", "json", "--client", "C-1042", "--out", str(out),
                         "--db", str(db))
    assert status == 2 and "--client selects a client's record for --format fhir" in err
    assert not out.exists()
    out.write_text("keep me")
    status, _, err = cli("export", "--format", "fhir", "--client", "C-1042", "--out",
                         str(out), "--db", str(db))
    assert status == 2 and "exists; nothing was written" in err
    assert out.read_text() == "keep me"
    status, _, err = cli("export", "--format", "fhir", "--client", "C-1042", "--out",
                         str(out), "--db", str(db), "--force")
    assert status == 0, err
    Bundle.model_validate(json.loads(out.read_text()))


def test_the_export_builds_plain_json_without_a_fhir_library():
    source = ROOT / "src" / "laserlog" / "review" / "fhir.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {name for name in imported if name.split(".")[0] in ("fhir", "fhir_core")}
