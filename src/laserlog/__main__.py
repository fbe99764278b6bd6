"""Run the command line: python -m laserlog."""

from laserlog.cli.main import main

raise SystemExit(main())
