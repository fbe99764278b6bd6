"""The start-of-session contract: what every session starts with, checked in one place.

The session screen's form (field by field, as the technician types) and `laserlog record`
(from its options) hold a session to this contract, and the recorder checks it once more
before the session's row exists. What the one refuses, the other refuses, in the same words
(`record` exits 2 and writes nothing). The rules, in the order a start meets them:

**The fields** (`Contract.refusals`, `Contract.check`):

- **operator**: the operator's ID (`domain.ids.normal_id`: 1-40 letters, digits, `.`, `_`, `-`);
- **client**: a pseudonym, never a name. By default 1-4 letters, an optional `-`, then 3-10
  digits (`C-1042`, `AB1234`; not `Lopez1985`, `maria.lopez85`, `C-1`); a site sets its own
  rule in its site file (`[clients] pattern` and `example`). Rows already stored are never
  rewritten: a name recorded by mistake is corrected (`laserlog correct --client`), and the
  correction keeps the old value only as its hash;
- **area**: the treatment area, required;
- **skin type**: Fitzpatrick I-VI (1-6 accepted), required; refused when every wavelength
  of the console is one the skin type's envelope says to avoid (profile `[envelope.TYPE]`,
  site `[envelope.TYPE.NM]`), unless the site says `[envelope] on_avoid = "warn"`;
- **checklist**: every required item of the site's checklist answered (`--check KEY`;
  `--eyewear-checked` is the default eyewear item's older spelling).

**The course rules** (`Contract.course_start`, before the console is touched). A session is
a full session of a course (`--course ID`, the form's Course field), a test spot
(`--test-spot`) or a one-off:

- a site may require a course for every session (`[courses] required = true`);
- the course exists, is open, and is the session's client's and area's;
- a full session does not start before the course's window opens unless an officer
  authorised it (the front end checks the officer's passphrase; the session records who and
  why), and starts after the window closes with an `interval_late` warning;
- where the site requires it (`[courses] test_spot_required = true`), an uneventful,
  read-out, unexpired test spot of the client on the same console comes before a course's
  first full session (a course planned on the form too: `new_course_refusal`), and so do
  the baseline photos it asks for (`[courses] baseline_photos`). A course planned on the
  form is written once these rules, the console's status and its wavelength have let the
  start go ahead.

**The console, read at the start** (never taken from an older reading):

- a fault or an open interlock starts a session only with the operator's typed reason, and
  only when the operator is a registered user whose passphrase opens their key; the session
  records both (`console_trouble`);
- the settings, read just before the session's row and before the console is asked for
  pulses (`Contract.console_refusal`; a refused start leaves the console as it was but for
  the reads): a selected wavelength the skin type's envelope says to avoid is refused,
  naming the wavelength, the skin type and the rule (`Contract.wavelength_refusal`), unless
  the site says `[envelope] on_avoid = "warn"`; where the console does not report its
  wavelength (or the site says warn), the session starts with an `envelope_avoid` warning
  naming the avoided wavelength (`Contract.wavelength_warning`), and each pulse at it raises
  an `out_of_envelope` alarm;
- where the site says `[courses] above_test_spot = "refuse"`, a full session's set fluence
  above the highest its client's test spots tested at the selected wavelength and handpiece
  (or at one they never tested) is refused; during the session a pulse above it sends the
  profile's `stop` command once (`emission_stop` event).

**A test spot** ends at the site's `[courses] test_spot_max_pulses`: the recorder sends the
profile's `stop` command and ends the session; pulses already on their way are recorded.

A headless session is steered by control lines on standard input (`CONTROLS`): `note TEXT`,
`marker [TEXT]`, `pass N [SUB-AREA]`, `end`.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from laserlog.config.checklist import DEFAULT_ITEMS, EYEWEAR_KEY, CheckItem, label_for
from laserlog.config.courses import CoursePolicy
from laserlog.config.envelopes import EnvelopePolicy, EnvelopeRule
from laserlog.config.profile import Profile
from laserlog.domain import localtime
from laserlog.domain.ids import normal_id
from laserlog.errors import LaserlogError, SessionError
from laserlog.recording import courses, photos
from laserlog.recording.envelopes import Envelope, avoid_text, session_envelope

SKIN_TYPES = ("I", "II", "III", "IV", "V", "VI")
DEFAULT_CLIENT_PATTERN = r"[A-Za-z]{1,4}-?[0-9]{3,10}"
DEFAULT_CLIENT_EXAMPLE = "C-1042"
#: The longest client reference anything stores.
CLIENT_MAX_CHARS = 40
#: The fields of a start, in the order the form shows them, and the option naming each.
FIELDS = ("operator", "client", "area", "skin")
OPTIONS = {"operator": "--operator", "client": "--client", "area": "--area",
           "skin": "--skin-type"}
#: Control lines a headless session reads on standard input.
CONTROLS = ("note", "marker", "pass", "end")
#: The highest pass number a control line or the screen may mark.
MAX_PASS = 99
_LOOSE_PSEUDONYM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,39}")


def normalise_skin_type(text: str | None) -> str | None:
    """Return a Fitzpatrick skin type as I..VI (1..6 accepted), or raise SessionError."""
    if text is None or text == "":
        return None
    value = text.strip().upper()
    if value.isdigit() and 1 <= int(value) <= 6:
        value = SKIN_TYPES[int(value) - 1]
    if value not in SKIN_TYPES:
        raise SessionError(f"skin type {text!r} is not a Fitzpatrick type; expected I, II, III, "
                           "IV, V or VI (or 1-6)")
    return value


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Who treats whom, where: what a session starts with."""

    operator_id: str
    client_ref: str
    area: str | None = None
    skin_type: str | None = None
    eyewear_checked: bool = False
    checklist: dict[str, bool] = field(default_factory=dict)

    def validated(self) -> SessionInfo:
        """Return a copy with normalised fields, or raise SessionError saying what is wrong.

        This is the floor every stored session stands on (an ID, no spaces or punctuation
        in the client reference); `Contract.check` holds a start to the whole contract.
        """
        operator = self.operator_id.strip()
        if not operator:
            raise SessionError("operator ID is empty; expected the operator's ID, e.g. 'tech-07'")
        try:
            operator = normal_id(operator, "operator ID")
        except LaserlogError as exc:
            raise SessionError(str(exc)) from None
        client = self.client_ref.strip()
        if not _LOOSE_PSEUDONYM.fullmatch(client) or not any(ch.isdigit() for ch in client):
            raise SessionError(
                f"client reference {self.client_ref!r} is not a pseudonym; expected 2-40 letters, "
                "digits, '.', '_' or '-' with at least one digit (e.g. 'C-1042'), never a name")
        area = " ".join(self.area.split()) if self.area else None
        return SessionInfo(operator, client, area or None, normalise_skin_type(self.skin_type),
                           self.eyewear_checked, dict(self.checklist))


