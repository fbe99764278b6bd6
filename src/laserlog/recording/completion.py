"""Turn what a console reported into complete pulse rows, and notice what is wrong.

Whichever two of energy, fluence and spot the console reports, the third is derived; when
it reports all three they must agree within 5 %. Sequence numbers reveal lost pulses and
console restarts; a jump is believed as lost pulses only as far as the console could have
fired since the last pulse line. Plain floats only: this runs once per pulse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from laserlog.config.profile import Handpiece, Profile
from laserlog.domain import dosimetry
from laserlog.domain.model import LinkEvent, PulseReading, SettingReading, StatusReading
from laserlog.link.plausibility import (
    INT64_MAX,
    LIFETIME_SHOTS,
    PulseGate,
    max_rate_hz,
    plausible_shots,
)
from laserlog.storage.rows import EventRow, PulseRow

if TYPE_CHECKING:
    from laserlog.recording.courses import SpotFluenceCheck
    from laserlog.recording.envelopes import EnvelopeCheck
    from laserlog.recording.limits import LimitSet


def _gap(t: float, missing: int, after: str, seq: int) -> EventRow:
    """Return the event for pulses lost between a counter value (`after`) and seq."""
    return EventRow(t, "gap", "warning", None,
                    f"{missing} pulse(s) missing between {after} and {seq}",
                    missing_pulses=missing)


class PulseCompleter:
    """Complete pulses from settings and handpiece; detect gaps, resets, disagreements, faults."""

    def __init__(self, profile: Profile, session_id: int, *,
                 limits: LimitSet | None = None) -> None:
        self.profile = profile
        self.session_id = session_id
        self.settings: dict[str, float] = {}
        self.last_seq: int | None = None
        #: When the line with last_seq arrived (Unix seconds); None: not known.
        self.last_unix_s: float | None = None
        #: After a jump not believed: the sequence number before it and when it came, so a
        #: next line carrying on from before shows the jump was a misread.
        self._before_jump: tuple[int, float | None] | None = None
        self._last_reading: PulseReading | None = None
        #: Set while the recorder could not see the console (link down, recorder restarted):
        #: a counter that restarted meanwhile hides how many pulses came before the restart.
        self.blind = False
        #: The console's counter at the start: pulses fired before the first one seen are a gap.
        self.baseline_seq: int | None = None
        #: When that counter was read (Unix seconds); None: not known.
        self.baseline_unix_s: float | None = None
        self._rate_hz = max_rate_hz(profile)
        self.fault_code = 0
        self.interlock_open = False
        self.state: tuple[str, ...] | None = None  # the console's named state, last reported
        self._fixed = profile.pulses.fixed
        self._transfer = profile.pulses.energy_transfer
        # Compiled profile and site limits (laserlog.recording.limits); None checks nothing.
        self.limits = limits if limits else None
        # The highest fluence per wavelength the client's test spots tested (a course's full
        # session); None checks nothing.
        self.tested: SpotFluenceCheck | None = None
        # The session's skin-type envelope; None checks nothing. Its events come per batch
        # (EnvelopeCheck.drain), not per pulse.
        self.envelope: EnvelopeCheck | None = None
        # Per-pulse lookups that only change with the handpiece or the spot, kept from the
        # last pulse: a flood repeats them 100 000 times a second.
        self._handpieces: dict[int | None, Handpiece | None] = {}
        self._area_for: tuple[Handpiece | None, float] | None = None
        self._area_cm2: float | None = None
        self._gate = PulseGate(profile)
        self._bounds = tuple(v for name in ("energy", "fluence", "spot", "wavelength",
                                            "rep_rate") for v in self._gate.bounds[name])
        self._duration_bounds = self._gate.bounds["pulse_duration"]
        #: Shots the console reported that could not be physical: fired, dose unknown.
        self.unknown_dose = 0
        self._warned_energy = False
        #: Settings the console cannot report: their value is what laserlog set, which the
        #: technician may have changed on the panel since, so a value from them is marked.
        self._unreported = frozenset(n for n, p in profile.parameters.items() if not p.readable)

    def _invalid(self, events: list[EventRow], r: PulseReading, problem: str) -> None:
        """Count a shot whose reading cannot be physical and say so; it is never a pulse."""
        self.unknown_dose += 1
        seq = r.seq if r.seq is not None and 0 <= r.seq <= INT64_MAX else "?"
        events.append(EventRow(
            r.received_unix_s, "invalid_reading", "alarm", None,
            f"pulse {seq}: {problem}: not stored; the shot counts as fired, its dose unknown",
            raw=repr(tuple(r))[:500]))

    def _setting(self, name: str) -> float | None:
        value = self.settings.get(name)
        return value if value is not None else self._fixed.get(name)

    def unset_energy_source(self) -> str:
        """Return the setting the energy would come from that the console cannot report and
        that has no value yet ("" when there is none)."""
        for name in ("energy", self._transfer[0] if self._transfer else "", "fluence"):
            if name in self._unreported and name not in self.settings:
                return name
        return ""

    def setting(self, reading: SettingReading) -> None:
        self.settings[reading.name] = reading.value

    def status(self, reading: StatusReading) -> list[EventRow]:
        """Return the events a status change means (fault raised or cleared, interlock)."""
        events: list[EventRow] = []
        t = reading.received_unix_s
        if reading.fault_code != self.fault_code:
            if reading.fault_code:
                fault = self.profile.status.faults.get(reading.fault_code)
                if fault is None:
                    events.append(EventRow(t, "fault", "alarm", reading.fault_code,
                                           f"unknown fault code {reading.fault_code}"))
                else:
                    events.append(EventRow(t, "fault", fault.severity, fault.code,
                                           f"{fault.name}: {fault.message}"))
            else:
                events.append(EventRow(t, "fault_cleared", "info", self.fault_code,
                                       "console reports no fault"))
            self.fault_code = reading.fault_code
        if reading.interlock_open != self.interlock_open:
            self.interlock_open = reading.interlock_open
            events.append(EventRow(t, "interlock_open" if reading.interlock_open else "interlock_closed",
                                   "alarm" if reading.interlock_open else "info", reading.fault_code or None,
                                   "interlock open: emission stopped" if reading.interlock_open
                                   else "interlock closed"))
        if reading.state is not None and reading.state != self.state:
            # A state (laser on, shutter open, warming up) is recorded, never an alarm.
            self.state = reading.state
            events.append(EventRow(t, "console_state", "info", None, "console state: "
                                   + (", ".join(reading.state) or "no state flag set")))
        return events

    def link(self, event: LinkEvent) -> EventRow:
        severity = "warning" if event.kind in ("garbled", "timeout", "counter_implausible",
                                               "counter_misread", "counter_jump") else (
            "alarm" if event.kind == "link_lost" else "info")
        return EventRow(event.received_unix_s, event.kind, severity, None, event.detail,
                        raw=event.raw.decode("latin-1") if event.raw else None)

    def _same_pulse(self, r: PulseReading) -> bool:
        """Tell a line sent twice (same measurements) from a restarted counter (new ones)."""
        last = self._last_reading
        return last is not None and (
            last.energy_j, last.fluence_j_cm2, last.spot_mm, last.pulse_duration_ps,
            last.beamlet_energy_j) == (r.energy_j, r.fluence_j_cm2, r.spot_mm,
                                       r.pulse_duration_ps, r.beamlet_energy_j)

    def _most_shots(self, since_unix_s: float | None, t: float) -> tuple[int, str]:
        """Return the most shots the console could have fired since a time, and why."""
        if since_unix_s is None:
            return LIFETIME_SHOTS, "more than a console fires in its life"
        elapsed_s = max(0.0, t - since_unix_s)
        most = min(LIFETIME_SHOTS, plausible_shots(self._rate_hz, elapsed_s))
        return most, (f"more than the console can fire in {elapsed_s:.3g} s (at most {most} "
                      f"at {self._rate_hz:g} Hz)")

    def _jump(self, events: list[EventRow], t: float, last: int, last_unix_s: float | None,
              seq: int, after: str) -> None:
        """Report a sequence number past last + 1: lost pulses when the console could have
        fired them since, else a misread (nothing credited, counting goes on from seq)."""
        missing = seq - last - 1
        most, why = self._most_shots(last_unix_s, t)
        if missing <= most:
            events.append(_gap(t, missing, after, seq))
            return
        self._before_jump = (last, last_unix_s)
        events.append(EventRow(
            t, "counter_implausible", "warning", None,
            f"sequence number jumped from {after} to {seq}: {why}, so a misread, not "
            f"{missing} lost pulses; counting goes on from {seq}"))

    def _misread(self, events: list[EventRow], t: float,
                 before_jump: tuple[int, float | None] | None, jumped: int, seq: int) -> bool:
        """Tell whether seq carries on from before the jump just not believed (the jumped line
        was a misread shot); if so, report it and any pulses lost around it."""
        if before_jump is None:
            return False
        before, before_unix_s = before_jump
        most, _ = self._most_shots(before_unix_s, t)
        if not before < seq <= before + 1 + most:
            return False
        events.append(EventRow(t, "counter_misread", "warning", None,
                               f"sequence number {jumped} between {before} and {seq}: a misread "
                               "of one shot, not believed"))
        missing = seq - before - 2  # the misread line was one of the shots in between
        if missing > 0:
            events.append(_gap(t, missing, str(before), seq))
        return True

    def pulse(self, r: PulseReading, events: list[EventRow]) -> PulseRow | None:
        """Return the stored row for a pulse (None when it cannot be a pulse); append events."""
        t = r.received_unix_s
        seq = r.seq
        if seq is not None and not 0 <= seq <= INT64_MAX:
            self._invalid(events, r, f"sequence number {seq} is outside 0..{INT64_MAX}")
            return None
        if seq is not None:
            last = self.last_seq
            before_jump, self._before_jump = self._before_jump, None
            if last is None:
                if self.baseline_seq is not None and seq > self.baseline_seq + 1:
                    self._jump(events, t, self.baseline_seq, self.baseline_unix_s, seq,
                               f"the counter at start ({self.baseline_seq})")
            elif seq != last + 1 and not self._misread(events, t, before_jump, last, seq):
                if seq > last + 1:
                    self._jump(events, t, last, self.last_unix_s, seq, str(last))
                elif seq == last and self._same_pulse(r):
                    events.append(EventRow(t, "duplicate", "warning", None,
                                           f"pulse {seq} reported twice; kept once"))
                    return None
                else:
                    missing = max(0, seq - 1)
                    if self.blind:
                        events.append(EventRow(
                            t, "counter_reset", "alarm", None,
                            f"shot counter went back from {last} to {seq}: the console restarted "
                            f"while the link was down; pulses it fired after {last} and before "
                            "the restart cannot be counted", missing_pulses=missing or None))
                    else:
                        events.append(EventRow(t, "counter_reset", "warning", None,
                                               f"shot counter went back from {last} to {seq}: "
                                               "console restarted", missing_pulses=missing or None))
            self.last_seq, self.last_unix_s = seq, t
            self._last_reading = r
            self.blind = False
        code = r.handpiece
        if code is not None and not 0 <= code <= INT64_MAX:
            self._invalid(events, r, f"handpiece code {code} is outside 0..{INT64_MAX}")
            return None

        profile = self.profile
        if code is None:
            current = self.settings.get("handpiece")
            if current is not None:
                if not 0 <= current <= INT64_MAX:  # NaN fails too
                    self._invalid(events, r, f"handpiece setting {current!r} is not a code")
                    return None
                code = int(current)
        try:
            hp = self._handpieces[code]
        except KeyError:
            hp = self._handpieces[code] = profile.handpiece(code)
        spot = r.spot_mm
        if spot is None:
            spot = self._setting("spot")
            if spot is None and hp is not None:
                spot = hp.spot_mm
        duration = r.pulse_duration_ps
        if duration is None:
            duration = self._setting("pulse_duration")
        wavelength = r.wavelength_nm
        if wavelength is None:
            wavelength = self._setting("wavelength")
            if wavelength is None and len(profile.wavelengths_nm) == 1:
                wavelength = profile.wavelengths_nm[0]
        rate = r.rep_rate_hz if r.rep_rate_hz is not None else self._setting("rep_rate")

        if duration is None:
            events.append(EventRow(t, "invalid_pulse", "warning", None,
                                   f"pulse {seq} has no duration: not stored"))
            return None
        d_lo, d_hi = self._duration_bounds
        if not d_lo <= duration <= d_hi:  # NaN fails too
            self._invalid(events, r,
                          self._gate.problem(pulse_duration=duration) or "not physical")
            return None
        regime = dosimetry.regime(duration)

        area = None
        if spot is not None and spot > 0.0:
            if self._area_for == (hp, spot):
                area = self._area_cm2
            else:
                area = hp.area_cm2(spot) if hp is not None else dosimetry.round_area_cm2(spot)
                if not area > 0.0:
                    area = None  # a spot so small its area underflows to 0 gives no area
                self._area_for, self._area_cm2 = (hp, spot), area
        energy = r.energy_j
        derived = ""
        if energy is None and hp is not None and hp.fractional:
            beamlet_j = r.beamlet_energy_j
            if beamlet_j is None:
                beamlet_j = self._setting("beamlet_energy")
                derived = "settings," if beamlet_j is not None else ""
            if beamlet_j is not None:
                energy = beamlet_j * hp.beamlet_count / hp.beamlet_energy_fraction
                derived += "energy,"
        fluence = r.fluence_j_cm2
        if energy is not None and fluence is not None:
            if area is not None:
                implied_j = fluence * area
                # The cheap form of disagreement(...) > tolerance; the exact one words it.
                off = (dosimetry.disagreement(energy, fluence, area)
                       if abs(energy - implied_j) > dosimetry.AGREEMENT_TOLERANCE
                       * max(abs(energy), abs(implied_j)) else 0.0)
                if off > dosimetry.AGREEMENT_TOLERANCE:
                    events.append(EventRow(
                        t, "disagreement", "warning", None,
                        f"pulse {seq}: energy {energy:.4g} J vs fluence x area "
                        f"{implied_j:.4g} J ({off:.1%} apart, spot {spot:g} mm)"))
        elif energy is not None:
            if area is not None:
                fluence = energy / area
                derived += "fluence"
        elif fluence is not None:
            if area is not None:
                energy = fluence * area
                derived += "energy"
        else:
            energy = self._setting("energy")
            source_name = "energy"
            if energy is None and self._transfer is not None:
                source_name = self._transfer[0]
                source = self.settings.get(source_name)
                if source is not None:
                    energy = dosimetry.interpolate(self._transfer[1], source)
            if energy is None:
                source_name = "fluence"
                fluence = self._setting("fluence")
                if fluence is not None and area is not None:
                    energy = fluence * area
                    derived = "settings,energy"
            elif area is not None:
                fluence = energy / area
                derived = "settings,energy,fluence"
            else:
                derived = "settings,energy"
            if energy is not None and source_name in self._unreported:
                derived = "as_set," + derived  # as laserlog set it, never read back
        derived = derived.rstrip(",")
        # Every value the row will hold, read or completed from the settings, must be physical:
        # one chained comparison per value on the way through, the words only when it fails.
        e_lo, e_hi, f_lo, f_hi, s_lo, s_hi, w_lo, w_hi, r_lo, r_hi = self._bounds
        if not ((energy is None or e_lo <= energy <= e_hi)
                and (fluence is None or f_lo <= fluence <= f_hi)
                and (spot is None or s_lo <= spot <= s_hi)
                and (wavelength is None or w_lo <= wavelength <= w_hi)
                and (rate is None or r_lo <= rate <= r_hi)):
            self._invalid(events, r, self._gate.problem(
                energy=energy, fluence=fluence, spot=spot, wavelength=wavelength,
                rep_rate=rate) or "not physical")
            return None
        if energy is None and not self._warned_energy:
            # Stored as fired, without energy: say so once, so no total reads as complete.
            self._warned_energy = True
            unset = self.unset_energy_source()
            why = (f"it comes from setting {unset}, which the console cannot report and "
                   "laserlog has not set this session" if unset else
                   "no energy, fluence or spot, or an unknown handpiece")
            events.append(EventRow(t, "energy_unknown", "warning", None,
                                   f"pulse {seq}: its energy cannot be worked out ({why}): "
                                   "stored without energy, its dose unknown; later ones "
                                   "likewise"))
        beamlet = None
        if hp is not None and hp.fractional and energy is not None:
            beamlet = dosimetry.beamlet_fluence_j_cm2(energy, hp.beamlet_energy_fraction,
                                                      hp.beamlet_count, hp.beamlet_diameter_mm)
        # Each REAL slot holds exactly what SQLite will give back (the chain hashes the row
        # as it is in memory): a float (x + 0.0 turns an int into one and -0.0 into 0.0),
        # or None where SQLite would store NULL (None, and NaN). In PULSE_COLUMNS order.
        row = (self.session_id, seq, t + 0.0, duration + 0.0, regime,
               energy + 0.0 if energy is not None else None,
               fluence + 0.0 if fluence is not None else None,
               spot + 0.0 if spot is not None and spot == spot else None,
               wavelength + 0.0 if wavelength is not None and wavelength == wavelength else None,
               rate + 0.0 if rate is not None and rate == rate else None,
               code if code is not None else (hp.code if hp else None),
               beamlet + 0.0 if beamlet is not None and beamlet == beamlet else None, derived)
        if self.limits is not None:
            self.limits.check(row, events)
        if self.tested is not None:
            self.tested.check(row, events)
        if self.envelope is not None:
            self.envelope.check(row)
        return row
