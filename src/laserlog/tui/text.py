"""How pulses, events and settings read on screen: plain text, units in every label."""

from __future__ import annotations

from laserlog.config.profile import Profile
from laserlog.review.summary import REGIME_NAMES
from laserlog.storage.rows import EventRow, PulseAt

_MARK = {"alarm": "!!", "warning": "! ", "info": "  "}
_REGIME_WORD = {"ps": "pico", "ns": "nano", "long": "long"}


def num(value: float | None, fmt: str = ".3g", scale: float = 1.0) -> str:
    """Return a number formatted, or '-' when there is none."""
    if value is None:
        return "-"
    return format(value * scale if scale != 1.0 else value, fmt)


def clock_text(seconds: float) -> str:
    """Return a duration as H:MM:SS (or MM:SS below an hour)."""
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def age_text(seconds: float) -> str:
    """Return an age in its largest whole unit: 7s, 5m, 2h."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def console_state_text(interlock_open: bool | None, fault_code: int, age_s: float | None,
                       stale: bool) -> str:
    """Return the console's interlock and fault as last reported, with the reading's age.

    `interlock_open` None: not read yet, so nothing is claimed.
    """
    if interlock_open is None or age_s is None:
        return "console state unknown: not read"
    state = ("INTERLOCK OPEN" if interlock_open else "interlock closed") + (
        f", FAULT {fault_code}" if fault_code else ", no fault")
    # At most 36 columns: the counters panel's width.
    return f"{state} STALE {age_text(age_s)}" if stale else f"{state}  {age_text(age_s)} ago"


def offset_text(seconds: float) -> str:
    """Return a time since the session start as +MM:SS.s."""
    seconds = max(0.0, seconds)
    m, s = divmod(seconds, 60)
    return f"+{int(m):02d}:{s:04.1f}"


def pulse_line(row: tuple, started_unix_s: float) -> str:
    """Return one tail line for a stored pulse row."""
    seq, t = row[PulseAt.SEQ], row[PulseAt.RECEIVED_UNIX_S]
    duration, regime = row[PulseAt.PULSE_DURATION_PS], row[PulseAt.REGIME]
    energy, fluence = row[PulseAt.ENERGY_J], row[PulseAt.FLUENCE_J_CM2]
    spot, handpiece = row[PulseAt.SPOT_MM], row[PulseAt.HANDPIECE]
    return (f"#{num(seq, 'd'):<7} {offset_text(t - started_unix_s)} {duration:6.0f} ps "
            f"{_REGIME_WORD.get(regime, regime):<4} "
            f"{num(energy, '8.1f', 1000):>8} mJ {num(fluence, '6.3f'):>6} J/cm2 "
            f"{num(spot, '4.1f'):>4} mm HP{num(handpiece, 'd')}")


def event_line(event: EventRow, started_unix_s: float | None) -> str:
    """Return one tail line for an event: its severity mark and word, never colour alone."""
    when = offset_text(event.received_unix_s - started_unix_s) if started_unix_s else "       "
    count = f" x{event.count}" if event.count > 1 else ""
    # A message that starts with its kind says it once ("marker 1", not "marker: marker 1").
    what = (f"{event.message}{count}" if event.kind == "marker"
            else f"{event.kind}{count}: {event.message}")
    return f"{_MARK.get(event.severity, '  ')}{event.severity.upper():<7} {when} {what}"


def regime_name(duration_ps: float | None) -> str:
    """Return the regime name of a pulse duration (picosecond, nanosecond, long pulse)."""
    if duration_ps is None or duration_ps <= 0:
        return "-"
    from laserlog.domain.dosimetry import regime

    return REGIME_NAMES.get(regime(duration_ps), "?")


def duration_text(duration_ps: float | None) -> str:
    """Return a pulse duration in the unit clinics read it in (ps below 1 ns, else ns or us)."""
    if duration_ps is None:
        return "-"
    if duration_ps < 1000:
        return f"{duration_ps:.0f} ps"
    if duration_ps < 1_000_000:
        return f"{duration_ps / 1000:.3g} ns"
    return f"{duration_ps / 1_000_000:.3g} us"


def current_settings(profile: Profile, settings: dict[str, float],
                     last_pulse: tuple | None) -> dict[str, str]:
    """Return the console's settings as labelled text: read-back first, else the last pulse."""
    values: dict[str, float | None] = {}
    if last_pulse is not None:
        values.update(pulse_duration=last_pulse[PulseAt.PULSE_DURATION_PS],
                      energy=last_pulse[PulseAt.ENERGY_J],
                      fluence=last_pulse[PulseAt.FLUENCE_J_CM2], spot=last_pulse[PulseAt.SPOT_MM],
                      wavelength=last_pulse[PulseAt.WAVELENGTH_NM],
                      rep_rate=last_pulse[PulseAt.REP_RATE_HZ],
                      handpiece=last_pulse[PulseAt.HANDPIECE])
    for name, value in profile.pulses.fixed.items():
        values.setdefault(name, value)
    values.update({k: v for k, v in settings.items() if v is not None})
    if values.get("wavelength") is None and len(profile.wavelengths_nm) == 1:
        values["wavelength"] = profile.wavelengths_nm[0]
    hp_code = values.get("handpiece")
    hp = profile.handpiece(int(hp_code) if hp_code is not None else None)
    duration = values.get("pulse_duration")
    return {
        "wavelength": f"{num(values.get('wavelength'), 'g')} nm",
        "duration": f"{duration_text(duration)} {regime_name(duration)}",
        "fluence": f"{num(values.get('fluence'), '.3f')} J/cm2",
        "spot": f"{num(values.get('spot'), '.1f')} mm",
        "handpiece": (f"{hp.code} {hp.name}" if hp is not None else num(hp_code, "g")),
        "energy": f"{num(values.get('energy'), '.1f', 1000)} mJ",
        "rate": f"{num(values.get('rep_rate'), 'g')} Hz",
    }


def energy_text(energy_j: float) -> str:
    """Return a cumulative energy in J with sensible digits."""
    return f"{energy_j:,.3f} J" if energy_j < 1000 else f"{energy_j / 1000:,.3f} kJ"


def hanging(text: str, width: int) -> str:
    """Return text with each line longer than `width` wrapped under its own words, indented
    past its marker (`!`, `!!`) so a wrapped warning still reads as one item."""
    import textwrap

    if width < 20:
        return text
    out = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        body = line.lstrip(" ")
        indent = line[:len(line) - len(body)]
        if body[:1] == "!":  # under the words after the marker
            rest = body.lstrip("!")
            under = " " * (len(line) - len(rest.lstrip(" ")))
        else:
            under = indent + "  "
        out.extend(textwrap.wrap(line, width, subsequent_indent=under,
                                 break_on_hyphens=False) or [line])
    return "\n".join(out)
