"""Who may add to and read a case-overview document (issue 25), on the real app with partner tokens.

Defects this pins down: another partner posting its own document under the GP's ``Bundle.identifier``
became version 2 of the GP's document (the GP then got 404 on its own document, the GGz read the
other's content as current); a document whose exchange Consent had expired or not yet started was
stored and readable; after a version withdrew the consent the former recipient still read version 1.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.overview import document_context, sharing_parties
from alk_fhir.overview.consent import last_day
from alk_fhir.store import NotOwner, open_store
from fixtures.overview.kit import BSN, GGZ_ORG, GGZ_URA, GP_ORG, GP_URA, OTHER_URA, PATIENT_BSN, T2, URA, package
from test_overview_api import Env, bearer, gp_document, last_refusal, post, running
from test_store import BACKENDS, database_url  # noqa: F401 (the fixture)

CONSENT_START, CONSENT_END = date(2026, 10, 1), date(2027, 10, 1)  # the example patient's exchange Consent


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with running(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite3'}") as started:
        on(started, date(2026, 11, 23))
        yield started


def on(env: Env, day: date) -> None:
    """Pin the day the service judges consent periods on."""
    env.client.app.state.today = lambda: day  # type: ignore[attr-defined]


def as_other(doc: dict[str, Any]) -> dict[str, Any]:
    """The same document as another organisation's: its custodian (and consent holder) now carries
    OTHER_URA; the Bundle.identifier stays the GP's."""
    return json.loads(json.dumps(doc).replace(GP_URA, OTHER_URA))


