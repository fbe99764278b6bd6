"""Profile families: `extends = "parent"` deep-merges a parent profile under a child's keys.

Tables merge key by key, the child winning; arrays of tables whose items carry a `code`
(`[[handpieces]]`, `[[status.faults]]`) merge item by item on that code; any other value
(text, numbers, plain lists) is replaced whole. Each merged key remembers the file it came
from, so an error in an inherited key names the parent file too.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laserlog.config.files import loads_toml, read_text
from laserlog.config.tomlreader import syntax_problem
from laserlog.errors import ProfileError

#: How deep a chain of `extends` may go before it is taken for a mistake.
MAX_DEPTH = 8
_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


@dataclass(slots=True)
class Family:
    """A profile document with its parents merged in, and where each key came from."""

    data: dict[str, Any]
    chain: list[Path]  # the file itself first, then its parent, grandparent...
    texts: dict[str, str] = field(default_factory=dict)  # source -> its TOML text
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # source -> its own keys
    _owners: dict[int, dict[str, str]] = field(default_factory=dict)

    def local_key(self, key: str, source: str) -> str:
        """Return a merged key path as it reads in one file of the family.

        Arrays of tables merge by code, so `handpieces[3]` of the merged profile may be
        `handpieces[0]` of the file that defines it.
        """
        node: Any = self.data
        doc: Any = self.documents.get(source, {})
        parts: list[str] = []
        for name, indices in _SEGMENT.findall(key):
            node = node.get(name) if isinstance(node, dict) else None
            doc = doc.get(name) if isinstance(doc, dict) else None
            part = name
            for text in re.findall(r"\d+", indices):
                index = int(text)
                item = node[index] if isinstance(node, list) and index < len(node) else None
                local = index
                if isinstance(item, dict) and "code" in item and isinstance(doc, list):
                    local = next((i for i, d in enumerate(doc)
                                  if isinstance(d, dict) and d.get("code") == item["code"]), index)
                part += f"[{local}]"
                node = item
                doc = doc[local] if isinstance(doc, list) and local < len(doc) else None
            parts.append(part)
        return ".".join(parts)

    def source_of(self, key: str) -> str | None:
        """Return the file that defined a dotted key path, or None when nothing did."""
        node: Any = self.data
        owner: str | None = None
        for name, indices in _SEGMENT.findall(key):
            if not isinstance(node, dict) or name not in node:
                return owner
            owner = self._owners.get(id(node), {}).get(name, owner)
            node = node[name]
            for index in re.findall(r"\d+", indices):
                if not isinstance(node, list) or int(index) >= len(node):
                    return owner
                node = node[int(index)]
        return owner


def read_toml(path: Path, source: str | None = None) -> tuple[dict[str, Any], str]:
    """Read and parse one TOML file, raising ProfileError with the line of a syntax error."""
    source = source or str(path)
    try:
        text = read_text(path, "profile")
    except OSError as exc:
        raise ProfileError(source, "", f"cannot read the file ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ProfileError(source, "", str(exc)) from None
    try:
        return loads_toml(text), text
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise ProfileError(source, "", syntax_problem(text, exc),
                           line=int(match.group(1)) if match else None) from None
    except ValueError as exc:
        raise ProfileError(source, "", str(exc)) from None


def find_parent(name: object, child: Path, child_source: str,
                extra_dirs: list[str] | None = None) -> Path:
    """Return the file a child's `extends` names: a path, else a name on the search path."""
    if not isinstance(name, str) or not name:
        raise ProfileError(child_source, "extends", "wrong type", value=name,
                           expected="the name of another profile, e.g. 'ps755-ref'")
    if name.endswith(".toml") or "/" in name or "\\" in name:
        path = (child.parent / name).resolve()
        if not path.is_file():
            raise ProfileError(child_source, "extends", "no such file", value=name,
                               expected=f"a profile file relative to {child.parent}")
        return path
    sibling = child.parent / f"{name}.toml"
    if sibling.is_file():
        return sibling
    from laserlog.config.catalog import profile_files

    for entry in profile_files(extra_dirs):
        if entry.name == name:
            return entry.path
    raise ProfileError(child_source, "extends", "no such profile", value=name,
                       expected="a profile beside this file or on the profile search path "
                                "(see `laserlog profiles list`)")


