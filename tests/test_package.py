"""Issue #2 acceptance, proven by reading the package in profiles/."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fhir.resources.R4B import get_fhir_model_class

from alk_fhir.build import authoring, snapshot
from alk_fhir.cli import main
from alk_fhir.config import REPO_ROOT
from alk_fhir.knowledge import CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, BrokenPackage, Package, load_package
from alk_fhir.knowledge.canonical import TRANSLATION_EXT
from alk_fhir.knowledge.package import canonical_references

PROFILES = REPO_ROOT / "profiles"
OWN_SYSTEMS = {GUIDELINE_SYSTEM, CONCEPTS_SYSTEM}
SECTIONS = ["2.1", "2.2", "2.3", "2.4", "2.5", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.2", "4.3"]
# Codes of code systems outside terminology.md whose source is their own publication:
# the SDC launchContext code system (SDC STU3 §"launchContext") names "patient".
# and ISO 3166-1 alpha-2 "NL", the jurisdiction of every Dutch FHIR artifact.
DOCUMENTED_ELSEWHERE = {
    ("http://hl7.org/fhir/uv/sdc/CodeSystem/launchContext", "patient"),
    ("urn:iso:std:iso:3166", "NL"),
}


def resource_files() -> list[Path]:
    return sorted(p for p in PROFILES.glob("*.json") if p.name not in ("package.json", ".index.json"))


@pytest.mark.parametrize("path", resource_files(), ids=lambda p: p.name)
def test_every_file_parses_with_fhir_resources_r4b(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    model = get_fhir_model_class(data["resourceType"]).model_validate(data)
    assert model.id == data["id"]
    assert path.name == f"{data['resourceType']}-{data['id']}.json"


def test_every_canonical_reference_resolves_inside_the_package(package: Package) -> None:
    own = package.manifest["canonical"]
    refs = [(r["id"], ref) for r in package.resources for ref in canonical_references(r) if ref.startswith(own)]
    assert len(refs) > 40  # the package is densely linked: make sure the walk saw it
    unresolved = [(rid, ref) for rid, ref in refs if package.resolve(ref) is None]
    assert unresolved == []


def test_every_section_is_the_code_of_a_plan_action(package: Package) -> None:
    (plan,) = package.of_type("PlanDefinition")

    def codes(actions: list[dict[str, Any]]) -> set[str]:
        out: set[str] = set()
        for a in actions:
            out |= {c["code"] for cc in a.get("code", []) for c in cc["coding"] if c["system"] == GUIDELINE_SYSTEM}
            out |= codes(a.get("action", []))
        return out

    assert set(SECTIONS) <= codes(plan["action"])


def _item_codes(items: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for item in items:
        out |= {c["code"] for c in item.get("code", []) if c["system"] == CONCEPTS_SYSTEM}
        out |= _item_codes(item.get("item", []))
    return out


def test_criteria_questionnaire_has_every_feature_and_the_three_criteria(package: Package) -> None:
    questionnaire = package.get("Questionnaire", "alk-criteria")
    assert questionnaire is not None
    features = {
        c["code"] for c in package.terminology.expand("https://alk-fhir.org/fhir/ValueSet/alk-profile-features")
    }
    assert len(features) == 22
    assert features | {"criterion-1", "criterion-2", "criterion-3"} <= _item_codes(questionnaire["item"])


def test_questionnaire_items_are_all_coded_and_enable_when_targets_exist(package: Package) -> None:
    for q in package.of_type("Questionnaire"):
        items = _all_items(q["item"])
        links = [item["linkId"] for item in items]
        assert len(links) == len(set(links)), f"{q['id']}: duplicate linkIds"
        assert [i["linkId"] for i in items if not i.get("code")] == []
        for item in items:
            for ew in item.get("enableWhen", []):
                assert ew["question"] in links


def _all_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for i in items for x in [i, *_all_items(i.get("item", []))]]


def _english(owner: dict[str, Any], key: str) -> str | None:
    for ext in owner.get(f"_{key}", {}).get("extension", []):
        if ext["url"] == TRANSLATION_EXT:
            parts = {e["url"]: e.get("valueCode") or e.get("valueString") for e in ext["extension"]}
            if parts.get("lang") == "en" and parts.get("content"):
                return str(parts["content"])
    return None


CLINICIAN_TEXT = ("title", "description", "text", "purpose", "textEquivalent")


def _untranslated(node: Any, where: str) -> list[str]:
    out: list[str] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            out += _untranslated(item, f"{where}[{i}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and key in CLINICIAN_TEXT and _english(node, key) is None:
                out.append(f"{where}.{key}")
            elif (
                key == "display"
                and isinstance(value, str)
                and node.get("system") in OWN_SYSTEMS
                and _english(node, key) is None
            ):
                out.append(f"{where}.display")
            elif key != "expression" and (key != "text" or not isinstance(value, dict)):
                out += _untranslated(value, f"{where}.{key}")
    return out


KNOWLEDGE = ("Questionnaire", "PlanDefinition", "ActivityDefinition", "ValueSet", "CodeSystem", "Library")


def test_every_clinician_facing_string_has_dutch_and_english(package: Package) -> None:
    checked = 0
    for res in package.resources:
        if res["resourceType"] not in KNOWLEDGE and res["resourceType"] != "StructureDefinition":
            continue
        assert res["language"] == "nl-NL"
        assert _english(res, "title"), f"{res['id']}: title has no English"
        if res["resourceType"] in KNOWLEDGE:
            assert _untranslated(res, res["resourceType"]) == []
        checked += 1
    for cs in package.of_type("CodeSystem"):
        for concept in _all_concepts(cs.get("concept", [])):
            assert any(d["language"] == "en" for d in concept.get("designation", [])), concept["code"]
            checked += 1
    assert checked > 150


def _all_concepts(concepts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [x for c in concepts for x in [c, *_all_concepts(c.get("concept", []))]]


def _allowed_external_codes() -> set[tuple[str, str]]:
    """(system, code) pairs from terminology.md: shared/ when beside the repo, else the copy in tests/."""
    shared = REPO_ROOT.parent / "shared" / "terminology.md"
    text = (shared if shared.exists() else Path(__file__).parent / "fixtures" / "terminology.md").read_text()
    systems = dict(re.findall(r"^\| ([^|]+?) \| `(http[^`]+)` \|", text, re.M))
    names = {
        "ICD-10": "http://hl7.org/fhir/sid/icd-10",
        "SNOMED CT": "http://snomed.info/sct",
        "UZI role code": "http://fhir.nl/fhir/NamingSystem/uzi-rolcode",
        "LOINC": "http://loinc.org",
    }
    names.update(systems)
    allowed: set[tuple[str, str]] = set()
    for line in text.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        for i, cell in enumerate(cells):
            system = names.get(cell) or (cell if cell.startswith("http") else None)
            if system and i + 1 < len(cells):
                allowed |= {(system, code) for code in _codes_in(cells[i + 1])}
    icd = {code for s, code in allowed if s == names["ICD-10"]}
    for line in text.splitlines():  # the comorbidity table: ICD-10 blocks and ranges
        if line.startswith("| ") and re.search(r"F\d", line):
            icd |= _codes_in(line.split("|")[-2])
    allowed |= {(s, c) for c in icd for s in ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-nl")}
    atc = "http://www.whocc.no/atc"
    allowed |= {(atc, c) for c in re.findall(r"\b(N0\d[A-Z]{1,2}\d{0,2})\b", text)}
    # the ICPC rubric table (ICPC-1-NL under its URI and its OID) and the R4 core example bindings
    # (Procedure.outcome/category, ServiceRequest.category: SNOMED CT codes)
    icpc = set(re.findall(r"^\| ([A-Z]\d\d) \| ", text, re.M))
    icpc_systems = ("http://hl7.org/fhir/sid/icpc-1-nl", "urn:oid:2.16.840.1.113883.2.4.4.31.1")
    allowed |= {(s, c) for c in icpc for s in icpc_systems}
    for line in text.splitlines():
        if re.match(r"^\| (Procedure|ServiceRequest)\.", line):
            allowed |= {("http://snomed.info/sct", c) for c in re.findall(r"\b(\d{6,})\b", line)}
    return allowed


def _cited_in_the_project() -> set[tuple[str, str]]:
    """(system, code) pairs of the project's own terminology notes: the table "Dutch codes and the public
    sources they come from" of examples/patients/README.md, each row naming its public source."""
    text = (REPO_ROOT / "examples" / "patients" / "README.md").read_text(encoding="utf-8")
    table = text.split("## Dutch codes and the public sources they come from", 1)[-1]
    allowed: set[tuple[str, str]] = set()
    systems: list[str] = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("code", "---") or not cells[3]:
            continue
        if cells[1] != "same":
            systems = re.findall(r"`((?:https?|urn):[^`]+)`", cells[1])
            if cells[1].startswith("SNOMED CT"):
                systems.append("http://snomed.info/sct")
        codes = [c for c in re.split(r"[,;]\s*", cells[0]) if re.fullmatch(r"[A-Za-z0-9.-]+", c)]
        allowed |= {(system, code) for system in systems for code in codes}
    return allowed


