"""A driver from outside: the example package in tests/plugin_example, installed for real.

The package is pip-installed (not editable, so its entry point is all laserlog can see) into
a fresh virtual environment that reaches laserlog and its dependencies through a .pth
line, so the project's own environment never changes.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from laserlog.cli.main import main
from laserlog.link.transcript_file import read_transcript

from conftest import START, wait_until

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "plugin_example"
PROFILE = PLUGIN / "stx-console.toml"


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory) -> Path:
    """Return the python of a fresh environment with the example driver installed."""
    tmp = tmp_path_factory.mktemp("plugin")
    venv.create(tmp / "env", with_pip=False)
    (site,) = (tmp / "env" / "lib").glob("python3*/site-packages")
    ours = sysconfig.get_paths()["purelib"]
    (site / "laserlog-checkout.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    source = shutil.copytree(PLUGIN, tmp / "src")  # building writes into the source folder
    python = tmp / "env" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "--disable-pip-version-check", str(source)],
                   check=True, capture_output=True, timeout=300)
    return python


def laserlog(python: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "laserlog", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=HERE.parent)


def test_without_the_package_the_protocol_is_unknown(capsys) -> None:
    assert main(["profiles", "check", str(PROFILE)]) == 2
    err = capsys.readouterr().err
    assert "device.protocol: no such driver; got 'stx_bcc'" in err


def test_installed_package_registers_its_driver_by_entry_point(plugin_python) -> None:
    code = ("import laserlog.config.drivers_registry as r, importlib.metadata as m; "
            "print(sorted(r.available())); "
            "print([e.value for e in m.entry_points(group='laserlog.drivers')])")
    out = subprocess.run([str(plugin_python), "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.splitlines()
    assert "stx_bcc" in eval(out[0])
    assert "laserlog_stx" in eval(out[1])


def test_plugin_profile_checks_and_passes_the_conformance_suite(plugin_python) -> None:
    checked = laserlog(plugin_python, "profiles", "check", str(PROFILE))
    assert checked.returncode == 0, checked.stderr
    tested = laserlog(plugin_python, "profiles", "test", str(PROFILE))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "PASS  pulses pushed" in tested.stdout and " 0 failed" in tested.stdout


def test_plugin_console_is_simulated_and_recorded(plugin_python, tmp_path) -> None:
    link, db = tmp_path / "stx", tmp_path / "log.db"
    sim = subprocess.Popen([str(plugin_python), "-m", "laserlog", "simulate", str(PROFILE),
                            "--link", str(link), "--fire", "--rate", "50"],
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: link.exists() or sim.poll() is not None, what="the simulated port")
        assert sim.poll() is None, sim.stderr.read() if sim.stderr else ""
        recorded = laserlog(plugin_python, "record", "--profile", str(PROFILE), "--port",
                            str(link), "--operator", "tech-01", "--client", "C-4001", *START,
                            "--pulses", "10", "--db", str(db), "--transcript",
                            str(tmp_path / "stx.jsonl"))
        assert recorded.returncode == 0, recorded.stderr
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=10)
    with sqlite3.connect(db) as conn:
        count, wavelength = conn.execute("SELECT count(*), max(wavelength_nm) FROM pulses").fetchone()
    assert count >= 10 and wavelength == 1064
    replayed = laserlog(plugin_python, "profiles", "replay", str(PROFILE), str(tmp_path / "stx.jsonl"))
    assert replayed.returncode == 0, replayed.stdout
    sent = [c.data for c in read_transcript(tmp_path / "stx.jsonl").chunks if c.direction == "tx"]
    assert sent[0] == laserlog_frame(b"ID?")


def _plugin_module():
    sys.path.insert(0, str(PLUGIN))
    try:
        import laserlog_stx
    finally:
        sys.path.remove(str(PLUGIN))
    return laserlog_stx


def laserlog_frame(body: bytes) -> bytes:
    return _plugin_module().frame(body)


def test_bad_checksum_frames_are_reported_as_garbled() -> None:
    laserlog_stx = _plugin_module()
    framer = laserlog_stx.StxFramer()
    good = laserlog_stx.frame(b"EN 300.0")
    bad = bytearray(laserlog_stx.frame(b"EN 300.0"))
    bad[-1] ^= 0xFF
    assert framer.feed(good[:4]) == []
    assert framer.feed(good[4:] + bytes(bad)) == [b"EN 300.0", bytes(bad)]
