"""Run the command line: python -m laserlog."""

from laserlog.cli import main

raise SystemExit(main())