def _codes_in(cell: str) -> set[str]:
    out: set[str] = set()
    for a, b in re.findall(r"\b([A-Z]\d\d)[–-]([A-Z]\d\d)\b", cell):
        out |= {f"{a[0]}{n:02d}" for n in range(int(a[1:]), int(b[1:]) + 1)}
    out |= set(re.findall(r"\b([A-Z]\d\d(?:\.\d)?)\b", cell))
    out |= set(re.findall(r"\b(\d{6,}|\d\d\.\d{3}|\d{5}-\d|RESP|CON|REF)\b", cell))
    return out


def _codes_used(node: Any) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    if isinstance(node, list):
        for item in node:
            out |= _codes_used(item)
    elif isinstance(node, dict):
        system = node.get("system")
        if isinstance(system, str):
            if isinstance(node.get("code"), str):
                out.add((system, node["code"]))
            out |= {(system, c["code"]) for c in node.get("concept", [])}
            out |= {(system, f["value"]) for f in node.get("filter", [])}
        for value in node.values():
            out |= _codes_used(value)
    return out


def test_every_external_code_is_listed_in_terminology_or_its_core_code_system(package: Package, core_dir: Path) -> None:
    from alk_fhir.knowledge import corepkg

    allowed = _allowed_external_codes() | _cited_in_the_project()
    used = set()
    for res in package.resources:
        if res["resourceType"] != "CodeSystem":
            used |= _codes_used(res)
    problems = []
    for system, code in sorted(used):
        if system in OWN_SYSTEMS or (system, code) in allowed or (system, code) in DOCUMENTED_ELSEWHERE:
            continue
        if system.startswith(("http://terminology.hl7.org/CodeSystem/", "http://hl7.org/fhir/")):
            cs = corepkg.read_canonical(core_dir, system)
            if cs and code in {c["code"] for c in _all_concepts(cs.get("concept", []))}:
                continue
        problems.append((system, code))
    assert problems == []
    assert ("http://snomed.info/sct", "768832004") in used  # the check saw the external codes