@dataclass(frozen=True, slots=True)
class Contract:
    """One site's start-of-session rules: its checklist and its pseudonym rule."""

    items: tuple[CheckItem, ...] = DEFAULT_ITEMS
    client_pattern: str = DEFAULT_CLIENT_PATTERN
    client_example: str = DEFAULT_CLIENT_EXAMPLE
    #: The site file that set the pseudonym rule; "" for laserlog's default rule.
    rule_source: str = ""
    #: The site's course policy and time zone (None: the machine's), for the course rules.
    courses: CoursePolicy = field(default_factory=CoursePolicy)
    timezone: str | None = None
    #: The site file the course policy comes from.
    site_source: str = "(defaults)"
    #: The site's skin-type envelopes (the profile's own join them per console).
    envelopes: EnvelopePolicy = field(default_factory=EnvelopePolicy)

    @classmethod
    def for_database(cls, db_path: str | Path | None,
                     checklist_file: str | Path | None = None) -> Contract:
        """Return the contract for sessions in this database: the site file beside it (or
        $LASERLOG_SITE) and the site's checklist (`checklist_file`, else the usual places)."""
        from laserlog.config.checklist import load_checklist
        from laserlog.config.siteconfig import site_for

        site = site_for(db_path)
        items = load_checklist(checklist_file)
        if site.client_pattern is None:
            return cls(items, courses=site.courses, timezone=site.timezone,
                       site_source=site.source, envelopes=site.envelopes)
        return cls(items, site.client_pattern, site.client_example or "", site.source,
                   site.courses, site.timezone, site.source, site.envelopes)

    def envelope(self, profile: Profile, skin: str | None) -> Envelope | None:
        """Return the skin-type envelope a session on this console is held to: the profile's
        and the site's rules for the type, the stricter winning (None: none declared)."""
        try:
            skin_type = normalise_skin_type(skin)
        except SessionError:
            return None
        return session_envelope(profile, self.envelopes, skin_type)

    def envelope_line(self, profile: Profile, skin: str | None) -> str:
        """Return the envelope in force as the form shows it and `record` prints it before
        the start ("" when none is declared for the type)."""
        envelope = self.envelope(profile, skin)
        return envelope.line() if envelope is not None else ""

    # -- the fields ---------------------------------------------------------------------------
    def client_ref(self, text: str) -> str:
        """Return the client reference, stripped, or raise SessionError saying the rule."""
        client = text.strip()
        if (len(client) <= CLIENT_MAX_CHARS
                and re.fullmatch(self.client_pattern, client) is not None):
            return client
        if self.rule_source:
            rule = f"this site's pattern {self.client_pattern} (site file {self.rule_source})"
        else:
            rule = "1-4 letters, an optional '-', then 3-10 digits"
        shown = client if len(client) <= CLIENT_MAX_CHARS else client[:CLIENT_MAX_CHARS] + "..."
        raise SessionError(f"client reference {shown!r} is not a pseudonym; expected {rule}, "
                           f"e.g. {self.client_example}, never a name")

    def refusals(self, values: Mapping[str, str | None], checks: Mapping[str, bool],
                 wavelengths_nm: tuple[float, ...] = (), *,
                 profile: Profile | None = None) -> dict[str, str]:
        """Return why each refused field is refused, keyed by field (`check-KEY` for the
        checklist); empty when the start may go ahead. With the console's `profile`, a skin
        type whose envelope avoids every wavelength of the console is refused."""
        errors: dict[str, str] = {}
        operator = (values.get("operator") or "").strip()
        if not operator:
            errors["operator"] = "the operator's ID is required, e.g. tech-07"
        else:
            try:
                normal_id(operator, "operator ID")
            except LaserlogError as exc:
                errors["operator"] = str(exc)
        client = values.get("client") or ""
        if not client.strip():
            errors["client"] = (f"the client's pseudonym is required, e.g. {self.client_example}"
                                ", never a name")
        else:
            try:
                self.client_ref(client)
            except SessionError as exc:
                errors["client"] = str(exc)
        if not " ".join((values.get("area") or "").split()):
            errors["area"] = "the treatment area is required, e.g. left cheek"
        elif len(values.get("area") or "") > 200:
            errors["area"] = "the treatment area is longer than 200 characters"
        skin = (values.get("skin") or "").strip()
        if not skin:
            errors["skin"] = "the client's Fitzpatrick skin type is required: I-VI (or 1-6)"
        else:
            try:
                normalise_skin_type(skin)
            except SessionError as exc:
                errors["skin"] = str(exc)
            else:
                envelope = self.envelope(profile, skin) if profile is not None else None
                if envelope is not None and envelope.refusal():
                    errors["skin"] = envelope.refusal()
        for item in self.items:
            if item.required and not checks.get(item.key):
                errors[f"check-{item.key}"] = "required by this site's checklist"
        return errors

    def check(self, info: SessionInfo, wavelengths_nm: tuple[float, ...] = (), *,
              profile: Profile | None = None) -> SessionInfo:
        """Return the start's details, normalised, or raise SessionError naming every field
        refused, each with the option that answers it (`profile`: see `refusals`)."""
        values = {"operator": info.operator_id, "client": info.client_ref, "area": info.area,
                  "skin": info.skin_type}
        errors = self.refusals(values, info.checklist, wavelengths_nm, profile=profile)
        if errors:
            labels = {f"check-{item.key}": label_for(item, wavelengths_nm) for item in self.items}
            parts = []
            for name, reason in errors.items():
                if name.startswith("check-"):
                    key = name.removeprefix("check-")
                    parts.append(f"checklist item {key!r} ({labels[name]}) is not confirmed: "
                                 f"add --check {key}")
                else:
                    parts.append(f"{OPTIONS[name]}: {reason}")
            raise SessionError("the session was not started: " + "; ".join(parts))
        answers = {item.key: bool(info.checklist.get(item.key)) for item in self.items}
        return SessionInfo(normal_id(info.operator_id.strip(), "operator ID"),
                           self.client_ref(info.client_ref), " ".join((info.area or "").split()),
                           normalise_skin_type(info.skin_type),
                           answers.get(EYEWEAR_KEY, info.eyewear_checked), answers)

    def course_refusal(self, conn: sqlite3.Connection, request: CourseRequest,
                       values: Mapping[str, str | None], profile_id: str) -> str:
        """Return why the course rules refuse a start ("" when they let it go ahead): the
        form shows it beside its Course field."""
        try:
            self.course_start(conn, request, values, profile_id, bare=True)
        except SessionError as exc:
            return str(exc)
        return ""

    def course_start(self, conn: sqlite3.Connection, request: CourseRequest,
                     values: Mapping[str, str | None], profile_id: str, *,
                     bare: bool = False) -> CourseStart:
        """Return what the course rules make of a start (now, by `courses.now`), or raise
        SessionError saying why not (`bare`: without naming the option)."""
        client = (values.get("client") or "").strip()
        area = " ".join((values.get("area") or "").split())
        try:
            skin = normalise_skin_type(values.get("skin"))
        except SessionError:
            skin = None
        try:
            return _course_rules(self, conn, request, client, area, skin, profile_id,
                                 courses.now())
        except SessionError as exc:
            if bare:
                raise
            raise type(exc)(f"the session was not started: --course: {exc}") from None

    def console_refusal(self, plan: CourseStart, settings: Mapping[str, float],
                        profile: Profile, skin: str | None = None) -> str:
        """Return why the console's settings, read at the start, refuse it ("" when they do
        not): the selected wavelength one the skin type is not to receive
        (`wavelength_refusal`), or, where the site says `[courses] above_test_spot =
        "refuse"`, a full session's set fluence above the highest its test spots tested at
        the selected wavelength and handpiece (or at one they never tested). The form and
        `record` both show it."""
        avoided = self.wavelength_refusal(profile, skin, settings)
        if avoided:
            return avoided
        tested = plan.tested
        fluence = settings.get("fluence")
        if (self.courses.above_test_spot != "refuse" or plan.kind != "course"
                or tested is None or fluence is None):
            return ""
        wavelength = settings.get("wavelength")
        if wavelength is None and len(profile.wavelengths_nm) == 1:
            wavelength = profile.wavelengths_nm[0]
        if wavelength is None:
            return ""  # which wavelength is unread: each pulse is held to its own instead
        handpiece = settings.get("handpiece")
        key = tested.key(wavelength, int(handpiece) if handpiece is not None else None)
        high = tested.fluence_j_cm2.get(key)
        if high is not None and fluence <= high:
            return ""
        where = courses.Tested.where(key)
        found = (f"above the highest test spot {tested.spot_of[key]} tested there "
                 f"({high:.4g} J/cm2)" if high is not None else "which no test spot tested")
        return (f"the console is set to {fluence:.4g} J/cm2 at {where}, {found}; this site "
                f"refuses it (site file {self.site_source}, [courses] above_test_spot = "
                "\"refuse\"): lower the fluence or test it on a test spot first")

    def wavelength_refusal(self, profile: Profile, skin: str | None,
                           settings: Mapping[str, float]) -> str:
        """Return why the wavelength the console reports it is set to refuses the start (""
        when it does not): the skin type's envelope says not to use it, and the site does
        not say `[envelope] on_avoid = "warn"`."""
        envelope = self.envelope(profile, skin)
        wavelength = selected_wavelength_nm(profile, settings)
        if envelope is None or envelope.warn_only or wavelength is None:
            return ""
        rule = _avoid_rule(envelope, wavelength, settings)
        if rule is None:
            return ""
        return (f"the console is set to {_avoided(wavelength, rule)}: select another "
                "wavelength on the console (a site may allow it with a warning: [envelope] "
                "on_avoid = \"warn\")")

    def wavelength_warning(self, profile: Profile, skin: str | None,
                           settings: Mapping[str, float]) -> str:
        """Return the warning a session starts with when the skin type is not to receive a
        wavelength of the console that may be the one selected ("" when none): the console
        does not report its wavelength, or reports an avoided one on a warn-only site."""
        envelope = self.envelope(profile, skin)
        if envelope is None:
            return ""
        wavelength = selected_wavelength_nm(profile, settings)
        if wavelength is None:
            avoided = envelope.avoided()
            if not avoided:
                return ""
            return ("the console does not report its selected wavelength: "
                    + "; ".join(avoid_text(w, rule) for w, rule in avoided)
                    + "; each pulse at it raises an out_of_envelope alarm")
        rule = _avoid_rule(envelope, wavelength, settings) if envelope.warn_only else None
        if rule is None:
            return ""
        return (f"the console is set to {_avoided(wavelength, rule)}; this site lets it "
                "start ([envelope] on_avoid = \"warn\"): each pulse at it raises an "
                "out_of_envelope alarm")

    def answers(self, keys: Iterable[str], *, eyewear_checked: bool = False) -> dict[str, bool]:
        """Return the checklist as answered by `--check KEY` options (and the older
        `--eyewear-checked`); raise SessionError for a key the checklist does not have."""
        known = [item.key for item in self.items]
        given = list(keys) + ([EYEWEAR_KEY] if eyewear_checked else [])
        for key in given:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {near[0]!r}? " if near else ""
                what = ("--eyewear-checked answers the item 'eyewear', which this site's "
                        "checklist does not have" if key == EYEWEAR_KEY and eyewear_checked
                        and key not in keys else f"--check {key!r}: not an item of this "
                        "site's checklist")
                raise SessionError(f"{what}; {hint}expected one of {', '.join(known)} "
                                   "(`laserlog checklist` lists them)")
        return {key: key in given for key in known}


