"""``alk-fhir validate PATH...``: validate FHIR JSON files against our profiles and the R4 base.

Exit status: 0 when no file has errors (warnings allowed unless ``--strict``), 1 when any has, 2 for
unusable input (a file that cannot be read, is not JSON or is not a FHIR resource: a ``fatal`` issue
naming the file and why) or wrong usage; the other files are still validated and reported.
Directories are searched for ``*.json``; many files get a progress bar on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from alk_fhir.config import Settings

PROGRESS_FROM = 10


def _files(paths: tuple[Path, ...]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(p for p in path.rglob("*.json") if p.is_file()) if path.is_dir() else [path])
    return out


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--profile", default=None, help="also validate every file against this profile (canonical URL)")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text lines, or FHIR JSON (an OperationOutcome; a collection Bundle for several files)")
@click.option("--strict", is_flag=True, help="fail on warnings too")
@click.option("--quiet", "-q", is_flag=True, help="text format: errors only, no warnings")
def validate(paths: tuple[Path, ...], profile: str | None, fmt: str, strict: bool, quiet: bool) -> None:
    """Validate FHIR R4 JSON resources (files or directories) and report issues with their FHIRPath."""
    from alk_fhir.knowledge import BrokenPackage, corepkg, load_package
    from alk_fhir.validation import CompileError, UnknownProfile, build_validator, counts, report

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
    files = _files(paths)
    if not files:
        raise click.ClickException("no .json files found in " + ", ".join(str(p) for p in paths))
    results: list[tuple[str, dict[str, object]]] = []
    if len(files) >= PROGRESS_FROM:
        with click.progressbar(files, label="validating", file=sys.stderr, show_pos=True) as bar:
            results = [(str(f), validator.validate_file(f, profile)) for f in bar]
    else:
        results = [(str(f), validator.validate_file(f, profile)) for f in files]
    if fmt == "json":
        body = results[0][1] if len(results) == 1 else report.collection(results)
        click.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        for name, outcome in results:
            for line in report.text_lines(name, outcome, warnings=not quiet):
                click.echo(line)
        click.echo(report.summary(results), err=True)
    tallies = [counts(o) for _, o in results]
    if any(c["fatal"] for c in tallies):
        sys.exit(2)
    failed = any(c["error"] or (strict and c["warning"]) for c in tallies)
    sys.exit(1 if failed else 0)
