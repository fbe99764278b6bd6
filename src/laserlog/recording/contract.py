"""The start-of-session contract: what every session starts with, checked in one place.

The session screen's form (field by field, as the technician types) and `laserlog record`
(from its options) hold a session to this contract, and the recorder checks it once more
before the session's row exists. What the one refuses, the other refuses, in the same words:

- **operator**: the operator's ID (`domain.ids.normal_id`: 1-40 letters, digits, `.`, `_`, `-`);
- **client**: a pseudonym, never a name. By default 1-4 letters, an optional `-`, then 3-10
  digits (`C-1042`, `AB1234`; not `Lopez1985`, `maria.lopez85`, `C-1`); a site sets its own
  rule in its site file (`[clients] pattern` and `example`). Rows already stored are never
  rewritten: a name recorded by mistake is corrected (`laserlog correct --client`), and the
  correction keeps the old value only as its hash;
- **area**: the treatment area, required;
- **skin type**: Fitzpatrick I-VI (1-6 accepted), required;
- **checklist**: every required item of the site's checklist answered (`--check KEY`;
  `--eyewear-checked` is the default eyewear item's older spelling).

A console that reports a fault or an open interlock at the start (read then, never taken from
an older reading) starts a session only with the operator's typed reason, and only when the
operator is a registered user whose passphrase opens their key; the session records both.

A headless session is steered by control lines on standard input (`CONTROLS`): `note TEXT`,
`marker [TEXT]`, `end`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from laserlog.config.checklist import DEFAULT_ITEMS, EYEWEAR_KEY, CheckItem, label_for
from laserlog.config.profile import Profile
from laserlog.domain.ids import normal_id
from laserlog.errors import LaserlogError, SessionError

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
CONTROLS = ("note", "marker", "end")
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
            return cls(items)
        return cls(items, site.client_pattern, site.client_example or "", site.source)

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
                 wavelengths_nm: tuple[float, ...] = ()) -> dict[str, str]:
        """Return why each refused field is refused, keyed by field (`check-KEY` for the
        checklist); empty when the start may go ahead."""
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
        for item in self.items:
            if item.required and not checks.get(item.key):
                errors[f"check-{item.key}"] = "required by this site's checklist"
        return errors

    def check(self, info: SessionInfo, wavelengths_nm: tuple[float, ...] = ()) -> SessionInfo:
        """Return the start's details, normalised, or raise SessionError naming every field
        refused, each with the option that answers it."""
        values = {"operator": info.operator_id, "client": info.client_ref, "area": info.area,
                  "skin": info.skin_type}
        errors = self.refusals(values, info.checklist, wavelengths_nm)
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
                           "'note TEXT', 'marker [TEXT]' or 'end'")
    text = " ".join(text.split())
    if command == "note" and not text:
        raise SessionError("control line 'note' without text; expected 'note TEXT'")
    if command == "end" and text:
        raise SessionError(f"control line {line.strip()[:60]!r}: 'end' takes no text")
    return command, text[:500]