def selected_wavelength_nm(profile: Profile, settings: Mapping[str, float]) -> float | None:
    """Return the wavelength the console reported it is set to (None: its profile reads
    none, or a value laserlog only set, which is not a reading)."""
    param = profile.parameters.get("wavelength")
    if param is None or not param.readable:
        return None
    return settings.get("wavelength")


def _avoid_rule(envelope: Envelope, wavelength_nm: float,
                settings: Mapping[str, float]) -> EnvelopeRule | None:
    """Return the rule that says not to use this wavelength with the console's handpiece and
    spot as read (None: it may be used)."""
    handpiece = settings.get("handpiece")
    return envelope.bound(wavelength_nm, int(handpiece) if handpiece is not None else None,
                          settings.get("spot")).avoid


def _avoided(wavelength_nm: float, rule: EnvelopeRule) -> str:
    return (f"{wavelength_nm:g} nm, which is not to be used on skin type {rule.skin_type} "
            f"({rule.source})")


class TooEarly(SessionError):
    """Raise when a full session would start before its course's window opens."""


@dataclass(frozen=True, slots=True)
class CourseRequest:
    """What a start asks of courses: its course (as typed), a test spot, and an officer's
    authority to start before the window opens (checked by the front end)."""

    course: str = ""
    test_spot: bool = False
    override_by: str = ""
    override_role: str = ""
    override_reason: str = ""


