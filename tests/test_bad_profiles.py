"""The corpus of broken profiles: each is refused naming its file, the key path and the reason.

Every file in tests/bad_profiles/ says in its header what it must be refused with:

    # expect-key: parameters.energy.unit      (or "(none)" for a file-level problem)
    # expect: [time]                          (one line per text the message must contain)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from laserlog.cli.main import main
from laserlog.config.profile import load_profile
from laserlog.errors import ProfileError

CORPUS = Path(__file__).resolve().parent / "bad_profiles"
FILES = sorted(CORPUS.glob("*.toml"))


def expectations(path: Path) -> tuple[str, list[str]]:
    """Return the key path and the texts a corpus file's header promises."""
    head = path.read_bytes().decode("utf-8", errors="replace")
    key = re.search(r"^# expect-key: (.*)$", head, re.M)
    assert key is not None, f"{path.name} has no '# expect-key:' line"
    texts = re.findall(r"^# expect: (.*)$", head, re.M)
    assert texts, f"{path.name} has no '# expect:' line"
    return ("" if key.group(1) == "(none)" else key.group(1)), texts


def test_the_corpus_has_at_least_thirty_broken_profiles() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_profile_is_refused_with_file_key_and_reason(path: Path) -> None:
    key, texts = expectations(path)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    error = caught.value
    message = str(error)
    assert error.source == str(path), message
    assert message.startswith(str(path)), message
    assert error.key == key, message
    if key:
        assert f": {key}: " in message, message
    for text in texts:
        assert text in message, f"{text!r} not in {message!r}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_check_command_exits_2_with_one_line_and_no_traceback(path: Path, capsys) -> None:
    key, texts = expectations(path)
    assert main(["profiles", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"INVALID {path}"), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    if key:
        assert f": {key}: " in err


def test_key_errors_carry_the_line_of_the_key_in_the_file() -> None:
    path = CORPUS / "unit-wrong-dimension.toml"
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert caught.value.line is not None
    assert lines[caught.value.line - 1] == 'unit = "ns"'
    assert str(caught.value).startswith(f"{path}:{caught.value.line}: parameters.energy.unit")


def test_an_inherited_key_names_the_parent_file_and_its_line() -> None:
    path = CORPUS / "range-inverted.toml"
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    parent = Path(__file__).resolve().parent / "profiles" / "feature-base.toml"
    match = re.search(rf"inherited from {re.escape(str(parent))}:(\d+)", message)
    assert match, message
    assert parent.read_text().splitlines()[int(match.group(1)) - 1] == "max = 800"


def test_check_of_the_whole_corpus_in_one_process_reports_each_file() -> None:
    result = subprocess.run([sys.executable, "-m", "laserlog", "profiles", "check",
                             *map(str, FILES)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    invalid = [ln for ln in result.stderr.splitlines() if ln.startswith("INVALID ")]
    assert len(invalid) == len(FILES)
    assert result.stdout == ""


def test_key_lines_follow_tables_arrays_of_tables_and_multi_line_values() -> None:
    from laserlog.config.tomlreader import key_line

    text = (
        'format = 1\n'
        'description = """two\n'
        'lines = not a key"""\n'
        '[device]\n'
        'id = "x"\n'
        'wavelengths_nm = [\n'
        '  1064,\n'
        ']\n'
        '[[status.faults]]\n'
        'code = 1\n'
        '[[status.faults]]\n'
        'code = 2  # the second\n'
        '[parameters."energy"]\n'
        'unit = "mJ"\n'
    )
    assert key_line(text, "device.id") == 5
    assert key_line(text, "lines") is None
    assert key_line(text, "device.wavelengths_nm[1]") == 6
    assert key_line(text, "status.faults[1].code") == 12
    assert key_line(text, "status.faults[1].message") == 11  # missing: its table's line
    assert key_line(text, "parameters.energy.unit") == 14
    assert key_line(text, "pulses.mode") is None
