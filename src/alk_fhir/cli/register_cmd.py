"""``alk-fhir register export``: the pseudonymised case register, from the store or from files.

Needs ``ALK_FHIR_REGISTER_KEY`` (the installation's secret for the pseudonyms): without it nothing
is read and the command exits 1 saying so. Reads every stored document version of the store the
service writes (``ALK_FHIR_DATABASE_URL`` or ``--database-url``), or the document files given with
``--document`` instead. Writes the register, the data dictionary and the suppression account to
``--out``, a new directory (or an existing one emptied first with ``--force``; files 0600, no
symlink followed); prints a one-line summary. ``--k`` below 5 needs ``--allow-small-k`` and says so.
Exit 1 naming the file, directory or store when input cannot be read or output not written, 2 for
wrong usage.

``alk-fhir register key`` prints a new key for ``ALK_FHIR_REGISTER_KEY`` (256 bits, hex).
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
              help="smallest number of patients sharing the quasi-identifiers (see the data dictionary)")
@click.option("--allow-small-k", is_flag=True, help="allow --k below 5 (publishes smaller groups; say why)")
@click.option("--force", is_flag=True, help="empty an existing --out directory first (its files only)")
@click.option("--document", "documents", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="read this document file instead of the store (repeatable)")
@click.option("--database-url", default=None, help="the store to read (default: ALK_FHIR_DATABASE_URL)")
def export(out_dir: Path, fmt: str, k: int, allow_small_k: bool, force: bool, documents: tuple[Path, ...],
           database_url: str | None) -> None:
    """Export one row per patient per document version: codes, counts, months, bands, pseudonyms."""
    from alk_fhir.knowledge import BrokenPackage, load_package
    from alk_fhir.register import DEFAULT_K, RegisterKeyError, export_register, register_key
    from alk_fhir.register.export import OutputDirectoryError

    if k < DEFAULT_K:
        if not allow_small_k:
            raise click.UsageError(f"--k {k} is below {DEFAULT_K}: groups that small can single a patient out; "
                                   "add --allow-small-k if that is what you mean")
        click.echo(f"warning: --k {k} is below {DEFAULT_K}: groups of fewer than {DEFAULT_K} patients are "
                   "published", err=True)
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
        result = export_register(versions, pkg, key, out_dir, fmt=fmt, k=k, force=force)
    except OutputDirectoryError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"{out_dir}: cannot write: {exc.strerror or exc}") from exc
    finally:
        if store is not None:
            store.close()
    account = result.account()
    skipped = ", ".join(f"{n} {reason}" for reason, n in account["skippedVersions"].items()) or "none"
    generalised = ", ".join(f"{column} {n}" for column, n in account["generalisedCells"].items()) or "none"
    suppressed = ", ".join(f"{column} {n}" for column, n in account["suppressedCells"].items()) or "none"
    dropped = ", ".join(f"{n} {reason}" for reason, n in account["droppedCodes"].items()) or "none"
    click.echo(f"{result.data_file}: {account['rowsOut']} rows, {account['patientsOut']} patients (k={k}); "
               f"cells generalised: {generalised}; cells suppressed: {suppressed}; rows dropped: "
               f"{account['droppedRows']}; versions skipped: {skipped}; codes dropped: {dropped}", err=True)


@register.command()
def key() -> None:
    """Print a new key for ALK_FHIR_REGISTER_KEY (256 bits from the OS's random source, as hex).

    Keep it with the installation's secrets and never give it to the register's recipients: with the
    key, a pseudonym can be recomputed from a BSN. A new key gives pseudonyms unrelated to the old."""
    from alk_fhir.register.pseudonym import new_key

    click.echo(new_key())
    click.echo("set it as ALK_FHIR_REGISTER_KEY and keep it secret; a new key breaks the link with earlier exports",
               err=True)