def load_family(path: Path, data: dict[str, Any], text: str, source: str,
                extra_dirs: list[str] | None = None) -> Family:
    """Return `data` merged over its chain of parents (itself when it extends nothing)."""
    family = Family({}, [path], {source: text}, {source: data})
    chain_data: list[tuple[str, dict[str, Any]]] = [(source, data)]
    current, current_data, current_source = path, data, source
    seen = {path.resolve()}
    while "extends" in current_data:
        try:
            parent = find_parent(current_data["extends"], current, current_source, extra_dirs)
        except ProfileError as exc:
            if current_source == source:
                raise
            # A broken link further up the chain: name it, from the file being loaded.
            raise ProfileError(source, "extends", f"the chain breaks at {exc}") from None
        if parent.resolve() in seen:
            names = " -> ".join(p.stem for p in [*family.chain, parent])
            raise ProfileError(source, "extends", "profiles extend each other in a circle",
                               value=names, expected="a chain that ends in a profile without "
                               "extends")
        if len(family.chain) > MAX_DEPTH:
            raise ProfileError(source, "extends", "chain too long", value=len(family.chain),
                               expected=f"at most {MAX_DEPTH} generations")
        seen.add(parent.resolve())
        parent_source = str(parent)
        try:
            parent_data, parent_text = read_toml(parent, parent_source)
        except ProfileError as exc:
            raise ProfileError(source, "extends", f"the profile it extends cannot be read: "
                               f"{exc}") from None
        family.documents[parent_source] = parent_data
        family.chain.append(parent)
        family.texts[parent_source] = parent_text
        chain_data.append((parent_source, parent_data))
        current, current_data, current_source = parent, parent_data, parent_source
    if len(chain_data) > 1 and not isinstance(data.get("device", {}).get("id"), str):
        raise ProfileError(source, "device.id", "missing", expected=f"this profile's own id "
                           f"(it extends {chain_data[1][0]})")
    # Merge from the oldest ancestor down, so each generation overrides the one before.
    merged: dict[str, Any] = {}
    for origin, document in reversed(chain_data):
        merged = _merge(merged, document, origin, family._owners)
    merged.pop("extends", None)
    family.data = merged
    return family


def _is_coded_tables(value: object) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(item, dict) and isinstance(item.get("code"), int | str)
                    for item in value))


def _claim(value: Any, origin: str, owners: dict[int, dict[str, str]]) -> Any:
    """Return a copy of a value taken whole from one file, recording that file as its owner."""
    if isinstance(value, dict):
        copy = {k: _claim(v, origin, owners) for k, v in value.items()}
        owners[id(copy)] = dict.fromkeys(copy, origin)
        return copy
    if isinstance(value, list):
        return [_claim(v, origin, owners) for v in value]
    return value


def _merge(base: dict[str, Any], over: dict[str, Any], origin: str,
           owners: dict[int, dict[str, str]], path: str = "") -> dict[str, Any]:
    """Return `over` deep-merged onto `base` (already merged, with owners recorded)."""
    out: dict[str, Any] = dict(base)
    keys = dict(owners.get(id(base), {}))
    for key, value in over.items():
        old = out.get(key)
        where = f"{path}.{key}" if path else key
        if isinstance(old, dict) and isinstance(value, dict):
            out[key] = _merge(old, value, origin, owners, where)
        elif isinstance(old, list) and _is_coded_tables(old) and _is_coded_tables(value):
            items = {item["code"]: item for item in old}
            codes: set[object] = set()
            for index, item in enumerate(value):
                if item["code"] in codes:
                    raise ProfileError(origin, f"{where}[{index}].code", "duplicate code",
                                       value=item["code"], expected="each code once per file")
                codes.add(item["code"])
                previous = items.get(item["code"])
                items[item["code"]] = (_merge(previous, item, origin, owners, where)
                                       if previous is not None else _claim(item, origin, owners))
            out[key] = list(items.values())
        else:
            out[key] = _claim(value, origin, owners)
        keys[key] = origin
    owners[id(out)] = keys
    return out
