"""Proves a profile: the conformance suite and transcript replay against the simulator or a console."""