def test_profiles_are_in_sync_with_their_sources(core_dir: Path) -> None:
    files = authoring.build(REPO_ROOT / "authoring", snapshot.snapshotter(core_dir))
    assert authoring.diff(files, PROFILES) == []


def test_authoring_rejects_an_unknown_code_of_ours(tmp_path: Path) -> None:
    for src in (REPO_ROOT / "authoring").glob("CodeSystem-*.yaml"):
        shutil.copy(src, tmp_path)
    (tmp_path / "ValueSet-bad.yaml").write_text(
        "resourceType: ValueSet\nid: bad\ntitle: {nl: x, en: y}\ncompose:\n  include:\n"
        f"    - {{system: {CONCEPTS_SYSTEM}, concept: [{{code: no-such-code}}]}}\n"
        "useContext: [{code: {system: " + CONCEPTS_SYSTEM + ", code: no-such-code}}]\n"
    )
    with pytest.raises(authoring.AuthoringError, match="no-such-code"):
        authoring.build(tmp_path, None)


def test_a_broken_package_fails_loudly(tmp_path: Path) -> None:
    for path in PROFILES.glob("*.json"):
        shutil.copy(path, tmp_path)
    plan = tmp_path / "PlanDefinition-alk-guideline.json"
    data = json.loads(plan.read_text())
    data["action"][0]["definitionCanonical"] = "https://alk-fhir.org/fhir/ActivityDefinition/missing"
    plan.write_text(json.dumps(data))
    with pytest.raises(BrokenPackage, match="ActivityDefinition/missing"):
        load_package(tmp_path)
    plan.write_text("{not json")
    with pytest.raises(BrokenPackage, match=r"PlanDefinition-alk-guideline\.json"):
        load_package(tmp_path)


def test_package_command_writes_an_npm_style_tgz(tmp_path: Path, package: Package) -> None:
    result = CliRunner().invoke(main, ["package", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    target = Path(result.output.strip())
    assert target.name == f"{package.name}-{package.version}.tgz"
    with tarfile.open(target) as tf:
        names = set(tf.getnames())
        manifest = json.load(tf.extractfile("package/package.json"))  # type: ignore[arg-type]
        index = json.load(tf.extractfile("package/.index.json"))  # type: ignore[arg-type]
    assert manifest["fhirVersions"] == ["4.0.1"] and manifest["name"] == package.name
    assert {f"package/{f['filename']}" for f in index["files"]} == names - {
        "package/package.json",
        "package/.index.json",
    }
    assert len(index["files"]) == len(package.resources)
