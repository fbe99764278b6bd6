"""Find profiles: --profiles folders first, then the user's profiles folder, then the bundled ones."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from laserlog.errors import ProfileNotFound


def user_profiles_dir() -> Path:
    """Return the per-user folder where engineers drop their own profiles."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("laserlog", appauthor=False)) / "profiles"


def bundled_profiles_dir() -> Path:
    """Return the folder of the profiles shipped with laserlog."""
    # Resolved: in a checkout the package's folder is a link to profiles/ at the top.
    return Path(str(resources.files("laserlog.profiles"))).resolve()


@dataclass(frozen=True, slots=True)
class ProfileFile:
    """A profile file found on the search path."""

    name: str
    path: Path
    origin: str  # "bundled" | "user" | "--profiles"


def search_path(extra: list[str] | None = None) -> list[tuple[str, Path]]:
    """Return the folders searched for profiles, first match wins."""
    folders: list[tuple[str, Path]] = [("--profiles", Path(p)) for p in extra or []]
    env = os.environ.get("LASERLOG_PROFILES")
    if env:
        folders += [("LASERLOG_PROFILES", Path(p)) for p in env.split(os.pathsep) if p]
    folders.append(("user", user_profiles_dir()))
    folders.append(("bundled", bundled_profiles_dir()))
    return folders


def profile_files(extra: list[str] | None = None) -> list[ProfileFile]:
    """Return every profile file on the search path, earlier folders shadowing later ones."""
    seen: dict[str, ProfileFile] = {}
    for origin, folder in search_path(extra):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            seen.setdefault(path.stem, ProfileFile(path.stem, path, origin))
    return sorted(seen.values(), key=lambda f: f.name)


def find_profile(name: str, extra: list[str] | None = None) -> Path:
    """Return the path of a profile given by name or by file path."""
    if name.endswith(".toml") or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise ProfileNotFound(f"profile file {name} does not exist")
        return path
    for entry in profile_files(extra):
        if entry.name == name:
            return entry.path
    known = ", ".join(f.name for f in profile_files(extra)) or "none"
    raise ProfileNotFound(f"no profile named {name!r}; known profiles: {known} "
                          "(see `laserlog profiles list`)")
