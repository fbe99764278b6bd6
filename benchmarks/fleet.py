"""Fleet energy report at scale: `laserlog report energy --db postgresql://... --by month`.

Starts its own PostgreSQL (tests/pgserver.py: initdb + pg_ctl in a temporary folder, tuned
for a bulk load: wal_level minimal, large maintenance memory) unless --url names an empty
database, creates the central schema with laserlog's own migration, and generates a fleet
on the server (INSERT ... SELECT over generate_series, nothing shipped row by row):

- `--consoles` consoles over `--sites` sites, each one device (755 nm and 1064/532 nm
  picosecond, Q-switched Nd:YAG, 1550 nm fractional), the later ones joining the fleet up to
  two years after the first, sessions spread over `--years` years of working hours;
- sessions of log-normal size (median about `--session-pulses`, 10 to 10 000 pulses), pulses
  with each console's duration, regime, shot-to-shot energy and fluence noise, spot,
  wavelength, rate, handpiece (and beamlet fluence on the fractional console); settings at
  session start; events: start warnings, gaps (the counter skips), runs of pulses above
  the site's fluence limit (one `out_of_limit` event each);
- session totals aggregated from the stored pulses, as the writer keeps them; chain links
  as the writer commits them (a genesis link per console, one link per commit: the
  session's start rows, then one per pulse with the events that came with it, each with a
  4-byte CRC per row, and a seal with the session's snapshot); the consoles' chain heads
  and the sync marks as a sync leaves them. Link hashes have the right form (SHA-256 hex)
  but are not computed from the rows: `laserlog verify` does not pass on this data.

Tables load without their keys and indexes (rebuilt from the migration's own definitions
afterwards), foreign-key triggers off, each big table truncated and filled in one
transaction (no WAL at wal_level minimal), two loads at a time; then VACUUM (FREEZE,
ANALYZE). Then it checks the report against the pulses table (every month, site and
console: pulse count, energy to 1e-6 relative, maximum fluence; out-of-limit events), and
times the report by month, site and console in process (laserlog.central.fleet.energy,
what the command calls; median of --runs after a warm-up) and once as the command, beside
the same GROUP BYs written in SQL (median, alternated in the same run). One JSON line per
figure. The server and its data are removed unless --keep.

Usage: python benchmarks/fleet.py [--pulses N] [--consoles C] [--sites S] [--url URL]
       [--runs R] [--keep] [--explain]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

#: Below this many pulses a run is a smoke run: a missing server is a note, not a failure.
SMALL = 1_000_000
TARGET_S = 2.0
GEN = "laserlog_fleetgen"  # the generator's scratch schema, dropped once the fleet is built
START_UNIX = 1_609_459_200  # 2021-01-01T00:00:00Z
SITE_NAMES = ("north", "south", "east", "west", "central", "harbour", "riverside", "airport",
              "old-town", "lakeside", "university", "market")
AREAS = ("left cheek", "right cheek", "forehead", "upper lip", "chin", "neck", "chest",
         "back", "left forearm", "right forearm", "left hand", "right hand", "full face")
#: Profile, share of the fleet.
MIX = (("ps755-ref", 0.35), ("ps1064-ref", 0.25), ("cfr-ndyag", 0.2), ("fx1550-ref", 0.2))

#: Per console type: what its device row, sessions and pulses look like (bundled profiles).
#: Fluence set points stay below the site limit even with the shot-to-shot noise (ja), so
#: only the planned runs pass it.
PROFILES: dict[str, dict[str, Any]] = {
    "ps755-ref": dict(model="PSR755", serial="R755-{:04d}", firmware="2.1.0",
                      port="/dev/ttyUSB0", regime="ps", wavelengths=(755,), spots=(2, 3, 4, 6),
                      square=False, fl=(0.8, 3.5), site_max=4.0, ja=0.04, dur=650, dur_jit=15,
                      dur_round=1, e_dec=1e5, f_dec=1e3, bf_k=None, derived=None,
                      reps=(2, 5, 5, 10), handpieces=(1,),
                      settings=(("energy", "J"), ("fluence", "J/cm**2"), ("spot", "mm"),
                                ("pulse_duration", "ps"), ("rep_rate", "Hz"),
                                ("wavelength", "nm"), ("handpiece", "dimensionless"))),
    "ps1064-ref": dict(model="PSR1064", serial="R1064-{:04d}", firmware="1.0.0",
                       port="/dev/ttyUSB0", regime="ps", wavelengths=(1064, 1064, 532),
                       spots=(3, 4, 5, 7, 10), square=False, fl=(0.3, 2.5), site_max=3.0,
                       ja=0.04, dur=400, dur_jit=12, dur_round=1, e_dec=1e6, f_dec=1e3,
                       bf_k=None, derived=None, reps=(2, 5, 10), handpieces=(1,),
                       settings=(("energy", "J"), ("fluence", "J/cm**2"), ("spot", "mm"),
                                 ("pulse_duration", "ps"), ("rep_rate", "Hz"),
                                 ("wavelength", "nm"), ("handpiece", "dimensionless"))),
    "cfr-ndyag": dict(model="CFR", serial="", firmware="", port="/dev/ttyS0", regime="ns",
                      wavelengths=(1064,), spots=(4, 6, 8), square=False, fl=(0.4, 1.6),
                      site_max=2.0, ja=0.0, dur=7000, dur_jit=0, dur_round=1, e_dec=1e6,
                      f_dec=0, bf_k=None, derived="settings,energy,fluence", reps=(5, 10, 10),
                      handpieces=(1, 2, 3),
                      settings=(("lamp_voltage", "V"), ("lamp_energy", "J"), ("rep_rate", "Hz"),
                                ("qswitch_delay", "s"), ("cooling_temperature", "degC"),
                                ("lamp_counter", "dimensionless"))),
    "fx1550-ref": dict(model="FXR1550", serial="RFX-{:04d}", firmware="1.4.2",
                       port="/dev/ttyUSB1", regime="long", wavelengths=(1550,),
                       spots=(7, 10, 15), square=True, fl=(2.0, 6.0), site_max=7.0, ja=0.04,
                       dur=3e9, dur_jit=6e7, dur_round=1e7, e_dec=1e2, f_dec=0, bf_k=88.42,
                       derived="energy,fluence", reps=(1, 2, 2, 4), handpieces=(1, 2),
                       settings=(("beamlet_energy", "J"), ("density", "dimensionless"),
                                 ("spot", "mm"), ("pulse_duration", "ps"), ("rep_rate", "Hz"),
                                 ("handpiece", "dimensionless"))),
}

#: Settings for the bulk load, on a server this script starts (a server named by --url is
#: used as it is configured).
SERVER_SETTINGS = {"wal_level": "minimal", "max_wal_senders": "0", "max_wal_size": "32GB",
                   "checkpoint_timeout": "1h", "maintenance_work_mem": "2GB",
                   "work_mem": "64MB", "effective_cache_size": "16GB",
                   "max_parallel_maintenance_workers": "2"}


def log(message: str) -> None:
    print(f"[fleet {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulses", type=int, default=100_000_000)
    parser.add_argument("--consoles", type=int, default=50)
    parser.add_argument("--sites", type=int, help="default: one per 6 consoles")
    parser.add_argument("--years", type=float, default=5.0)
    parser.add_argument("--session-pulses", type=int, default=500,
                        help="median session size (log-normal)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after a warm-up")
    parser.add_argument("--jobs", type=int, default=2, help="loads and index builds at a time")
    parser.add_argument("--shared-buffers", help="default 4GB (256MB below 10 M pulses)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", help="an empty database to fill (default: start a server)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the server and its data (prints how to reach and stop it)")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN ANALYZE of one console's report queries")
    args = parser.parse_args()
    args.sites = args.sites or max(1, math.ceil(args.consoles / 6))
    small = args.pulses < SMALL
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return _skip(small, "psycopg is not installed (pip install 'laserlog[central]')")
    server = None
    url = args.url
    if url is None:
        import pgserver

        if pgserver.find_bindir() is None:
            return _skip(small, "no PostgreSQL server binaries (initdb, pg_ctl, postgres): "
                                "install the postgresql package, or pass --url")
        began = time.perf_counter()
        server = pgserver.start()
        log(f"server started: {time.perf_counter() - began:.1f} s")
    created: list[str] | None = None  # the roles the migration created, once it ran
    try:
        if server is not None:
            buffers = args.shared_buffers or ("4GB" if args.pulses >= 10_000_000 else "256MB")
            _tune(server, {**SERVER_SETTINGS, "shared_buffers": buffers})
            url = server.create_database("laserlog_fleet")
            log("server tuned for the load and restarted")
        assert url is not None
        created = _prepare(url)
        gen = generate(url, args)
        print(json.dumps(gen), flush=True)
        check = check_totals(url)
        print(json.dumps(check), flush=True)
        log(f"totals checked against the pulses table: {check['scan_s']} s scan")
        for by in ("month", "site", "console"):
            print(json.dumps(measure(url, by, args, gen, check)), flush=True)
            log(f"timed by {by}")
        if args.explain:
            explain(url)
    finally:
        if args.keep and server is not None:
            log(f"kept: {url} (server folder {server.root}: stop it with pg_ctl -D"
                f" {server.root}/data stop, as the user owning that folder)")
        elif args.keep:
            log("kept the fleet in the database --url names")
        elif server is not None:
            server.stop()
        elif url is not None and created is not None:
            _drop(url, created)
    return 0 if check["totals_match"] else 1


def _skip(small: bool, why: str) -> int:
    print(f"fleet.py: skipped: {why}", file=sys.stderr)
    print(json.dumps({"figure": "fleet_energy", "skipped": why}), flush=True)
    return 0 if small else 2


def _tune(server: Any, settings: dict[str, str]) -> None:
    """Apply bulk-load settings to a server started by pgserver, and restart it."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as pg:
        for name, value in settings.items():
            pg.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    subprocess.run([*server.prefix, str(server.bindir / "pg_ctl"), "-D", str(server.root / "data"),
                    "-l", str(server.root / "server.log"), "-w", "-t", "120", "restart"],
                   check=True, capture_output=True, text=True, timeout=180)


