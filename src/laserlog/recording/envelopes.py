"""The skin-type envelope of one session, and the check every pulse passes against it.

The rules come from the console's profile and the site file (laserlog.config.envelopes);
for a pulse the stricter value wins. A pulse above the recommended fluence is an
`out_of_envelope` warning, above the maximum (or at a wavelength to avoid) an
`out_of_envelope` alarm. They are counted, not listed: the recorder drains the breaches
into one event per rule at each commit (~100 ms), its count the pulses that passed it, so a
flood above the maximum never makes one event per pulse.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from laserlog.config.envelopes import EnvelopePolicy, EnvelopeRule, profile_rules
from laserlog.config.profile import Profile
from laserlog.storage.rows import EventRow, PulseAt

#: A cache of bounds per (wavelength, handpiece, spot) stays this small.
_CACHE_MAX = 64


@dataclass(frozen=True, slots=True)
class Bound:
    """What holds for pulses at one wavelength, handpiece and spot: the strictest rules."""

    recommended: EnvelopeRule | None = None
    maximum: EnvelopeRule | None = None
    avoid: EnvelopeRule | None = None


@dataclass(frozen=True, slots=True)
class EnvelopeCell:
    """What holds for one skin type at one wavelength (and handpiece or spot, where a rule
    names one): the recommended and maximum fluence, whether to avoid it, and the rule that
    won each. The session's `envelope` event keeps its cells as JSON (`raw`), so the record
    shows what was in force then, whatever the files say today."""

    skin_type: str
    wavelength_nm: float | None  # None: every wavelength
    scope: str = ""  # "handpiece 2, spot 4 mm"; "" for every handpiece and spot
    recommended_fluence_j_cm2: float | None = None
    recommended_source: str | None = None
    max_fluence_j_cm2: float | None = None
    max_source: str | None = None
    avoid_source: str | None = None  # the rule that says not to use it; None: may be used


def cells_json(cells: list[EnvelopeCell]) -> str:
    """Return cells as the JSON the session's `envelope` event keeps."""
    return json.dumps([asdict(c) for c in cells], sort_keys=True)


def cells_from_json(text: str | None) -> list[EnvelopeCell]:
    """Return the cells an `envelope` event kept ([] for a record from before they were
    kept, or text that is not theirs)."""
    try:
        data: Any = json.loads(text or "[]")
    except ValueError:
        return []
    names = {f.name for f in fields(EnvelopeCell)}
    if not isinstance(data, list) or not all(isinstance(d, dict) and "skin_type" in d
                                             and set(d) <= names for d in data):
        return []
    return [EnvelopeCell(**d) for d in data]


def _cell(skin_type: str, wavelength_nm: float | None, scope: str, bound: Bound) -> EnvelopeCell:
    rec, most = _shown(bound)
    return EnvelopeCell(skin_type, wavelength_nm, scope,
                        rec.recommended_fluence_j_cm2 if rec else None,
                        rec.source if rec else None,
                        most.max_fluence_j_cm2 if most else None,
                        most.source if most else None,
                        bound.avoid.source if bound.avoid else None)


def _shown(bound: Bound) -> tuple[EnvelopeRule | None, EnvelopeRule | None]:
    """Return the recommended and maximum rules worth stating (no recommended fluence at or
    above the maximum: nothing is recommended above it)."""
    rec, most = bound.recommended, bound.maximum
    if rec is not None and most is not None and (
            (rec.recommended_fluence_j_cm2 or 0.0) >= (most.max_fluence_j_cm2 or 0.0)):
        rec = None
    return rec, most


def _strictest(rules: list[EnvelopeRule]) -> Bound:
    recommended = [r for r in rules if r.recommended_fluence_j_cm2 is not None]
    maximum = [r for r in rules if r.max_fluence_j_cm2 is not None]
    return Bound(min(recommended, key=lambda r: r.recommended_fluence_j_cm2 or 0.0)
                 if recommended else None,
                 min(maximum, key=lambda r: r.max_fluence_j_cm2 or 0.0) if maximum else None,
                 next((r for r in rules if r.avoid), None))


