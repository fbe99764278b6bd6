"""Check a new course's plan as typed: the rules `course new` and the session form share.

Each field is checked the same way for both front ends, and each refusal names the field the
way its front end does (`--interval` on the command line, `interval` on the form), followed
by the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from laserlog.config.courses import Window, checked_window, parse_window
from laserlog.errors import LaserlogError
from laserlog.recording import courses
from laserlog.recording.contract import Contract
from laserlog.storage.store import Store

#: The fields of a plan, as `course new` names them.
OPTIONS = {"client": "--client", "area": "--area", "indication": "--indication",
           "sessions": "--sessions", "interval": "--interval", "target": "--target"}
#: The most sessions a course may plan.
MAX_SESSIONS = 100


@dataclass(frozen=True, slots=True)
class CoursePlan:
    """A new course's plan, checked: what `courses.create` records."""

    client: str
    area: str
    indication: str
    sessions: int
    window: Window
    profile_id: str | None = None
    note: str | None = None


def create(store: Store, plan: CoursePlan, also: courses.AddAlso | None = None) -> int:
    """Record a new course as planned; return its id. `also` adds what belongs with it (the
    consent its client agreed) in the same transaction: both or neither."""
    return courses.create(store, client=plan.client, area=plan.area,
                          indication=plan.indication, sessions=plan.sessions,
                          window=plan.window, profile_id=plan.profile_id, note=plan.note,
                          also=also)


def _whole(text: str) -> int | None:
    digits = text.strip()
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 9 else None


def plan_refusals(contract: Contract, values: Mapping[str, str | None],
                  names: Mapping[str, str] = OPTIONS) -> tuple[CoursePlan | None, dict[str, str]]:
    """Return the plan the fields make (None when any is refused) and why each refused field
    is refused, keyed by field; `names` says how the front end names each field. An interval
    of None is not given: the site's window for the indication."""
    errors: dict[str, str] = {}
    text = {key: values.get(key) or "" for key in (*OPTIONS, "note")}
    try:
        client = contract.client_ref(text["client"])
    except LaserlogError as exc:
        errors["client"] = str(exc)
    area = " ".join(text["area"].split())
    if not area or len(area) > 200:
        errors["area"] = (f"{names['area']} {text['area']!r}: expected a treatment area of "
                          "1-200 characters, e.g. 'left cheek'")
    policy = contract.courses
    indication = text["indication"].strip().lower()
    if indication not in policy.indications:
        errors["indication"] = (f"{names['indication']} {text['indication']!r}: not an "
                                f"indication of this site; expected one of "
                                f"{', '.join(policy.indications)} (the site file's "
                                "[courses.intervals] adds more)")
    sessions = _whole(text["sessions"])
    if sessions is None or not 1 <= sessions <= MAX_SESSIONS:
        errors["sessions"] = (f"{names['sessions']} {text['sessions']!r}: expected the planned "
                              f"number of sessions, a whole number from 1 to {MAX_SESSIONS}")
    window: Window | None = None
    try:
        if values.get("interval") is not None:  # given, even empty: held to the rule
            window = parse_window(text["interval"], names["interval"])
        elif indication in policy.intervals:
            window = policy.intervals[indication]
        elif "indication" not in errors:
            site = ("no site file" if contract.site_source == "(defaults)"
                    else f"the site file {contract.site_source}")
            raise LaserlogError(f"{names['interval']} is missing and {site} has no window for "
                                f"{indication}; give {names['interval']} MIN-MAX in days, "
                                f"e.g. 21-42, or add {indication} = \"21-42\" under "
                                "[courses.intervals]")
    except LaserlogError as exc:
        errors["interval"] = str(exc)
    if text["target"].strip():
        target = _whole(text["target"])
        if target is None:
            errors["target"] = (f"{names['target']} {text['target']!r}: expected whole days "
                                "between sessions, inside the window")
        elif window is not None:
            try:
                window = checked_window(window.min_days, window.max_days, target,
                                        names["target"])
            except LaserlogError as exc:
                errors["target"] = str(exc)
    if errors or window is None or sessions is None:
        return None, errors
    note = " ".join(text["note"].split())[:500] or None
    return CoursePlan(client, area, indication, sessions, window, None, note), errors


def checked_plan(contract: Contract, values: Mapping[str, str | None],
                 names: Mapping[str, str] = OPTIONS) -> CoursePlan:
    """Return the plan the fields make, or raise LaserlogError with the first refusal."""
    plan, errors = plan_refusals(contract, values, names)
    if plan is None:
        raise LaserlogError(next(iter(errors.values())))
    return plan
