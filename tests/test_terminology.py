"""ValueSet membership and expansion (alk_fhir.knowledge.valuesets) on the package's own ValueSets."""

from __future__ import annotations

import pytest

from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package
from alk_fhir.knowledge.valuesets import NotExpandable, Terminology

VS = "https://alk-fhir.org/fhir/ValueSet/"
ICD, ICDNL, ATC, SCT = (
    "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/icd-10-nl",
    "http://www.whocc.no/atc",
    "http://snomed.info/sct",
)


@pytest.mark.parametrize(
    ("system", "code", "member"),
    [
        (ICD, "F45.1", True),
        (ICDNL, "F45.1", True),
        (ICD, "M79.7", True),
        (ICD, "F44.5", True),
        (ICD, "K58", True),
        (ICDNL, "K58.9", True),
        (ICD, "K59.0", False),
        (ICD, "F45.2", False),
        (SCT, "52702003", True),
        (SCT, "203082005", True),
        (SCT, "12345", False),
        (ATC, "M79.7", False),
        (None, "F45.1", False),
        (ICD, None, False),
    ],
)
def test_alk_conditions_match_both_icd10_systems_and_the_k58_prefix(
    package: Package, system: str | None, code: str | None, member: bool
) -> None:
    assert package.in_valueset(VS + "alk-conditions", system, code) is member


@pytest.mark.parametrize(
    ("code", "risk", "opioid", "benzo"),
    [
        ("N02AA05", True, True, False),
        ("N02AX02", True, True, False),
        ("N05BA04", True, False, True),
        ("N05CD07", True, False, True),
        ("N05CF02", True, False, True),
        ("N03AX16", True, False, False),
        ("N03AX12", True, False, False),
        ("N03AX09", False, False, False),
        ("N02BE01", False, False, False),
        ("N02A", True, True, False),
    ],
)
def test_risk_medication_by_atc_prefix(package: Package, code: str, risk: bool, opioid: bool, benzo: bool) -> None:
    assert package.in_valueset(VS + "alk-risk-medication", ATC, code) is risk
    assert package.in_valueset(VS + "alk-opioids", ATC, code) is opioid
    assert package.in_valueset(VS + "alk-benzodiazepines", ATC, code) is benzo


def test_psychiatric_conditions_cover_the_blocks_of_section_2_3(package: Package) -> None:
    for code in ("F43.10", "F41.1", "F32.1", "F39", "F84.0", "F90.0", "F70", "F68.1", "F60.3", "F22", "F50.0", "F10.2"):
        assert package.in_valueset(VS + "alk-psychiatric-conditions", ICD, code), code
    for code in ("F43.2", "F45.1", "F68.0", "F62", "F51", "G93.3"):
        assert not package.in_valueset(VS + "alk-psychiatric-conditions", ICD, code), code


def test_descendent_of_excludes_the_parent_and_expands_in_order(package: Package) -> None:
    codes = [c["code"] for c in package.terminology.expand(VS + "alk-criterion-status")]
    assert codes == ["criterion-met", "criterion-not-met", "criterion-unknown"]
    assert not package.in_valueset(VS + "alk-criterion-status", CONCEPTS_SYSTEM, "criterion-status")
    expanded = package.terminology.expand(VS + "alk-careteam-roles")
    assert {"system": CONCEPTS_SYSTEM, "code": "case-coordinator", "display": "Casus-coördinator"} in expanded
    assert {(c["system"], c["code"]) for c in expanded} >= {
        (SCT, "768832004"),
        ("http://fhir.nl/fhir/NamingSystem/uzi-rolcode", "01.015"),
    }


def test_filters_on_external_systems_are_not_expandable(package: Package) -> None:
    with pytest.raises(NotExpandable):
        package.terminology.expand(VS + "alk-risk-medication")
    with pytest.raises(KeyError):
        package.terminology.expand(VS + "no-such")


def test_filters_in_one_include_are_anded() -> None:
    term = Terminology.from_resources(
        [
            {
                "resourceType": "ValueSet",
                "url": "urn:vs",
                "compose": {
                    "include": [
                        {
                            "system": ATC,
                            "filter": [
                                {"property": "concept", "op": "is-a", "value": "N05"},
                                {"property": "concept", "op": "is-a", "value": "N05B"},
                            ],
                        }
                    ]
                },
            }
        ]
    )
    assert term.contains("urn:vs", ATC, "N05BA01")
    assert not term.contains("urn:vs", ATC, "N05CD07")


def test_a_valueset_that_includes_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="includes itself"):
        Terminology.from_resources(
            [{"resourceType": "ValueSet", "url": "urn:a", "compose": {"include": [{"valueSet": ["urn:a"]}]}}]
        )
