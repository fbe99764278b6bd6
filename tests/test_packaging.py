"""The installed product: a wheel in a fresh environment finds every driver and profile."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from laserlog.config.catalog import bundled_profiles_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Build the wheel and install it (not editable) into a fresh virtual environment."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(tmp / "dist"), str(ROOT)], check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("laserlog-*.whl")
    venv.create(tmp / "env", with_pip=True)
    subprocess.run([str(tmp / "env" / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", str(wheel)], check=True, capture_output=True)
    return tmp / "env" / "bin"


def test_wheel_install_lists_every_bundled_profile(installed, tmp_path):
    result = subprocess.run([str(installed / "laserlog"), "profiles", "list", "--json"],
                            capture_output=True, text=True, cwd=tmp_path, check=True)
    rows = json.loads(result.stdout)
    bundled = {p.stem for p in bundled_profiles_dir().glob("*.toml")}
    found = {r["name"]: r for r in rows if r["origin"] == "bundled"}
    assert set(found) == bundled
    assert all(r["error"] is None for r in found.values())
    assert all("site-packages" in r["path"] for r in found.values())


def test_wheel_install_runs_as_module_with_every_driver(installed, tmp_path):
    code = ("import laserlog, laserlog.config.drivers_registry as r; "
            "print(laserlog.__file__); print(sorted(r.available()))")
    out = subprocess.run([str(installed / "python"), "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout.splitlines()
    assert "site-packages" in out[0]
    assert {"line", "fixed_width", "binary_frame"} <= set(eval(out[1]))
    listed = subprocess.run([str(installed / "python"), "-m", "laserlog", "profiles", "list"],
                            capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert "ps755-ref" in listed and "INVALID" not in listed


def test_wheel_install_records_a_demo_session(installed, tmp_path):
    db = tmp_path / "demo.db"
    result = subprocess.run([str(installed / "laserlog"), "demo", "--duration", "1", "--rate", "20",
                             "--db", str(db)], capture_output=True, text=True, cwd=tmp_path,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "[ended]" in result.stdout and "regimes picosecond" in result.stdout


@pytest.mark.slow
def test_a_wheel_built_from_the_sdist_ships_every_driver_and_profile(tmp_path):
    """`python -m build` makes the wheel from the sdist, where drivers/ and profiles/ sit at
    the top: the wheel must still hold them inside the package."""
    import zipfile

    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("laserlog-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    drivers = {f"laserlog/drivers/{p.name}" for p in (ROOT / "drivers").glob("*.py")}
    profiles = {f"laserlog/profiles/{p.name}" for p in (ROOT / "profiles").glob("*.toml")}
    assert drivers and profiles
    assert drivers | profiles <= names
