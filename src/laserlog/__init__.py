"""laserlog: session logger for aesthetic laser consoles."""

__version__ = "0.1.0"
