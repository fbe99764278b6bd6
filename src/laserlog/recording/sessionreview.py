"""What the safety officer's rules add to a session as it starts: limits, calibration flags,
and the anchor files that witness the chain."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from laserlog.config.catalog import profile_files
from laserlog.config.envelopes import EnvelopePolicy
from laserlog.config.siteconfig import SiteConfig, check_limit_profiles, site_for
from laserlog.errors import SessionError, StoreError
from laserlog.recording.calstatus import start_events
from laserlog.recording.limits import LimitSet, compile_limits
from laserlog.storage import chain
from laserlog.storage.rows import EventRow

if TYPE_CHECKING:
    from laserlog.config.profile import Profile
    from laserlog.storage.store import Store


@dataclass(frozen=True, slots=True)
class StartReview:
    """The compiled limits, the events to record at the start, warnings to show now, and
    the site's skin-type envelopes."""

    limits: LimitSet
    events: list[EventRow]
    warnings: list[str]
    envelopes: EnvelopePolicy = EnvelopePolicy()


def session_review(store: Store, profile: Profile, device_id: int | None,
                   profile_dirs: list[str] | None = None) -> StartReview:
    """Return what the site's rules make of a session about to start.

    Raises a LaserlogError naming the file and key when the site file is broken or sets
    limits for a profile not on the profile search path (`profile_dirs` first), when the
    anchor file beside the database cannot be written (better no session than one recorded
    without the officer's limits, or without its witness), and for an energy meter.
    """
    if profile.kind == "meter":
        raise SessionError(f"{profile.id} is an energy meter, not a console: use it with "
                           "`laserlog calibrate --meter`")
    site = site_for(store.path)
    check_limit_profiles(site, {f.name for f in profile_files(profile_dirs)} | {profile.id})
    now = time.time()
    anchor_events = anchor_review(store, site, now)
    return StartReview(compile_limits(profile, site),
                       start_events(store.conn, device_id, site, now) + anchor_events,
                       [e.message for e in anchor_events], site.envelopes)


def anchor_review(store: Store, site: SiteConfig, now: float) -> list[EventRow]:
    """Check the anchor files before a session; return a warning event for a missing second.

    The anchor beside the database must be writable: without it a deleted tail or a lost
    WAL would go unnoticed, so no session starts. The site's second anchor (a drive that may
    be unplugged) is written from now on whenever it can be; when it cannot be now, the
    session starts with an `anchor_unavailable` warning.
    """
    first = chain.anchor_path(store.path)
    problem = chain.anchor_problem(first)
    if problem is not None:
        raise StoreError(f"anchor file {first} cannot be written ({problem}): it records the "
                         "chain head after every commit, so that a deleted tail or a lost WAL "
                         "shows; make its folder writable or remove what is in its place. No "
                         "session was started")
    chain.set_second_anchor(store.path, site.second_anchor)
    if site.second_anchor is None:
        return []
    problem = chain.anchor_problem(site.second_anchor)
    if problem is None:
        return []
    return [EventRow(now, "anchor_unavailable", "warning", None,
                     f"second anchor {site.second_anchor} ({site.source} [anchor] second) "
                     f"cannot be written ({problem}): recording without it; it is written "
                     "again after the first commit that can")]
