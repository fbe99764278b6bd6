"""What the safety officer's rules add to a session as it starts: limits and calibration flags."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from laserlog.config.catalog import profile_files
from laserlog.config.siteconfig import check_limit_profiles, site_for
from laserlog.errors import SessionError
from laserlog.recording.calstatus import start_events
from laserlog.recording.limits import LimitSet, compile_limits
from laserlog.storage.rows import EventRow

if TYPE_CHECKING:
    from laserlog.config.profile import Profile
    from laserlog.storage.store import Store


def session_review(store: Store, profile: Profile, device_id: int | None,
                   profile_dirs: list[str] | None = None) -> tuple[LimitSet, list[EventRow]]:
    """Return the session's compiled limits and the events to record at its start.

    Raises a LaserlogError naming the file and key when the site file is broken or sets
    limits for a profile not on the profile search path (`profile_dirs` first): better no
    session than one recorded without the officer's limits. Also for an energy meter.
    """
    if profile.kind == "meter":
        raise SessionError(f"{profile.id} is an energy meter, not a console: use it with "
                           "`laserlog calibrate --meter`")
    site = site_for(store.path)
    check_limit_profiles(site, {f.name for f in profile_files(profile_dirs)} | {profile.id})
    return compile_limits(profile, site), start_events(store.conn, device_id, site, time.time())
