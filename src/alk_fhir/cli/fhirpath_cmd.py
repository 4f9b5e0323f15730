"""``alk-fhir fhirpath EXPRESSION [FILE] [--var name=value]...``: try a FHIRPath expression.

For knowledge authors: the expression is evaluated by the project's engine (``alk_fhir.fhirpath``)
with the facts' host functions (``memberOf``, ``namesMemberOf``, ``resolve``) and the result printed
as a JSON array. FILE is a FHIR resource; a Bundle holding a Patient is read as a patient record,
as the CDS service and ``$apply`` read it, so ``%conditions``, ``%today`` and every fact of the
package's Library are variables and the Patient is the focus. ``--var name=value`` adds or overrides
a variable (the value is JSON when it parses as JSON, else a string). Over a record, a construct the
facts compiler (``recordpath``) does not take is named on stderr, so that an author knows before
putting the expression into the Library.

Exit status: 0 with the result; 1 when the expression cannot be evaluated on this input (FHIRPath
N1 execution errors); 2 when the expression is not FHIRPath, uses a construct the engine does not
implement (named), or FILE/--var is unusable.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click


class _Usage(click.ClickException):
    exit_code = 2


def _read(path: Path) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _Usage(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Usage(f"{path}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise _Usage(f"{path}: $.resourceType is missing: not a FHIR resource")
    return data


def _variables(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            raise _Usage(f"--var {pair!r}: expected name=value")
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError:
            out[name] = text
    return out


def _record_environment(data: dict[str, Any], today: date) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(focus, variables, host functions) of a patient record, as the facts see it."""
    from alk_fhir.config import Settings
    from alk_fhir.context import build_context
    from alk_fhir.context.facts import HOST_FUNCTIONS, fact_environment
    from alk_fhir.knowledge import BrokenPackage, load_package

    settings = Settings.from_env()
    try:
        pkg = load_package(settings.package_dir, settings.conceptmaps)
    except BrokenPackage as exc:
        raise _Usage(f"the package cannot be used: {exc}") from exc
    ctx = build_context(data, pkg, today)
    return ctx.patient, fact_environment(ctx), dict(HOST_FUNCTIONS)


@click.command("fhirpath")
@click.argument("expression")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="a %variable (JSON, else a string)")
@click.option("--date", "today", default=None, help="'today' for a patient record (YYYY-MM-DD)")
def fhirpath(expression: str, file: Path | None, variables: tuple[str, ...], today: str | None) -> None:
    """Evaluate a FHIRPath EXPRESSION over FILE (a resource, or a patient record Bundle)."""
    from alk_fhir import fhirpath as fp

    try:
        compiled_check = fp.compile_fhirpath(expression, frozenset({"memberOf", "namesMemberOf", "resolve"}))
    except fp.Unsupported as exc:
        raise _Usage(f"unsupported FHIRPath construct: {exc} (in {expression!r})") from exc
    except fp.FHIRPathSyntaxError as exc:
        raise _Usage(f"not a FHIRPath expression: {exc} (in {expression!r})") from exc
    del compiled_check
    resource: Any = _read(file) if file is not None else None
    env: dict[str, Any] = {}
    functions: dict[str, Any] = {}
    if isinstance(resource, dict) and resource.get("resourceType") == "Bundle" and any(
            isinstance(e, dict) and isinstance(e.get("resource"), dict)
            and e["resource"].get("resourceType") == "Patient" for e in resource.get("entry") or []):
        try:
            day = date.fromisoformat(today) if today else date.today()
        except ValueError as exc:
            raise _Usage(f"--date must be YYYY-MM-DD, not {today!r}") from exc
        resource, env, functions = _record_environment(resource, day)
    env.update(_variables(variables))
    try:
        result = fp.evaluate(expression, resource, env, functions or None)
    except fp.FHIRPathEvaluationError as exc:
        where = f" over {file}" if file is not None else ""
        raise click.ClickException(f"cannot evaluate {expression!r}{where}: {exc}") from exc
    sys.stdout.write(json.dumps(fp.to_json(result), indent=2, ensure_ascii=False) + "\n")
    if functions:  # a patient record: would the facts compiler take this as a fact definition?
        refusal = _as_fact(expression, set(env))
        if refusal:
            click.echo(f"note: as a fact definition of the Library this is refused by the facts compiler "
                       f"(recordpath): {refusal}", err=True)


def _as_fact(expression: str, variables: set[str]) -> str | None:
    """Why ``recordpath`` would refuse ``expression`` as a fact definition, or None."""
    from alk_fhir import recordpath
    from alk_fhir.context.facts import HOST_FUNCTIONS

    try:
        recordpath.compile_record_expression(expression, {v for v in variables if not v.startswith(" ")},
                                             dict(HOST_FUNCTIONS))
    except recordpath.Unsupported as exc:
        return str(exc)
    return None