@dataclass(frozen=True, slots=True)
class CourseStart:
    """What the course rules make of a start: the session's kind, its course and plan, the
    warnings it starts with, and the fluence its test spots bound (None: not bounded)."""

    kind: str = "one_off"
    course_id: int | None = None
    interval: courses.Interval | None = None
    warnings: tuple[str, ...] = ()
    tested: courses.Tested | None = None
    override_by: str | None = None
    override_role: str | None = None
    override_reason: str | None = None


def course_id(text: str) -> int | None:
    """Return the course id a start names (None for none), or raise SessionError."""
    text = text.strip().removeprefix("#")
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # not ４ or ²
        raise SessionError(f"{text[:40]!r} is not a course ID; expected a number "
                           "(`laserlog course list`)")
    return int(text)


def course_refusal(course: courses.Course | None, wanted: int, client: str,
                   area: str) -> str:
    """Return why a course cannot hold a session of this client and area ("" when it can)."""
    if course is None:
        return f"no course {wanted} in this database (`laserlog course list`)"
    if not course.is_open:
        return (f"course {course.id} was closed on {(course.closed_utc or '')[:10]} "
                f"({course.close_reason}); start a new course")
    if client and client != course.client_ref:
        return f"course {course.id} is for client {course.client_ref}, not {client}"
    if area and area.lower() != course.area.lower():
        return f"course {course.id} is for area {course.area!r}, not {area!r}"
    return ""


