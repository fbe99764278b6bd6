"""Write a new profile to start from: a commented skeleton, a copy of another, or a child of one.

`laserlog profiles new NAME` writes NAME.toml into the user profiles folder (or `--dir`).
The skeleton is a complete, valid line-protocol profile whose every key is commented, so it
passes `profiles check` and `profiles test` as written; the engineer then replaces its
commands and replies with the ones in the console's manual. An existing file is never
overwritten.
"""

from __future__ import annotations

import re
from pathlib import Path

from laserlog.config.files import dangling_link, new_private_file, private_folders
from laserlog.errors import LaserlogError

NAME_RULE = re.compile(r"[a-z0-9][a-z0-9._-]*")

SKELETON = '''\
# {name}: a laserlog device profile (format 2). Reference: docs/profiles.md;
# walk-through: docs/tutorial.md. Replace every command and reply below with the ones in
# the console's service manual, then prove the file:
#
#   laserlog profiles check {path}
#   laserlog profiles test {name}            # against the simulator this file describes
#   laserlog profiles test {name} --port /dev/ttyUSB0   # the real console, read-only
format = 2

[device]
id = "{name}"                     # = the file name without .toml
name = "{title}"
kind = "reference"               # reference | documented | meter
protocol = "line"                # line | fixed_width | binary_frame | a plugin driver
model = "MODEL1"                 # what the console answers as {{model}} below
wavelengths_nm = [1064]
description = """What the console is, its pulse durations and spots, and where its protocol \\
comes from (manual title and revision)."""

[transport]                      # serial settings from the manual
baud = 9600
bytesize = 8                     # 7 or 8 data bits
parity = "none"                  # none | even | odd | mark | space
stopbits = 1                     # 1, 1.5 or 2
write_terminator = "\\r\\n"        # ends every command we send
read_terminator = "\\r\\n"         # ends every line the console sends
command_gap_ms = 0               # minimum pause between two commands
timeout_s = 1.0                  # how long a reply may take

[line]
ok = "OK"                        # the console's acknowledgement of a set or a command
error = "ERR {{code:d}}"           # its refusal; the simulator answers 1, 2, 3 or 5
# echo = true                    # the console repeats each command before answering
# reply_end = "STATUS {{code:d}}"  # a line that ends every answer, 0 = accepted

[identity]
get = "*IDN?"
reply = "{{model}},{{serial}},{{firmware}}"

# One table per setting or read-out. min/max/initial are in `unit`; values are stored in
# the canonical unit of the quantity (energy in J, fluence in J/cm^2, spot in mm, ...).
[parameters.energy]
quantity = "energy"
unit = "mJ"
min = 10
max = 1000
initial = 200                    # the simulator's value at power-on
get = "EN?"
reply = "EN {{value:.1f}}"
set = "EN {{value:.1f}}"

[parameters.spot]
quantity = "spot"
unit = "mm"
min = 2
max = 10
initial = 5
get = "SP?"
reply = "SP {{value:.1f}}"
set = "SP {{value:.1f}}"

[parameters.pulse_duration]
quantity = "pulse_duration"
unit = "ns"
min = 5
max = 10
initial = 7
get = "PW?"
reply = "PW {{value:.1f}}"

[parameters.rep_rate]
quantity = "rep_rate"
unit = "Hz"
min = 1
max = 10
initial = 5
get = "RR?"
reply = "RR {{value:.1f}}"
set = "RR {{value:.1f}}"

[parameters.shot_counter]
quantity = "count"
min = 0
get = "SC?"
reply = "SC {{value:d}}"

# stream_on/stream_off start and stop pushed pulses; fire/stop start and stop emission.
[commands.stream_on]
send = "STREAM 1"

[commands.stream_off]
send = "STREAM 0"

[commands.fire]
send = "FIRE 1"

[commands.stop]
send = "FIRE 0"

[status]
get = "ST?"
reply = "ST {{fault:d}} {{interlock:d}} {{firing:d}}"
fault_line = "FAULT {{code:d}}"    # pushed, unasked, when a fault occurs

[[status.faults]]
code = 10
name = "interlock_open"
severity = "alarm"               # info | warning | alarm
message = "Door or remote interlock open: emission stopped"
interlock = true

# How pulses arrive: "pushed" (a line per pulse with a sequence number) or "polled"
# (a shot counter read every poll_interval_ms).
[pulses]
mode = "pushed"
counter = "shot_counter"
line = "P {{seq:d}} E{{energy:.1f}} S{{spot:.1f}}"

[pulses.units]                   # the unit of every field of the line but seq/handpiece
energy = "mJ"
spot = "mm"

[pulses.fixed]                   # values that never appear on the wire
pulse_duration = "7 ns"
wavelength = "1064 nm"

[[handpieces]]
code = 1
name = "Zoom 2-10 mm"
shape = "round"                  # round | square | rect
spot_min_mm = 2
spot_max_mm = 10

[simulator]
serial = "SIM-0001"
firmware = "1.0"
noise = 0.03                     # 3 % shot-to-shot
handpiece = 1
'''