def _fluence_text(bound: Bound) -> str:
    """Return "recommended up to R J/cm2 (rule), at most M J/cm2 (rule)", a rule named once
    when it sets both."""
    rec, most = _shown(bound)
    if rec is not None and most is not None and rec.source == most.source:
        return (f"recommended up to {rec.recommended_fluence_j_cm2:g}, at most "
                f"{most.max_fluence_j_cm2:g} J/cm2 ({rec.source})")
    parts = []
    if rec is not None:
        parts.append(f"recommended up to {rec.recommended_fluence_j_cm2:g} J/cm2 ({rec.source})")
    if most is not None:
        parts.append(f"at most {most.max_fluence_j_cm2:g} J/cm2 ({most.source})")
    return ", ".join(parts)


class Envelope:
    """The envelope in force for one console and one skin type."""

    def __init__(self, profile: Profile, skin_type: str, rules: tuple[EnvelopeRule, ...],
                 warn_only: bool = False) -> None:
        self.profile_id = profile.id
        self.skin_type = skin_type
        self.wavelengths_nm = tuple(profile.wavelengths_nm)
        self.rules = rules
        self.warn_only = warn_only

    def __bool__(self) -> bool:
        return bool(self.rules)

    def bound(self, wavelength_nm: float | None, handpiece: int | None,
              spot_mm: float | None) -> Bound:
        """Return the strictest rules for a pulse with these values."""
        return _strictest([r for r in self.rules if r.applies(wavelength_nm, handpiece, spot_mm)])

    def avoided(self) -> list[tuple[float, EnvelopeRule]]:
        """Return the console's wavelengths this skin type is not to receive, each with its
        rule (one for any handpiece and spot)."""
        out = []
        for wavelength in self.wavelengths_nm:
            rule = next((r for r in self.rules if r.avoid and not r.scoped
                         and r.applies(wavelength, None, None)), None)
            if rule is not None:
                out.append((wavelength, rule))
        return out

    def refusal(self) -> str:
        """Return why the start is refused ("" when it is not): every wavelength of the
        console is one to avoid for the skin type, and the site does not say warn-only."""
        avoided = self.avoided()
        if self.warn_only or not avoided or len(avoided) < len(self.wavelengths_nm):
            return ""
        return "; ".join(avoid_text(w, rule) for w, rule in avoided) + (
            ": no session starts on this console for this skin type (a site may allow it "
            "with a warning: [envelope] on_avoid = \"warn\")")

    def cells(self) -> list[EnvelopeCell]:
        """Return the envelope in force cell by cell: each wavelength of the console for
        every handpiece and spot, then each handpiece or spot a rule names, the strictest
        rule that applies winning each value."""
        out = [_cell(self.skin_type, w, "", _strictest(
            [r for r in self.rules if not r.scoped and r.applies(w, None, None)]))
            for w in self.wavelengths_nm or (None,)]
        for rule in self.rules:
            if rule.scoped:
                at = ([rule.wavelength_nm] if rule.wavelength_nm is not None
                      else list(self.wavelengths_nm or (None,)))
                out += [_cell(self.skin_type, w, rule.scope(),
                              self.bound(w, rule.handpiece, rule.spot_mm)) for w in at]
        return [c for c in dict.fromkeys(out)
                if c.recommended_source or c.max_source or c.avoid_source]

    def line(self) -> str:
        """Return the envelope in force as one line: what the form shows, `record` prints
        and the session's `envelope` event states ("" when nothing is declared)."""
        if not self.rules:
            return ""
        parts = []
        avoided = dict(self.avoided())
        for wavelength in self.wavelengths_nm or (None,):
            if wavelength in avoided:
                continue
            text = _fluence_text(_strictest([r for r in self.rules if not r.scoped
                                             and r.applies(wavelength, None, None)]))
            if text:
                parts.append((f"{wavelength:g} nm: " if wavelength is not None else "") + text)
        for rule in self.rules:
            if rule.scoped and not rule.avoid:
                at = f"{rule.wavelength_nm:g} nm, " if rule.wavelength_nm is not None else ""
                parts.append(f"{at}{rule.scope()}: " + _fluence_text(Bound(
                    rule if rule.recommended_fluence_j_cm2 is not None else None,
                    rule if rule.max_fluence_j_cm2 is not None else None)))
        for wavelength, rule in avoided.items():
            parts.append(avoid_text(wavelength, rule) + (
                "; each pulse at it raises an out_of_envelope alarm"
                if self.warn_only or len(avoided) < len(self.wavelengths_nm) else ""))
        return f"skin type {self.skin_type} envelope on {self.profile_id}: " + "; ".join(parts)


