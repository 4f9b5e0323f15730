"""Package commands: build/check ``profiles/`` from ``authoring/``, pack the ``.tgz``, fetch the core package."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alk_fhir.config import REPO_ROOT, Settings


@click.command("build-package")
@click.option("--src", type=click.Path(path_type=Path), default=REPO_ROOT / "authoring", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=REPO_ROOT / "profiles", show_default=True)
@click.option("--check", is_flag=True, help="only compare; exit 1 if profiles/ is out of sync")
def build_package(src: Path, out: Path, check: bool) -> None:
    """Generate the FHIR package in profiles/ (with snapshots) from the authoring sources."""
    from alk_fhir.build import authoring, snapshot
    from alk_fhir.knowledge import corepkg

    core = corepkg.require(Settings.from_env().package_cache)
    try:
        files = authoring.build(src, snapshot.snapshotter(core))
    except authoring.AuthoringError as exc:
        raise click.ClickException(str(exc)) from exc
    if check:
        problems = authoring.diff(files, out)
        for p in problems:
            click.echo(p, err=True)
        if problems:
            click.echo("profiles/ is out of sync with authoring/: run `alk-fhir build-package`", err=True)
            sys.exit(1)
        click.echo(f"profiles/ in sync ({len(files)} files)")
        return
    changed = authoring.write(files, out)
    click.echo(f"wrote {len(changed)} changed file(s) of {len(files)} to {out}")


@click.command()
@click.option("--profiles", type=click.Path(path_type=Path), default=REPO_ROOT / "profiles", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=REPO_ROOT / "dist", show_default=True)
def package(profiles: Path, out: Path) -> None:
    """Write the FHIR package as an NPM-style .tgz (package/package.json, .index.json, resources)."""
    from alk_fhir.build.pack import pack
    from alk_fhir.knowledge import BrokenPackage

    try:
        target = pack(profiles, out)
    except BrokenPackage as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(target))


@click.command("core-package")
def core_package() -> None:
    """Put hl7.fhir.r4.core#4.0.1 into the FHIR package cache (install time only)."""
    from alk_fhir.knowledge import corepkg

    click.echo(str(corepkg.install(Settings.from_env().package_cache)))
