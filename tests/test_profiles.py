"""Our profiles: in sync with their sources, carrying what the guideline needs, and met by the examples.

The examples are checked here by a small structural checker (cardinality, fixed/pattern values,
slices by pattern / required binding / extension url, choice types, reference target types,
required bindings to our ValueSets, and the profiles' own FHIRPath invariants plus the base
invariants that matter for these resources). It is deliberately independent of the project's
validator so that the examples test that validator rather than the other way round.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from alk_fhir import fhirpath
from alk_fhir.build import authoring, snapshot
from alk_fhir.config import REPO_ROOT, Settings
from alk_fhir.knowledge import corepkg
from alk_fhir.knowledge.canonical import CANONICAL_BASE, CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, TRANSLATION_EXT
from alk_fhir.knowledge.package import Package, load_package

SD = f"{CANONICAL_BASE}/StructureDefinition/"
CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
PROFILES = REPO_ROOT / "profiles"
EXAMPLES = REPO_ROOT / "examples" / "profiles"
PROFILE_IDS = [
    "alk-careteam", "alk-stepplan", "alk-applied-careplan", "alk-guidance-requestgroup", "alk-case-overview",
    "alk-case-overview-document", "alk-exchange-consent", "alk-assessment",
]
# Base invariants evaluated on the examples too. Left out: those needing resolve(), hasValue() (not in
# fhirpathpy) or the type of a choice element below the resource (ext-1: fhirpathpy cannot see that a
# bare extension's ``valueReference`` is ``value``).
BASE_INVARIANTS = {"cmp-1", "cmp-2", "cpl-3", "rqg-1", "bdl-1", "bdl-9", "bdl-11", "bdl-8", "ppc-1",
                   "obs-6", "obs-7"}


@pytest.fixture(scope="module")
def core_dir() -> Path:
    return corepkg.require(Settings.from_env().package_cache)


@pytest.fixture(scope="module")
def pkg() -> Package:
    return load_package(PROFILES)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


# -- a small structural checker ---------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def matches_pattern(value: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: every property of the pattern is in the value; lists match item by item."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(matches_pattern(value.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list):
        values = _as_list(value)
        return all(any(matches_pattern(v, p) for v in values) for p in pattern)
    return bool(value == pattern)


def _directly_under(eid: str, prefix: str) -> bool:
    rest = eid[len(prefix) :]
    return eid.startswith(prefix) and "." not in rest and ":" not in rest


class Checker:
    def __init__(self, pkg: Package, core_dir: Path) -> None:
        self.pkg = pkg
        self.core_dir = core_dir

    def structure(self, url: str) -> dict[str, Any]:
        found = self.pkg.resolve(url) or corepkg.read_canonical(self.core_dir, url)
        assert found is not None, url
        return found

    def check(self, resource: dict[str, Any], url: str) -> list[str]:
        sd = self.structure(url)
        elements = {e["id"]: e for e in sd["snapshot"]["element"]}
        root = sd["snapshot"]["element"][0]["id"]
        problems: list[str] = []
        self._node(resource, root, elements, resource, problems, url.rsplit("/", 1)[-1])
        return problems

    def _children(self, elements: dict[str, dict[str, Any]], parent: str) -> Iterator[dict[str, Any]]:
        for eid, e in elements.items():
            if _directly_under(eid, parent + "."):
                yield e

    def _slices(self, elements: dict[str, dict[str, Any]], sliced: str) -> list[dict[str, Any]]:
        return [e for eid, e in elements.items() if _directly_under(eid, sliced + ":")]

    def _values(self, node: dict[str, Any], e: dict[str, Any]) -> list[tuple[str, Any]]:
        name = e["path"].rsplit(".", 1)[-1]
        if not name.endswith("[x]"):
            return [(name, v) for v in _as_list(node.get(name))]
        stem = name[:-3]
        return [(k, v) for k, v in node.items()
                if k.startswith(stem) and k[len(stem):][:1].isupper() for v in _as_list(v)]

    def _node(self, node: dict[str, Any], eid: str, elements: dict[str, dict[str, Any]],
              resource: dict[str, Any], problems: list[str], where: str) -> None:
        self._invariants(node, elements[eid], resource, problems, where)
        for e in self._children(elements, eid):
            values = self._values(node, e)
            at = f"{where}.{e['path'].rsplit('.', 1)[-1]}"
            self._cardinality(len(values), e, at, problems)
            for key, value in values:
                self._value(key, value, e, at, problems)
            slices = self._slices(elements, e["id"])
            assigned: dict[str, list[Any]] = {s["id"]: [] for s in slices}
            for _, value in values:
                target = e["id"]
                for s in slices:
                    if self._in_slice(value, s, e.get("slicing", {}), elements):
                        assigned[s["id"]].append(value)
                        target = s["id"]
                        break
                else:
                    if e.get("slicing", {}).get("rules") == "closed":
                        problems.append(f"{at}: value matches no slice of the closed slicing")
                sub_at = at if target == e["id"] else f"{at}:{elements[target]['sliceName']}"
                if target != e["id"]:
                    for k, v in self._values(node, e):
                        if v is value:
                            self._value(k, v, elements[target], sub_at, problems)
                if isinstance(value, dict) and "resourceType" not in value:
                    self._node(value, target, elements, resource, problems, sub_at)
                elif isinstance(value, dict):
                    for profile in value.get("meta", {}).get("profile", []):
                        if profile.startswith(SD):
                            problems += [f"{at}/{p}" for p in self.check(value, profile)]
            for s in slices:
                self._cardinality(len(assigned[s["id"]]), s, f"{at}:{s['sliceName']}", problems)

    def _cardinality(self, count: int, e: dict[str, Any], at: str, problems: list[str]) -> None:
        if count < int(e.get("min", 0)):
            problems.append(f"{at}: {count} found, min {e['min']}")
        if e.get("max", "*") != "*" and count > int(e["max"]):
            problems.append(f"{at}: {count} found, max {e['max']}")

    def _value(self, key: str, value: Any, e: dict[str, Any], at: str, problems: list[str]) -> None:
        name = e["path"].rsplit(".", 1)[-1]
        if name.endswith("[x]"):
            suffix = key[len(name) - 3 :]
            if not any(t["code"][0].upper() + t["code"][1:] == suffix for t in e.get("type", [])):
                problems.append(f"{at}: type {suffix} not allowed")
        for k, fixed in e.items():
            if k.startswith("fixed") and value != fixed:
                problems.append(f"{at}: {value!r} is not the fixed value {fixed!r}")
            if k.startswith("pattern") and not matches_pattern(value, fixed):
                problems.append(f"{at}: does not match the pattern {fixed!r}")
        binding = e.get("binding", {})
        ours = str(binding.get("valueSet", "")).startswith(CANONICAL_BASE)
        if binding.get("strength") == "required" and ours:
            codings = value.get("coding", []) if isinstance(value, dict) else []
            if not self.pkg.any_in_valueset(binding["valueSet"], codings):
                problems.append(f"{at}: no coding from {binding['valueSet']}")
        for t in e.get("type", []):
            if t["code"] == "Reference" and t.get("targetProfile") and isinstance(value, dict):
                reference = str(value.get("reference", ""))
                allowed = {self.structure(p)["type"] for p in t["targetProfile"]}
                local = reference and not reference.startswith("#")
                if local and "Resource" not in allowed and reference.split("/")[-2] not in allowed:
                    problems.append(f"{at}: reference {reference} is not one of {sorted(allowed)}")
            for profile in t.get("profile", []):
                if profile.startswith(SD) and isinstance(value, dict):
                    problems += [f"{at}/{p}" for p in self.check(value, profile)]

    def _in_slice(self, value: Any, s: dict[str, Any], slicing: dict[str, Any],
                  elements: dict[str, dict[str, Any]]) -> bool:
        for disc in slicing.get("discriminator", []):
            path = disc["path"]
            if path == "url" and s["path"].endswith("extension"):
                if value.get("url") not in [p for t in s.get("type", []) for p in t.get("profile", [])]:
                    return False
                continue
            sub = s if path == "$this" else elements.get(f"{s['id']}.{path}", {})
            found = _as_list(value if path == "$this" else value.get(path))
            patterns = [v for k, v in sub.items() if k.startswith(("pattern", "fixed"))]
            if patterns:
                if not any(matches_pattern(f, patterns[0]) for f in found):
                    return False
            elif sub.get("binding", {}).get("strength") == "required":
                vs = sub["binding"]["valueSet"]
                if not any(self.pkg.any_in_valueset(vs, f.get("coding", [])) for f in found):
                    return False
            else:
                return False
        return True

    def _invariants(self, node: dict[str, Any], e: dict[str, Any], resource: dict[str, Any],
                    problems: list[str], where: str) -> None:
        for c in e.get("constraint", []):
            ours = str(c.get("source", "")).startswith(CANONICAL_BASE)
            applies = c.get("severity") == "error" and (ours or c["key"] in BASE_INVARIANTS)
            if applies and not fhirpath.is_true(node, c["expression"], {"resource": resource}):
                problems.append(f"{where}: invariant {c['key']} fails: {c['human']}")


# -- the published package ------------------------------------------------------------------------


def test_published_profiles_are_generated_from_the_sources(core_dir: Path) -> None:
    files = authoring.build(REPO_ROOT / "authoring", snapshot.snapshotter(core_dir))
    ours = {name: text for name, text in files.items() if name.startswith("StructureDefinition-")}
    extensions = ["alk-evidence", "alk-operationalisation", "alk-fact-presentation", "alk-trigger"]
    assert sorted(ours) == sorted(f"StructureDefinition-{i}.json" for i in [*PROFILE_IDS, *extensions])
    for name, text in ours.items():
        published = (PROFILES / name).read_text(encoding="utf-8")
        assert published == text, f"{name} is stale: run alk-fhir build-package"


@pytest.mark.parametrize("pid", [*PROFILE_IDS, "alk-evidence"])
def test_profile_metadata(pkg: Package, pid: str) -> None:
    sd = pkg.get("StructureDefinition", pid)
    assert sd is not None
    assert sd["url"] == SD + pid
    assert (sd["fhirVersion"], sd["derivation"], sd["abstract"]) == ("4.0.1", "constraint", False)
    assert sd["kind"] == ("complex-type" if pid == "alk-evidence" else "resource")
    assert sd["baseDefinition"] == CORE_SD + sd["type"]
    for field in ("title", "description"):
        english = sd[f"_{field}"]["extension"][0]
        assert english["url"] == TRANSLATION_EXT and english["extension"][0]["valueCode"] == "en"
    assert "§" in sd["description"]
    assert sd["snapshot"]["element"][0]["path"] == sd["type"]
    for element in sd["snapshot"]["element"]:
        for c in element.get("constraint", []):
            fhirpath.compile_expression(c["expression"])


EXPECTED_SLICES = {
    "alk-careteam": {"CareTeam.participant:coordinator"},
    "alk-stepplan": {"CarePlan.category:stepPlan", "CarePlan.activity.detail.reasonCode:perpetuating"},
    "alk-case-overview": {"Composition.category:caseOverview"} | {f"Composition.section:{s}" for s in (
        "complaints", "somaticDiagnostics", "psychiatricDiagnostics", "medication", "treatments",
        "explanatoryModel", "careTeam", "stepPlan", "expectations", "consultations")},
    "alk-exchange-consent": {"Consent.category:patientConsent", "Consent.provision.actor:recipient"},
    "alk-assessment": {f"Observation.component{c}.extension:evidence" for c in (
        "", ":criterion1", ":criterion2", ":criterion3", ":features")} | {
        "Observation.component:criterion1", "Observation.component:criterion2",
        "Observation.component:criterion3", "Observation.component:features"},
}
EXPECTED_INVARIANTS = {
    "alk-stepplan": {("CarePlan", "alk-sp-1"), ("CarePlan", "alk-sp-2")},
    "alk-guidance-requestgroup": {("RequestGroup.action", "alk-rg-1")},
    "alk-case-overview-document": {("Bundle", "alk-doc-1")},
}


@pytest.mark.parametrize("pid", PROFILE_IDS)
def test_slices_and_invariants(pkg: Package, pid: str) -> None:
    sd = pkg.get("StructureDefinition", pid)
    assert sd is not None
    elements = sd["snapshot"]["element"]
    slices = {e["id"] for e in elements if "sliceName" in e}
    assert slices == EXPECTED_SLICES.get(pid, set())
    invariants = {(e["id"], c["key"]) for e in elements for c in e.get("constraint", [])
                  if c["key"].startswith("alk-")}
    assert invariants == EXPECTED_INVARIANTS.get(pid, set())


def test_case_overview_sections_carry_concept_and_guideline_section(pkg: Package) -> None:
    sd = pkg.get("StructureDefinition", "alk-case-overview")
    assert sd is not None
    codes = {e["id"].split(":")[1].split(".")[0]: e["patternCodeableConcept"]["coding"]
             for e in sd["snapshot"]["element"] if e["id"].endswith(".code") and ":" in e["id"]
             and e["id"].startswith("Composition.section:")}
    assert codes["careTeam"] == [{"system": CONCEPTS_SYSTEM, "code": "overview-care-team"},
                                 {"system": GUIDELINE_SYSTEM, "code": "3.1"}]
    assert {c[1]["code"] for c in codes.values()} == {"1.1", "2.2", "2.3", "2.5", "3.1", "3.2", "3.3", "4.3"}
    assert all(pkg.terminology.concept(CONCEPTS_SYSTEM, c[0]["code"]) for c in codes.values())
    assert all(pkg.terminology.concept(GUIDELINE_SYSTEM, c[1]["code"]) for c in codes.values())


# -- the examples -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pid", PROFILE_IDS)
def test_examples_are_valid_fhir_json(pid: str) -> None:
    example = load(f"{pid}-example.json")
    model = get_fhir_model_class(example["resourceType"]).model_validate(example)
    assert model.model_dump(mode="json", exclude_none=True)["id"] == example["id"]


@pytest.mark.parametrize("pid", PROFILE_IDS)
def test_examples_conform(pkg: Package, core_dir: Path, pid: str) -> None:
    example = load(f"{pid}-example.json")
    assert example["meta"]["profile"] == [SD + pid]
    assert Checker(pkg, core_dir).check(example, SD + pid) == []


def test_document_example_holds_the_other_examples(pkg: Package, core_dir: Path) -> None:
    document = load("alk-case-overview-document-example.json")
    inside = {(e["resource"]["resourceType"], e["resource"]["id"]): e["resource"] for e in document["entry"]}
    for pid in ("alk-case-overview", "alk-careteam", "alk-stepplan", "alk-exchange-consent"):
        example = load(f"{pid}-example.json")
        assert inside[(example["resourceType"], example["id"])] == example
    for entry in document["entry"]:
        assert entry["fullUrl"].endswith(f"/{entry['resource']['resourceType']}/{entry['resource']['id']}")
    local = {f"{t}/{i}" for t, i in inside}
    composition = document["entry"][0]["resource"]
    referenced = {r["reference"] for s in composition["section"] for r in s.get("entry", [])}
    assert referenced <= local


def _broken(name: str, change: Any) -> dict[str, Any]:
    example = copy.deepcopy(load(name))
    change(example)
    return example


BROKEN = [
    ("alk-careteam", lambda r: r.pop("name"), "alk-careteam.name: 0 found, min 1"),
    ("alk-careteam", lambda r: r["participant"].pop(0), "participant:coordinator: 0 found, min 1"),
    ("alk-careteam", lambda r: r["participant"][0].update(member={"reference": "Patient/pt-jansen"}),
     "participant:coordinator.member: reference Patient/pt-jansen"),
    ("alk-stepplan", lambda r: r["activity"].append({"reference": {"reference": "ServiceRequest/x"}}),
     "invariant alk-sp-1"),
    ("alk-stepplan", lambda r: r["activity"][0]["detail"].pop("scheduledPeriod"),
     "scheduled[x]: 0 found, min 1"),
    ("alk-stepplan", lambda r: r["activity"][0]["detail"].update(scheduledString="okt"),
     "type String not allowed"),
    ("alk-stepplan", lambda r: r.update(intent="proposal"),
     "alk-stepplan.intent: 'proposal' is not the fixed value"),
    ("alk-guidance-requestgroup", lambda r: r["action"][0].update(code=[{"text": "x"}]),
     "invariant alk-rg-1"),
    ("alk-applied-careplan", lambda r: r["activity"][0].update(reference={"reference": "Task/x"}),
     "reference Task/x is not one of ['RequestGroup']"),
    ("alk-case-overview", lambda r: r["section"].pop(3), "section:medication: 0 found, min 1"),
    ("alk-case-overview", lambda r: r["section"][0]["code"]["coding"].pop(1), "matches no slice"),
    ("alk-case-overview", lambda r: r["section"][2].update(entry=[{"reference": "Condition/x"}]), "cmp-2"),
    ("alk-case-overview-document", lambda r: r["entry"].append(r["entry"].pop(0)), "invariant alk-doc-1"),
    ("alk-case-overview-document", lambda r: r["identifier"].pop("system"), "identifier.system: 0 found"),
    ("alk-case-overview-document", lambda r: r["entry"][0]["resource"].pop("custodian"),
     "entry.resource/alk-case-overview.custodian: 0 found"),
    ("alk-exchange-consent", lambda r: r["provision"]["actor"][0]["role"]["coding"][0].update(code="CST"),
     "actor:recipient: 0 found, min 1"),
    ("alk-exchange-consent", lambda r: r["provision"].update(type="deny"), "'deny' is not the fixed value"),
    ("alk-assessment", lambda r: r["component"].pop(2), "component:criterion3: 0 found, min 1"),
    ("alk-assessment", lambda r: r["component"][0]["valueCodeableConcept"]["coding"][0].update(code="step"),
     "no coding from https://alk-fhir.org/fhir/ValueSet/alk-criterion-status"),
    ("alk-assessment", lambda r: r["component"][0]["extension"][0].update(valueString="x"),
     "extension:evidence/alk-evidence.value[x]: type String not allowed"),
]


@pytest.mark.parametrize(("pid", "change", "message"), BROKEN)
def test_broken_examples_are_caught(
    pkg: Package, core_dir: Path, pid: str, change: Any, message: str
) -> None:
    problems = Checker(pkg, core_dir).check(_broken(f"{pid}-example.json", change), SD + pid)
    assert any(message in p for p in problems), problems
