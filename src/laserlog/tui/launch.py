"""Open the TUI on a real console (`laserlog live`) or on a simulated one (`laserlog demo`)."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from laserlog.config.profile import Profile
from laserlog.recording.contract import Contract
from laserlog.tui.controller import LiveController

if TYPE_CHECKING:
    from laserlog.tui.app import LaserlogApp


#: After a hang-up, how long the app may take to let go of a terminal that is gone.
HANGUP_GRACE_S = 5.0


def _run(app: LaserlogApp, controller: LiveController) -> int:
    done = threading.Event()

    def without_terminal() -> None:
        controller.shutdown()  # the session is ended and committed first
        if not done.wait(HANGUP_GRACE_S):
            # Textual can block for ever writing to a terminal that vanished; nothing is
            # left to save, so leave rather than hang on as an orphan.
            os._exit(128 + signal.SIGHUP)

    def on_signal(signum: int, frame: object) -> None:
        app.exit()  # the session is ended and committed below
        if signum == signal.SIGHUP:
            threading.Thread(target=without_terminal, name="laserlog-hangup",
                             daemon=True).start()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        app.run()
    finally:
        controller.shutdown()
        done.set()
        for s, handler in previous.items():
            signal.signal(s, handler)
    shipper = controller.shipper
    if shipper is not None and not shipper.stop():
        print(f"laserlog: not yet shipped to the central server ({shipper.last_error}); "
              "`laserlog sync --to URL` ships it later", file=sys.stderr)
    return app.return_code or 0


def run_live(profile: Profile, port: str, db_path: str, *, serial: str | None = None,
             profile_dirs: list[str] | None = None, checklist_file: str | None = None,
             sync_url: str | None = None) -> int:
    """Run the TUI on a console (shipping to `sync_url` in the background); return the exit status."""
    from laserlog.tui.app import LaserlogApp

    contract = Contract.for_database(db_path, checklist_file)
    controller = LiveController(db_path, profile, port, expect_serial=serial, sync_url=sync_url,
                                profile_dirs=profile_dirs, contract=contract)
    app = LaserlogApp(controller, profile_dirs=profile_dirs)
    return _run(app, controller)


def run_demo(profile: Profile, db_path: str, *, rate_hz: float | None = None,
             profile_dirs: list[str] | None = None, checklist_file: str | None = None,
             sync_url: str | None = None) -> int:
    """Run the TUI on a console simulated on a pty; it fires while a session records."""
    from laserlog.sim.engine import Simulator
    from laserlog.tui.app import LaserlogApp

    contract = Contract.for_database(db_path, checklist_file)
    with tempfile.TemporaryDirectory(prefix="laserlog-demo-") as tmp:
        link = Path(tmp) / "console"
        with Simulator(profile, link, seed=1, rate_hz=rate_hz) as sim:
            def fire() -> None:
                sim.console.firing = True

            def hold() -> None:
                sim.console.firing = False

            controller = LiveController(db_path, profile, str(link), on_session_start=fire,
                                        on_session_end=hold, sync_url=sync_url,
                                        profile_dirs=profile_dirs, contract=contract)
            app = LaserlogApp(controller, profile_dirs=profile_dirs)
            app.title = f"laserlog demo: {profile.name} simulated"
            return _run(app, controller)