def _prepare(url: str) -> list[str]:
    """Create the central schema with laserlog's migration; return the roles it created."""
    import psycopg

    from laserlog.central.pgschema import CONSOLE_ROLE, OFFICER_ROLE, migrate, server_version
    from laserlog.central.server import redact

    with psycopg.connect(url) as pg:
        if server_version(pg) != 0:
            raise SystemExit(f"{redact(url)}: already holds a laserlog schema; fleet.py fills"
                             " an empty database only (its loads truncate the tables)")
        roles = [r for r in (CONSOLE_ROLE, OFFICER_ROLE) if pg.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone() is None]
        pg.rollback()
        migrate(pg, "fleet benchmark server")
        pg.commit()
    return roles


def _drop(url: str, roles: list[str]) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f"DROP SCHEMA IF EXISTS {GEN} CASCADE")
        pg.execute("DROP SCHEMA IF EXISTS laserlog CASCADE")
        for role in roles:
            pg.execute(f"DROP OWNED BY {role}")
            pg.execute(f"DROP ROLE {role}")


# -- generation --------------------------------------------------------------------------------
def _q(value: Any) -> str:
    """Return a SQL literal for the generator's own constants (numbers, text, None)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _array(values: tuple, kind: str) -> str:
    return f"ARRAY[{', '.join(_q(v) for v in values)}]::{kind}[]"


def _console_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Return each console's type, site, pulses, and the day it joined the fleet."""
    if args.pulses < 10 * args.consoles:
        raise SystemExit("--pulses must be at least 10 x --consoles")
    rng = random.Random(args.seed)
    span_days = int(args.years * 365.25)
    kinds = []
    for profile, share in MIX:
        kinds += [profile] * max(1, round(share * args.consoles))
    kinds = (kinds * (args.consoles // len(kinds) + 1))[:args.consoles]
    rng.shuffle(kinds)
    plan = []
    for k in range(args.consoles):
        # The first consoles ran from the start, later ones joined within two years.
        joined = 0 if k < max(1, args.consoles // 3) else rng.randint(30, min(730, span_days // 2))
        plan.append({"k": k, "profile": kinds[k], "site_no": k % args.sites,
                     "start_unix": START_UNIX + joined * 86400,
                     "days": span_days - joined, "weight": (span_days - joined)
                     * rng.uniform(0.6, 1.4), "salt": rng.randrange(1, 2**31)})
    total_w = sum(c["weight"] for c in plan)
    left = args.pulses
    for c in plan:
        c["pulses"] = max(1, int(args.pulses * c["weight"] / total_w))
        left -= c["pulses"]
    plan[0]["pulses"] += left  # the exact total
    return plan


def _profiles_sql() -> str:
    rows = []
    for code, (name, p) in enumerate(PROFILES.items()):
        rows.append("(" + ", ".join([
            _q(name), str(code), _q(p["regime"]), _array(p["wavelengths"], "float8"),
            _array(p["spots"], "float8"), "true" if p["square"] else "false", _q(p["fl"][0]),
            _q(p["fl"][1]), _q(p["site_max"]), _q(p["ja"]), _q(float(p["dur"])),
            _q(float(p["dur_jit"])), _q(float(p["dur_round"])), _q(p["e_dec"]),
            _q(float(p["f_dec"])),
            _q(p["bf_k"]), _q(p["derived"]), _array(p["reps"], "float8"),
            _array(p["handpieces"], "int"), _array(tuple(n for n, _ in p["settings"]), "text"),
            _array(tuple(u for _, u in p["settings"]), "text"), _q(p["port"])]) + ")")
    return (f"CREATE TABLE {GEN}.profiles (profile text, code int, regime text, wls float8[],"
            " spots float8[], square bool, fl_lo float8, fl_hi float8, site_max float8,"
            " ja float8, dur float8, dur_jit float8, dur_round float8, e_dec float8,"
            " f_dec float8, bf_k float8, derived text, reps float8[], hps int[],"
            " set_names text[], set_units text[], port text);"
            f" INSERT INTO {GEN}.profiles VALUES {', '.join(rows)}")


def _plan_sql(args: argparse.Namespace) -> str:
    """The sessions' plan: sizes, times, settings, events, and every first id, per console."""
    median = max(10, args.session_pulses)
    mu = math.log(median)  # sigma 0.8: the mean is 1.38 x the median
    areas = _array(AREAS, "text")
    skins = _array(("I", "II", "II", "III", "III", "III", "IV", "IV", "V", "VI"), "text")
    u = f"{GEN}.u"
    return f"""
CREATE UNLOGGED TABLE {GEN}.plan AS
WITH cand AS (
  SELECT c.console_id, c.pulses AS target, c.salt, i,
    greatest(10, least(10000, round(exp({mu} + 0.8 * sqrt(-2 * ln({u}(c.salt * 100000 + i, 1)))
      * cos(2 * pi() * {u}(c.salt * 100000 + i, 2))))))::bigint AS n0
  FROM {GEN}.consoles c, generate_series(1, ceil(c.pulses::float8 / {median} * 1.6 + 40)::int) i
), cum AS (
  SELECT *, sum(n0) OVER (PARTITION BY console_id ORDER BY i) - n0 AS before FROM cand
), kept AS (
  SELECT console_id, i AS sid, least(n0, (target - before)::bigint) AS n,
    count(*) OVER (PARTITION BY console_id) AS total FROM cum WHERE before < target
), shaped AS (
  SELECT k.console_id, k.sid, k.n, c.salt, c.site_no, c.start_unix, p.*,
    -- working hours (08:00-18:00 UTC) of the console's days, shared evenly, +-20 %
    (k.sid - 0.5 + 0.4 * ({u}(c.salt * 100000 + k.sid, 3) - 0.5)) * c.days * 36000.0 / k.total
      AS w,
    c.days * 36000.0 / k.total AS spacing,
    p.spots[1 + floor({u}(c.salt * 100000 + k.sid, 4) * cardinality(p.spots))::int] AS spot,
    p.fl_lo + (p.fl_hi - p.fl_lo) * {u}(c.salt * 100000 + k.sid, 5) AS fl0,
    p.reps[1 + floor({u}(c.salt * 100000 + k.sid, 6) * cardinality(p.reps))::int] AS rep,
    p.wls[1 + floor({u}(c.salt * 100000 + k.sid, 7) * cardinality(p.wls))::int] AS wl,
    p.hps[1 + floor({u}(c.salt * 100000 + k.sid, 8) * cardinality(p.hps))::int] AS hp,
    {u}(c.salt * 100000 + k.sid, 9) AS u_start,
    {u}(c.salt * 100000 + k.sid, 10) AS u_run,
    {u}(c.salt * 100000 + k.sid, 11) AS u_gap,
    {u}(c.salt * 100000 + k.sid, 12) AS u_misc,
    {u}(c.salt * 100000 + k.sid, 13) AS u_who
  FROM kept k JOIN {GEN}.consoles c USING (console_id) JOIN {GEN}.profiles p USING (profile)
), planned AS (
  SELECT s.*,
    CASE WHEN s.square THEN (s.spot / 10) ^ 2 ELSE pi() * (s.spot / 20) ^ 2 END AS area,
    s.start_unix + floor(s.w / 36000) * 86400 + 8 * 3600 + (s.w - 36000 * floor(s.w / 36000))
      AS t0,
    greatest(1 / s.rep, least(2.5 / s.rep, 0.45 * s.spacing / s.n)) AS dt,
    (s.u_misc < 0.02)::int AS no_eyewear,
    (s.u_misc < 0.02)::int + (s.u_start < 0.1)::int AS ns_start,
    CASE WHEN s.u_run < 0.04 THEN floor({u}(s.salt * 100000 + s.sid, 14) * s.n * 0.8)::bigint
      ELSE -1 END AS run_at,
    CASE WHEN s.u_gap < 0.03 AND s.n > 1
      THEN 1 + floor({u}(s.salt * 100000 + s.sid, 15) * (s.n - 1))::bigint ELSE -1 END AS gap_at,
    1 + floor({u}(s.salt * 100000 + s.sid, 16) * 3)::bigint AS gap_missing,
    s.site_max * (1.08 + 0.1 * {u}(s.salt * 100000 + s.sid, 17)) AS run_fl,
    'tech-' || lpad((s.site_no * 10 + floor(s.u_who * 6))::text, 3, '0') AS operator_id,
    'C-' || (s.site_no * 100000 + 1 + floor({u}(s.salt * 100000 + s.sid, 18) * 2500))
      AS client_ref,
    ({areas})[1 + floor({u}(s.salt * 100000 + s.sid, 19) * {len(AREAS)})::int] AS area_name,
    ({skins})[1 + floor({u}(s.salt * 100000 + s.sid, 20) * 10)::int] AS skin_type
  FROM shaped s
), sized AS (
  SELECT p.*,
    CASE WHEN p.run_at >= 0
      THEN least(p.n - p.run_at, 1 + floor({u}(p.salt * 100000 + p.sid, 21) * 20))::bigint
      ELSE 0 END AS run_len,
    -- the cfr console's energy follows its lamp settings: whole hundredths of a joule
    CASE WHEN p.f_dec = 0 AND p.ja = 0 THEN round(p.fl0 * p.area * 100) / 100 / p.area
      ELSE p.fl0 END AS fl_set,
    cardinality(p.set_names) AS nset
  FROM planned p
)
SELECT s.console_id, s.sid, s.n, s.salt, s.profile, s.regime, s.area, s.spot, s.rep, s.wl,
  s.hp, s.ja, s.dur, s.dur_jit, s.dur_round, s.e_dec, s.f_dec, s.bf_k, s.derived, s.port,
  s.fl_set, s.run_fl, s.site_max, s.run_at, s.run_len, s.gap_at,
  CASE WHEN s.gap_at >= 0 THEN s.gap_missing ELSE 0 END AS gap_missing,
  s.ns_start, s.no_eyewear, s.t0::float8 AS t0, s.dt,
  (s.t0 + 30 + s.n * s.dt + 60 + 120 * s.u_who)::float8 AS t_end,
  s.operator_id, s.client_ref, s.area_name, s.skin_type,
  CASE WHEN s.u_misc > 0.997 THEN 'interrupted' ELSE 'ended' END AS status,
  s.ns_start + s.run_len + (s.gap_at >= 0)::int AS n_events, s.nset, s.set_names, s.set_units,
  CASE s.profile
    WHEN 'cfr-ndyag' THEN ARRAY[600 + 400 * s.fl_set, 8 + 8 * s.fl_set, s.rep, 0.00015, 35,
      100000 + s.sid * 700]
    WHEN 'fx1550-ref' THEN ARRAY[round(s.fl_set * s.area / 100 * 1000) / 1000,
      20 + s.hp * 10, s.spot, s.dur, s.rep, s.hp]
    ELSE ARRAY[round(s.fl_set * s.area * 1000) / 1000, round(s.fl_set * 1000) / 1000, s.spot,
      s.dur, s.rep, s.wl, s.hp]
  END::float8[] AS set_values,
  (CASE WHEN s.profile = 'cfr-ndyag'
    THEN sum(s.n + s.gap_missing * (s.gap_at >= 0)::int) OVER w - s.n
      - s.gap_missing * (s.gap_at >= 0)::int ELSE 0 END)::bigint AS seq0,
  (sum(s.n) OVER w - s.n)::bigint AS p0,
  (sum(s.ns_start + s.run_len + (s.gap_at >= 0)::int) OVER w
    - (s.ns_start + s.run_len + (s.gap_at >= 0)::int))::bigint AS e0,
  (sum(s.nset) OVER w - s.nset)::bigint AS s0,
  (1 + sum(s.n + 2) OVER w - (s.n + 2))::bigint AS l0
FROM sized s
WINDOW w AS (PARTITION BY s.console_id ORDER BY s.sid)
ORDER BY s.console_id, s.sid
"""


def _pulse_exprs(s: str, g: str) -> dict[str, str]:
    """SQL for a pulse's columns from its session plan `s` and its index `g` in the session."""
    pid = f"({s}.p0 + 1 + {g})"
    u = f"{GEN}.u({pid}, {s}.salt)"
    v = f"{GEN}.u({pid}, {s}.salt + 1)"
    in_run = f"({g} >= {s}.run_at AND {g} < {s}.run_at + {s}.run_len)"
    fl_raw = (f"((CASE WHEN {in_run} THEN {s}.run_fl ELSE {s}.fl_set END)"
              f" * (1 + {s}.ja * (2 * {u} - 1)))")
    energy = f"(round({fl_raw} * {s}.area * {s}.e_dec) / {s}.e_dec)"
    fluence = (f"(CASE WHEN {s}.f_dec > 0 THEN round({fl_raw} * {s}.f_dec) / {s}.f_dec"
               f" ELSE {energy} / {s}.area END)")
    return {
        "id": pid,
        "seq": f"({s}.seq0 + 1 + {g} + CASE WHEN {s}.gap_at >= 0 AND {g} >= {s}.gap_at"
               f" THEN {s}.gap_missing ELSE 0 END)",
        "time": f"({s}.t0 + 30 + {g} * {s}.dt)",
        "duration": f"(round(({s}.dur + {s}.dur_jit * (2 * {v} - 1)) / {s}.dur_round)"
                    f" * {s}.dur_round)",
        "energy": energy, "fluence": fluence,
        "beamlet": f"(CASE WHEN {s}.bf_k > 0 THEN {s}.bf_k * {energy} END)",
    }


def _events_before(s: str, g: str) -> str:
    """SQL for how many of a session's events come before pulse `g`'s (start, gap, run)."""
    return (f"({s}.ns_start + CASE WHEN {s}.run_at >= 0 THEN greatest(0, least({g} - {s}.run_at,"
            f" {s}.run_len)) ELSE 0 END + CASE WHEN {s}.gap_at >= 0 AND {s}.gap_at < {g}"
            " THEN 1 ELSE 0 END)")


def _utc(expr: str) -> str:
    return (f"to_char(to_timestamp({expr}) AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")


def _link_hash(link: str) -> str:
    return f"encode(sha256(int8send(s.console_id::bigint) || int8send(({link})::bigint)), 'hex')"


def _pulses_sql() -> list[str]:
    p = _pulse_exprs("s", "g")
    return ["TRUNCATE laserlog.pulses", f"""
INSERT INTO laserlog.pulses (console_id, id, session_id, seq, received_unix_s, pulse_duration_ps,
  regime, energy_j, fluence_j_cm2, spot_mm, wavelength_nm, rep_rate_hz, handpiece,
  beamlet_fluence_j_cm2, derived)
SELECT s.console_id, {p['id']}, s.sid, {p['seq']}, {p['time']}, {p['duration']}, s.regime,
  {p['energy']}, {p['fluence']}, s.spot, s.wl, s.rep, s.hp, {p['beamlet']}, s.derived
FROM (SELECT * FROM {GEN}.plan ORDER BY console_id, sid) s, generate_series(0, s.n - 1) g"""]


def _chain_pulse_links_sql() -> list[str]:
    """One link per commit of the writer: at these rates, one pulse (and its events) each."""
    p = _pulse_exprs("s", "g")
    before = _events_before("s", "g")
    ev_in = "((s.gap_at = g)::int + (g >= s.run_at AND g < s.run_at + s.run_len)::int)"
    return ["TRUNCATE laserlog.chain", f"""
INSERT INTO laserlog.chain (console_id, id, session_id, kind, committed_unix_s, ranges, snapshot,
  row_crcs, hash)
SELECT s.console_id, s.l0 + 1 + g, s.sid, 'batch', {p['time']} + 0.06,
  'pulses ' || {p['id']} || ' ' || {p['id']} || CASE WHEN {ev_in} > 0 THEN ',events '
    || (s.e0 + 1 + {before}) || ' ' || (s.e0 + {before} + {ev_in}) ELSE '' END,
  NULL,
  CASE {ev_in} WHEN 0 THEN int4send(hashint8(s.l0 + g))
    WHEN 1 THEN int4send(hashint8(s.l0 + g)) || int4send(hashint8(-1 - s.l0 - g))
    ELSE int4send(hashint8(s.l0 + g)) || int4send(hashint8(-1 - s.l0 - g))
      || int4send(hashint8(s.l0 + g + 7)) END,
  {_link_hash('s.l0 + 1 + g')}
FROM (SELECT * FROM {GEN}.plan ORDER BY console_id, sid) s, generate_series(0, s.n - 1) g"""]


def _events_sql() -> list[str]:
    p = _pulse_exprs("s", "g")
    before = _events_before("s", "g")
    return ["TRUNCATE laserlog.events", f"""
INSERT INTO laserlog.events (console_id, id, session_id, received_unix_s, kind, severity, code,
  message, missing_pulses, count, raw)
SELECT s.console_id, s.e0 + k, s.sid, s.t0 + 0.002 * k,
  CASE WHEN k = 1 AND s.no_eyewear = 1 THEN 'checklist' ELSE 'calibration_overdue' END,
  'warning', NULL::bigint,
  CASE WHEN k = 1 AND s.no_eyewear = 1 THEN 'eyewear check not confirmed at session start'
    ELSE 'calibration check overdue: the last check of this console is over 30 days old' END,
  NULL::bigint, 1, NULL::text
FROM {GEN}.plan s, generate_series(1, s.ns_start) k
UNION ALL
SELECT s.console_id, s.e0 + 1 + {before}, s.sid, {p['time']}, 'gap', 'warning', NULL,
  s.gap_missing || ' pulse(s) missing between ' || ({p['seq']} - s.gap_missing - 1) || ' and '
    || {p['seq']}, s.gap_missing, 1, NULL
FROM {GEN}.plan s, LATERAL (SELECT s.gap_at AS g) x WHERE s.gap_at >= 0
UNION ALL
SELECT s.console_id, s.e0 + 1 + {before} + (s.gap_at = g)::int, s.sid, {p['time']},
  'out_of_limit', 'alarm', NULL,
  'pulse ' || {p['seq']} || ': fluence ' || round(({p['fluence']})::numeric, 3)
    || ' J/cm2 above the site limit ' || round(s.site_max::numeric, 3) || ' J/cm2',
  NULL, 1, 'fluence_j_cm2'
FROM {GEN}.plan s, generate_series(s.run_at, s.run_at + s.run_len - 1) g WHERE s.run_at >= 0
"""]


def _settings_sql() -> list[str]:
    return ["TRUNCATE laserlog.settings", f"""
INSERT INTO laserlog.settings (console_id, id, session_id, received_unix_s, name, value, unit)
SELECT s.console_id, s.s0 + k, s.sid, s.t0 + 0.001, s.set_names[k], s.set_values[k],
  s.set_units[k]
FROM {GEN}.plan s, generate_subscripts(s.set_names, 1) k"""]


def _sessions_sql() -> list[str]:
    # Totals as the writer keeps them, from the pulses as stored.
    return ["TRUNCATE laserlog.sessions", f"""
INSERT INTO laserlog.sessions (console_id, id, uuid, device_id, profile_id, port, operator_id,
  client_ref, area, skin_type, eyewear_checked, checklist_json, started_utc, ended_utc, status,
  end_reason, pulse_count, total_energy_j, min_fluence_j_cm2, max_fluence_j_cm2, regimes,
  missing_pulses, event_count, resumes_session_id)
SELECT s.console_id, s.sid, gen_random_uuid()::text, 1, s.profile, s.port, s.operator_id,
  s.client_ref, s.area_name, s.skin_type, 1 - s.no_eyewear,
  '{{"consent": true, "eyewear": ' || CASE WHEN s.no_eyewear = 1 THEN 'false' ELSE 'true' END
    || ', "sun_exposure": true}}',
  {_utc('s.t0')}, {_utc('s.t_end')}, s.status,
  CASE WHEN s.status = 'ended' THEN 'ended by operator'
    ELSE 'recorder stopped without ending the session' END,
  t.n, t.energy, t.fmin, t.fmax, s.regime, s.gap_missing, s.n_events, NULL
FROM {GEN}.plan s JOIN (SELECT console_id, session_id, count(*) AS n, sum(energy_j) AS energy,
    min(fluence_j_cm2) AS fmin, max(fluence_j_cm2) AS fmax
  FROM laserlog.pulses GROUP BY console_id, session_id) t
  ON t.console_id = s.console_id AND t.session_id = s.sid
ORDER BY s.console_id, s.sid"""]


def _chain_session_links_sql() -> list[str]:
    """Genesis links, each session's start link (its settings and start events) and seal."""
    return [f"""
INSERT INTO laserlog.chain (console_id, id, session_id, kind, committed_unix_s, ranges, snapshot,
  row_crcs, hash)
SELECT c.console_id, 0, NULL, 'genesis', c.start_unix,
  'pulses 1 0,events 1 0,settings 1 0,sessions 1 0,devices 1 0', NULL, NULL, ''
FROM {GEN}.consoles c
UNION ALL
SELECT s.console_id, s.l0, s.sid, 'batch', s.t0 + 0.01,
  CASE WHEN s.ns_start > 0 THEN 'events ' || (s.e0 + 1) || ' ' || (s.e0 + s.ns_start) || ','
    ELSE '' END || 'settings ' || (s.s0 + 1) || ' ' || (s.s0 + s.nset), NULL,
  substr(sha256(int8send(s.l0)) || sha256(int8send(-s.l0)), 1, 4 * (s.ns_start + s.nset)::int),
  {_link_hash('s.l0')}
FROM {GEN}.plan s
UNION ALL
SELECT s.console_id, s.l0 + s.n + 1, s.sid, 'seal', s.t_end,  '',
  jsonb_build_object('device', to_jsonb(d) - 'console_id', 'session',
    to_jsonb(x) - 'console_id')::text, NULL, {_link_hash('s.l0 + s.n + 1')}
FROM {GEN}.plan s JOIN laserlog.sessions x ON x.console_id = s.console_id AND x.id = s.sid
  JOIN laserlog.devices d ON d.console_id = s.console_id AND d.id = 1"""]


def generate(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fill the empty central schema at `url` with a fleet; return what it took."""
    import psycopg

    from laserlog.central.pgschema import SCHEMA, TABLES

    started = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        steps[name] = round(now - since, 1)
        log(f"{name}: {now - since:.1f} s")
        return now

    plan = _console_plan(args)
    names = [f"{SITE_NAMES[c['site_no'] % len(SITE_NAMES)]}"
             f"{'' if c['site_no'] < len(SITE_NAMES) else c['site_no'] // len(SITE_NAMES) + 1}"
             for c in plan]
    with psycopg.connect(url, autocommit=True) as pg:
        superuser = pg.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                               ).fetchone()[0]
        keys = _take_keys(pg, SCHEMA, TABLES, superuser)
        t = step("drop_keys", started)
        pg.execute(f"DROP SCHEMA IF EXISTS {GEN} CASCADE")
        pg.execute(f"CREATE SCHEMA {GEN}")
        pg.execute(f"CREATE FUNCTION {GEN}.u(x bigint, salt bigint) RETURNS float8 LANGUAGE sql"
                   " IMMUTABLE PARALLEL SAFE AS $$ SELECT ((hashint8extended(x, salt)"
                   " & 4294967295)::float8 + 0.5) / 4294967296.0 $$")
        pg.execute(_profiles_sql())
        pg.execute(f"CREATE TABLE {GEN}.consoles (console_id int, k int, profile text,"
                   " pulses bigint, start_unix float8, days int, salt bigint, site_no int)")
        per_site: dict[str, int] = {}
        with pg.transaction():
            for c, site in zip(plan, names, strict=True):
                per_site[site] = per_site.get(site, 0) + 1
                name = f"{site}-{per_site[site]:02d}"
                first = _iso(c["start_unix"] + 86400)
                cid = pg.execute(
                    "INSERT INTO laserlog.consoles (console_uuid, name, site, first_synced_utc,"
                    " last_synced_utc) VALUES (gen_random_uuid(), %s, %s, %s, %s)"
                    " RETURNING console_id",
                    (name, site, first, _iso(START_UNIX + args.years * 365.25 * 86400))
                ).fetchone()[0]
                c["console_id"] = cid
                p = PROFILES[c["profile"]]
                serial = p["serial"].format(1000 + c["k"]) if p["serial"] else ""
                pg.execute("INSERT INTO laserlog.devices VALUES (%s, 1, %s, %s, %s, %s, %s)",
                           (cid, c["profile"], p["model"], serial, p["firmware"],
                            _iso(c["start_unix"])))
                pg.execute(f"INSERT INTO {GEN}.consoles VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                           (cid, c["k"], c["profile"], c["pulses"], c["start_unix"], c["days"],
                            c["salt"], c["site_no"]))
        t = step("consoles", t)
        pg.execute(f"ANALYZE {GEN}.consoles")
        pg.execute("SET jit = off")  # compiling the plan's query takes seconds, running it less
        pg.execute(_plan_sql(args))
        sessions, pulses, events, settings = pg.execute(
            f"SELECT count(*), sum(n), sum(n_events), sum(nset) FROM {GEN}.plan").fetchone()
        if pulses != args.pulses:
            raise SystemExit(f"the plan holds {pulses} pulses, not {args.pulses}")
        pg.execute(f"ANALYZE {GEN}.plan")
        log(f"plan: {sessions} sessions, {pulses} pulses, {events} events, {settings} settings")
        t = step("plan", t)
        # Two connections work through the loads (each big table truncated and filled in one
        # transaction: no WAL at wal_level minimal), then each table's VACUUM and key builds
        # as soon as its rows are in.
        load = {"pulses": "pulses", "sessions": "pulses", "chain": "seals", "events": "events",
                "settings": "settings"}
        jobs = [Job("pulses", _pulses_sql() + _sessions_sql()),
                Job("chain", _chain_pulse_links_sql()),
                Job("events", _events_sql()), Job("settings", _settings_sql()),
                Job("seals", _chain_session_links_sql(), after={"pulses", "chain"})]
        for table in sorted(TABLES, key=lambda name: name not in ("pulses", "chain")):
            jobs.append(Job(f"vacuum {table}", [f"VACUUM (FREEZE, ANALYZE) {SCHEMA}.{table}"],
                            after={load[table]} if table in load else set(), transaction=False))
        for table, label, sql in keys["build"]:
            jobs.append(Job(label, [sql], after={f"vacuum {table}"}))
        _parallel(url, jobs, args.jobs, steps)
        for sql in keys["after"]:
            pg.execute(sql)
        _heads(pg, args)
        pg.execute(f"DROP SCHEMA {GEN} CASCADE")
        pg.execute(f"VACUUM (ANALYZE) {SCHEMA}.consoles, {SCHEMA}.sync_marks")
        t = step("load_vacuum_keys", t)
        size = pg.execute("SELECT pg_database_size(current_database()),"
                          " pg_total_relation_size('laserlog.pulses'),"
                          " pg_total_relation_size('laserlog.chain'),"
                          " pg_total_relation_size('laserlog.sessions'),"
                          " pg_total_relation_size('laserlog.events')").fetchone()
        links = pg.execute("SELECT sum(head_link + 1) FROM laserlog.consoles").fetchone()[0]
    total = time.perf_counter() - started
    return {"figure": "fleet_generate", "pulses": int(pulses), "consoles": args.consoles,
            "sites": len(set(names)), "sessions": int(sessions), "events": int(events),
            "settings": int(settings), "chain_links": int(links),
            "median_session_pulses": args.session_pulses, "years": args.years,
            "seconds": round(total, 1), "pulses_per_s": round(int(pulses) / total),
            "steps_s": steps, "database_bytes": size[0],
            "database_gb": round(size[0] / 1e9, 2), "pulses_table_gb": round(size[1] / 1e9, 2),
            "chain_table_gb": round(size[2] / 1e9, 2), "sessions_table_mb": round(size[3] / 1e6, 1),
            "events_table_mb": round(size[4] / 1e6, 1)}


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(unix))


def _take_keys(pg: Any, schema: str, tables: Any, superuser: bool) -> dict[str, Any]:
    """Drop the shipped tables' keys and indexes for the load; return how to rebuild them.

    Definitions come from the catalog, so the rebuilt schema is the migration's own. The
    foreign keys' triggers are switched off (superuser) or the keys dropped and re-added.
    """
    build: list[tuple[str, str, str]] = []
    after: list[str] = []
    for table in tables:
        name = f"{schema}.{table}"
        for con, definition, kind in pg.execute(
                "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint"
                " WHERE conrelid = %s::regclass ORDER BY contype DESC", (name,)).fetchall():
            if kind == "f" and superuser:
                continue
            pg.execute(f"ALTER TABLE {name} DROP CONSTRAINT {con}")
            sql = f"ALTER TABLE {name} ADD CONSTRAINT {con} {definition}"
            if kind == "f":
                after.append(sql)
            else:
                build.append((table, con, sql))
        for index, definition in pg.execute(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
                " WHERE indrelid = %s::regclass", (name,)).fetchall():
            pg.execute(f"DROP INDEX {index}")
            build.append((table, index, definition))
        pg.execute(f"ALTER TABLE {name} SET (autovacuum_enabled = false)")
        if superuser:
            pg.execute(f"ALTER TABLE {name} DISABLE TRIGGER ALL")
            after.append(f"ALTER TABLE {name} ENABLE TRIGGER ALL")
        after.append(f"ALTER TABLE {name} RESET (autovacuum_enabled)")
    # The biggest tables' first: the two long builds run side by side.
    build.sort(key=lambda job: job[0] not in ("pulses", "chain"))
    return {"build": build, "after": after}


def _heads(pg: Any, args: argparse.Namespace) -> None:
    """Record each console's chain head and sync marks as its last sync left them."""
    from laserlog.storage.chain import CHAINED

    rows = pg.execute(
        f"SELECT console_id, max(l0 + n + 1), max(sid), sum(n), sum(n_events), sum(nset)"
        f" FROM {GEN}.plan GROUP BY console_id").fetchall()
    with pg.transaction():
        for cid, head, sessions, pulses, events, settings in rows:
            maxima = {"pulses": pulses, "events": events, "settings": settings}
            last_ids = {t: int(maxima.get(t, 0)) for t in CHAINED}
            digest = pg.execute("SELECT encode(sha256(int8send(%s::bigint)"
                                " || int8send(%s::bigint)), 'hex')", (cid, head)).fetchone()[0]
            pg.execute("UPDATE laserlog.consoles SET head_link = %s, head_hash = %s, last_ids = %s"
                       " WHERE console_id = %s", (head, digest, json.dumps(last_ids), cid))
            marks = {"devices": 1, "sessions": sessions, "settings": settings, "events": events,
                     "pulses": pulses, "chain": head}
            for table, last in marks.items():
                if last and last > 0:
                    pg.execute("INSERT INTO laserlog.sync_marks VALUES (%s, %s, %s)",
                               (cid, table, int(last)))


@dataclass
class Job:
    """Statements run on one connection, in one transaction unless told otherwise."""

    label: str
    statements: list[str]
    after: set[str] = field(default_factory=set)  # labels of the jobs it waits for
    transaction: bool = True


def _parallel(url: str, jobs: list[Job], workers: int, steps: dict[str, float]) -> None:
    """Run the jobs on `workers` connections, each job once the jobs it waits for are done."""
    import psycopg

    todo = list(jobs)
    done: set[str] = set()
    errors: list[BaseException] = []
    lock = threading.Condition()

    def take() -> Job | None:
        with lock:
            while todo and not errors:
                for job in todo:
                    if job.after <= done:
                        todo.remove(job)
                        return job
                lock.wait()
            return None

    def worker() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as pg:
                pg.execute("SET synchronous_commit = off")
                if workers > 1:
                    pg.execute("SET max_parallel_maintenance_workers = 0")
                while (job := take()) is not None:
                    started = time.perf_counter()
                    if job.transaction:
                        with pg.transaction():
                            for sql in job.statements:
                                pg.execute(sql)
                    else:
                        for sql in job.statements:
                            pg.execute(sql)
                    steps[job.label] = round(time.perf_counter() - started, 1)
                    if steps[job.label] >= 0.1:
                        log(f"  {job.label}: {steps[job.label]} s")
                    with lock:
                        done.add(job.label)
                        lock.notify_all()
        except BaseException as exc:
            with lock:
                errors.append(exc)
                lock.notify_all()

    threads = [threading.Thread(target=worker) for _ in range(max(1, workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    if todo:
        raise RuntimeError(f"jobs never ready: {', '.join(j.label for j in todo)}")


# -- check and timing --------------------------------------------------------------------------
def check_totals(url: str) -> dict[str, Any]:
    """Compare the reports by month, site and console with sums over the pulses table."""
    import psycopg

    from laserlog.central import fleet
    from laserlog.review.reports import make_filters

    started = time.perf_counter()
    with psycopg.connect(url) as pg:
        rows = pg.execute(
            "SELECT c.name, c.site, substr(s.started_utc, 1, 7), count(*), sum(p.energy_j),"
            " max(p.fluence_j_cm2) FROM laserlog.pulses p JOIN laserlog.sessions s"
            " ON s.console_id = p.console_id AND s.id = p.session_id"
            " JOIN laserlog.consoles c ON c.console_id = p.console_id GROUP BY 1, 2, 3").fetchall()
        out_of_limit = pg.execute("SELECT coalesce(sum(count), 0) FROM laserlog.events"
                                  " WHERE kind = 'out_of_limit'").fetchone()[0]
    scan_s = time.perf_counter() - started
    direct: dict[str, dict[str, list[float]]] = {"month": {}, "site": {}, "console": {}}
    for name, site, month, n, energy, fmax in rows:
        for by, key in (("month", month), ("site", site or "-"), ("console", name)):
            acc = direct[by].setdefault(key, [0, 0.0, -math.inf])
            acc[0] += n
            acc[1] += energy
            acc[2] = max(acc[2], fmax)
    problems = []
    for by, groups in direct.items():
        report = fleet.energy(url, by, make_filters())
        got = {r[by]: r for r in report.rows}
        if set(got) != set(groups):
            problems.append(f"{by}: groups differ")
            continue
        for key, (n, energy, fmax) in groups.items():
            r = got[key]
            if r["pulses"] != n or abs(r["energy_j"] - energy) > 1e-6 * abs(energy) \
                    or r["max_fluence_j_cm2"] != fmax:
                problems.append(f"{by} {key}: report {r['pulses']} pulses {r['energy_j']} J"
                                f" max {r['max_fluence_j_cm2']}, pulses table {n} {energy} J"
                                f" max {fmax}")
        total = report.total or {}
        if int(total.get("out_of_limit", -1)) != int(out_of_limit):
            problems.append(f"{by}: {total.get('out_of_limit')} out-of-limit pulses in the"
                            f" report, {out_of_limit} events")
    pulses = sum(g[0] for g in direct["month"].values())
    energy = sum(g[1] for g in direct["month"].values())
    for problem in problems[:10]:
        log(f"MISMATCH {problem}")
    return {"figure": "fleet_check", "totals_match": not problems, "mismatches": len(problems),
            "pulses_in_table": pulses, "energy_j_in_table": round(energy, 3),
            "out_of_limit_events": int(out_of_limit), "months": len(direct["month"]),
            "scan_s": round(scan_s, 1),
            "what": "report rows by month, site and console == count, sum(energy_j),"
                    " max(fluence_j_cm2) over the pulses table (1e-6 relative)"}


def _raw_sql(by: str) -> tuple[str, str]:
    """The report's two GROUP BYs (session totals, out-of-limit events) written directly."""
    key = {"month": "substr(s.started_utc, 1, 7)", "site": "coalesce(c.site, '-')",
           "console": "c.name"}[by]
    join = " JOIN laserlog.consoles c ON c.console_id = s.console_id" if by != "month" else ""
    grouped = (f"SELECT {key} AS k, count(*), min(s.started_utc), max(s.started_utc),"
               " sum(s.pulse_count), sum(s.total_energy_j), max(s.max_fluence_j_cm2),"
               " string_agg(DISTINCT s.regimes, ',') FROM laserlog.sessions s"
               " LEFT JOIN laserlog.devices d ON d.console_id = s.console_id AND d.id = s.device_id"
               f"{join} GROUP BY k ORDER BY k")
    limits = (f"SELECT {key} AS k, sum(e.count) FROM laserlog.events e JOIN laserlog.sessions s"
              f" ON s.console_id = e.console_id AND s.id = e.session_id{join}"
              " WHERE e.kind = 'out_of_limit' GROUP BY k")
    return grouped, limits


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "laserlog"
    return [str(script)] if script.exists() else [sys.executable, "-m", "laserlog"]


def measure(url: str, by: str, args: argparse.Namespace, gen: dict[str, Any],
            check: dict[str, Any]) -> dict[str, Any]:
    """Time the fleet report and the raw GROUP BY, alternated; the command once."""
    import psycopg

    from laserlog.central import fleet
    from laserlog.review.reports import make_filters

    grouped, limits = _raw_sql(by)
    report_s: list[float] = []
    raw_s: list[float] = []
    with psycopg.connect(url) as pg:
        def raw() -> None:
            pg.execute(grouped).fetchall()
            pg.execute(limits).fetchall()
            pg.rollback()

        def report() -> Any:
            return fleet.energy(url, by, make_filters())

        result = report()  # warm-up
        raw()
        for _ in range(max(1, args.runs)):
            report_s.append(_timed(report))
            raw_s.append(_timed(raw))
    started = time.perf_counter()
    done = subprocess.run([*_cli(), "report", "energy", "--db", url, "--by", by],
                          capture_output=True, text=True, timeout=600)
    cli_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"laserlog report energy --by {by} failed: {done.stderr}")
    median, raw_median = statistics.median(report_s), statistics.median(raw_s)
    total = result.total or {}
    return {"figure": "fleet_energy", "by": by, "pulses": gen["pulses"],
            "consoles": gen["consoles"], "sites": gen["sites"], "sessions": total.get("sessions"),
            "groups": len(result.rows), "pulses_in_report": total.get("pulses"),
            "report_s_median": round(median, 3), "report_s_runs": [round(t, 3) for t in report_s],
            "command_s": round(cli_s, 3), "raw_sql_s_median": round(raw_median, 4),
            "raw_sql_s_runs": [round(t, 4) for t in raw_s],
            "ratio_report_to_raw": round(median / raw_median, 1) if raw_median else None,
            "target_s": TARGET_S, "within_target": median <= TARGET_S,
            "totals_match_pulses_table": check["totals_match"],
            "raw_sql": "the report's two GROUP BYs (session totals; out-of-limit events) over"
                       " every console at once, on an open connection"}


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def explain(url: str) -> None:
    """Print EXPLAIN ANALYZE of the first console's two report queries, as the report runs them."""
    from laserlog.central.pgconn import ConsoleView, consoles
    from laserlog.central.server import open_server
    from laserlog.review.reports import _SESSION_FILTER, _SQL_GROUP_KEYS

    pg = open_server(url, after="")
    try:
        console = consoles(pg)[0]
        view = ConsoleView(pg, console[0], console[1])
        key = _SQL_GROUP_KEYS["month"]
        params = {"start": None, "end": None, "operator": None, "device": None}
        source = " FROM sessions s LEFT JOIN devices d ON d.id = s.device_id" + _SESSION_FILTER
        for sql in (f"SELECT {key} AS k, count(*), min(s.started_utc), max(s.started_utc),"
                    " sum(s.pulse_count), sum(s.total_energy_j), max(s.max_fluence_j_cm2),"
                    f" group_concat(DISTINCT s.regimes){source} GROUP BY k ORDER BY k",
                    f"SELECT {key} AS k, sum(e.count) FROM events e JOIN sessions s"
                    f" ON s.id = e.session_id LEFT JOIN devices d ON d.id = s.device_id"
                    f"{_SESSION_FILTER} AND e.kind = 'out_of_limit' GROUP BY k"):
            text = view.bind("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            print(f"-- console {console[1]}:\n" + "\n".join(
                r[0] for r in pg.execute(text).fetchall()), file=sys.stderr)
        pg.rollback()
    finally:
        pg.close()


if __name__ == "__main__":
    raise SystemExit(main())
