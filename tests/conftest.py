"""Shared fixtures: simulated consoles on real pseudo-terminals, databases in tmp_path."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from laserlog.config.catalog import bundled_profiles_dir
from laserlog.config.profile import Profile, open_profile
from laserlog.sim.engine import Simulator

# This installation's signing key (laserlog.storage.signing) lives in a folder of the test
# run, never in the home folder of whoever runs the tests; subprocesses inherit it.
os.environ["LASERLOG_INSTALLATION_KEY"] = str(
    Path(tempfile.mkdtemp(prefix="laserlog-key-")) / "installation.key")

CONSOLE_PROFILES = sorted(
    p.stem for p in bundled_profiles_dir().glob("*.toml")
    if "kind = \"meter\"" not in p.read_text()
)


def wait_until(condition: Callable[[], object], timeout_s: float = 10.0,
               what: str = "condition") -> object:
    """Return the first truthy value of `condition`, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def simulate(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    """Start simulators on ptys under tmp_path; stop them all at the end."""
    started: list[Simulator] = []

    def start(profile: str | Profile, **kw: object) -> Simulator:
        p = open_profile(profile) if isinstance(profile, str) else profile
        sim = Simulator(p, tmp_path / f"{p.id}-{len(started)}", **kw).start()  # type: ignore[arg-type]
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "laserlog.db"


def fail_commits(monkeypatch: pytest.MonkeyPatch, error: BaseException, *,
                 after: int = 0) -> None:
    """Make the writer's commits raise `error` once `after` of them went through."""
    from laserlog.storage import writer as writer_module

    real_commit = writer_module.BatchWriter._commit
    calls = {"n": 0}

    def failing_commit(self, conn, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > after:
            raise error
        real_commit(self, conn, batch)

    monkeypatch.setattr(writer_module.BatchWriter, "_commit", failing_commit)


#: What every `laserlog record` start gives besides operator and client: the whole
#: start-of-session contract (area, skin type, the default checklist's three items).
START = ["--area", "left cheek", "--skin-type", "III", "--check", "eyewear", "--check", "consent",
         "--check", "sun_exposure"]


def copy_with_anchor(recorded: Path, copy: Path) -> Path:
    """Copy a recorded database (its WAL folded in) and its anchor file to `copy`, so one
    test may change it while the recording is shared."""
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(recorded)) as src, \
            contextlib.closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    anchor = recorded.with_name(recorded.name + ".anchor")
    copy.with_name(copy.name + ".anchor").write_text(anchor.read_text())
    return copy
