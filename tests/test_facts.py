"""Facts as data (Library alk-facts): the Dutch-shaped records read right, both FHIRPath engines
agree on every fact, and changing a number or a mapping in a copy of the package changes $apply
with no Python edited."""

from __future__ import annotations

import json
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from alk_fhir.apply import Engine, load_engine, run
from alk_fhir.apply.engine import _walk
from alk_fhir.context import build_context, compile_facts
from alk_fhir.context.facts import _REFS, _TERM, HOST_FUNCTIONS
from alk_fhir.knowledge import Package, load_package
from fixtures.vignettes import VIGNETTES

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 23)


def record(name: str) -> dict[str, Any]:
    return json.loads((REPO / "examples" / "patients" / f"patient-{name}.json").read_text(encoding="utf-8"))


def keys(value: Any) -> set[str]:
    return {f"{r['resourceType']}/{r['id']}" for r in value}


def actions(engine: Engine, data: Any) -> set[str]:
    return {a["id"] for a in _walk(run(engine, data, TODAY).requestgroup.get("action", []))}


def test_gp_record_in_icpc_and_g_standaard(package: Package, engine: Engine) -> None:
    facts = build_context(record("gp-icpc-gstandaard"), package, TODAY).facts
    # ICPC P75 (URI) and D93 are ALK conditions; L18.01 (OID, NHG sub-code) and A04 are complaints only
    assert keys(facts["alkConditions"]) == {"Condition/cond-jan-p75", "Condition/cond-jan-d93"}
    assert keys(facts["alkRelatedComplaints"]) == {"Condition/cond-jan-l18", "Condition/cond-jan-a04"}
    assert facts["hasAlk"] is True
    # G-Standaard only: recognised by the substance in the product name, the combination product too
    assert keys(facts["benzodiazepines"]) == {"MedicationStatement/use-jan-oxazepam",
                                              "MedicationStatement/use-jan-temazepam"}
    assert keys(facts["opioids"]) == {"MedicationStatement/use-jan-paracod"}
    assert facts["riskMedicationCount"] == 3 and facts["careContactCount"] == 14
    assert set(facts["profileFeatures"]) == {"feature-duration", "feature-many-care-contacts",
                                             "feature-harm-medication-dependence"}
    assert actions(engine, record("gp-icpc-gstandaard")) == {"screen-persistent-alk"}


def test_ggz_record_with_snomed_procedures(package: Package, engine: Engine) -> None:
    facts = build_context(record("ggz-snomed-procedures"), package, TODAY).facts
    assert keys(facts["noEffectTreatments"]) == {"Procedure/proc-lotte-cgt"}  # SNOMED 385671000
    assert keys(facts["uncodedOutcomeTreatments"]) == {"Procedure/proc-lotte-fysio"}  # "geen effect": unknown
    assert facts["criterion1"] == [] and facts["persistenceStatus"] == "criterion-unknown"
    # the intake is psychiatric work-up; CBT, physiotherapy and the intake are no somatic work-up
    assert keys(facts["psychiatricWorkups"]) == {"Procedure/proc-lotte-intake"} and facts["somaticWorkups"] == []
    assert facts["hasCaseCoordinator"] is True and facts["coordinatorCount"] == 1  # SNOMED case manager, not RESP
    result = run(engine, record("ggz-snomed-procedures"), TODAY)
    (crit1,) = [c for c in result.assessment.criteria if c.code == "criterion-1"]
    assert crit1.status == "criterion-unknown"
    assert crit1.unknown == [{"reference": "Procedure/proc-lotte-fysio"}]


def test_g_standaard_through_an_installation_conceptmap(package: Package, tmp_path: Path) -> None:
    data = record("gp-icpc-gstandaard")
    for entry in data["entry"]:  # no names to go by: only the G-Standaard codes remain
        res = entry["resource"]
        if res["resourceType"] == "Medication":
            res["code"] = {"coding": [{"system": c["system"], "code": c["code"]} for c in res["code"]["coding"]]}
        if res["resourceType"] == "MedicationStatement":
            res["medicationReference"].pop("display")
    assert build_context(data, package, TODAY).facts["benzodiazepines"] == []
    # ALK_FHIR_CONCEPTMAPS: GPK 1023 (oxazepam tablet 10 mg, public Nictiz instance) -> ATC N05BA04 (oxazepam)
    conceptmap = tmp_path / "gstandaard-atc.json"
    conceptmap.write_text(json.dumps({"resourceType": "ConceptMap", "status": "active", "group": [{
        "source": "urn:oid:2.16.840.1.113883.2.4.4.1", "target": "http://www.whocc.no/atc",
        "element": [{"code": "1023", "target": [{"code": "N05BA04", "equivalence": "equivalent"}]}]}]}))
    installed = load_package(REPO / "profiles", (conceptmap,))
    facts = build_context(data, installed, TODAY).facts
    assert keys(facts["benzodiazepines"]) == {"MedicationStatement/use-jan-oxazepam"}
    (tmp_path / "not-a-map.json").write_text('{"resourceType": "ValueSet", "status": "active"}')
    from alk_fhir.knowledge import BrokenPackage

    with pytest.raises(BrokenPackage, match="not a ConceptMap"):
        load_package(REPO / "profiles", (tmp_path / "not-a-map.json",))


