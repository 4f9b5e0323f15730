"""The sender's Provenance: valid R4, codes that exist in the core package's code systems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.provenance import Provenance

from alk_fhir.config import Settings
from alk_fhir.exchange import document_provenance
from alk_fhir.knowledge import corepkg
from test_exchange_fake import DOC_SYSTEM, make_document

URA = {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "12345678"}
WHEN = "2025-03-01T10:15:00+01:00"


@pytest.fixture(scope="module")
def core() -> Path:
    return corepkg.require(Settings.from_env().package_cache)


def codes(concepts: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for concept in concepts:
        out.add(concept["code"])
        out |= codes(concept.get("concept", []))
    return out


def code_system(core: Path, url: str) -> set[str]:
    cs = corepkg.read_canonical(core, url)
    assert cs is not None, url
    return codes(cs["concept"])


def test_provenance_records_who_sent_what_when(core: Path) -> None:
    bundle = make_document("doc-1", "111")
    prov = document_provenance(bundle, sender_org=URA, recipient="http://fhir.nl/fhir/NamingSystem/ura|87654321",
                               when=WHEN, location="https://partner.example/fhir/Bundle/42/_history/1")
    Provenance.model_validate(prov)  # R4 structure and cardinalities
    assert prov["target"] == [{"type": "Bundle", "identifier": {"system": DOC_SYSTEM, "value": "doc-1"},
                               "reference": "https://partner.example/fhir/Bundle/42/_history/1"}]
    assert prov["recorded"] == prov["occurredDateTime"] == WHEN
    author, custodian = prov["agent"]
    assert author["who"] == {"type": "Organization", "identifier": URA}
    assert custodian["who"] == {"type": "Organization",
                                "identifier": {"system": URA["system"], "value": "87654321"}}
    assert prov["entity"] == [{"role": "source", "what": {
        "type": "Composition", "identifier": {"system": DOC_SYSTEM, "value": "doc-1-composition"},
        "display": "Gedeeld casusoverzicht ALK"}}]


def test_codes_come_from_the_core_package(core: Path) -> None:
    prov = document_provenance(make_document("doc-1", "111"), sender_org=URA,
                               recipient="https://partner.example/fhir", when=WHEN)
    agent_types = code_system(core, "http://terminology.hl7.org/CodeSystem/provenance-participant-type")
    for agent in prov["agent"]:
        [coding] = agent["type"]["coding"]
        assert coding["system"] == "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
        assert coding["code"] in agent_types
    assert [a["type"]["coding"][0]["code"] for a in prov["agent"]] == ["author", "custodian"]
    assert prov["entity"][0]["role"] in code_system(core, "http://hl7.org/fhir/provenance-entity-role")
    [activity] = prov["activity"]["coding"]
    activity_vs = corepkg.read_canonical(core, "http://hl7.org/fhir/ValueSet/provenance-activity-type")
    assert activity_vs is not None
    included = {(inc["system"], c["code"]) for inc in activity_vs["compose"]["include"]
                for c in inc.get("concept", [])}
    assert (activity["system"], activity["code"]) in included
    assert activity["code"] in code_system(core, activity["system"])
    assert prov["activity"]["text"] == "send"


@pytest.mark.parametrize("recipient, who", [
    ("Organization/partner-1", {"reference": "Organization/partner-1"}),
    ("https://partner.example/fhir/Organization/9", {"reference": "https://partner.example/fhir/Organization/9"}),
    ("https://partner.example/fhir", {"type": "Device", "display": "https://partner.example/fhir",
                                      "identifier": {"system": "urn:ietf:rfc:3986",
                                                     "value": "https://partner.example/fhir"}}),
])
def test_recipient_forms(recipient: str, who: dict[str, Any]) -> None:
    prov = document_provenance(make_document("doc-1", "111"), sender_org=URA, recipient=recipient, when=WHEN)
    Provenance.model_validate(prov)
    assert prov["agent"][1]["who"] == who


def test_sender_may_be_a_reference() -> None:
    sender = {"reference": "Organization/me", "display": "Huisartsenpraktijk De Linde"}
    prov = document_provenance(make_document("doc-1", "111"), sender_org=sender, recipient="Organization/p",
                               when=WHEN, activity="update")
    assert prov["agent"][0]["who"] == {"type": "Organization", **sender}
    assert prov["activity"]["coding"][0]["code"] == "UPDATE"


@pytest.mark.parametrize("kwargs, message", [
    ({"when": "2025-03-01"}, "instant"),
    ({"when": "2025-03-01T10:15:00"}, "instant"),  # no time zone
    ({"activity": "teleport"}, "activity"),
    ({"recipient": ""}, "recipient"),
    ({"recipient": "|x"}, "system|value"),
    ({"recipient": "not a reference"}, "recipient"),
    ({"sender_org": {"value": "1"}}, "sender_org"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"sender_org": URA, "recipient": "Organization/p", "when": WHEN}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        document_provenance(make_document("doc-1", "111"), **args)


def test_a_document_without_composition_first_is_refused() -> None:
    bundle = make_document("doc-1", "111")
    bundle["entry"].reverse()
    with pytest.raises(ValueError, match="entry\\[0\\]"):
        document_provenance(bundle, sender_org=URA, recipient="Organization/p", when=WHEN)
