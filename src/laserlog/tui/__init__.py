"""The Textual front end. The core never imports this package; this package imports the core."""