def test_apply_cli_reads_the_dutch_gp_record() -> None:
    from click.testing import CliRunner

    from alk_fhir.cli import main

    out = CliRunner().invoke(main, ["apply", str(REPO / "examples" / "patients" / "patient-gp-icpc-gstandaard.json"),
                                    "--date", "2026-11-23", "--explain"])
    assert out.exit_code == 0, out.stderr
    explained = json.loads(out.stderr)
    assert explained["facts"]["riskMedications"] == ["MedicationStatement/use-jan-oxazepam",
                                                     "MedicationStatement/use-jan-temazepam",
                                                     "MedicationStatement/use-jan-paracod"]
    careplan = json.loads(out.stdout)
    assert careplan["resourceType"] in ("CarePlan", "Bundle")


def _fhirpathpy_facts(package: Package, data: Any, draft: Any = None) -> dict[str, Any]:
    """Every fact through fhirpathpy (the reference engine), given the same FHIR functions."""
    ctx = build_context(data, package, TODAY, draft_orders=draft)
    program = compile_facts(package)
    def typed(resources: list[Any]) -> list[Any]:  # variables hold typed resources, as FHIRPath assumes
        return [ResourceNode.create_node(r, r.get("resourceType")) for r in resources]

    env: dict[str, Any] = {"today": TODAY.isoformat(), "draftOrders": typed(ctx.draft_orders)}
    host = {_REFS: (ctx.by_key, ctx.local), _TERM: package.terminology}
    for req, rtype in program.requirements.items():
        env[req] = typed(ctx.of_type(rtype))
    def bind(fn: Any) -> Any:
        return lambda inputs, *args: fn(list(inputs), [list(a) if isinstance(a, list) else [a] for a in args], host)

    # toQuantity() is FHIRPath's own: fhirpathpy's implementation is the reference for ours
    table = {name: {"fn": bind(fn), "arity": {0: [], 1: ["String"]}} for name, fn in HOST_FUNCTIONS.items()
             if name != "toQuantity"}
    out: dict[str, Any] = {}
    for fact in program.facts:
        value = fhirpathpy.evaluate(ctx.patient or {}, fact.expression, env, models["r4"],
                                    options={"userInvocationTable": table, "returnRawData": True})
        env[fact.name] = value
        out[fact.name] = value
    return out


# fhirpathpy 2.2 does not remove duplicates in a union when one side holds its typed nodes and the
# other plain values (a resolved Condition, a literal string), which FHIRPath §6.5 requires; the
# comparison is therefore of duplicate-free collections, and counts of such unions are left out.
UNION_COUNTS = {"profileFeatureCount"}


def _comparable(value: Any) -> Any:
    value = getattr(value, "data", value)  # fhirpathpy's ResourceNode
    if isinstance(value, list):
        out: list[Any] = []
        for v in (_comparable(v) for v in value):
            if v not in out:
                out.append(v)
        return out
    if isinstance(value, dict):
        return f"{value.get('resourceType')}/{value.get('id')}" if "resourceType" in value else json.dumps(
            value, sort_keys=True, default=str)
    text = str(value)
    return text.split(" ")[0] if " " in text else text  # quantities: the number decides


CORPUS = [*(p.stem.removeprefix("patient-") for p in (REPO / "examples" / "patients").glob("patient-*.json"))]


@pytest.mark.parametrize("name", CORPUS)
def test_both_engines_agree_on_every_fact(package: Package, name: str) -> None:
    data = record(name)
    fast = build_context(data, package, TODAY)
    reference = _fhirpathpy_facts(package, data)
    for fact in compile_facts(package).facts:
        if fact.name in UNION_COUNTS:
            continue
        got = fast.facts[fact.name]
        got = got if isinstance(got, list) else [got]
        assert _comparable(got) == _comparable(reference[fact.name]), fact.name


