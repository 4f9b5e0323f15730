"""Who may add to and read a case-overview document (issue 25), on the real app with partner tokens.

Defects this pins down: another partner posting its own document under the GP's ``Bundle.identifier`` became
version 2 of the GP's document (the GP then got 404 on its own document, the GGz read the other's content as
current), and the refusal that replaced it (409) told the partner the identifier existed: now the partner
gets a document of its own, answered as for any new identifier; a document whose exchange Consent had
expired or not yet started was stored and readable; after a version withdrew the consent the former
recipient still read version 1.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.overview import composition_of, custodian_orgs, document_context, sharing_parties
from alk_fhir.overview.consent import last_day
from alk_fhir.store import logical_id, open_store
from fixtures.overview.kit import (
    BSN,
    GGZ_ORG,
    GGZ_URA,
    GP_ORG,
    GP_URA,
    OTHER_ORG,
    OTHER_URA,
    PATIENT_BSN,
    T2,
    URA,
    package,
)
from test_overview_api import Env, bearer, gp_document, last_refusal, post, refusals, running
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

def with_identifier(doc: dict[str, Any], value: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["identifier"]["value"] = value
    return out


FRESH = "urn:uuid:5f0c1d2e-0000-4000-8000-00000000f00d"  # an identifier no one has used


def shape(answer: Any) -> tuple[Any, ...]:
    """What a create answer looks like, with what must differ between two documents (their ids,
    their times) reduced to its form: status, header names, Location/ETag patterns, body outline."""
    body = answer.json() if answer.content else None
    location = re.sub(r"/Bundle/[0-9a-f-]{36}/", "/Bundle/{id}/", answer.headers.get("Location", ""))
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        body = (sorted(body), body["meta"]["versionId"], sorted(body["meta"]))
    headers = sorted(k for k in answer.headers if k not in ("date", "content-length"))
    return answer.status_code, headers, location, answer.headers.get("ETag"), body


@pytest.mark.parametrize("prefer", [None, "return=minimal", "return=OperationOutcome"])
def test_posting_another_organisations_identifier_is_answered_as_a_fresh_one(env: Env, prefer: str | None) -> None:
    """The partner gets its own document (201), exactly as for an identifier no one uses: nothing in the
    answer tells it that the GP keeps a document with that identifier. The GP's document, its versions
    and what the GGz reads of it stay as they were; the audit marks the post (outcome 4) and names the GP."""
    gp, ggz, other = bearer(env, "gp"), bearer(env, "ggz"), bearer(env, "other")
    extra = {"Prefer": prefer} if prefer else {}
    doc = gp_document()
    created = post(env, doc, gp)
    assert created.status_code == 201
    doc_id, original = created.json()["id"], created.json()
    ggz_before = [env.client.get(f"/fhir/Bundle/{doc_id}{s}", headers=ggz).json()
                  for s in ("", "/_history/1")]
    refusals_before = len(refusals(env))

    forged = as_other(doc)
    assert forged["identifier"] == doc["identifier"]
    fresh = post(env, with_identifier(forged, FRESH), other, **extra)
    assert len(refusals(env)) == refusals_before  # a fresh identifier is no refusal
    taken = post(env, forged, other, **extra)
    assert taken.status_code == 201, taken.text
    assert shape(taken) == shape(fresh)
    if prefer == "return=OperationOutcome":
        assert taken.json() == fresh.json()  # "stored as version 1", MSG_CREATED
    for secret in (doc_id, GP_URA):  # neither the owner's id nor the owner
        assert secret not in taken.text and secret not in str(taken.headers), secret
    own_id = taken.headers["Location"].split("/Bundle/")[1].split("/")[0]
    assert own_id != doc_id

    refusal = last_refusal(env)
    assert refusal["subtype"][0]["code"] == "create" and refusal["outcome"] == "4"
    assert refusal["entity"][0]["what"]["identifier"] == doc["identifier"]
    assert refusal["entity"][0]["what"]["reference"] == f"Bundle/{own_id}/_history/1"
    assert f"kept by {URA}|{GP_URA}" in refusal["outcomeDesc"]  # the audit names the owner
    assert len(refusals(env)) == refusals_before + 1

    # The GP's document is untouched: same content, one version, the GGz reads what it read.
    mine = env.client.get(f"/fhir/Bundle/{doc_id}", headers=gp)
    assert mine.status_code == 200 and mine.json() == original
    assert env.client.get(f"/fhir/Bundle/{doc_id}/_history", headers=gp).json()["total"] == 1
    assert [env.client.get(f"/fhir/Bundle/{doc_id}{s}", headers=ggz).json()
            for s in ("", "/_history/1")] == ggz_before
    assert reads(env, other, doc_id) == [404, 404, 404, 2]  # not the GP's; its own two documents

    # The partner's document is its own: it adds versions to it, and the GP never sees it.
    assert env.client.get(f"/fhir/Bundle/{own_id}", headers=gp).status_code == 404
    assert post(env, newer(forged), other).headers["ETag"] == 'W/"2"'
    assert env.client.get(f"/fhir/Bundle/{doc_id}", headers=gp).json() == original

    # The owner still adds versions to its own document.
    assert post(env, newer(doc), gp).status_code == 200
    assert env.client.get(f"/fhir/Bundle/{doc_id}", headers=ggz).json()["meta"]["versionId"] == "2"

    # A recipient of both finds both by the identifier, told apart by id and custodian.
    found = env.client.get(f"/fhir/Bundle?identifier={doc['identifier']['system']}|{doc['identifier']['value']}",
                           headers=ggz).json()
    custodians = {e["resource"]["id"]: composition_custodian(e["resource"]) for e in found["entry"]}
    assert set(custodians) == {doc_id, own_id} and len(set(custodians.values())) == 2
    mine_only = env.client.get(f"/fhir/Bundle?identifier={doc['identifier']['value']}", headers=gp).json()
    assert [e["resource"]["id"] for e in mine_only["entry"]] == [doc_id]


def composition_custodian(doc: dict[str, Any]) -> Any:
    """The identifiers of the organisation a document's Composition names as custodian."""
    return tuple(sorted(custodian_orgs(document_context(doc, package()), composition_of(doc))))