def _course_rules(contract: Contract, conn: sqlite3.Connection, request: CourseRequest,
                  client: str, area: str, skin: str | None, profile_id: str,
                  at: datetime) -> CourseStart:
    """Return the start's course details, or raise SessionError with the bare reason."""
    policy = contract.courses
    wanted = course_id(request.course)
    if wanted is None:
        if request.test_spot:
            return CourseStart("test_spot")
        if policy.required:
            raise SessionError(f"this site requires a course for every session (site file "
                               f"{contract.site_source}, [courses] required); give the "
                               "course's ID or make it a test spot")
        return CourseStart()
    course = courses.find(conn, wanted)
    refusal = course_refusal(course, wanted, client, area)
    if refusal:
        raise SessionError(refusal)
    assert course is not None
    if request.test_spot:
        return CourseStart("test_spot", course.id)
    where = localtime.zone(contract.timezone)
    plan = courses.interval(conn, course, at, where)
    spots = courses.spots_for(conn, client, profile_id, skin, policy, at)
    if plan.status == "first":
        _test_spot_gate(contract, spots, f"course {course.id}")
    needed = policy.baseline_photos
    if plan.status == "first" and needed:
        have = photos.baseline_count(conn, course.id)
        if have < needed:
            raise SessionError(f"this site requires {needed} baseline photo(s) of course "
                               f"{course.id} before its first session (site file "
                               f"{contract.site_source}, [courses] baseline_photos); it has "
                               f"{have}: add them with `laserlog photo add FILE --course "
                               f"{course.id} --kind baseline --view front`")
    warnings: list[str] = []
    override = request.override_by.strip()
    if plan.status == "early":
        if not (override and request.override_reason.strip()):
            raise TooEarly(f"too early for course {course.id}: {plan.window_text()}; "
                               "an officer may authorise it with their ID, passphrase and a reason")
        warnings.append(f"started {plan.days_since} day(s) after the last session of course "
                        f"{course.id}, before its window ({course.window.text()} days) opened: "
                        f"authorised by {override} ({request.override_role}): "
                        f"{' '.join(request.override_reason.split())[:300]}")
    elif plan.status == "late":
        warnings.append(f"late for course {course.id}: {plan.window_text()}")
    return CourseStart("course", course.id, plan, tuple(warnings),
                       spots.tested if spots.tested.fluence_j_cm2 else None,
                       override if plan.status == "early" else None,
                       request.override_role or None if plan.status == "early" else None,
                       " ".join(request.override_reason.split())[:500] or None
                       if plan.status == "early" else None)


