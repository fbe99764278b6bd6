"""`laserlog profiles new`: a profile to start from, in the user profiles folder or --dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from laserlog.cli.main import main
from laserlog.config.profile import load_profile
from laserlog.proving.conformance import run_suite


def test_new_writes_a_commented_skeleton_that_checks_and_passes(tmp_path, capsys) -> None:
    assert main(["profiles", "new", "my-console", "--dir", str(tmp_path)]) == 0
    path = tmp_path / "my-console.toml"
    assert f"wrote {path}" in capsys.readouterr().out
    text = path.read_text()
    assert text.count("#") > 20  # the skeleton explains its keys
    assert main(["profiles", "check", str(path)]) == 0
    profile = load_profile(path)
    assert profile.id == "my-console"
    report = run_suite(profile)
    assert report.ok, report.format()


def test_new_like_copies_a_profile_under_its_own_id(tmp_path) -> None:
    assert main(["profiles", "new", "ps755-clinic-b", "--like", "ps755-ref",
                 "--dir", str(tmp_path)]) == 0
    path = tmp_path / "ps755-clinic-b.toml"
    assert path.read_text().startswith("# ps755-clinic-b: scaffolded from ps755-ref.toml")
    profile = load_profile(path)
    assert profile.id == "ps755-clinic-b" and profile.identity.model == "PSR755"
    assert run_suite(profile).ok


def test_new_extends_writes_a_child_of_the_family(tmp_path) -> None:
    assert main(["profiles", "new", "cfr-ultra-b", "--extends", "cfr-ndyag",
                 "--dir", str(tmp_path)]) == 0
    profile = load_profile(tmp_path / "cfr-ultra-b.toml")
    assert profile.id == "cfr-ultra-b" and profile.protocol == "fixed_width"
    assert len(profile.extends) == 1 and profile.extends[0].endswith("cfr-ndyag.toml")


def test_new_never_overwrites_an_existing_file(tmp_path) -> None:
    path = tmp_path / "taken.toml"
    path.write_text("# mine\n")
    result = subprocess.run([sys.executable, "-m", "laserlog", "profiles", "new", "taken",
                             "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "already exists" in result.stderr and "not overwritten" in result.stderr
    assert path.read_text() == "# mine\n"


@pytest.mark.parametrize("name", ["My Console", "_lead", "a/b", ""])
def test_new_refuses_a_name_that_cannot_be_a_profile_id(tmp_path, capsys, name) -> None:
    assert main(["profiles", "new", name, "--dir", str(tmp_path)]) == 2
    assert "is not valid" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_new_writes_into_the_user_profiles_folder_by_default(tmp_path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    run = [sys.executable, "-m", "laserlog", "profiles"]
    made = subprocess.run([*run, "new", "site-console"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert made.returncode == 0, made.stderr
    expected = Path(made.stdout.split()[1])
    assert expected.is_file() and expected.parent.name == "profiles"
    assert str(tmp_path) in str(expected)
    listed = subprocess.run([*run, "list"], capture_output=True, text=True, env=env, timeout=60)
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("site-console"))
    assert "[user]" in line and "INVALID" not in line
