"""A client's FHIR R5 export, in process: the median time of `export --format fhir --client`.

Builds a database holding one client's course of N sessions of P pulses each (every session
with an immediate assessment, a pass of outcome scores) beside another client's sessions,
then times what the command does after parsing its arguments: open the database, select
the client's record, build the Bundle and write it. Prints one JSON line; the target is 1 s
for 20 sessions of 3 000 pulses.
Usage: python benchmarks/fhir_export.py [--sessions 20] [--pulses 3000] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from laserlog.config.courses import Window
from laserlog.config.siteconfig import site_for
from laserlog.recording import courses
from laserlog.review import fhir, outcomes, reactions
from laserlog.review.export import export_fhir
from laserlog.review.users import add_user, unlock
from laserlog.storage import chain
from laserlog.storage.store import INSERT_PULSE, Store

TARGET_S = 1.0


def _utc(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build(path: Path, sessions: int, pulses: int, seed: int = 1) -> None:
    """Fill a database with the client's course and another client's sessions."""
    rng = random.Random(seed)
    first = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    with Store(path) as store:
        store.conn.execute("PRAGMA synchronous=OFF")  # building only
        device = store.device_id("ps755-ref", "PSR755", "R755-0001", "2.1.0")
        course = courses.create(store, client="C-1042", area="left cheek", indication="pores",
                                sessions=max(sessions, 1), window=Window(21, 42, 28),
                                profile_id="ps755-ref", note=None)
        plan = [("C-1042", ("course", course, None, None, None))] * sessions + \
            [("C-2001", ("one_off", None, None, None, None))] * max(1, sessions // 4)
        for number, (client, kind) in enumerate(plan):
            start = first + timedelta(days=28 * number)
            session_id = store.create_session(
                device_id=device, profile_id="ps755-ref", port="bench", operator_id="tech-07",
                client_ref=client, area="left cheek", skin_type="III", eyewear_checked=True,
                checklist_json=None, kind=kind, started_utc=_utc(start))
            t = start.timestamp()
            for offset in range(0, pulses, 1000):  # commits of 1000 pulses, each a link
                rows = []
                for seq in range(offset + 1, min(pulses, offset + 1000) + 1):
                    energy = 0.12 * (1 + rng.gauss(0, 0.03))
                    rows.append((session_id, seq, t + seq * 0.2, 650 * (1 + rng.gauss(0, 0.01)),
                                 "ps", energy, energy / 0.1257, 4.0, 755.0, 5.0, 1, None,
                                 "fluence"))
                with store.conn:
                    store.conn.executemany(INSERT_PULSE, rows)
                    chain.append_batch(store.conn, session_id, {"pulses": len(rows)})
            store.recount(session_id)
            store.end_session(session_id, "ended", "benchmark",
                              ended_utc=_utc(start + timedelta(seconds=pulses * 0.2 + 60)))
            reactions.assess(store, session_id, erythema=rng.randint(0, 3),
                             oedema=rng.randint(0, 3), pain_nrs=rng.randint(0, 10),
                             note="benchmark")
        found = courses.find(store.conn, course)
        assert found is not None
        today = courses.now().date().isoformat()
        add_user(store, "tech-07", "Tech Seven", "technician", "benchmark passphrase")
        signer = unlock(store, "tech-07", "benchmark passphrase")
        for scale, score in (("gais", 4), ("pore", 2), ("satisfaction", 5)):
            outcomes.add(store, found, scale, score, today, "tech-07", lambda _who: signer)


def export_once(db: Path, out: Path) -> tuple[float, dict]:
    """Export the client's record as the command does; return the seconds and the Bundle."""
    start = time.perf_counter()
    with Store(db, readonly=True) as store:
        selection = fhir.select(store.conn, client="C-1042")
        data = export_fhir(store.conn, selection, out, database=str(db), force=True,
                           site=site_for(store.path))
    return time.perf_counter() - start, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--pulses", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fhir.db"
        started = time.perf_counter()
        build(db, args.sessions, args.pulses)
        built_s = time.perf_counter() - started
        out = Path(tmp) / "bundle.json"
        export_once(db, out)  # warm: the page cache and imports, as a second export finds them
        times = []
        data: dict = {}
        for _ in range(max(1, args.runs)):
            elapsed, data = export_once(db, out)
            times.append(elapsed)
        median = statistics.median(times)
        kinds: dict[str, int] = {}
        for entry in data["entry"]:
            kinds[entry["resource"]["resourceType"]] = kinds.get(
                entry["resource"]["resourceType"], 0) + 1
        print(json.dumps({
            "figure": "fhir_export_client", "sessions": args.sessions,
            "pulses_per_session": args.pulses, "median_s": round(median, 4),
            "min_s": round(min(times), 4), "max_s": round(max(times), 4),
            "target_s": TARGET_S, "within_target": median <= TARGET_S, "runs": len(times),
            "entries": len(data["entry"]), "procedures": kinds.get("Procedure", 0),
            "observations": kinds.get("Observation", 0),
            "bundle_kb": round(out.stat().st_size / 1024, 1), "build_s": round(built_s, 1)}),
            flush=True)


if __name__ == "__main__":
    main()
