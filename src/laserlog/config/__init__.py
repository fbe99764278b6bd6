"""Profiles and the site file: finding, reading, extending and checking what describes a console and a clinic."""
