"""The core never imports Textual: recording must not depend on the screen."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import laserlog


def test_core_modules_never_import_textual():
    modules = [m.name for m in pkgutil.walk_packages(laserlog.__path__, "laserlog.")
               if ".tui" not in m.name and not m.name.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(modules) > 15
    assert out.stdout.strip() == "[]"
