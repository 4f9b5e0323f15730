"""The snapshot generator against the R4 core package: merging, slices, unfolding, refusals."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.build.snapshot import differential_ids, generate_snapshot, snapshotter
from alk_fhir.config import Settings
from alk_fhir.knowledge import corepkg

CORE = "http://hl7.org/fhir/StructureDefinition/"
OURS = "https://alk-fhir.org/fhir/StructureDefinition/"


@pytest.fixture(scope="module")
def core_dir() -> Path:
    return corepkg.require(Settings.from_env().package_cache)


def profile(
    rtype: str, elements: list[dict[str, Any]], pid: str = "t", base: str | None = None
) -> dict[str, Any]:
    return {
        "resourceType": "StructureDefinition", "id": pid, "url": OURS + pid, "name": "T", "status": "draft",
        "kind": "resource", "abstract": False, "type": rtype, "baseDefinition": base or CORE + rtype,
        "derivation": "constraint", "differential": {"element": elements},
    }


def run(core_dir: Path, sd: dict[str, Any], local: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return snapshotter(core_dir)(sd, lambda url: (local or {}).get(url))


def by_id(sd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in sd["snapshot"]["element"]}


def base_elements(core_dir: Path, rtype: str) -> list[dict[str, Any]]:
    base = corepkg.read(core_dir, "StructureDefinition", rtype)
    assert base is not None
    elements: list[dict[str, Any]] = base["snapshot"]["element"]
    return elements


def test_empty_differential_reproduces_the_base(core_dir: Path) -> None:
    out = run(core_dir, profile("CareTeam", []))
    assert out["snapshot"]["element"] == base_elements(core_dir, "CareTeam")
    assert list(out).index("snapshot") == list(out).index("differential") - 1


def test_cardinality_and_values_are_merged_and_the_rest_is_untouched(core_dir: Path) -> None:
    out = run(core_dir, profile("CarePlan", [
        {"path": "CarePlan.title", "min": 1, "short": "Title of the plan"},
        {"path": "CarePlan.intent", "fixedCode": "plan"},
        {"path": "CarePlan.careTeam", "min": 1, "max": "3"},
    ]))
    got = by_id(out)
    base = {e["id"]: e for e in base_elements(core_dir, "CarePlan")}
    assert [e["id"] for e in out["snapshot"]["element"]] == list(base)
    assert (got["CarePlan.title"]["min"], got["CarePlan.title"]["max"]) == (1, "1")
    assert got["CarePlan.title"]["short"] == "Title of the plan"
    assert got["CarePlan.title"]["definition"] == base["CarePlan.title"]["definition"]
    assert got["CarePlan.title"]["base"] == base["CarePlan.title"]["base"]
    assert got["CarePlan.intent"]["fixedCode"] == "plan"
    assert (got["CarePlan.careTeam"]["min"], got["CarePlan.careTeam"]["max"]) == (1, "3")
    untouched = set(base) - {"CarePlan.title", "CarePlan.intent", "CarePlan.careTeam"}
    assert all(got[i] == base[i] for i in untouched)


def test_constraints_are_appended_with_their_source(core_dir: Path) -> None:
    out = run(core_dir, profile("CarePlan", [
        {"path": "CarePlan", "constraint": [
            {"key": "x-1", "severity": "error", "human": "h",
             "expression": "activity.all(detail.exists())"}]},
    ]))
    root = by_id(out)["CarePlan"]
    keys = [c["key"] for c in root["constraint"]]
    assert keys[-1] == "x-1" and "dom-2" in keys
    assert root["constraint"][-1]["source"] == OURS + "t"


def test_slices_are_inserted_after_the_sliced_element_with_its_children(core_dir: Path) -> None:
    out = run(core_dir, profile("CareTeam", [
        {"path": "CareTeam.participant", "min": 1,
         "slicing": {"discriminator": [{"type": "pattern", "path": "role"}], "rules": "open"}},
        {"path": "CareTeam.participant.role", "min": 1},
        {"path": "CareTeam.participant", "sliceName": "coordinator", "max": "2"},
        {"path": "CareTeam.participant.role",
         "patternCodeableConcept": {"coding": [{"system": "urn:x", "code": "c"}]}},
        {"path": "CareTeam.participant.member", "min": 1, "type": [
            {"code": "Reference", "targetProfile": [CORE + "Practitioner", CORE + "PractitionerRole"]}]},
    ]))
    ids = [e["id"] for e in out["snapshot"]["element"]]
    base_children = [i for i in ids if i.startswith("CareTeam.participant.")]
    slice_ids = [i for i in ids if i.startswith("CareTeam.participant:coordinator")]
    assert slice_ids == ["CareTeam.participant:coordinator"] + [
        i.replace("CareTeam.participant", "CareTeam.participant:coordinator") for i in base_children]
    assert ids.index(slice_ids[0]) == ids.index(base_children[-1]) + 1
    got = by_id(out)
    head = got["CareTeam.participant:coordinator"]
    assert head["sliceName"] == "coordinator" and "slicing" not in head
    assert (head["min"], head["max"]) == (0, "2")  # a slice is optional unless the differential says so
    assert head["base"] == got["CareTeam.participant"]["base"]
    role = got["CareTeam.participant:coordinator.role"]
    assert role["min"] == 1  # inherited from the constraint on the sliced element
    assert role["patternCodeableConcept"]["coding"][0]["code"] == "c"
    assert "patternCodeableConcept" not in got["CareTeam.participant.role"]
    member = got["CareTeam.participant:coordinator.member"]
    assert member["type"][0]["targetProfile"] == [CORE + "Practitioner", CORE + "PractitionerRole"]
    assert len(got["CareTeam.participant.member"]["type"][0]["targetProfile"]) == 6


def test_differential_ids_follow_the_open_slice() -> None:
    diff: list[dict[str, Any]] = [
        {"path": "Observation.component", "slicing": {"rules": "open"}},
        {"path": "Observation.component.code"},
        {"path": "Observation.component", "sliceName": "a"},
        {"path": "Observation.component.code"},
        {"path": "Observation.component", "sliceName": "b"},
        {"path": "Observation.component.value[x]"},
        {"path": "Observation.status"},
    ]
    assert differential_ids(diff, "t") == [
        "Observation.component", "Observation.component.code", "Observation.component:a",
        "Observation.component:a.code", "Observation.component:b", "Observation.component:b.value[x]",
        "Observation.status",
    ]
    with pytest.raises(ValueError, match="does not match path"):
        differential_ids([{"id": "Observation.code", "path": "Observation.status"}], "t")


def test_data_type_children_are_unfolded_with_their_own_base(core_dir: Path) -> None:
    out = run(core_dir, profile("Bundle", [
        {"path": "Bundle.identifier", "min": 1},
        {"path": "Bundle.identifier.system", "min": 1},
    ]))
    ids = [e["id"] for e in out["snapshot"]["element"]]
    identifier = [e["path"] for e in base_elements(core_dir, "Identifier")[1:]]
    start = ids.index("Bundle.identifier") + 1
    expected = [p.replace("Identifier", "Bundle.identifier", 1) for p in identifier]
    assert ids[start : start + len(identifier)] == expected
    system = by_id(out)["Bundle.identifier.system"]
    assert system["min"] == 1 and system["base"]["path"] == "Identifier.system"
    assert system["path"] == "Bundle.identifier.system"


def test_choice_types_are_restricted_in_both_spellings(core_dir: Path) -> None:
    out = run(core_dir, profile("Observation", [
        {"path": "Observation.effectiveDateTime", "min": 1},
        {"path": "Observation.value[x]", "type": [{"code": "CodeableConcept"}],
         "binding": {"strength": "required", "valueSet": "https://alk-fhir.org/fhir/ValueSet/v"}},
    ]))
    got = by_id(out)
    assert "Observation.effectiveDateTime" not in got
    assert got["Observation.effective[x]"]["type"] == [{"code": "dateTime"}]
    assert got["Observation.effective[x]"]["min"] == 1
    assert got["Observation.value[x]"]["type"] == [{"code": "CodeableConcept"}]
    assert got["Observation.value[x]"]["binding"] == {
        "strength": "required", "valueSet": "https://alk-fhir.org/fhir/ValueSet/v"}


def test_extensions_are_sliced_by_url_and_definitions_fix_their_url(core_dir: Path) -> None:
    ext = {**profile("Extension", [
        {"path": "Extension.extension", "max": "0"},
        {"path": "Extension.value[x]", "type": [{"code": "Reference"}]},
    ], pid="ext", base=CORE + "Extension"), "kind": "complex-type",
        "context": [{"type": "element", "expression": "Observation.component"}]}
    ext_out = run(core_dir, ext)
    assert by_id(ext_out)["Extension.url"]["fixedUri"] == OURS + "ext"
    obs = run(core_dir, profile("Observation", [
        {"path": "Observation.component.extension", "sliceName": "evidence",
         "type": [{"code": "Extension", "profile": [OURS + "ext"]}]},
    ]), {OURS + "ext": ext_out})
    got = by_id(obs)
    slicing = got["Observation.component.extension"]["slicing"]
    assert slicing["discriminator"] == [{"type": "value", "path": "url"}]
    assert got["Observation.component.extension:evidence"]["type"][0]["profile"] == [OURS + "ext"]


def test_profiles_on_our_own_profiles_start_from_their_snapshot(core_dir: Path) -> None:
    parent = run(core_dir, profile("CareTeam", [{"path": "CareTeam.name", "min": 1}], pid="parent"))
    child = run(core_dir, profile("CareTeam", [{"path": "CareTeam.status", "min": 1}], pid="child",
                                  base=OURS + "parent"), {OURS + "parent": parent})
    got = by_id(child)
    assert got["CareTeam.name"]["min"] == 1 and got["CareTeam.status"]["min"] == 1
    with pytest.raises(ValueError, match="widens the base min"):
        run(core_dir, profile("CareTeam", [{"path": "CareTeam.name", "min": 0}], pid="c2",
                              base=OURS + "parent"), {OURS + "parent": parent})


def test_targets_may_name_a_profile_of_an_allowed_type(core_dir: Path) -> None:
    team = run(core_dir, profile("CareTeam", [], pid="team"))
    out = run(core_dir, profile("CarePlan", [
        {"path": "CarePlan.careTeam", "type": [{"code": "Reference", "targetProfile": [OURS + "team"]}]},
    ]), {OURS + "team": team})
    assert by_id(out)["CarePlan.careTeam"]["type"][0]["targetProfile"] == [OURS + "team"]
    with pytest.raises(ValueError, match=r"CarePlan\.subject: target .*CareTeam"):
        run(core_dir, profile("CarePlan", [
            {"path": "CarePlan.subject", "type": [{"code": "Reference", "targetProfile": [OURS + "team"]}]},
        ]), {OURS + "team": team})


def test_a_resource_element_may_become_a_specific_resource(core_dir: Path) -> None:
    sd = profile("Bundle", [{"path": "Bundle.entry.resource", "type": [{"code": "Composition"}]}])
    out = run(core_dir, sd)
    assert by_id(out)["Bundle.entry.resource"]["type"] == [{"code": "Composition"}]


@pytest.mark.parametrize(("element", "message"), [
    ({"path": "CareTeam.nonsense", "min": 1}, r"CareTeam\.nonsense does not exist"),
    ({"path": "CareTeam.participant.nonsense"}, r"CareTeam\.participant\.nonsense does not exist"),
    ({"path": "CareTeam.subject", "max": "*"}, r"CareTeam\.subject: max \* widens the base max 1"),
    ({"path": "CareTeam.name", "min": 2}, r"CareTeam\.name: min 2 exceeds max 1"),
    ({"path": "CareTeam.participant", "sliceName": "x"}, r"CareTeam\.participant has no slicing"),
    ({"path": "CareTeam.name", "sliceName": "x"}, r"CareTeam\.name has no slicing"),
    ({"path": "CareTeam.name", "type": [{"code": "markdown"}]},
     r"CareTeam\.name: type markdown is not allowed"),
    ({"path": "CareTeam.subject", "type": [{"code": "Reference", "targetProfile": [CORE + "Practitioner"]}]},
     r"CareTeam\.subject: target .*Practitioner"),
    ({"path": "CareTeam.status", "binding": {"strength": "example", "valueSet": "urn:v"}},
     r"CareTeam\.status: binding strength example weakens required"),
    ({"path": "CareTeam.participant.role:x.text"}, r"slice x is not defined"),
    ({"path": "CareTeam.subject.nonsense"}, r"CareTeam\.subject\.nonsense does not exist"),
])
def test_refusals_name_the_path(core_dir: Path, element: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(core_dir, profile("CareTeam", [element]))


def test_observation_status_cannot_become_optional(core_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"Observation\.status: min 0 widens the base min 1"):
        run(core_dir, profile("Observation", [{"path": "Observation.status", "min": 0}]))


def test_conflicting_fixed_values_and_slice_totals_are_refused(core_dir: Path) -> None:
    with pytest.raises(ValueError, match="fixedCode conflicts"):
        run(core_dir, profile("CarePlan", [
            {"id": "CarePlan.intent", "path": "CarePlan.intent", "fixedCode": "plan"},
            {"id": "CarePlan.intent", "path": "CarePlan.intent", "fixedCode": "order"},
        ]))
    with pytest.raises(ValueError, match=r"CarePlan\.title is not repeating"):
        run(core_dir, profile("CarePlan", [
            {"path": "CarePlan.title", "slicing": {"discriminator": [{"type": "value", "path": "$this"}],
                                                   "rules": "open"}},
            {"path": "CarePlan.title", "sliceName": "a"},
        ]))
    with pytest.raises(ValueError, match=r"CarePlan\.category: slice minimums 3 exceed max 2"):
        run(core_dir, profile("CarePlan", [
            {"path": "CarePlan.category", "max": "2", "slicing": {"discriminator": [
                {"type": "pattern", "path": "$this"}], "rules": "open"}},
            {"path": "CarePlan.category", "sliceName": "a", "min": 1},
            {"path": "CarePlan.category", "sliceName": "b", "min": 1},
            {"path": "CarePlan.category", "sliceName": "c", "min": 1},
        ]))


def test_base_and_type_mismatches_are_refused(core_dir: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        run(core_dir, profile("CareTeam", [], base=OURS + "missing"))
    with pytest.raises(ValueError, match="differs from base type"):
        run(core_dir, profile("CareTeam", [], base=CORE + "CarePlan"))


def test_generation_is_deterministic_and_leaves_its_input_alone(core_dir: Path) -> None:
    sd = profile("Composition", [
        {"path": "Composition.section", "slicing": {"discriminator": [{"type": "pattern", "path": "code"}],
                                                    "rules": "closed"}},
        {"path": "Composition.section", "sliceName": "a", "min": 1, "max": "1"},
        {"path": "Composition.section.code",
         "patternCodeableConcept": {"coding": [{"system": "urn:s", "code": "a"}]}},
        {"path": "Composition.identifier.system", "min": 1},
    ])
    before = copy.deepcopy(sd)
    first = json.dumps(run(core_dir, sd))
    second = json.dumps(run(core_dir, sd))
    assert first == second
    assert sd == before


def test_resolver_is_used_for_local_bases(core_dir: Path) -> None:
    seen: list[str] = []

    def resolve(url: str) -> dict[str, Any] | None:
        seen.append(url)
        return corepkg.read_canonical(core_dir, url)

    generate_snapshot(profile("CareTeam", []), resolve)
    assert seen == [CORE + "CareTeam"]
