"""The pre-treatment checklist a site configures; shipped defaults when it configures none.

The file is TOML, one `[[item]]` per check:

    [[item]]
    key = "eyewear"        # recorded in sessions.checklist_json under this key
    label = "Eyewear rated for {wavelength} worn by everyone present"
    required = true        # the form refuses to start the session until it is ticked

`{wavelength}` is replaced by the console's wavelength(s). The item keyed `eyewear` also
sets the session's eyewear_checked column.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from laserlog.config.files import loads_toml, read_text
from laserlog.errors import LaserlogError

EYEWEAR_KEY = "eyewear"


class ChecklistError(LaserlogError):
    """Raise when the site checklist file cannot be used."""


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One line of the pre-treatment checklist."""

    key: str
    label: str
    required: bool = True


DEFAULT_ITEMS = (
    CheckItem(EYEWEAR_KEY, "Eyewear rated for {wavelength} worn by everyone present"),
    CheckItem("consent", "Client consent for this treatment is signed"),
    CheckItem("sun_exposure", "Recent sun exposure and tanning ruled out"),
)


def checklist_path() -> Path:
    """Return where the site checklist is read from: $LASERLOG_CHECKLIST or the config folder."""
    env = os.environ.get("LASERLOG_CHECKLIST")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("laserlog", appauthor=False)) / "checklist.toml"


def load_checklist(path: str | Path | None = None) -> tuple[CheckItem, ...]:
    """Return the site's checklist items, or the defaults when no file is configured."""
    file = Path(path) if path is not None else checklist_path()
    if not file.is_file():
        if path is not None:
            raise ChecklistError(f"checklist file {file} does not exist")
        return DEFAULT_ITEMS
    try:
        data = loads_toml(read_text(file, "checklist"))
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ChecklistError(f"{file}: cannot read the checklist: {exc}") from None
    items = data.get("item")
    if not isinstance(items, list) or not items:
        raise ChecklistError(f"{file}: expected one or more [[item]] tables with key and label")
    out: list[CheckItem] = []
    for index, item in enumerate(items):
        where = f"{file}: item[{index}]"
        if not isinstance(item, dict):
            raise ChecklistError(f"{where}: expected a table with key and label")
        key, label = item.get("key"), item.get("label")
        required = item.get("required", True)
        if not isinstance(key, str) or not key.isidentifier():
            raise ChecklistError(f"{where}: key: got {key!r}; expected a word like 'consent'")
        if not isinstance(label, str) or not label.strip():
            raise ChecklistError(f"{where}: label: expected the text the technician confirms")
        if not isinstance(required, bool):
            raise ChecklistError(f"{where}: required: got {required!r}; expected true or false")
        if any(i.key == key for i in out):
            raise ChecklistError(f"{where}: key {key!r} appears twice")
        out.append(CheckItem(key, label.strip(), required))
    return tuple(out)


def label_for(item: CheckItem, wavelengths_nm: tuple[float, ...]) -> str:
    """Return an item's label with the console's wavelength(s) filled in."""
    waves = "/".join(f"{w:g}" for w in wavelengths_nm) or "this wavelength"
    return item.label.replace("{wavelength}", f"{waves} nm" if wavelengths_nm else waves)
