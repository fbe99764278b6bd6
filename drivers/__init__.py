"""Bundled protocol drivers, one module per protocol family."""