def test_a_refused_post_of_another_organisations_identifier_reads_as_a_fresh_one(env: Env) -> None:
    """Without a Consent in force the partner's first version is refused (403): the same refusal whether
    or not the GP keeps a document with that identifier (the check looks at the partner's own documents)."""
    gp, other = bearer(env, "gp"), bearer(env, "other")
    doc = gp_document()
    assert post(env, doc, gp).status_code == 201
    on(env, date(2027, 10, 2))  # the exchange Consent's period has ended
    forged = as_other(doc)
    taken, fresh = post(env, forged, other), post(env, with_identifier(forged, FRESH), other)
    assert taken.status_code == fresh.status_code == 403
    assert taken.json()["issue"] == fresh.json()["issue"]


def test_there_is_no_update_that_tells_a_known_id_from_an_unknown_one(env: Env) -> None:
    """``PUT``/``PATCH``/``DELETE`` on a Bundle id: the same answer for the GP's document and an unknown id."""
    gp, other = bearer(env, "gp"), bearer(env, "other")
    doc_id = post(env, gp_document(), gp).json()["id"]
    body = json.dumps(as_other(gp_document()))
    for method in ("PUT", "PATCH", "DELETE"):
        answers = [env.client.request(method, f"/fhir/Bundle/{i}", content=body,
                                      headers={**other, "Content-Type": "application/fhir+json"})
                   for i in (doc_id, "5f0c1d2e-0000-4000-8000-000000000000")]
        assert answers[0].status_code == answers[1].status_code == 405, method
        assert answers[0].content == answers[1].content
    assert env.client.get(f"/fhir/Bundle/{doc_id}/_history", headers=gp).json()["total"] == 1


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_the_store_keeps_one_document_per_owner_and_identifier(database_url: str) -> None:  # noqa: F811
    store = open_store(database_url)
    try:
        bundle = {"resourceType": "Bundle", "type": "document", "timestamp": "2026-11-23T10:00:00Z"}
        key = ("urn:ietf:rfc:3986", "urn:uuid:0b6a6f1e-0000-4000-8000-000000000001")
        first = store.put_document(bundle, identifier=key, author_org=GP_ORG, recipients=[GGZ_ORG],
                                   patient_identifiers=[f"{BSN}|{PATIENT_BSN}"])
        assert first.id == logical_id(GP_ORG, *key) and first.same_identifier_owners == ()
        theirs = store.put_document({**bundle, "timestamp": "2026-11-24T10:00:00Z"}, identifier=key,
                                    author_org=OTHER_ORG, recipients=[GGZ_ORG], patient_identifiers=[])
        assert (theirs.id, theirs.version_id, theirs.created) == (logical_id(OTHER_ORG, *key), 1, True)
        assert theirs.same_identifier_owners == (GP_ORG,)
        assert [d.version_id for d in store.history(first.id)] == [1]
        assert store.get_document(first.id).resource["timestamp"] == "2026-11-23T10:00:00Z"  # type: ignore[union-attr]
        second = store.put_document({**bundle, "timestamp": "2026-11-24T10:00:00Z"}, identifier=key,
                                    author_org=GP_ORG, recipients=[GGZ_ORG], patient_identifiers=[])
        assert (second.id, second.version_id, second.same_identifier_owners) == (first.id, 2, ())
        assert store.find_document(GP_ORG, key).version_id == 2  # type: ignore[union-attr]
        assert store.find_document(OTHER_ORG, key).id == theirs.id  # type: ignore[union-attr]
        assert store.find_document(GGZ_ORG, key) is None
        assert [d.id for d in store.search_by_identifier(*key, visible_to=GP_ORG)] == [first.id]
        assert {d.id for d in store.search_by_identifier(*key, visible_to=GGZ_ORG)} == {first.id, theirs.id}
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