CHILD = '''\
# {name}: a member of the {parent} family. Every key of {parent} applies unless this file
# sets it; tables merge key by key, [[handpieces]] and [[status.faults]] by code.
# Reference: docs/profiles.md#family-inheritance-extends
format = 2
extends = "{parent}"

[device]
id = "{name}"
name = "{title}"
model = "{model}"                # what this model answers in its identity reply

# [[handpieces]]                 # add a handpiece, or change one by repeating its code
# code = 3
# name = "Round 10 mm"
# shape = "round"
# spot_mm = 10
'''


def check_name(name: str) -> None:
    """Refuse a name that cannot be a profile id (and so a file name)."""
    if not NAME_RULE.fullmatch(name):
        raise LaserlogError(f"profile name {name!r} is not valid; expected lower-case letters, "
                            "digits, '.', '_' or '-', starting with a letter or digit")


def _target(name: str, folder: Path) -> Path:
    return folder / f"{name}.toml"


def _write(path: Path, text: str) -> Path:
    problem = dangling_link(path, "profile", "a new file in a folder, or where nothing exists "
                                             "yet")
    if problem:
        raise LaserlogError(problem)
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise LaserlogError(f"{path.parent} is not a folder; nothing was written")
        private_folders(path.parent)
        with new_private_file(path) as out:
            out.write(text)
    except FileExistsError:
        raise LaserlogError(f"{path} already exists; it was not overwritten (choose another "
                            "name, or delete the file first)") from None
    except OSError as exc:
        raise LaserlogError(f"cannot write {path}: {exc.strerror}") from None
    return path


def skeleton(name: str, folder: Path) -> Path:
    """Write the commented skeleton profile NAME.toml into `folder`; return its path."""
    check_name(name)
    path = _target(name, folder)
    title = f"{name} console (replace with the model's full name)"
    return _write(path, SKELETON.format(name=name, title=title, path=path))


def copy_of(name: str, like: Path, folder: Path) -> Path:
    """Write NAME.toml as a copy of the profile at `like`, with its own device id."""
    check_name(name)
    text = like.read_text(encoding="utf-8")
    renamed, count = re.subn(r'(?m)^(id\s*=\s*)"[^"]*"', rf'\g<1>"{name}"', text, count=1)
    if not count:
        raise LaserlogError(f"{like} has no `id = \"...\"` line under [device] to rename")
    header = (f"# {name}: scaffolded from {like.name} by `laserlog profiles new --like`.\n"
              "# Change device.name and device.model, then every command that differs.\n")
    return _write(_target(name, folder), header + renamed)


def child_of(name: str, parent: str, model: str, folder: Path) -> Path:
    """Write NAME.toml as a profile that extends `parent`, overriding only its identity."""
    check_name(name)
    title = f"{name} ({parent} family)"
    return _write(_target(name, folder), CHILD.format(name=name, parent=parent, title=title,
                                                      model=model))
