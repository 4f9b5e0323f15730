"""``alk-fhir store purge``: enforce the store's retention now (the service also does at start-up).

Deletes CDS feedback, shown cards and superseded document versions older than the retention
settings (``ALK_FHIR_RETENTION_*``, README "Privacy") and strips free text kept beyond
``ALK_FHIR_RETENTION_COMMENT_DAYS``; prints what it removed as JSON. Exit 1 naming the store when it
cannot be opened or written.
"""

from __future__ import annotations

import json

import click

from alk_fhir.cli.report_cmd import open_existing_store
from alk_fhir.config import Settings


@click.group()
def store() -> None:
    """The service's store: CDS feedback, shown cards, exchanged documents."""


@store.command()
@click.option("--database-url", default=None, help="the store to purge (default: ALK_FHIR_DATABASE_URL)")
def purge(database_url: str | None) -> None:
    """Delete what the retention settings no longer allow; print the counts."""
    from sqlalchemy.exc import SQLAlchemyError

    from alk_fhir.store import StoreError

    try:
        retention = Settings.from_env().retention()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    opened = open_existing_store(database_url)
    opened.retention = retention
    try:
        result = opened.purge()
    except (StoreError, SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"cannot purge the store: {exc}") from exc
    finally:
        opened.close()
    click.echo(json.dumps({"retention": retention.__dict__, "removed": result.to_dict()}, indent=2))
