"""Find profiles: --profiles folders first, then the user's profiles folder, then the bundled ones."""

from __future__ import annotations

import os
from collections.abc import Sequence
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
    names = [f.name for f in profile_files(extra)]
    meant = near_miss(name, names)
    hint = f"did you mean {meant}? " if meant else ""
    raise ProfileNotFound(f"no profile named {name!r}; {hint}known profiles: "
                          f"{', '.join(names) or 'none'} (see `laserlog profiles list`)")


def near_miss(given: str, known: Sequence[str]) -> str | None:
    """Return the name `given` most likely meant: the one it begins, else a close spelling."""
    from difflib import get_close_matches

    started = [name for name in known if name.startswith(given)] if given else []
    if len(started) == 1:
        return started[0]
    close = get_close_matches(given, list(known), n=1, cutoff=0.6)
    return close[0] if close else None
