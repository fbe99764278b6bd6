"""Skin-type envelopes: the fluence each Fitzpatrick type may receive, and what it must not.

A profile declares them per console (`[envelope.TYPE]`, laserlog.config.profile: every
wavelength of that console); the site file declares them per clinic, per type and wavelength,
optionally for one handpiece or spot:

```toml
[envelope]
on_avoid = "refuse"              # a wavelength to avoid for the type refuses the start
                                 # (default); "warn": it starts, with a warning
[envelope.IV.1064]               # type IV at 1064 nm
recommended_fluence_j_cm2 = 2.0
max_fluence_j_cm2 = 3.0

[envelope.V]                     # the wavelength as a key; without one, every wavelength
wavelength_nm = 755
max_fluence_j_cm2 = 2.5
handpiece = 2                    # optional: only pulses through handpiece 2
spot_mm = 4                      # optional: only pulses with a 4 mm spot

[envelope.V.532]
avoid = true                     # 532 nm is not to be used on type V
```

Each is a rule; where several apply to a pulse, the stricter value wins: the lowest maximum,
the lowest recommended fluence, and avoided if any rule avoids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from laserlog.config.profile import SKIN_TYPES
from laserlog.config.tomlreader import TableReader
from laserlog.errors import ProfileError

if TYPE_CHECKING:
    from laserlog.config.profile import Profile

#: What the site does when a skin type is not to receive a console's wavelength.
ON_AVOID = ("refuse", "warn")
#: The longest wavelength an envelope may name (far infrared lasers stay well below).
MAX_WAVELENGTH_NM = 20000.0
_RULE_KEYS = ("recommended_fluence_j_cm2", "max_fluence_j_cm2", "avoid")


@dataclass(frozen=True, slots=True)
class EnvelopeRule:
    """One declared envelope: for a skin type (at a wavelength, through a handpiece, with a
    spot, where given), a recommended and a maximum fluence, or a wavelength to avoid."""

    skin_type: str
    #: Where it is declared: "profile ps755-ref [envelope.V]", "site file F [envelope.V.532]".
    source: str
    wavelength_nm: float | None = None  # None: every wavelength
    handpiece: int | None = None
    spot_mm: float | None = None
    recommended_fluence_j_cm2: float | None = None
    max_fluence_j_cm2: float | None = None
    avoid: bool = False

    @property
    def scoped(self) -> bool:
        """Return whether the rule holds for one handpiece or spot only."""
        return self.handpiece is not None or self.spot_mm is not None

    def applies(self, wavelength_nm: float | None, handpiece: int | None,
                spot_mm: float | None) -> bool:
        """Return whether the rule holds for a pulse; a value the pulse does not carry
        cannot exclude it (the stricter reading)."""
        return ((self.wavelength_nm is None or wavelength_nm is None
                 or abs(self.wavelength_nm - wavelength_nm) < 0.5)
                and (self.handpiece is None or handpiece is None or self.handpiece == handpiece)
                and (self.spot_mm is None or spot_mm is None
                     or math.isclose(self.spot_mm, spot_mm, rel_tol=1e-3)))

    def scope(self) -> str:
        """Return the handpiece and spot the rule is for ("" for every one)."""
        parts = []
        if self.handpiece is not None:
            parts.append(f"handpiece {self.handpiece}")
        if self.spot_mm is not None:
            parts.append(f"spot {self.spot_mm:g} mm")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class EnvelopePolicy:
    """The site's envelopes and what a wavelength to avoid does at the start."""

    rules: tuple[EnvelopeRule, ...] = ()
    #: `on_avoid = "warn"`: a wavelength to avoid starts with a warning instead of a refusal.
    warn_only: bool = False


def parse_envelopes(reader: TableReader) -> EnvelopePolicy:
    """Return the site file's `[envelope]` section, every key checked."""
    on_avoid = reader.str("on_avoid", "refuse", choices=ON_AVOID)
    rules: list[EnvelopeRule] = []
    for skin in list(reader.table):
        if skin == "on_avoid":
            continue
        if skin not in SKIN_TYPES:
            raise reader.error(skin, "not a Fitzpatrick skin type", value=skin,
                               expected="one of " + ", ".join(SKIN_TYPES)
                               + " (e.g. [envelope.IV.1064])")
        typed = reader.sub(skin)
        wavelengths = [k for k, v in typed.table.items() if isinstance(v, dict)]
        for key in wavelengths:
            try:
                wavelength = float(key)
            except ValueError:
                wavelength = math.nan
            if not 0 < wavelength <= MAX_WAVELENGTH_NM:
                raise typed.error(key, "not a wavelength", value=key,
                                  expected="a wavelength in nm, e.g. [envelope."
                                  f"{skin}.1064], or wavelength_nm = 1064 in [envelope.{skin}]")
            rules.append(_rule(typed.sub(key), skin, wavelength))
        if any(k not in wavelengths for k in typed.table):
            named = typed.opt_float("wavelength_nm", positive=True, maximum=MAX_WAVELENGTH_NM)
            rules.append(_rule(typed, skin, named, skip=set(wavelengths)))
    reader.done()
    return EnvelopePolicy(tuple(rules), on_avoid == "warn")


def _rule(reader: TableReader, skin: str, wavelength_nm: float | None, *,
          skip: set[str] | None = None) -> EnvelopeRule:
    """Return one rule, refusing a recommended fluence above its maximum and a rule that
    declares nothing."""
    recommended = reader.opt_float("recommended_fluence_j_cm2", positive=True, maximum=1000)
    most = reader.opt_float("max_fluence_j_cm2", positive=True, maximum=1000)
    avoid = reader.bool("avoid", False)
    handpiece = reader.opt_int("handpiece", minimum=0, maximum=2**31)
    spot = reader.opt_float("spot_mm", positive=True, maximum=1000)
    for name in skip or ():
        reader.raw(name)
    reader.done()
    if recommended is not None and most is not None and recommended > most:
        raise reader.error("recommended_fluence_j_cm2", "above max_fluence_j_cm2",
                           value=recommended, expected=f"at most {most:g} J/cm2")
    if recommended is None and most is None and not avoid:
        raise ProfileError(reader.source, reader.path, "declares nothing",
                           expected="one of " + ", ".join(_RULE_KEYS))
    return EnvelopeRule(skin, f"site file {reader.source} [{reader.path}]", wavelength_nm,
                        handpiece, spot, recommended, most, avoid)


def profile_rules(profile: Profile, skin_type: str) -> tuple[EnvelopeRule, ...]:
    """Return a profile's `[envelope.TYPE]` for one skin type as rules (none when it has
    none): its fluences hold at every wavelength of the console."""
    declared = profile.envelopes.get(skin_type)
    if declared is None:
        return ()
    source = f"profile {profile.id} [envelope.{skin_type}]"
    rules = [EnvelopeRule(skin_type, source, wavelength_nm=w, avoid=True)
             for w in declared.avoid_wavelengths_nm]
    if declared.recommended_fluence_j_cm2 is not None or declared.max_fluence_j_cm2 is not None:
        rules.insert(0, EnvelopeRule(skin_type, source,
                                     recommended_fluence_j_cm2=declared.recommended_fluence_j_cm2,
                                     max_fluence_j_cm2=declared.max_fluence_j_cm2))
    return tuple(rules)
