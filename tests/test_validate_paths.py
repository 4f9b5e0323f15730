"""``alk-fhir validate`` on awkward paths (issue 12): a symbolic link loop is named as a loop (it used
to be reported as "does not exist"), and whatever a directory search leaves out is listed with the
reason (looping links inside a directory used to vanish without a word)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from alk_fhir.cli import main
from alk_fhir.cli.validate_cmd import find, unreachable
from alk_fhir.config import REPO_ROOT

VALID = REPO_ROOT / "examples" / "profiles" / "alk-careteam-example.json"


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["validate", *args])


def loop(path: Path) -> Path:
    """``path`` -> ``path.other`` -> ``path``: a two-link loop."""
    other = path.with_name(path.name + ".other")
    os.symlink(other.name, path)
    os.symlink(path.name, other)
    return path


def test_a_named_symlink_loop_is_called_a_loop(tmp_path: Path) -> None:
    looping = loop(tmp_path / "kring.json")
    assert unreachable(looping) == "is a symbolic link loop (or passes through one)"
    result = run(str(looping))
    assert result.exit_code == 2
    assert f"{looping}: FATAL -: {looping}: is a symbolic link loop" in result.output
    assert "does not exist" not in result.output
    assert isinstance(result.exception, SystemExit)  # no stack trace


def test_missing_and_dangling_paths_say_which(tmp_path: Path) -> None:
    os.symlink("nergens.json", tmp_path / "wijst.json")
    result = run(str(tmp_path / "weg.json"), str(tmp_path / "wijst.json"), str(VALID))
    assert result.exit_code == 2
    assert f"{tmp_path / 'weg.json'}: does not exist" in result.output
    assert f"{tmp_path / 'wijst.json'}: is a broken symbolic link (to nergens.json" in result.output
    assert "1 valid" in result.output  # the usable file is still validated


def test_a_directory_lists_what_it_skipped_and_why(tmp_path: Path) -> None:
    shutil.copy(VALID, tmp_path / "team.json")
    (tmp_path / "LEESMIJ.md").write_text("notes", encoding="utf-8")
    loop(tmp_path / "kring")  # looping link without a .json name: skipped, and said so
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copy(VALID, sub / "team2.json")
    os.symlink("..", sub / "terug")  # a directory link back up: searched once only
    os.mkfifo(tmp_path / "pijp.json.fifo")
    result = run(str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "2 files: 2 valid, 0 invalid (0 errors, 0 warnings); 5 skipped" in result.output
    for name, why in [("LEESMIJ.md", "not a .json file"),
                      ("kring", "is a symbolic link loop"),
                      ("kring.other", "is a symbolic link loop"),
                      ("pijp.json.fifo", "not a regular file"),
                      ("sub/terug", f"symbolic link loop: leads back to {tmp_path}, already searched")]:
        assert f"{tmp_path / name}: skipped: {why}" in result.output, name


def test_a_looping_json_entry_in_a_directory_is_unusable_input(tmp_path: Path) -> None:
    shutil.copy(VALID, tmp_path / "team.json")
    loop(tmp_path / "kring.json")
    result = run(str(tmp_path))
    assert result.exit_code == 2
    assert f"{tmp_path / 'kring.json'}: FATAL -: {tmp_path / 'kring.json'}: is a symbolic link loop" in result.output


def test_json_format_lists_skipped_entries_as_information(tmp_path: Path) -> None:
    shutil.copy(VALID, tmp_path / "team.json")
    loop(tmp_path / "kring.json")
    (tmp_path / "LEESMIJ.md").write_text("notes", encoding="utf-8")
    result = run("--format", "json", str(tmp_path))
    assert result.exit_code == 2
    bundle = json.loads(result.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    by_url = {e["fullUrl"]: e["resource"]["issue"][0] for e in bundle["entry"]}
    assert by_url[(tmp_path / "team.json").resolve().as_uri()]["severity"] == "information"
    assert by_url[(tmp_path / "kring.json").absolute().as_uri()]["severity"] == "fatal"
    skipped = by_url[(tmp_path / "LEESMIJ.md").absolute().as_uri()]
    assert skipped["severity"] == "information" and "skipped: not a .json file" in skipped["diagnostics"]


def test_find_follows_directory_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    shutil.copy(VALID, tmp_path / "a" / "x.json")
    os.symlink("a", tmp_path / "b")  # the same directory under a second name
    found = find((tmp_path,))
    assert found.files == [tmp_path / "a" / "x.json"]
    assert found.skipped == [(tmp_path / "b", f"symbolic link loop: leads back to {tmp_path / 'a'}, already searched")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_an_unreadable_directory_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "dicht"
    locked.mkdir()
    locked.chmod(0)
    try:
        found = find((tmp_path,))
    finally:
        locked.chmod(0o755)
    assert found.unusable == [(locked, "cannot list the directory: Permission denied")]
