"""``alk-fhir report feedback``: the CDS feedback report for the guideline working group.

Reads the store the service writes (``ALK_FHIR_DATABASE_URL``, or ``--database-url``): the cards
shown and the feedback received, per month, guideline section and action. Writes HTML (Dutch with
English, inline SVG charts), CSV or JSON to stdout or ``--output``. Exit 0 on success, 1 when the
store cannot be read (naming it), 2 for wrong usage (e.g. ``--since`` not YYYY-MM).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from alk_fhir.config import Settings

MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def open_existing_store(url: str | None) -> Any:
    """The store at ``url`` (default: the configured one), which must exist: a report or an export
    never creates an empty database. ClickException naming the database otherwise."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from alk_fhir.store import StoreError, open_store

    url = url or Settings.from_env().database_url
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise click.ClickException(f"not a database URL: {url!r}") from exc
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or not Path(database).expanduser().is_file():
            raise click.ClickException(f"{database or shown}: no such database file (set ALK_FHIR_DATABASE_URL "
                                       "or --database-url to the service's store)")
    try:
        return open_store(url)
    except (StoreError, SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"{shown}: cannot open the store: {exc}") from exc


def catalog() -> Any:
    """The compiled card catalog of the configured package: titles of sections, actions, reasons."""
    from alk_fhir.apply import load_engine
    from alk_fhir.cds import compile_catalog
    from alk_fhir.knowledge import BrokenPackage, load_package

    try:
        return compile_catalog(load_engine(load_package(Settings.from_env().package_dir)))
    except BrokenPackage as exc:
        raise click.ClickException(str(exc)) from exc


def _month(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not MONTH.match(value):
        raise click.BadParameter(f"{value!r} is not a month; use YYYY-MM, e.g. 2026-01")
    return value


@click.group()
def report() -> None:
    """Reports of the learning loop (no patient or professional identity in them)."""


@report.command()
@click.option("--since", callback=_month, metavar="YYYY-MM", help="first month to include (default: all)")
@click.option("--format", "fmt", type=click.Choice(["html", "csv", "json"]), default="html", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="write here, not to stdout")
@click.option("--database-url", default=None, help="the store to read (default: ALK_FHIR_DATABASE_URL)")
def feedback(since: str | None, fmt: str, output: Path | None, database_url: str | None) -> None:
    """How often each piece of advice was shown, accepted and overridden (with reasons), per month."""
    from alk_fhir.api.report_routes import feedback_report
    from alk_fhir.report import render

    store = open_existing_store(database_url)
    try:
        text = render(feedback_report(store, catalog(), since), fmt)
    finally:
        store.close()
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot write: {exc.strerror or exc}") from exc
    click.echo(f"{output}: feedback report ({fmt}) written", err=True)
