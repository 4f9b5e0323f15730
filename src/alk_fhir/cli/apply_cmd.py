"""``alk-fhir apply PATIENT_BUNDLE``: the guideline's advice for one patient, as a FHIR Bundle."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click

from alk_fhir.config import Settings


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--plan", default=None, help="PlanDefinition canonical (default: the guideline's plan)")
@click.option("--date", "today", default=None, help="pin 'today' (YYYY-MM-DD) for reproducible output")
@click.option("--practitioner", default=None, help="reference of the user, e.g. Practitioner/123")
@click.option("--explain", is_flag=True,
              help="print the facts, each condition's result and the resource types no fact reads to stderr")
def apply(bundle: Path, plan: str | None, today: str | None, practitioner: str | None, explain: bool) -> None:
    """Run PlanDefinition/$apply on a patient Bundle and print the resulting collection Bundle."""
    from alk_fhir.apply import NoSubject, load_engine, pinned_day, run
    from alk_fhir.apply.engine import DEFAULT_PLAN
    from alk_fhir.context.facts import compile_facts, facts_as_json, unread_types
    from alk_fhir.knowledge import BrokenPackage, load_package

    try:
        data = json.loads(bundle.read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.ClickException(f"{bundle}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{bundle}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise click.ClickException(f"{bundle}: $.resourceType must be 'Bundle'")
    try:
        day = pinned_day(today) if today else date.today()
    except ValueError as exc:
        raise click.ClickException(f"--date must be YYYY-MM-DD in a supported range, not {today!r}: {exc}") from exc
    settings = Settings.from_env()
    try:
        engine = load_engine(load_package(settings.package_dir, settings.conceptmaps))
    except BrokenPackage as exc:
        raise click.ClickException(f"the package cannot be used: {exc}") from exc
    try:
        result = run(engine, data, day, plan=plan or DEFAULT_PLAN,
                     practitioner={"reference": practitioner} if practitioner else None)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    except NoSubject as exc:
        raise click.ClickException(f"{bundle}: {exc} (add the Patient resource to the Bundle)") from exc
    if explain:
        unread = unread_types(data, compile_facts(engine.package))
        click.echo(json.dumps({"facts": facts_as_json(result.context.facts), "trace": result.trace,
                               "issues": result.context.issues, "unread": unread}, indent=2, ensure_ascii=False),
                   err=True)
    sys.stdout.write(json.dumps(result.as_bundle(), indent=2, ensure_ascii=False) + "\n")
