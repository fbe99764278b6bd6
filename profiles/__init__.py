"""Bundled device profiles, one TOML file per console or meter model."""
