"""``alk-fhir overview build|render|diff|send|fetch``: the shared case overview from the command line.

``send`` and ``fetch`` speak SMART Backend Services to the partner (``--client-id`` and the PEM
``--private-key`` whose public half the partner registered) and plain FHIR R4 REST after that.
``send`` goes through the consent gate first and validates the document: when either says no,
nothing at all is sent (not even a token request). Errors are one line on stderr naming the file
or server, with exit status 1; a refusal by the consent gate exits with 3.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from alk_fhir.config import Settings

URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
READ_SCOPE = "system/Bundle.read"
WRITE_SCOPE = "system/Bundle.write"


class Refused(click.ClickException):
    """The consent gate said no: nothing was built for, or sent to, the recipient."""

    exit_code = 3


def _package() -> Any:
    from alk_fhir.knowledge import BrokenPackage, load_package

    try:
        return load_package(Settings.from_env().package_dir)
    except BrokenPackage as exc:
        raise click.ClickException(str(exc)) from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.ClickException(f"{path}: not JSON: {exc}") from exc


def _read_document(path: Path) -> Any:
    from alk_fhir.overview import DocumentError, composition_of

    doc = _read_json(path)
    try:
        composition_of(doc)
    except DocumentError as exc:
        raise click.ClickException(f"{path}: not a case-overview document: {exc}") from exc
    return doc


def _conform(pkg: Any, *documents: tuple[Path, Any], refusal: str = "the document does not conform") -> None:
    """Validate each (path, document) against the case-overview profiles with one validator (compiling
    it takes most of a second); errors stop the command, naming the file and each problem's FHIRPath
    (render, diff and send read only documents that conform)."""
    from alk_fhir.knowledge import corepkg
    from alk_fhir.validation import build_validator, has_errors

    validator = build_validator(pkg, corepkg.require(Settings.from_env().package_cache))
    for path, doc in documents:
        outcome = validator.validate_document(doc)
        if has_errors(outcome):
            problems = "; ".join(f"{', '.join(i.get('expression', []))}: {i.get('diagnostics')}"
                                 for i in outcome["issue"] if i.get("severity") in ("error", "fatal"))
            raise click.ClickException(f"{path}: {refusal}: {problems}")


def _day(value: str | None) -> date:
    try:
        return date.fromisoformat(value) if value else date.today()
    except ValueError as exc:
        raise click.ClickException(f"--date must be YYYY-MM-DD, not {value!r}") from exc


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot write: {exc.strerror or exc}") from exc


def _dump(resource: Any) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


@click.group()
def overview() -> None:
    """The shared case overview: build it from a record, render, compare, send and fetch it."""


@overview.command()
@click.argument("record", type=click.Path(path_type=Path))
@click.option("--date", "day", default=None, help="the day the record is read on (YYYY-MM-DD; default today)")
@click.option("--timestamp", default=None, help="Bundle.timestamp / Composition.date (FHIR instant; default now)")
@click.option("--author", default=None, help="Type/id of the author in the record (default: the custodian)")
@click.option("--custodian", default=None,
              help="organisation keeping the overview: system|value (URA/AGB) or Organization/id "
                   "(default: the patient's general practice)")
@click.option("--recipient", default=None,
              help="build for an exchange with this organisation (system|value): requires the patient's consent")
@click.option("--question", default=None, help="the question to the receiving colleague (in the summary)")
@click.option("--contact", default=None, help="how to reach the sender, e.g. a direct phone number (in the summary)")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="write here, not to stdout")
def build(record: Path, day: str | None, timestamp: str | None, author: str | None, custodian: str | None,
          recipient: str | None, question: str | None, contact: str | None, output: Path | None) -> None:
    """Build the overview document (FHIR document Bundle) from a patient RECORD (a Bundle)."""
    from alk_fhir.overview import ConsentRefused, OverviewError, build_overview

    data = _read_json(record)
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise click.ClickException(f"{record}: $.resourceType must be 'Bundle' (the patient's record)")
    try:
        doc = build_overview(data, _package(), today=_day(day), timestamp=timestamp, author=author,
                             custodian=custodian, recipient=recipient, question=question, contact=contact)
    except ConsentRefused as exc:
        raise Refused(f"{record}: {exc}") from exc
    except OverviewError as exc:
        raise click.ClickException(f"{record}: {exc}") from exc
    _write(_dump(doc), output)


@overview.command()
@click.argument("document", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="write here, not to stdout")
def render(document: Path, output: Path | None) -> None:
    """Render an overview DOCUMENT as a standalone, print-friendly HTML page."""
    from alk_fhir.overview import render_html

    doc, pkg = _read_document(document), _package()
    _conform(pkg, (document, doc))
    _write(render_html(doc, pkg), output)


@overview.command()
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def diff(old: Path, new: Path, fmt: str) -> None:
    """What changed from OLD to NEW, per section: added, removed and changed items."""
    from alk_fhir.overview import diff_overviews

    before, after, pkg = _read_document(old), _read_document(new), _package()
    _conform(pkg, (old, before), (new, after))
    result = diff_overviews(before, after, pkg)
    _write(_dump(result.to_json()) if fmt == "json" else result.to_text(), None)


def _client(server: str, client_id: str, private_key: Path, alg: str, scope: str, max_wait: float) -> Any:
    from alk_fhir.exchange import BackendServicesAuth, FhirClient, RetryPolicy

    try:
        pem = private_key.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{private_key}: cannot read the private key: {exc.strerror or exc}") from exc
    retries = RetryPolicy(retries=10, max_total=max_wait)
    try:
        auth = BackendServicesAuth(server, client_id, pem, alg=alg, scopes=[scope], retry=retries)
        return FhirClient(server, auth, retries=10, max_total=max_wait)
    except ValueError as exc:
        raise click.ClickException(f"cannot talk to {server} as {client_id} with {private_key}: {exc}") from exc


def _exchange_options(command: Any) -> Any:
    for option in reversed([
        click.option("--server", required=True, help="the partner's FHIR base URL, e.g. https://ggz.example/fhir"),
        click.option("--client-id", required=True, help="our client id as the partner registered it"),
        click.option("--private-key", required=True, type=click.Path(path_type=Path),
                     help="PEM private key (EC P-384 for ES384, RSA for RS384)"),
        click.option("--alg", type=click.Choice(["ES384", "RS384"]), default="ES384", show_default=True),
        click.option("--max-wait", type=float, default=120.0, show_default=True,
                     help="seconds to keep retrying while the partner is unreachable or busy"),
    ]):
        command = option(command)
    return command


def _logging() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


@overview.command()
@click.argument("document", type=click.Path(path_type=Path))
@click.option("--recipient", required=True, help="the receiving organisation, system|value (URA/AGB)")
@click.option("--date", "day", default=None, help="the day the consent must hold (YYYY-MM-DD; default today)")
@click.option("--provenance", type=click.Path(path_type=Path), default=None,
              help="write the Provenance of this send (who sent what when) to this file")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line for people; json: one object for scripts (result, versionId, id, location)")
@_exchange_options
def send(document: Path, recipient: str, day: str | None, provenance: Path | None, fmt: str, server: str,
         client_id: str, private_key: Path, alg: str, max_wait: float) -> None:
    """Send an overview DOCUMENT to a partner's FHIR server (conditional create, safe to repeat).

    Says whether the partner stored it ("stored as version N") or already had this content
    ("already there as version N")."""
    from alk_fhir.exchange import ExchangeError, document_provenance
    from alk_fhir.overview import ConsentRefused, composition_of, custodian_orgs, document_context
    from alk_fhir.overview.build import now_instant
    from alk_fhir.overview.consent import require_exchange_consent

    _logging()
    doc = _read_document(document)
    pkg = _package()
    today = _day(day)
    ctx = document_context(doc, pkg, today)
    composition = composition_of(doc)
    holders = sorted(custodian_orgs(ctx, composition), key=lambda org: org[0] != URA_SYSTEM)  # URA first
    senders = [f"{s}|{v}" for s, v in holders]
    custodian_ref = (composition.get("custodian") or {}).get("reference")
    if isinstance(custodian_ref, str):
        senders.append(custodian_ref)
    try:
        require_exchange_consent(ctx, recipient=recipient, senders=senders, today=today)
    except ConsentRefused as exc:
        raise Refused(f"{document}: {exc}") from exc
    _conform(pkg, (document, doc), refusal="not sent, the document does not conform")
    client = _client(server, client_id, private_key, alg, WRITE_SCOPE, max_wait)
    try:
        with client:
            result = client.send_document(doc)
    except ExchangeError as exc:
        raise click.ClickException(f"{document}: not delivered: {exc}") from exc
    except ValueError as exc:
        raise click.ClickException(f"{document}: {exc}") from exc
    if provenance is not None:
        sender = {"system": holders[0][0], "value": holders[0][1]} if holders else {"reference": custodian_ref}
        record = document_provenance(doc, sender_org=sender, recipient=recipient, when=now_instant(),
                                     location=result.location)
        _write(_dump(record), provenance)
    version = result.version_id or "?"
    if fmt == "json":
        click.echo(json.dumps({
            "document": str(document), "server": server, "result": "stored" if result.stored else "already-there",
            "status": result.status, "id": result.id, "versionId": result.version_id, "location": result.location,
        }, ensure_ascii=False))
        return
    state = f"stored as version {version}" if result.stored else f"already there as version {version}"
    click.echo(f"{document}: sent to {server}: {state} (HTTP {result.status}, Bundle/{result.id or '?'})")


@overview.command()
@click.option("--patient", required=True, help="the patient's identifier, system|value (e.g. the BSN)")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="write each document to this directory as <id>.json (default: a collection Bundle on stdout)")
@_exchange_options
def fetch(patient: str, output: Path | None, server: str, client_id: str, private_key: Path, alg: str,
          max_wait: float) -> None:
    """Fetch the overview documents about a patient from a partner's FHIR server."""
    from alk_fhir.exchange import ExchangeError

    _logging()
    system, sep, value = patient.partition("|")
    if not sep or not system or not value:
        raise click.ClickException(f"--patient must be system|value, not {patient!r}")
    client = _client(server, client_id, private_key, alg, READ_SCOPE, max_wait)
    try:
        with client:
            documents = client.fetch_documents(system, value)
    except ExchangeError as exc:
        raise click.ClickException(f"fetch from {server} failed: {exc}") from exc
    if output is None:
        _write(_dump({"resourceType": "Bundle", "type": "collection", "total": len(documents),
                      "entry": [{"resource": d} for d in documents]}), None)
        return
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot create the directory: {exc.strerror or exc}") from exc
    for i, doc in enumerate(documents):
        name = str(doc.get("id") or f"document-{i + 1}")
        target = output / f"{name}.json"
        _write(_dump(doc), target)
        click.echo(str(target))
