"""laserlog: session logger for aesthetic laser consoles."""

from pathlib import Path

__version__ = "0.1.0"

# In a source checkout (editable install) the bundled drivers and profiles sit at
# the top of the tree, beside src/; a built wheel ships them inside the package.
# Adding the checkout root to the package path makes `laserlog.drivers` and
# `laserlog.profiles` resolve the same way in both installs.
_here = Path(__file__).resolve().parent
_checkout = _here.parent.parent
if not (_here / "drivers").is_dir() and (_checkout / "drivers" / "__init__.py").is_file():
    __path__.append(str(_checkout))