def consent_of(doc: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Consent")


def newer(doc: dict[str, Any], **period: str) -> dict[str, Any]:
    """A next version of ``doc`` (a later timestamp) with the exchange Consent's period changed."""
    out = copy.deepcopy(doc)
    out["timestamp"] = T2
    consent_of(out)["provision"]["period"].update(period)
    return out


def reads(env: Env, who: dict[str, str], doc_id: str) -> list[int]:
    """Status of read, history, vread 1 and the patient search count, as ``who``."""
    codes = [env.client.get(f"/fhir/Bundle/{doc_id}{s}", headers=who).status_code
             for s in ("", "/_history", "/_history/1")]
    found = env.client.get(f"/fhir/Bundle?composition.patient.identifier={BSN}|{PATIENT_BSN}", headers=who).json()
    return [*codes, found["total"]]


# --- ownership -------------------------------------------------------------------------------------

def test_another_partner_cannot_add_a_version_to_the_gps_document(env: Env) -> None:
    gp, ggz, other = bearer(env, "gp"), bearer(env, "ggz"), bearer(env, "other")
    doc = gp_document()
    created = post(env, doc, gp)
    assert created.status_code == 201
    doc_id = created.json()["id"]

    forged = as_other(doc)
    assert forged["identifier"] == doc["identifier"]
    taken = post(env, forged, other, Prefer="return=OperationOutcome")
    assert taken.status_code == 409, taken.text
    outcome = taken.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "conflict"
    assert "Location" not in taken.headers and "ETag" not in taken.headers
    for secret in (doc_id, GP_URA, "_history", "W/"):  # neither the id, nor the owner, nor a version
        assert secret not in taken.text, secret
    refusal = last_refusal(env)
    assert refusal["subtype"][0]["code"] == "create" and refusal["outcome"] == "4"
    assert refusal["entity"][0]["what"]["identifier"] == doc["identifier"]
    assert f"kept by {URA}|{GP_URA}" in refusal["outcomeDesc"]  # the audit names the owner

    # Nothing changed: the GP reads its own document, the GGz reads the GP's content, one version.
    mine = env.client.get(f"/fhir/Bundle/{doc_id}", headers=gp)
    assert mine.status_code == 200 and mine.json()["meta"]["versionId"] == "1"
    theirs = env.client.get(f"/fhir/Bundle/{doc_id}/_history", headers=ggz).json()
    assert theirs["total"] == 1 and theirs["entry"][0]["resource"] == mine.json()
    assert reads(env, other, doc_id) == [404, 404, 404, 0]

    # The owner still adds versions.
    assert post(env, newer(doc), gp).status_code == 200
    assert env.client.get(f"/fhir/Bundle/{doc_id}", headers=ggz).json()["meta"]["versionId"] == "2"


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_the_store_itself_refuses_a_version_from_another_organisation(database_url: str) -> None:  # noqa: F811
    store = open_store(database_url)
    try:
        bundle = {"resourceType": "Bundle", "type": "document", "timestamp": "2026-11-23T10:00:00Z"}
        key = ("urn:ietf:rfc:3986", "urn:uuid:0b6a6f1e-0000-4000-8000-000000000001")
        first = store.put_document(bundle, identifier=key, author_org=GP_ORG, recipients=[GGZ_ORG],
                                   patient_identifiers=[f"{BSN}|{PATIENT_BSN}"])
        with pytest.raises(NotOwner) as refused:
            store.put_document({**bundle, "timestamp": "2026-11-24T10:00:00Z"}, identifier=key,
                               author_org=f"{URA}|{OTHER_URA}", recipients=[GGZ_ORG], patient_identifiers=[])
        assert refused.value.owner == GP_ORG
        assert [d.version_id for d in store.history(first.id)] == [1]
        assert store.put_document({**bundle, "timestamp": "2026-11-24T10:00:00Z"}, identifier=key,
                                  author_org=GP_ORG, recipients=[GGZ_ORG], patient_identifiers=[]).version_id == 2
    finally:
        store.close()


# --- consent: one rule at the sender, the store and the reader ----------------------------------------

@pytest.mark.parametrize("day", [date(2026, 9, 30), date(2027, 10, 2)])
def test_a_first_version_outside_the_consent_period_is_not_stored(env: Env, day: date) -> None:
    on(env, day)
    doc = gp_document()
    refused = post(env, doc, bearer(env, "gp"))
    assert refused.status_code == 403, refused.text
    assert f"in force on {day.isoformat()}" in refused.json()["issue"][0]["diagnostics"]
    assert last_refusal(env)["outcome"] == "4"
    assert env.store.search_by_identifier(None, doc["identifier"]["value"]) == []
    on(env, CONSENT_END)  # the last day of the period is inside it
    assert post(env, doc, bearer(env, "gp")).status_code == 201


def test_the_recipient_reads_nothing_once_the_period_has_ended(env: Env) -> None:
    gp, ggz = bearer(env, "gp"), bearer(env, "ggz")
    doc_id = post(env, gp_document(), gp).json()["id"]
    assert reads(env, ggz, doc_id) == [200, 200, 200, 1]
    on(env, CONSENT_END)
    assert reads(env, ggz, doc_id) == [200, 200, 200, 1]
    on(env, date(2027, 10, 2))
    assert reads(env, ggz, doc_id) == [404, 404, 404, 0]
    assert "no Consent of the current version covers it today" in last_refusal(env)["outcomeDesc"]
    assert reads(env, gp, doc_id) == [200, 200, 200, 1]  # the writer keeps its own document


def test_a_version_that_withdraws_the_consent_cuts_the_recipient_off_from_every_version(env: Env) -> None:
    gp, ggz = bearer(env, "gp"), bearer(env, "ggz")
    doc = gp_document()
    doc_id = post(env, doc, gp).json()["id"]
    on(env, date(2026, 12, 1))
    withdrawn = newer(doc, end="2026-11-30")  # the patient withdrew consent as of 1 December
    stored = post(env, withdrawn, gp)
    assert stored.status_code == 200 and stored.headers["ETag"] == 'W/"2"'  # the owner records the withdrawal
    assert reads(env, ggz, doc_id) == [404, 404, 404, 0]
    assert env.client.get(f"/fhir/Bundle/{doc_id}/_history/2", headers=ggz).status_code == 404
    assert reads(env, gp, doc_id) == [200, 200, 200, 1]
    history = env.client.get(f"/fhir/Bundle/{doc_id}/_history", headers=gp).json()
    assert history["total"] == 2


def test_sharing_parties_is_the_consent_rule_per_party() -> None:
    doc = gp_document()
    ctx = document_context(doc, package())
    ggz, gp = (URA, GGZ_URA), (URA, GP_URA)
    assert sharing_parties(ctx, writer=GP_ORG, today=CONSENT_START) == [ggz]
    back = sharing_parties(ctx, writer=GGZ_ORG, today=CONSENT_END)  # the reply direction: the GP, by URA and AGB
    assert gp in back and ggz not in back and {s for s, _ in back} == {URA, "http://fhir.nl/fhir/NamingSystem/agb-z"}
    assert sharing_parties(ctx, writer=GP_ORG, today=date(2026, 9, 30)) == []
    assert sharing_parties(ctx, writer=f"{URA}|{OTHER_URA}", today=CONSENT_START) == []  # not a party
    denied = copy.deepcopy(doc)
    consent = consent_of(denied)
    consent["provision"]["provision"] = [{"type": "deny", "actor": copy.deepcopy(consent["provision"]["actor"])}]
    assert sharing_parties(document_context(denied, package()), writer=GP_ORG, today=CONSENT_START) == []
    consent_of(denied)["status"] = "inactive"
    assert sharing_parties(document_context(denied, package()), writer=GP_ORG, today=CONSENT_START) == []


@pytest.mark.parametrize(("value", "day"), [("2027", date(2027, 12, 31)), ("2024-02", date(2024, 2, 29)),
                                            ("2027-03-04", date(2027, 3, 4)), ("2027-03-04T23:00:00+01:00",
                                                                               date(2027, 3, 4)), ("x", None)])
def test_a_partial_end_date_includes_what_it_names(value: str, day: date | None) -> None:
    assert last_day(value) == day


@pytest.mark.parametrize(("patch", "where"), [
    (lambda text: text.replace('"status": "final"', '"status": "final", "x": "\\ud800"', 1), "lone UTF-16 surrogate"),
    (lambda text: text.replace('"type": "document"', '"type": "document", "x": ' + "7" * 5000, 1), "integer of 5000"),
])
def test_a_document_that_cannot_be_stored_is_a_400_audited_not_a_500(env: Env, patch: Any, where: str) -> None:
    """It used to pass $validate, then answer 500 from the store's content hash, unaudited (and the CLI
    sender kept retrying it)."""
    gp = bearer(env, "gp")
    doc = gp_document()
    text = patch(json.dumps(doc))
    assert text != json.dumps(doc)
    answer = env.client.post("/fhir/Bundle", content=text.encode(),
                             headers={**gp, "Content-Type": "application/fhir+json"})
    assert answer.status_code == 400, answer.text
    assert where in answer.json()["issue"][0]["diagnostics"] and "at $." in answer.json()["issue"][0]["diagnostics"]
    refusal = last_refusal(env)
    assert refusal["subtype"][0]["code"] == "create" and refusal["outcome"] == "4"
    assert env.store.search_by_identifier(None, doc["identifier"]["value"]) == []
