"""The clinical arithmetic: regime boundaries, spot areas, energy = fluence x area, beamlets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from laserlog.domain import dosimetry

# Durations in ps, spanning femtoseconds to seconds; areas in cm^2 of spots ~0.1-30 mm.
durations_ps = st.floats(min_value=1e-3, max_value=1e12, allow_nan=False, allow_infinity=False)
energies_j = st.floats(min_value=1e-4, max_value=50.0)
fluences_j_cm2 = st.floats(min_value=1e-3, max_value=1e3)
spots_mm = st.floats(min_value=0.1, max_value=30.0)
areas_cm2 = spots_mm.map(dosimetry.round_area_cm2)
fractions = st.floats(min_value=0.01, max_value=1.0)
beamlet_counts = st.integers(min_value=1, max_value=2500)
beamlet_diameters_mm = st.floats(min_value=0.05, max_value=0.5)


# -- regime ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("duration_ps", "expected"),
    [
        (190.0, "ps"),
        (999.999, "ps"),
        (1000.0, "ns"),  # exactly 1 ns is nanosecond
        (math.nextafter(1000.0, 0.0), "ps"),
        (6_000.0, "ns"),
        (999_999.999, "ns"),
        (1_000_000.0, "long"),  # exactly 1 us is long
        (3e9, "long"),  # a 3 ms fractional pulse
    ],
)
def test_regime_boundaries(duration_ps: float, expected: str) -> None:
    assert dosimetry.regime(duration_ps) == expected


@given(durations_ps)
def test_regime_follows_the_thresholds(duration_ps: float) -> None:
    expected = "ps" if duration_ps < 1_000 else "ns" if duration_ps < 1_000_000 else "long"
    assert dosimetry.regime(duration_ps) == expected


@given(st.one_of(st.floats(max_value=0.0), st.just(math.inf), st.just(math.nan)))
def test_regime_refuses_durations_that_are_not_pulses(duration_ps: float) -> None:
    with pytest.raises(ValueError, match="pulse duration"):
        dosimetry.regime(duration_ps)


# -- areas ----------------------------------------------------------------------------------
def test_area_of_a_10_mm_spot_round_and_square() -> None:
    assert dosimetry.spot_area_cm2("round", 10.0) == pytest.approx(math.pi / 4)
    assert dosimetry.spot_area_cm2("square", 10.0) == pytest.approx(1.0)
    assert dosimetry.spot_area_cm2("rect", 10.0, aspect=0.5) == pytest.approx(0.5)


@given(spots_mm)
def test_round_spot_covers_pi_over_4_of_the_square_of_same_size(spot_mm: float) -> None:
    round_cm2 = dosimetry.spot_area_cm2("round", spot_mm)
    square_cm2 = dosimetry.spot_area_cm2("square", spot_mm)
    assert round_cm2 == pytest.approx(square_cm2 * math.pi / 4, rel=1e-12)
    assert square_cm2 == pytest.approx(spot_mm * spot_mm / 100.0, rel=1e-12)


@given(spots_mm, st.floats(min_value=0.1, max_value=10.0))
def test_rect_area_is_width_times_width_times_aspect(width_mm: float, aspect: float) -> None:
    expected = dosimetry.rect_area_cm2(width_mm, width_mm * aspect)
    assert dosimetry.spot_area_cm2("rect", width_mm, aspect) == pytest.approx(expected, rel=1e-12)


def test_unknown_spot_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="hexagon"):
        dosimetry.spot_area_cm2("hexagon", 4.0)


# -- energy, fluence, agreement ------------------------------------------------------------
@given(fluences_j_cm2, areas_cm2)
def test_energy_from_fluence_round_trips(fluence_j_cm2: float, area_cm2: float) -> None:
    energy_j = dosimetry.energy_from_fluence_j(fluence_j_cm2, area_cm2)
    assert energy_j == pytest.approx(fluence_j_cm2 * area_cm2, rel=1e-12)
    back = dosimetry.fluence_from_energy_j_cm2(energy_j, area_cm2)
    assert back == pytest.approx(fluence_j_cm2, rel=1e-12)


def test_a_120_mj_pulse_on_a_4_mm_spot() -> None:
    area_cm2 = dosimetry.round_area_cm2(4.0)
    assert dosimetry.fluence_from_energy_j_cm2(0.120, area_cm2) == pytest.approx(0.9549, rel=1e-4)


@given(energies_j, areas_cm2)
def test_consistent_triples_agree(energy_j: float, area_cm2: float) -> None:
    fluence_j_cm2 = dosimetry.fluence_from_energy_j_cm2(energy_j, area_cm2)
    assert dosimetry.disagreement(energy_j, fluence_j_cm2, area_cm2) < 1e-12


@given(energies_j, areas_cm2, st.sampled_from([1.06, 0.94, 1.5, 0.5]))
def test_energy_off_by_more_than_5_percent_is_an_anomaly(
    energy_j: float, area_cm2: float, scale: float
) -> None:
    fluence_j_cm2 = dosimetry.fluence_from_energy_j_cm2(energy_j, area_cm2)
    assert dosimetry.disagreement(energy_j * scale, fluence_j_cm2, area_cm2) > 0.05
    # Whichever of the two is wrong, the verdict is the same.
    assert dosimetry.disagreement(energy_j, fluence_j_cm2 * scale, area_cm2) > 0.05


@given(energies_j, areas_cm2, st.sampled_from([1.04, 0.97, 1.01]))
def test_energy_within_5_percent_is_no_anomaly(
    energy_j: float, area_cm2: float, scale: float
) -> None:
    fluence_j_cm2 = dosimetry.fluence_from_energy_j_cm2(energy_j, area_cm2)
    assert (
        dosimetry.disagreement(energy_j * scale, fluence_j_cm2, area_cm2)
        <= dosimetry.AGREEMENT_TOLERANCE
    )


def test_disagreement_of_nothing_is_zero() -> None:
    assert dosimetry.disagreement(0.0, 0.0, 1.0) == 0.0


# -- fractional beamlets --------------------------------------------------------------------
def test_beamlet_fluence_of_one_120_um_zone() -> None:
    # 20 mJ into one 120 um zone: 0.020 J / (pi x 0.012^2 / 4 cm^2) = 176.8 J/cm^2
    assert dosimetry.beamlet_fluence_j_cm2(0.020, 1.0, 1, 0.120) == pytest.approx(176.84, rel=1e-4)


@given(energies_j, fractions, beamlet_counts, beamlet_diameters_mm, st.floats(1.1, 10.0))
def test_beamlet_fluence_scales_with_energy_fraction_count_and_diameter(
    energy_j: float, fraction: float, count: int, diameter_mm: float, k: float
) -> None:
    base = dosimetry.beamlet_fluence_j_cm2(energy_j, fraction, count, diameter_mm)
    assert dosimetry.beamlet_fluence_j_cm2(
        energy_j * k, fraction, count, diameter_mm
    ) == pytest.approx(base * k, rel=1e-9)
    assert dosimetry.beamlet_fluence_j_cm2(
        energy_j, fraction / k, count, diameter_mm
    ) == pytest.approx(base / k, rel=1e-9)
    assert dosimetry.beamlet_fluence_j_cm2(
        energy_j, fraction, count * 2, diameter_mm
    ) == pytest.approx(base / 2, rel=1e-9)
    assert dosimetry.beamlet_fluence_j_cm2(
        energy_j, fraction, count, diameter_mm * k
    ) == pytest.approx(base / (k * k), rel=1e-9)


@given(
    st.floats(min_value=0.005, max_value=0.070),
    st.integers(1, 30),
    st.integers(1, 30),
    fractions,
    beamlet_diameters_mm,
)
def test_energy_per_zone_gives_back_the_same_beamlet_fluence(
    beamlet_energy_j: float, rows: int, cols: int, fraction: float, diameter_mm: float
) -> None:
    # docs/profiles.md: energy_j = beamlet_energy x rows x cols / beamlet_energy_fraction
    energy_j = beamlet_energy_j * rows * cols / fraction
    fluence = dosimetry.beamlet_fluence_j_cm2(energy_j, fraction, rows * cols, diameter_mm)
    assert fluence == pytest.approx(
        beamlet_energy_j / dosimetry.round_area_cm2(diameter_mm), rel=1e-9
    )


@given(beamlet_counts, fractions, beamlet_diameters_mm, spots_mm, energies_j)
def test_beamlet_fluence_exceeds_mean_fluence_when_zones_cover_less_than_fraction(
    count: int, fraction: float, diameter_mm: float, spot_mm: float, energy_j: float
) -> None:
    area_cm2 = dosimetry.spot_area_cm2("square", spot_mm)
    zones_cm2 = count * dosimetry.round_area_cm2(diameter_mm)
    mean = dosimetry.fluence_from_energy_j_cm2(energy_j, area_cm2)
    beamlet = dosimetry.beamlet_fluence_j_cm2(energy_j, fraction, count, diameter_mm)
    # beamlet / mean = fraction x tile area / area of all zones
    assert beamlet / mean == pytest.approx(fraction * area_cm2 / zones_cm2, rel=1e-9)


def test_fractional_reference_console_tile_arithmetic() -> None:
    from laserlog.config.profile import open_profile
    from laserlog.sim.console import Console

    profile = open_profile("fx1550-ref")
    tile = profile.handpieces[1]
    assert (tile.shape, tile.spot_mm, tile.beamlet_count) == ("square", 7.0, 100)
    # 10 mJ per zone, 10 x 10 zones, all the energy in the zones: 1 J per 7 mm tile.
    energy_j = 0.010 * tile.beamlet_count / tile.beamlet_energy_fraction
    assert dosimetry.fluence_from_energy_j_cm2(energy_j, tile.area_cm2(7.0)) == pytest.approx(
        1.0 / 0.49
    )
    # The simulated console is set per zone and reports per zone; the tile energy follows.
    console = Console(profile, seed=3)
    assert console.set(name="beamlet_energy", value=0.010) == 0
    assert console.set_energy_j() == pytest.approx(energy_j)
    pulse = console.fire_pulse()
    assert pulse.beamlet_energy_j * tile.beamlet_count == pytest.approx(pulse.energy_j)
    assert dosimetry.regime(pulse.pulse_duration_ps) == "long"
