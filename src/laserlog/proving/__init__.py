"""Proves a profile: conformance suite, transcripts and replay, against simulator or console."""
