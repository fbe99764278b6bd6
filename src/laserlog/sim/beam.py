"""A simulated bench: the console's beam goes into a simulated energy meter's head.

Each pulse the simulated console fires is delivered to the meter's `MeterHead`, which
reads it (with the meter's bias and noise) and raises its new-data flag, so a calibration
check runs over two real ptys exactly as it would on the bench.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from laserlog.link.wire import SimPulse
    from laserlog.sim.engine import Simulator


def couple(console_sim: Simulator, meter_sim: Simulator) -> None:
    """Send every pulse `console_sim` fires into the head of `meter_sim`."""
    head = getattr(meter_sim.device, "head", None)
    if head is None:
        raise ValueError(f"{meter_sim.profile.id} is not an energy meter (kind = \"meter\")")
    console = console_sim.console
    fire = console.fire_pulse

    def fire_into_meter() -> SimPulse:
        pulse = fire()
        head.deliver(pulse.energy_j)
        return pulse

    console.fire_pulse = fire_into_meter  # type: ignore[method-assign]
