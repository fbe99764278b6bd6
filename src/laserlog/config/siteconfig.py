"""The site configuration the laser safety officer owns: limits, calibration, witnesses.

One TOML file, found as $LASERLOG_SITE, else `site.toml` in the database's folder. Without
a file the defaults below apply. Every key is checked when the file loads, and an unknown
key is refused; a broken file stops recording with a message naming the file and key,
rather than recording unchecked. A session start also refuses limits for a profile that
is not on the profile search path (`check_limit_profiles`): a misspelt profile name would
leave its console without the officer's limits.

```toml
timezone = "Europe/Paris" # IANA name: days, ISO weeks and months in reports, the screen
                          # and the web view are this zone's (default: the machine's zone)
photos = "photos"         # the folder `photo add` files live in (relative: from this
                          # file's folder); paths are recorded relative to it

[clinic]                  # optional: printed at the head of every page of a session record
name = "Rue Lepic Skin Clinic"

[calibration]
interval_days = 30        # a console's last check must be younger than this
warn_deviation = 0.10     # |measured - set| / set above this warns
fail_deviation = 0.20     # ... and above this fails (IEC 60601-2-22 acceptance: +-20 %)
shots = 5                 # default number of shots of a check

[limits]                  # every console; min_/max_ + a stored column name
profile_tolerance = 0.10  # a pulse may pass a profile's parameter range by this much
max_fluence_j_cm2 = 8.0

[limits.ps755-ref]        # one profile (its id, as `laserlog profiles list` shows it)
max_fluence_j_cm2 = 6.0
min_spot_mm = 3

[anchor]                  # optional: a second copy of the chain head, on another drive
second = "/media/usb/laserlog.anchor"   # relative paths are from this file's folder

[operators]
registered = false        # true: operators must be registered users who give their
                          # passphrase at the start (default false)

[clients]                 # optional: this site's own pseudonym rule for client references
pattern = "K[0-9]{2}/[0-9]{4}"   # a regular expression the whole reference must match
example = "K12/0042"             # shown to the technician; must match the pattern

[courses]                 # treatment courses and test spots: docs/courses.md
required = false          # true: every session belongs to a course or is a test spot
baseline_photos = 0       # baseline photos a course needs before its first full session

[envelope.V.1064]         # skin-type envelopes per type and wavelength: docs/courses.md
max_fluence_j_cm2 = 3.0
[documents]               # consent and aftercare texts (Markdown): docs/courses.md
consent = "consent.md"    # `course new --witness USER` without --consent uses it
aftercare = "aftercare.md"  # given at every session's end unless `record --aftercare FILE`

[trust]                   # installation keys whose checkpoints count besides this machine's
installation_keys = []    # e.g. the PC this database came from (`laserlog site --json`)
```

The anchor beside the database must be writable when a session starts (else no session);
the second anchor is written after every commit like the first, but one that cannot be
written only adds a warning to the session.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from laserlog.config.courses import CoursePolicy, parse_policy
from laserlog.config.envelopes import EnvelopePolicy, parse_envelopes
from laserlog.config.files import loads_toml, read_text
from laserlog.config.tomlreader import TableReader, syntax_problem
from laserlog.domain import localtime
from laserlog.errors import ProfileError

#: Stored pulse columns a limit may name, with their unit for messages.
LIMIT_COLUMNS: dict[str, str] = {
    "energy_j": "J",
    "fluence_j_cm2": "J/cm2",
    "spot_mm": "mm",
    "pulse_duration_ps": "ps",
    "wavelength_nm": "nm",
    "rep_rate_hz": "Hz",
    "beamlet_fluence_j_cm2": "J/cm2",
}

Bounds = dict[str, tuple[float | None, float | None]]  # column -> (min, max)


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """What the officer decided for this site."""

    source: str = "(defaults)"
    calibration_interval_days: float = 30.0
    warn_deviation: float = 0.10
    fail_deviation: float = 0.20
    calibration_shots: int = 5
    profile_tolerance: float = 0.10
    limits: Bounds = field(default_factory=dict)
    profile_limits: dict[str, Bounds] = field(default_factory=dict)
    #: A second anchor file (the chain head after every commit), e.g. on a USB drive.
    second_anchor: Path | None = None
    #: Operators must be registered users who give their passphrase at the start.
    operators_registered: bool = False
    #: Installation keys (public, hex) whose checkpoints count besides this machine's own.
    installation_keys: tuple[str, ...] = ()
    #: The IANA time zone days and weeks are counted in; None: the machine's zone.
    timezone: str | None = None
    #: This site's pseudonym rule for client references (a regular expression matched
    #: against the whole reference) and an example of it; None: laserlog's default rule.
    client_pattern: str | None = None
    client_example: str | None = None
    #: The clinic's name, printed on every page of a session record; None: not configured.
    clinic_name: str | None = None
    #: Courses, their interval windows and test spots (laserlog.config.courses).
    courses: CoursePolicy = field(default_factory=CoursePolicy)
    #: Edges (J/cm2, ascending) of the adverse report's fluence bands; empty: quartiles.
    fluence_bands_j_cm2: tuple[float, ...] = ()
    #: Skin-type envelopes per type and wavelength (laserlog.config.envelopes).
    envelopes: EnvelopePolicy = field(default_factory=EnvelopePolicy)
    #: The site's consent and aftercare texts (Markdown files; relative paths are from the
    #: site file's folder); None: not configured. Read and checked when used.
    consent_file: Path | None = None
    aftercare_file: Path | None = None
    #: The folder photos are kept in (`photos`, relative from the site file's folder); None:
    #: not configured, so `photo add` refuses.
    photo_folder: Path | None = None

    @property
    def zone(self) -> ZoneInfo | None:
        """Return the zone reports, screens and the web view group times in."""
        return localtime.zone(self.timezone)

    def bounds_for(self, profile_id: str) -> Bounds:
        """Return the site's limits for one console: the profile's own override the general."""
        merged = dict(self.limits)
        for column, (low, high) in self.profile_limits.get(profile_id, {}).items():
            old_low, old_high = merged.get(column, (None, None))
            merged[column] = (low if low is not None else old_low,
                              high if high is not None else old_high)
        return merged


def site_path(db_path: str | Path | None = None) -> Path | None:
    """Return where the site configuration is looked for ($LASERLOG_SITE first)."""
    env = os.environ.get("LASERLOG_SITE")
    if env:
        return Path(env)
    if db_path is None:
        return None
    return Path(db_path).resolve().parent / "site.toml"


def _bounds(reader: TableReader, skip: set[str]) -> Bounds:
    bounds: Bounds = {}
    for key in list(reader.table):
        if key in skip:
            continue
        side, _, column = key.partition("_")
        if side not in ("min", "max") or column not in LIMIT_COLUMNS:
            raise reader.error(key, "unknown limit", expected="min_ or max_ followed by one of "
                               + ", ".join(LIMIT_COLUMNS))
        value = reader.float(key, minimum=0)
        low, high = bounds.get(column, (None, None))
        bounds[column] = (value, high) if side == "min" else (low, value)
    for column, (low, high) in bounds.items():
        if low is not None and high is not None and low > high:
            raise reader.error(f"max_{column}", "range is inverted",
                               value=f"min {low:g} > max {high:g}", expected="min <= max")
    return bounds


def parse_site(data: dict, source: str) -> SiteConfig:
    """Validate a parsed site file and return the configuration."""
    root = TableReader(source, "", data, docs="docs/review.md, the site file")
    timezone = _timezone(root)
    photos = _site_path(root, "photos", source, "the folder photos are kept in, e.g. "
                        "\"photos\" beside the site file")
    cal = root.sub("calibration")
    interval = cal.float("interval_days", 30.0, positive=True, maximum=3660)
    warn = cal.float("warn_deviation", 0.10, positive=True, maximum=1.0)
    fail = cal.float("fail_deviation", 0.20, positive=True, maximum=1.0)
    shots = cal.int("shots", 5, minimum=1, maximum=1000)
    cal.done()
    if warn > fail:
        raise cal.error("warn_deviation", "above fail_deviation", value=warn,
                        expected=f"at most fail_deviation ({fail:g})")
    lim = root.sub("limits")
    tolerance = lim.float("profile_tolerance", 0.10, minimum=0, maximum=1.0)
    profiles: dict[str, Bounds] = {}
    tables = {k for k, v in lim.table.items() if isinstance(v, dict)}
    for key in sorted(tables):
        sub = lim.sub(key)
        profiles[key] = _bounds(sub, set())
    general = _bounds(lim, tables | {"profile_tolerance"})
    second = _second_anchor(root.sub("anchor"), source)
    operators = root.sub("operators")
    registered = operators.bool("registered", False)
    operators.done()
    keys = _trusted_keys(root.sub("trust"))
    pattern, example = _client_rule(root.sub("clients"))
    clinic = _clinic_name(root.sub("clinic"))
    courses = parse_policy(root.sub("courses"))
    bands = _fluence_bands(root.sub("adverse"))
    envelopes = parse_envelopes(root.sub("envelope"))
    documents = root.sub("documents")
    consent = _document_path(documents, "consent", source)
    aftercare = _document_path(documents, "aftercare", source)
    documents.done()
    root.done()
    return SiteConfig(source, interval, warn, fail, shots, tolerance, general, profiles,
                      second_anchor=second, operators_registered=registered,
                      installation_keys=keys, timezone=timezone, client_pattern=pattern,
                      client_example=example, clinic_name=clinic, courses=courses,
                      fluence_bands_j_cm2=bands, envelopes=envelopes, consent_file=consent,
                      aftercare_file=aftercare, photo_folder=photos)


def _document_path(reader: TableReader, key: str, source: str) -> Path | None:
    """Return `[documents] KEY` as a path (relative ones from the site file's folder)."""
    return _site_path(reader, key, source, f"the path of a Markdown file, e.g. \"{key}.md\" "
                      "beside the site file")


def _site_path(reader: TableReader, key: str, source: str, expected: str) -> Path | None:
    """Return a path key of the site file (relative ones from the site file's folder)."""
    text = reader.opt_str(key)
    if text is None:
        return None
    if not text.strip() or "\0" in text:
        raise reader.error(key, "not a file name", value=text, expected=expected)
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else Path(source).resolve().parent / path


def _fluence_bands(reader: TableReader) -> tuple[float, ...]:
    """Return `[adverse] fluence_bands_j_cm2`: finite, positive, strictly ascending edges."""
    values = reader.list("fluence_bands_j_cm2", [])
    reader.done()
    edges: list[float] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 < float(value) < 1000 or (edges and float(value) <= edges[-1]):
            raise reader.error("fluence_bands_j_cm2", "not ascending fluences", value=values,
                               expected="numbers above 0 and below 1000 J/cm2, each above the "
                               "one before, e.g. [1.0, 2.0, 3.5]")
        edges.append(float(value))
    return tuple(edges)


def _client_rule(reader: TableReader) -> tuple[str | None, str | None]:
    """Return the site's pseudonym pattern and its example, both checked; (None, None)."""
    pattern = reader.opt_str("pattern")
    example = reader.opt_str("example")
    reader.done()
    if pattern is None:
        if example is not None:
            raise reader.error("example", "an example without a pattern",
                               expected="pattern = \"...\" beside it")
        return None, None
    if not 1 <= len(pattern) <= 200:
        raise reader.error("pattern", "not a pattern", value=pattern,
                           expected="a regular expression of 1-200 characters")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise reader.error("pattern", f"not a regular expression ({exc})", value=pattern,
                           expected="a Python regular expression such as "
                           "'[A-Z]{1,4}-?[0-9]{3,10}'") from None
    if compiled.fullmatch(""):
        raise reader.error("pattern", "matches an empty reference", value=pattern,
                           expected="a pattern every reference must fill")
    if example is None or not compiled.fullmatch(example):
        raise reader.error("example", "missing or does not match the pattern", value=example,
                           expected=f"a reference matching {pattern}, shown to technicians")
    return pattern, example


def _clinic_name(reader: TableReader) -> str | None:
    """Return the clinic's name for printed records: one line of at most 120 characters."""
    name = reader.opt_str("name")
    reader.done()
    if name is None:
        return None
    text = name.strip()
    if not text or len(text) > 120 or not text.isprintable():
        raise reader.error("name", "not a clinic name", value=name,
                           expected="one line of 1-120 printable characters, e.g. "
                           "\"Rue Lepic Skin Clinic\"")
    return text


def _timezone(reader: TableReader) -> str | None:
    """Return the site's IANA time zone name, checked against the zone database."""
    name = reader.opt_str("timezone")
    if name is None:
        return None
    try:
        localtime.zone(name.strip())
    except ValueError as exc:
        raise reader.error("timezone", str(exc), expected="an IANA time zone name such as "
                           "Europe/Paris or America/Los_Angeles") from None
    return name.strip()


def _trusted_keys(reader: TableReader) -> tuple[str, ...]:
    """Return the installation keys the officer vouches for besides this machine's own (a
    database moved from another PC keeps its earlier checkpoints trusted)."""
    keys = reader.list("installation_keys", [])
    reader.done()
    out = []
    for key in keys:
        text = key.strip().lower() if isinstance(key, str) else ""
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise reader.error("installation_keys", "not an installation key", value=key,
                               expected="64 hex digits, as `laserlog site --json` prints "
                               "under installation_key.public")
        out.append(text)
    return tuple(out)


def _second_anchor(reader: TableReader, source: str) -> Path | None:
    text = reader.opt_str("second")
    reader.done()
    if text is None:
        return None
    if not text.strip():
        raise reader.error("second", "empty path",
                           expected="the path of a second anchor file, e.g. "
                           "/media/usb/laserlog.anchor")
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(source).resolve().parent / path


def check_limit_profiles(site: SiteConfig, known: Collection[str]) -> None:
    """Refuse limits for a profile that is not among `known` (the profile ids on the path)."""
    for profile_id in sorted(site.profile_limits):
        if profile_id not in known:
            raise ProfileError(site.source, f"[limits.{profile_id}]",
                               f"no profile {profile_id!r} (known: {', '.join(sorted(known))})",
                               expected="a profile id as `laserlog profiles list` shows it")


def load_site(path: str | Path | None) -> SiteConfig:
    """Read the site file at `path`; the defaults when there is none."""
    if path is None:
        return SiteConfig()
    path = Path(path)
    try:
        text = read_text(path, "site file")
    except FileNotFoundError:
        if os.environ.get("LASERLOG_SITE"):
            raise ProfileError(str(path), "", "site configuration file does not exist",
                               expected="the file $LASERLOG_SITE names") from None
        return SiteConfig()
    except OSError as exc:
        raise ProfileError(str(path), "", f"cannot read the site file ({exc.strerror})") from None
    except ValueError as exc:
        raise ProfileError(str(path), "", str(exc)) from None
    try:
        data = loads_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), "", syntax_problem(text, exc)) from None
    except ValueError as exc:
        raise ProfileError(str(path), "", str(exc)) from None
    return parse_site(data, str(path))


def site_for(db_path: str | Path | None) -> SiteConfig:
    """Return the site configuration that applies to a database."""
    return load_site(site_path(db_path))
