"""``alk-fhir register export``: the pseudonymised case register, from the store or from files.

Needs ``ALK_FHIR_REGISTER_KEY`` (the installation's secret for the pseudonyms): without it nothing
is read and the command exits 1 saying so. Reads every stored document version of the store the
service writes (``ALK_FHIR_DATABASE_URL`` or ``--database-url``), or the document files given with
``--document`` instead. Writes the register, the data dictionary and the suppression account to
``--out``; prints a one-line summary. Exit 1 naming the file or store when input cannot be read,
2 for wrong usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from alk_fhir.cli.report_cmd import open_existing_store
from alk_fhir.config import Settings


def _files(paths: tuple[Path, ...]) -> list[Any]:
    from alk_fhir.register import Version

    versions = []
    for path in paths:
        try:
            bundle = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise click.ClickException(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise click.ClickException(f"{path}: not JSON: {exc}") from exc
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "document":
            raise click.ClickException(f"{path}: not a FHIR document Bundle (Bundle.type = document)")
        raw = (bundle.get("meta") or {}).get("versionId")
        versions.append(Version(bundle, int(raw) if isinstance(raw, str) and raw.isdigit() else 1))
    return versions


def _stored(store: Any) -> Iterator[Any]:
    from alk_fhir.register import Version

    for record in store.document_versions():
        yield Version(record.resource, record.version_id, record.last_updated)


@click.group()
def register() -> None:
    """The case register: a pseudonymised extract of the case overviews for research."""


@register.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="directory to write the register, data dictionary and suppression account to")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "parquet"]), default="ndjson", show_default=True)
@click.option("--k", "k", type=click.IntRange(min=1), default=5, show_default=True,
              help="smallest number of patients sharing the quasi-identifiers (age band, sex, month)")
@click.option("--document", "documents", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="read this document file instead of the store (repeatable)")
@click.option("--database-url", default=None, help="the store to read (default: ALK_FHIR_DATABASE_URL)")
def export(out_dir: Path, fmt: str, k: int, documents: tuple[Path, ...], database_url: str | None) -> None:
    """Export one row per patient per document version: codes, counts, months, bands, pseudonyms."""
    from alk_fhir.knowledge import BrokenPackage, load_package
    from alk_fhir.register import RegisterKeyError, export_register, register_key

    try:
        key = register_key()
    except RegisterKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        pkg = load_package(Settings.from_env().package_dir)
    except BrokenPackage as exc:
        raise click.ClickException(str(exc)) from exc
    store = None if documents else open_existing_store(database_url)
    try:
        versions = _files(documents) if documents else _stored(store)
        result = export_register(versions, pkg, key, out_dir, fmt=fmt, k=k)
    except OSError as exc:
        raise click.ClickException(f"{out_dir}: cannot write: {exc.strerror or exc}") from exc
    finally:
        if store is not None:
            store.close()
    account = result.account()
    skipped = ", ".join(f"{n} {reason}" for reason, n in account["skippedVersions"].items()) or "none"
    suppressed = ", ".join(f"{column} {n}" for column, n in account["suppressedCells"].items()) or "none"
    click.echo(f"{result.data_file}: {account['rowsOut']} rows, {account['patientsOut']} patients (k={k}); "
               f"cells suppressed: {suppressed}; rows dropped: {account['droppedRows']}; "
               f"versions skipped: {skipped}", err=True)
