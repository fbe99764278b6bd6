"""Profiles and the site file: find, read, extend and check what describes a console and a clinic."""