def test_both_engines_agree_on_the_vignettes(package: Package) -> None:
    for vig in VIGNETTES:
        fast = build_context(vig.record(), package, TODAY, draft_orders=list(vig.draft) or None)
        reference = _fhirpathpy_facts(package, vig.record(), list(vig.draft) or None)
        for fact in compile_facts(package).facts:
            if fact.name in UNION_COUNTS:
                continue
            got = fast.facts[fact.name]
            got = got if isinstance(got, list) else [got]
            assert _comparable(got) == _comparable(reference[fact.name]), (vig.name, fact.name)


def _edited(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> Engine:
    """A copy of the package with text edits per file: no Python changes."""
    copy = tmp_path / "profiles"
    shutil.copytree(REPO / "profiles", copy)
    for name, (old, new) in edits.items():
        path = copy / name
        text = path.read_text(encoding="utf-8")
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_engine(load_package(copy))


def _param(name: str, old: str, new: str) -> tuple[str, str]:
    return (f'"name": "{name}",', f'"name": "{name}",'), (f'"expression": "{old}"', f'"expression": "{new}"')


NUMBER_CASES = [
    # (parameter, old, new, record, action that appears or disappears)
    ("careContactsThreshold", "12", "20", "possible-persistent-alk", "screen-persistent-alk"),
    ("polypharmacyThreshold", "5", "2", "criterion1-failed-cbt-physio", "medication-review"),
    ("failedTreatmentsForCriterion1", "2", "3", "criterion1-failed-cbt-physio", "persistent-alk"),
    ("workupLongAgo", "24 months", "120 months", "polypharmacy-opioid-benzo", "further-somatic-diagnostics"),
    ("screeningFeatureThreshold", "2", "4", "possible-persistent-alk", "screen-persistent-alk"),
]


@pytest.mark.parametrize(("param", "old", "new", "name", "action"), NUMBER_CASES, ids=[c[0] for c in NUMBER_CASES])
def test_changing_a_number_in_the_package_changes_apply(engine: Engine, tmp_path: Path, param: str, old: str,
                                                         new: str, name: str, action: str) -> None:
    lib = json.loads((REPO / "profiles" / "Library-alk-facts.json").read_text(encoding="utf-8"))
    (p,) = [p for p in lib["parameter"] if p["name"] == param]
    p["extension"][0]["valueExpression"]["expression"] = new
    assert old != new
    copy = tmp_path / "profiles"
    shutil.copytree(REPO / "profiles", copy)
    (copy / "Library-alk-facts.json").write_text(json.dumps(lib, ensure_ascii=False), encoding="utf-8")
    edited = load_engine(load_package(copy))
    before, after = actions(engine, record(name)), actions(edited, record(name))
    assert (action in before) != (action in after), (param, sorted(before), sorted(after))


MAPPING_CASES = [
    # a ValueSet edit (remove one standard code from the mapping) and the action that changes
    ("ValueSet-alk-coordinator-roles.json", '"code": "768832004"', '"code": "0000000"',
     "ggz-snomed-procedures", None),
    ("ValueSet-alk-conditions.json", '"value": "P75"', '"value": "X99"', "gp-icpc-gstandaard", None),
    ("ValueSet-alk-outcomes-criterion-1.json", '"code": "outcome-no-effect"', '"code": "outcome-worsened"',
     "criterion1-failed-cbt-physio", "persistent-alk"),
    ("ValueSet-alk-psychiatric-categories.json", '"code": "diagnostics-psychiatric"', '"code": "diagnostics-somatic"',
     "bedridden-tube-feeding", None),
]


@pytest.mark.parametrize(("file", "old", "new", "name", "action"), MAPPING_CASES, ids=[c[0] for c in MAPPING_CASES])
def test_changing_a_mapping_in_the_package_changes_the_facts(package: Package, tmp_path: Path, file: str, old: str,
                                                              new: str, name: str, action: str | None) -> None:
    edited = _edited(tmp_path, {file: (old, new)})
    before = build_context(record(name), package, TODAY).facts.all()
    after = build_context(record(name), edited.package, TODAY).facts.all()
    changed = {k for k in before if _comparable(before[k] if isinstance(before[k], list) else [before[k]])
               != _comparable(after[k] if isinstance(after[k], list) else [after[k]])}
    assert changed, file
    if action is not None:
        engine = load_engine(package)
        assert (action in actions(engine, record(name))) != (action in actions(edited, record(name))), changed


def test_a_definition_outside_the_compiled_subset_stops_start_up(tmp_path: Path) -> None:
    from alk_fhir.knowledge import BrokenPackage

    with pytest.raises(BrokenPackage, match="careContactCount"):
        _edited(tmp_path, {"Library-alk-facts.json": ('"expression": "%careContacts.count()"',
                                                      '"expression": "%careContacts.count() + %notAFact"')})


def test_facts_are_computed_when_read(package: Package) -> None:
    """A hook evaluates only what its actions read: the order hooks never compute the explanatory model."""
    facts = build_context(record("polypharmacy-opioid-benzo"), package, TODAY).facts
    assert facts["polypharmacy"] is True
    computed = facts.computed()
    assert "activeMedicationRecordCount" in computed and "perpetuatingFactorCount" not in computed
    assert facts.get("notAFact") is None
    assert list(facts.all()) == list(compile_facts(package).names)


def test_no_number_or_window_of_the_rules_in_python() -> None:
    """The open numbers live in the Library: the engine's sources name none of them."""
    import re

    src = REPO / "src" / "alk_fhir"
    lib = json.loads((REPO / "profiles" / "Library-alk-facts.json").read_text(encoding="utf-8"))
    for folder in ("context", "criteria", "apply", "cds", "overview"):
        for path in (src / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"timedelta\(days=\d|>= ?(5|12|24)\b|MANY_CONTACTS|FAILED_OUTCOMES", text), path
    assert {p["name"] for p in lib["parameter"] if any(
        e["url"].endswith("alk-operationalisation") for e in p.get("extension", []))} >= {
        "careContactsThreshold", "careContactsWindow", "workupLongAgo", "polypharmacyThreshold", "minimumDuration",
        "failedTreatmentsForCriterion1", "screeningFeatureThreshold", "stuckAfter"}
    assert Decimal("1")  # keep the import honest for quantities compared above


def _triggers(result: Any, action_id: str) -> list[dict[str, Any]]:
    action = next(a for a in _walk(result.requestgroup["action"]) if a["id"] == action_id)
    out = []
    for ext in action.get("extension", []):
        assert ext["url"] == "https://alk-fhir.org/fhir/StructureDefinition/alk-trigger"
        parts = ext["extension"]
        value = next((p for p in parts if p["url"] == "value"), {})
        out.append({"fact": next(p["valueString"] for p in parts if p["url"] == "fact"),
                    "label": next(p for p in parts if p["url"] == "label"),
                    "value": next((v for k, v in value.items() if k.startswith("value")), None),
                    "evidence": [p["valueReference"]["reference"] for p in parts if p["url"] == "evidence"]})
    return out


def test_advice_names_what_triggered_it(engine: Engine) -> None:
    """Each applicable advice carries the facts its condition read (alk-trigger): label in Dutch with the
    English translation, the value, and the record's entries (issue 14: counts, drugs, dates)."""
    dirk = run(engine, record("polypharmacy-opioid-benzo"), TODAY)
    (review,) = _triggers(dirk, "medication-review")
    assert review["fact"] == "polypharmacy" and review["value"] == 12
    assert review["label"]["valueString"] == "Actieve geneesmiddelen"
    assert "Active medications" in json.dumps(review["label"]["_valueString"])
    assert len(review["evidence"]) == 12 and "MedicationStatement/med-dirk-1" in review["evidence"]
    (workup,) = _triggers(dirk, "further-somatic-diagnostics")  # the answered "no"s are not triggers
    assert workup["value"] == "2023-06-01" and workup["fact"] == "somaticWorkupLongAgo"
    jan = run(engine, record("gp-icpc-gstandaard"), TODAY)
    risk = next(t for t in _triggers(jan, "screen-persistent-alk") if t["fact"] == "riskMedicationCount")
    assert risk["value"] == 3 and set(risk["evidence"]) == {
        "MedicationStatement/use-jan-oxazepam", "MedicationStatement/use-jan-temazepam",
        "MedicationStatement/use-jan-paracod"}


def test_cds_evaluation_leaves_triggers_out_and_advises_the_same(engine: Engine) -> None:
    """``explain=False`` (what the CDS service runs: its cards do not show triggers) gives the same
    actions and requests, without alk-trigger extensions."""
    explained = run(engine, record("polypharmacy-opioid-benzo"), TODAY, hook="patient-view")
    plain = run(engine, record("polypharmacy-opioid-benzo"), TODAY, hook="patient-view", explain=False)
    assert any(a.get("extension") for a in _walk(explained.requestgroup["action"]))
    assert not any(a.get("extension") for a in _walk(plain.requestgroup["action"]))
    strip = [{k: v for k, v in a.items() if k not in ("extension", "action")}
             for a in _walk(explained.requestgroup["action"])]
    assert strip == [{k: v for k, v in a.items() if k != "action"} for a in _walk(plain.requestgroup["action"])]
    assert plain.requests == explained.requests
