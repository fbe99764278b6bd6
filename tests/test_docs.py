"""The profiles the documentation shows are real: they load, and they pass their simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from laserlog.config.profile import load_profile
from laserlog.proving.conformance import run_suite

DOCS = Path(__file__).resolve().parents[1] / "docs"


def toml_blocks(name: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", (DOCS / name).read_text(encoding="utf-8"), re.S)


def test_the_tutorials_finished_profile_checks_and_passes(tmp_path: Path) -> None:
    (finished,) = [b for b in toml_blocks("tutorial.md") if b.startswith("# LP-1064")]
    path = tmp_path / "lp1064.toml"
    path.write_text(finished, encoding="utf-8")
    report = run_suite(load_profile(path))
    assert report.ok, report.format()


def test_the_complete_annotated_profile_loads_as_it_stands(tmp_path: Path) -> None:
    (annotated,) = [b for b in toml_blocks("profiles.md")
                    if b.startswith("# Profile format version")]
    path = tmp_path / "ps755-ref.toml"
    path.write_text(annotated, encoding="utf-8")
    assert load_profile(path).id == "ps755-ref"


@pytest.mark.parametrize("anchor", [
    "family-inheritance-extends", "keepalive-a-console-with-a-watchdog",
    "what-a-profile-can-express", "proving-a-profile-profiles-test",
    "drivers-from-outside-the-laserlogdrivers-entry-point",
])
def test_reference_sections_the_tutorial_links_exist(anchor: str) -> None:
    reference = (DOCS / "profiles.md").read_text(encoding="utf-8")
    headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.*)$", reference, re.M)}
    assert anchor in headings
