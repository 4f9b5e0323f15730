"""``alk-fhir validate PATH...``: validate FHIR JSON files against our profiles and the R4 base.

Exit status: 0 when no file has errors (warnings allowed unless ``--strict``), 1 when any has, 2 for
unusable input (a path that does not exist, a symbolic link that loops or dangles, a file that cannot
be read, is not JSON or is not a FHIR resource: a ``fatal`` issue naming the file and why) or wrong
usage; the other files are still validated and reported.

Directories are searched for ``*.json`` (following symbolic links, each directory once); a ``*.json``
entry that cannot be reached is unusable input as above. Everything else a directory holds is
skipped and listed with the reason (not a .json file, a link loop back to a directory already
searched, a special file, …): on stderr, or as ``information`` outcomes in ``--format json``, so
nothing is left out silently. Many files get a progress bar on stderr.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from alk_fhir.config import Settings

PROGRESS_FROM = 10


@dataclass
class Found:
    """What the PATH arguments name: files to validate, unusable ones with why, skipped ones with why."""

    files: list[Path] = field(default_factory=list)
    unusable: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def unreachable(path: Path) -> str | None:
    """Why ``path`` cannot be opened (a loop is named as a loop, not as "does not exist"), or None."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop (or passes through one)"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(path):
                return f"is a broken symbolic link (to {os.readlink(path)}, which does not exist)"
            return "does not exist"
        return f"cannot be reached: {exc.strerror or exc}"
    return None


def find(paths: tuple[Path, ...]) -> Found:
    """Files named directly are validated whatever their name; directories are searched for ``*.json``."""
    found = Found()
    for path in paths:
        problem = unreachable(path)
        if problem:
            found.unusable.append((path, problem))
        elif path.is_dir():
            _search(path, found)
        else:
            found.files.append(path)
    return found


def _search(root: Path, found: Found) -> None:
    searched: dict[tuple[int, int], Path] = {}
    pending = [root]
    while pending:
        directory = pending.pop()
        info = directory.stat()
        earlier = searched.get((info.st_dev, info.st_ino))
        if earlier is not None:
            found.skipped.append((directory, f"symbolic link loop: leads back to {earlier}, already searched"))
            continue
        searched[(info.st_dev, info.st_ino)] = directory
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            found.unusable.append((directory, f"cannot list the directory: {exc.strerror or exc}"))
            continue
        subdirectories: list[Path] = []
        for entry in entries:
            path = Path(entry.path)
            wanted = entry.name.endswith(".json")
            problem = unreachable(path)
            if problem:
                (found.unusable if wanted else found.skipped).append((path, problem))
            elif path.is_dir():
                subdirectories.append(path)
            elif not path.is_file():
                found.skipped.append((path, "not a regular file"))
            elif wanted:
                found.files.append(path)
            else:
                found.skipped.append((path, "not a .json file"))
        pending.extend(reversed(subdirectories))  # depth first, in name order


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--profile", default=None, help="also validate every file against this profile (canonical URL)")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text lines, or FHIR JSON (an OperationOutcome; a collection Bundle for several files)")
@click.option("--strict", is_flag=True, help="fail on warnings too")
@click.option("--quiet", "-q", is_flag=True, help="text format: errors only, no warnings")
def validate(paths: tuple[Path, ...], profile: str | None, fmt: str, strict: bool, quiet: bool) -> None:
    """Validate FHIR R4 JSON resources (files or directories) and report issues with their FHIRPath."""
    from alk_fhir.fhir import operation_outcome
    from alk_fhir.knowledge import BrokenPackage, corepkg, load_package
    from alk_fhir.validation import CompileError, UnknownProfile, build_validator, counts, fatal_outcome, report

    settings = Settings.from_env()
    try:
        validator = build_validator(load_package(settings.package_dir), corepkg.require(settings.package_cache))
    except (BrokenPackage, corepkg.CorePackageMissing, CompileError) as exc:
        raise click.ClickException(str(exc)) from exc
    if profile is not None:
        try:
            validator.require_profile(profile)
        except UnknownProfile as exc:
            raise click.ClickException(f"--profile {profile}: {exc}") from exc
    found = find(paths)
    files = found.files
    if not files and not found.unusable:
        listed = "".join(f"\n  {path}: skipped: {why}" for path, why in found.skipped)
        raise click.ClickException("no .json files found in " + ", ".join(str(p) for p in paths) + listed)
    results: list[tuple[str, dict[str, object]]] = []
    if len(files) >= PROGRESS_FROM:
        with click.progressbar(files, label="validating", file=sys.stderr, show_pos=True) as bar:
            results = [(str(f), validator.validate_file(f, profile)) for f in bar]
    else:
        results = [(str(f), validator.validate_file(f, profile)) for f in files]
    # Paths that cannot be resolved (a loop) are named by their absolute path, not resolved.
    unreached = [(path, fatal_outcome(f"{path}: {why}", code="exception")) for path, why in found.unusable]
    notes = [(path, operation_outcome("information", "informational", f"{path}: skipped: {why}"))
             for path, why in found.skipped]
    results += [(str(path), outcome) for path, outcome in unreached]
    if fmt == "json":
        body: dict[str, Any]
        if len(results) == 1 and not notes:
            body = results[0][1]
        else:
            body = report.collection(results[:len(files)])
            body["entry"] += [{"fullUrl": path.absolute().as_uri(), "resource": outcome}
                              for path, outcome in unreached + notes]
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        for name, outcome in results:
            for line in report.text_lines(name, outcome, warnings=not quiet):
                click.echo(line)
        for path, why in found.skipped:
            click.echo(f"{path}: skipped: {why}", err=True)
        click.echo(report.summary(results) + (f"; {len(found.skipped)} skipped" if found.skipped else ""),
                   err=True)
    tallies = [counts(o) for _, o in results]
    if any(c["fatal"] for c in tallies):
        sys.exit(2)
    failed = any(c["error"] or (strict and c["warning"]) for c in tallies)
    sys.exit(1 if failed else 0)
