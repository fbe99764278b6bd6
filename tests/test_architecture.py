"""The tree reads as the data flow: stages in packages, arrows pointing one way."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import laserlog

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "laserlog"
#: What may sit at the top of the package rather than in a stage.
TOP_MODULES = {"__init__.py", "__main__.py", "errors.py", "plugin.py"}


def _contracts() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_import_contracts_hold_layers_forbidden_imports_and_no_cycles():
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports; "
                             "raise SystemExit(lint_imports(no_cache=True))"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_contracts())} kept, 0 broken" in result.stdout


def test_contracts_name_every_stage_and_forbid_the_front_end_libraries():
    contracts = {c["type"]: c for c in _contracts()}
    stages = {name.strip() for layer in contracts["layers"]["layers"]
              for name in layer.split("|")}
    packages = {f"laserlog.{p.name}" for p in PACKAGE.iterdir()
                if any(p.glob("*.py")) and p.name != "profiles"}  # profiles: bundled TOML
    assert packages <= stages, f"packages in no layer: {sorted(packages - stages)}"
    forbidden = [c for c in _contracts() if c["type"] == "forbidden"]
    below = next(c for c in forbidden if "laserlog.recording" in c["source_modules"])
    assert {"textual", "datasette", "psycopg"} <= set(below["forbidden_modules"])
    assert "laserlog.cli" not in below["source_modules"]
    assert contracts["acyclic_siblings"]["ancestors"] == ["laserlog"]


def test_top_of_the_package_holds_a_handful_of_modules_and_each_stage_says_its_job():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top <= TOP_MODULES, f"move into a stage: {sorted(top - TOP_MODULES)}"
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.parent.name}/__init__.py says nothing of its job"
        assert len(doc.splitlines()[0]) <= 100, doc


def test_core_modules_never_import_textual():
    modules = [m.name for m in pkgutil.walk_packages(laserlog.__path__, "laserlog.")
               if not m.name.startswith(("laserlog.tui", "laserlog.cli"))
               and not m.name.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) > 15
    assert out.stdout.strip() == "[]"