def _test_spot_gate(contract: Contract, spots: courses.SpotClearance, which: str) -> None:
    """Raise SessionError when the site requires a cleared test spot before a course's
    first full session and the client's test spots on this console clear none."""
    if contract.courses.test_spot_required and not spots.cleared:
        raise SessionError(f"this site requires an uneventful, read-out test spot on this "
                           f"console before the first session of {which}: {spots.why}")


def new_course_refusal(contract: Contract, conn: sqlite3.Connection, client: str,
                       skin: str | None, profile_id: str, test_spot: bool) -> str:
    """Return why a session of a course planned at its start may not start ("" when it
    may): a full session is its course's first, held to the site's test-spot gate."""
    if test_spot:
        return ""
    spots = courses.spots_for(conn, client, profile_id, normalise_skin_type(skin),
                              contract.courses, courses.now())
    try:
        _test_spot_gate(contract, spots, "the new course")
    except SessionError as exc:
        return str(exc)
    return ""


def new_course_start(contract: Contract, conn: sqlite3.Connection, client: str,
                     skin: str | None, profile_id: str, test_spot: bool) -> CourseStart:
    """Return what the first session of a course planned at its start would be held to: its
    kind and the fluence the client's test spots on this console bound, so the console's
    settings can be judged (`Contract.console_refusal`) before the course is written."""
    if test_spot:
        return CourseStart("test_spot")
    spots = courses.spots_for(conn, client, profile_id, normalise_skin_type(skin),
                              contract.courses, courses.now())
    return CourseStart("course", None, None, (),
                       spots.tested if spots.tested.fluence_j_cm2 else None)