def avoid_text(wavelength_nm: float, rule: EnvelopeRule) -> str:
    """Return "532 nm is not to be used on skin type V (rule)"."""
    return (f"{wavelength_nm:g} nm is not to be used on skin type {rule.skin_type} "
            f"({rule.source})")


def session_envelope(profile: Profile, policy: EnvelopePolicy,
                     skin_type: str | None) -> Envelope | None:
    """Return the envelope a session of this skin type on this console is held to (None
    when neither the profile nor the site declares one for the type)."""
    if skin_type is None:
        return None
    rules = profile_rules(profile, skin_type) + tuple(
        r for r in policy.rules if r.skin_type == skin_type)
    return Envelope(profile, skin_type, rules, policy.warn_only) if rules else None


class EnvelopeCheck:
    """Check pulse rows against a session's envelope; count breaches until `drain`."""

    __slots__ = ("_bounds", "_pending", "envelope")

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope
        self._bounds: dict[tuple, Bound] = {}
        #: (what, rule, wavelength) -> [first time, first seq, last seq, count, highest].
        self._pending: dict[tuple[str, EnvelopeRule, float | None], list] = {}

    def check(self, row: tuple) -> None:
        """Note this pulse row if it passes its envelope (events come from `drain`)."""
        wavelength = row[PulseAt.WAVELENGTH_NM]
        key = (wavelength, row[PulseAt.HANDPIECE], row[PulseAt.SPOT_MM])
        bound = self._bounds.get(key)
        if bound is None:
            if len(self._bounds) >= _CACHE_MAX:
                self._bounds.clear()
            bound = self._bounds[key] = self.envelope.bound(*key)
        fluence = row[PulseAt.FLUENCE_J_CM2]
        if bound.avoid is not None:
            self._note("avoid", bound.avoid, wavelength, row, fluence)
        if fluence is None:
            return
        most, rec = bound.maximum, bound.recommended
        if most is not None and fluence > (most.max_fluence_j_cm2 or 0.0):
            self._note("maximum", most, wavelength, row, fluence)
        elif rec is not None and fluence > (rec.recommended_fluence_j_cm2 or 0.0):
            self._note("recommended", rec, wavelength, row, fluence)

    def _note(self, what: str, rule: EnvelopeRule, wavelength: float | None, row: tuple,
              fluence: float | None) -> None:
        seq = row[PulseAt.SEQ]
        seen = self._pending.get((what, rule, wavelength))
        if seen is None:
            self._pending[(what, rule, wavelength)] = [row[PulseAt.RECEIVED_UNIX_S], seq, seq, 1,
                                                       fluence]
            return
        seen[2] = seq
        seen[3] += 1
        if fluence is not None and (seen[4] is None or fluence > seen[4]):
            seen[4] = fluence

    def drain(self, events: list[EventRow]) -> None:
        """Append one event per rule passed since the last drain, with its count."""
        for (what, rule, wavelength), (t, first, last, count, highest) in self._pending.items():
            which = _pulses_text(first, last, count)
            at = f"{wavelength:g} nm" if wavelength is not None else "an unknown wavelength"
            if what == "avoid":
                message = (f"{which} at {at}, not to be used on skin type {rule.skin_type} "
                           f"({rule.source})")
                severity, raw = "alarm", "wavelength_nm"
            else:
                number = (rule.max_fluence_j_cm2 if what == "maximum"
                          else rule.recommended_fluence_j_cm2)
                up_to = "fluence" if count == 1 else "fluence up to"
                message = (f"{which}: {up_to} {highest:.4g} J/cm2 above the skin type "
                           f"{rule.skin_type} {what} {number:g} J/cm2 at {at} ({rule.source})")
                severity, raw = ("alarm" if what == "maximum" else "warning"), "fluence_j_cm2"
            events.append(EventRow(t, "out_of_envelope", severity, None, message, count=count,
                                   raw=raw))
        self._pending.clear()


def _pulses_text(first: int | None, last: int | None, count: int) -> str:
    def seq(value: int | None) -> str:
        return "?" if value is None else str(value)
    if count == 1:
        return f"pulse {seq(first)}"
    return f"{count} pulses between pulse {seq(first)} and {seq(last)}"
