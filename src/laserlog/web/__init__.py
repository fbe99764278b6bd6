"""The officer's review in a browser: `laserlog serve`, a read-only Datasette over the log.

Kept light: `laserlog --help` imports `laserlog.cli.web`, which imports Datasette only when
the command runs.
"""