def console_trouble(profile: Profile, interlock_open: bool, fault_code: int) -> str:
    """Return what a console's status says against starting a session ("" when nothing)."""
    parts = []
    if fault_code:
        fault = profile.status.faults.get(fault_code)
        parts.append(f"fault {fault_code}" + (f" ({fault.name}: {fault.message})"
                                              if fault is not None else ""))
    if interlock_open:
        parts.append("the interlock open")
    return "console reports " + " and ".join(parts) if parts else ""


def parse_control(line: str) -> tuple[str, str]:
    """Return a control line as (command, text), or raise SessionError saying the commands."""
    command, _, text = line.strip().partition(" ")
    if command not in CONTROLS:
        raise SessionError(f"control line {line.strip()[:60]!r} not understood; expected "
                           "'note TEXT', 'marker [TEXT]', 'pass N [SUB-AREA]' or 'end'")
    if command == "pass":
        number, _, sub_area = text.strip().partition(" ")
        if not number.isdigit() or not 1 <= int(number) <= MAX_PASS:
            raise SessionError(f"control line {line.strip()[:60]!r}: expected 'pass N "
                               f"[SUB-AREA]' with N from 1 to {MAX_PASS}")
        return command, f"{int(number)} {' '.join(sub_area.split())[:200]}".strip()
    text = " ".join(text.split())
    if command == "note" and not text:
        raise SessionError("control line 'note' without text; expected 'note TEXT'")
    if command == "end" and text:
        raise SessionError(f"control line {line.strip()[:60]!r}: 'end' takes no text")
    return command, text[:500]
