"""The case overview: build (sections, narratives, identity), consent gate, render, diff, add a step."""

from __future__ import annotations

import copy
import json
import re
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alk_fhir.cli import main
from alk_fhir.config import Settings
from alk_fhir.knowledge import CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, corepkg
from alk_fhir.overview import (
    ConsentRefused,
    DocumentError,
    OverviewError,
    add_step,
    build_overview,
    diff_overviews,
    render_html,
    section_specs,
)
from alk_fhir.validation import Validator, build_validator, has_errors
from alk_fhir.validation.xhtml import html_problems
from fixtures.overview.kit import (
    BSN,
    GGZ_ORG,
    GP_ORG,
    OTHER_ORG,
    PATIENT_BSN,
    REPO,
    T1,
    T2,
    TODAY,
    example_record,
    gp_record,
    load,
    package,
    resource,
    section,
    without,
)

EXAMPLES = sorted((REPO / "examples" / "patients").glob("*.json"))
SECTION_CONCEPTS = ["overview-complaints", "overview-somatic-diagnostics", "overview-psychiatric-diagnostics",
                    "overview-medication", "overview-treatments", "overview-explanatory-model",
                    "overview-care-team", "overview-step-plan", "overview-expectations", "overview-consultations"]


@pytest.fixture(scope="module")
def validator() -> Validator:
    return build_validator(package(), corepkg.require(Settings().package_cache))


def build(record: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    options.setdefault("today", TODAY)
    options.setdefault("timestamp", T1)
    return build_overview(record if record is not None else gp_record(), package(), **options)


def composition(doc: dict[str, Any]) -> dict[str, Any]:
    comp: dict[str, Any] = doc["entry"][0]["resource"]
    return comp


def narratives(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    comp = composition(doc)
    yield "Composition.text", comp["text"]["div"]
    for sec in comp["section"]:
        yield f"section {sec['title']}", sec["text"]["div"]


def text_of(div: str) -> str:
    return " ".join(" ".join(ET.fromstring(div).itertext()).split())


# --- build ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [*EXAMPLES, REPO / "tests" / "fixtures" / "overview" / "gp-record-additions.json"],
                         ids=lambda p: p.stem)
def test_every_built_document_passes_validation(path: Path, validator: Validator) -> None:
    record = gp_record() if path.stem == "gp-record-additions" else load(path)
    if path == REPO / "examples" / "patients" / "patient-polypharmacy-opioid-benzo.json":
        record = example_record()
    doc = build(record)
    outcome = validator.validate_document(doc)
    errors = [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert not errors, errors
    for where, div in narratives(doc):
        assert html_problems(div) == (None, None), where


def test_built_document_passes_the_validate_command(tmp_path: Path) -> None:
    target = tmp_path / "overview.json"
    target.write_text(json.dumps(build()), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(target)])
    assert result.exit_code == 0, result.output


def test_document_shape_and_identity() -> None:
    doc = build()
    assert doc["resourceType"] == "Bundle" and doc["type"] == "document" and doc["timestamp"] == T1
    assert doc["meta"]["profile"] == ["https://alk-fhir.org/fhir/StructureDefinition/alk-case-overview-document"]
    comp = composition(doc)
    assert comp["resourceType"] == "Composition" and comp["status"] == "final" and comp["date"] == T1
    assert comp["type"]["coding"][0]["code"] == "18776-5"
    assert comp["subject"]["reference"] == "Patient/pat-dirk"
    assert comp["custodian"]["reference"] == "Organization/org-gp-delinde"  # the patient's practice
    assert comp["identifier"]["value"].startswith("urn:uuid:") and doc["identifier"]["value"].startswith("urn:uuid:")
    assert comp["identifier"]["value"] != doc["identifier"]["value"]
    # every reference of the Composition resolves to an entry, and every entry is referenced transitively
    keys = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in doc["entry"]}
    for sec in comp["section"]:
        for ref in sec.get("entry", []):
            assert ref["reference"] in keys
    assert "Encounter/enc-pat-dirk-0" not in keys  # not referenced by anything in the overview
    assert {"Practitioner/prac-gp-jansen", "Organization/org-ggz-alkcentrum", "Goal/goal-dirk-1"} <= keys
    # same record, same day, same timestamp: byte-identical; another day: same identity, new content
    assert json.dumps(build()) == json.dumps(doc)
    later = build(timestamp=T2)
    assert later["identifier"] == doc["identifier"] and composition(later)["identifier"] == comp["identifier"]
    assert later["timestamp"] == T2


def test_identity_follows_record_and_custodian_but_never_hashes_the_bsn() -> None:
    gp = build()
    assert build(custodian=GP_ORG)["identifier"] == gp["identifier"]  # the default custodian, named
    assert build(custodian=GGZ_ORG)["identifier"] != gp["identifier"]  # another keeper, another document
    other_bsn = copy.deepcopy(gp_record())
    for entry in other_bsn["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"][0]["value"] = "999911168"
    assert build(other_bsn)["identifier"] == gp["identifier"]  # same record entry: same overview
    from alk_fhir.overview.build import ID_NAMESPACE

    for name in (f"document|{BSN}|{PATIENT_BSN}", f"{BSN}|{PATIENT_BSN}", PATIENT_BSN):
        assert str(uuid.uuid5(ID_NAMESPACE, name)) not in json.dumps(gp["identifier"])


def test_ten_sections_coded_with_concept_and_guideline_section() -> None:
    comp = composition(build())
    assert [s.concept for s in section_specs(package())] == SECTION_CONCEPTS
    assert len(comp["section"]) == 10
    guideline = {"overview-complaints": "1.1", "overview-somatic-diagnostics": "2.2",
                 "overview-psychiatric-diagnostics": "2.3", "overview-medication": "2.2",
                 "overview-treatments": "1.1", "overview-explanatory-model": "2.5", "overview-care-team": "3.1",
                 "overview-step-plan": "3.3", "overview-expectations": "3.2", "overview-consultations": "4.3"}
    for sec, concept in zip(comp["section"], SECTION_CONCEPTS, strict=True):
        codes = {(c["system"], c["code"]) for c in sec["code"]["coding"]}
        assert codes == {(CONCEPTS_SYSTEM, concept), (GUIDELINE_SYSTEM, guideline[concept])}
        assert bool(sec.get("entry")) != bool(sec.get("emptyReason")), sec["title"]


def test_section_contents_of_the_gp_patient() -> None:
    doc = build()
    refs = {c: [r["reference"] for r in section(doc, c).get("entry", [])] for c in SECTION_CONCEPTS}
    assert refs["overview-complaints"] == ["Condition/cond-dirk-ibs", "Condition/cond-dirk-pain"]
    assert refs["overview-somatic-diagnostics"] == ["Procedure/diag-dirk-colo", "Procedure/diag-dirk-ct"]
    assert refs["overview-psychiatric-diagnostics"] == ["Procedure/diag-dirk-psy", "Condition/cond-dirk-depr"]
    assert len(refs["overview-medication"]) == 12 and refs["overview-medication"][0] == "MedicationStatement/med-dirk-1"
    assert refs["overview-treatments"] == ["Procedure/proc-dirk-cbt", "Procedure/proc-dirk-act"]
    assert refs["overview-care-team"] == ["CareTeam/ct-dirk"]
    assert refs["overview-step-plan"] == ["CarePlan/cp-dirk-stepplan"]
    assert refs["overview-consultations"] == ["Consent/consent-dirk-exchange"]
    for empty in ("overview-explanatory-model", "overview-expectations"):
        sec = section(doc, empty)
        assert sec["emptyReason"]["coding"][0]["code"] == "notstarted"
        assert "Nog geen" in text_of(sec["text"]["div"])


def test_medication_section_names_prescriber_start_and_flags_polypharmacy_and_risk() -> None:
    text = text_of(section(build(), "overview-medication")["text"]["div"])
    assert "Polyfarmacie: 12 middelen in gebruik" in text
    assert "Risicomedicatie: 5 middelen" in text
    assert "oxycodon 10 mg 2dd 01-01-2019 Els Smit risicomedicatie: opioïden" in text
    assert "pregabaline 75 mg 2dd 01-05-2023 dr. Marieke Jansen risicomedicatie: gabapentinoïden" in text
    assert "paracetamol 1000 mg 3dd 01-06-2024 dr. Marieke Jansen" in text


def test_polypharmacy_threshold_is_the_librarys() -> None:
    record = gp_record()
    record["entry"] = [e for e in record["entry"] if not (e["resource"]["resourceType"] == "MedicationStatement"
                                                         and e["resource"]["id"] not in ("med-dirk-6", "med-dirk-7"))]
    text = text_of(section(build(record), "overview-medication")["text"]["div"])
    assert "Polyfarmacie" not in text and "Risicomedicatie" not in text and "paracetamol" in text


def test_treatments_care_team_and_step_plan_narratives() -> None:
    doc = build()
    treatments = text_of(section(doc, "overview-treatments")["text"]["div"])
    assert "Cognitieve gedragstherapie 01-01-2017 t/m 01-07-2017 Geen effect" in treatments
    team = text_of(section(doc, "overview-care-team")["text"]["div"])
    assert team.startswith("Casus-coördinator: dr. Marieke Jansen")
    assert "Psychiater Els Smit (GGz ALK-centrum Midden)" in team
    plan = text_of(section(doc, "overview-step-plan")["text"]["div"])
    assert "Stap 1: medicatiebeoordeling" in plan and "15-11-2026 t/m 15-02-2027" in plan
    assert "Minder middelen gebruiken zonder meer pijn" in plan
    summary = text_of(composition(doc)["text"]["div"])
    assert "Dirk Bos, man, geboren 04-11-1969, BSN 999911156" in summary
    assert "§3.1 Zorgteam en casus-coördinator: casus-coördinator dr. Marieke Jansen" in summary
    assert "§3.3 Stappenplan: 1 stap" in summary


def test_explanatory_model_and_expectations_from_questionnaires(validator: Validator) -> None:
    doc = build(load(REPO / "examples" / "patients" / "patient-care-team-coordinator.json"))
    model = text_of(section(doc, "overview-explanatory-model")["text"]["div"])
    assert "Biologisch — instandhoudende/beïnvloedende factoren Deconditionering; Slecht slapen" in model
    assert "Belangrijke lichamelijke klacht Pijn in rug en benen" in model
    complaints = section(doc, "overview-complaints")
    assert [e["reference"] for e in complaints["entry"]] == ["Condition/cond-eva-f454",
                                                              "QuestionnaireResponse/qr-eva-model"]
    complaint_text = text_of(complaints["text"]["div"])
    assert "Pijn in rug en benen" in complaint_text and "Deconditionering" not in complaint_text
    expectations = section(doc, "overview-expectations")
    assert "Weer een uur per dag buiten kunnen zijn" in text_of(expectations["text"]["div"])
    assert "Hypermobiliteit" not in text_of(expectations["text"]["div"])
    assert not has_errors(validator.validate_document(doc))


def test_consultations_with_their_answers(validator: Validator) -> None:
    record = gp_record()
    request = {"resourceType": "ServiceRequest", "id": "sr-topggz", "status": "completed", "intent": "order",
               "code": {"coding": [{"system": CONCEPTS_SYSTEM, "code": "consult-topggz"}]},
               "subject": {"reference": "Patient/pat-dirk"}, "authoredOn": "2026-10-10"}
    answer = {"resourceType": "Task", "id": "task-topggz", "status": "completed", "intent": "order",
              "basedOn": [{"reference": "ServiceRequest/sr-topggz"}], "for": {"reference": "Patient/pat-dirk"},
              "note": [{"text": "Advies: eerst afbouw benzodiazepinen, daarna opnieuw beoordelen."}]}
    base = "https://huisartsenpraktijk-delinde.example.nl/fhir/"
    record["entry"] += [{"fullUrl": base + "ServiceRequest/sr-topggz", "resource": request},
                        {"fullUrl": base + "Task/task-topggz", "resource": answer}]
    doc = build(record)
    sec = section(doc, "overview-consultations")
    assert [e["reference"] for e in sec["entry"]] == ["ServiceRequest/sr-topggz", "Task/task-topggz",
                                                      "Consent/consent-dirk-exchange"]
    text = text_of(sec["text"]["div"])
    assert "TOPGGz-centrum, ALK- of academisch centrum 10-10-2026 beantwoord Advies: eerst afbouw" in text
    assert not has_errors(validator.validate_document(doc))


def test_narratives_escape_record_text(validator: Validator) -> None:
    record = gp_record()
    for entry in record["entry"]:
        if entry["resource"].get("id") == "med-dirk-6":
            entry["resource"]["medicationCodeableConcept"]["text"] = '<script>alert("x")</script> & co'
    doc = build(record)
    div = section(doc, "overview-medication")["text"]["div"]
    assert "<script>" not in div and "&lt;script&gt;" in div
    assert html_problems(div) == (None, None)
    assert not has_errors(validator.validate_document(doc))


def test_build_errors_name_what_is_missing() -> None:
    with pytest.raises(OverviewError, match="no Patient"):
        build(without(gp_record(), "Patient"))
    with pytest.raises(OverviewError, match=re.escape("custodian 'http://x|1' is not an Organization")):
        build(custodian="http://x|1")
    with pytest.raises(OverviewError, match="author 'Practitioner/nobody'"):
        build(author="Practitioner/nobody")
    record = gp_record()
    for entry in record["entry"]:
        entry["resource"].pop("generalPractitioner", None)
    with pytest.raises(OverviewError, match="no custodian"):
        build(record)


# --- consent gate ---------------------------------------------------------------------------------

def test_consent_gate_allows_the_consented_recipient_only() -> None:
    assert build(recipient=GGZ_ORG)["type"] == "document"
    with pytest.raises(ConsentRefused, match=r"90000303.*Consent/consent-dirk-exchange: it does not allow"):
        build(recipient=OTHER_ORG)
    with pytest.raises(ConsentRefused, match="the record holds no Consent at all"):
        build(without(gp_record(), "Consent"), recipient=GGZ_ORG)


@pytest.mark.parametrize(("change", "reason"), [
    (lambda c: c.update(status="inactive"), "status is 'inactive'"),
    (lambda c: c["provision"].update(type="deny"), "does not permit"),
    (lambda c: c["provision"]["period"].update(end="2026-11-01"), "it ended on 2026-11-01"),
    (lambda c: c["provision"]["period"].update(start="2026-12-01"), "it starts on 2026-12-01"),
    (lambda c: c.update(category=[{"coding": [{"system": "http://loinc.org", "code": "64292-6"}]}]), "59284-0"),
    (lambda c: c["provision"]["actor"][0]["role"]["coding"][0].update(code="PRCP"), "does not allow sharing"),
    (lambda c: c["provision"].update(provision=[{"type": "deny", "actor": [{"role": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
        "reference": {"reference": "Organization/org-ggz-alkcentrum"}}]}]), "nested provision denies"),
])
def test_consent_gate_refusals(change: Any, reason: str) -> None:
    record = gp_record()
    for entry in record["entry"]:
        if entry["resource"]["resourceType"] == "Consent":
            change(entry["resource"])
    assert build(gp_record(), recipient=GGZ_ORG)  # the unchanged record passes the gate
    with pytest.raises(ConsentRefused, match=reason):
        build(record, recipient=GGZ_ORG)


def test_consent_covers_the_reply_to_the_holder_but_not_a_third_party() -> None:
    from alk_fhir.overview.consent import require_exchange_consent
    from alk_fhir.overview.document import document_context

    doc = build()
    ctx = document_context(doc, package(), TODAY)
    assert require_exchange_consent(ctx, recipient=GP_ORG, senders=[GGZ_ORG], today=TODAY)["id"] == \
        "consent-dirk-exchange"
    assert require_exchange_consent(ctx, recipient="Organization/org-ggz-alkcentrum", senders=[GP_ORG], today=TODAY)
    with pytest.raises(ConsentRefused):
        require_exchange_consent(ctx, recipient=GP_ORG, senders=[OTHER_ORG], today=TODAY)
    with pytest.raises(ConsentRefused):
        require_exchange_consent(ctx, recipient=GGZ_ORG, senders=[OTHER_ORG], today=TODAY)


# --- render ---------------------------------------------------------------------------------------

def test_render_is_a_standalone_page_with_every_section_and_the_coordinator() -> None:
    page = render_html(build(), package())
    assert page.startswith("<!DOCTYPE html>") and '<html lang="nl">' in page
    assert "default-src 'none'" in page and "<script" not in page and "@media print" in page
    for spec in section_specs(package()):
        assert f'<section id="{spec.key}">' in page and f"Handreiking §{spec.guideline}" in page
    assert '<p class="coordinator"><strong>Casus-coördinator:</strong> dr. Marieke Jansen</p>' in page
    assert "Polyfarmacie: 12 middelen" in page


def test_render_strips_active_content_from_foreign_narratives() -> None:
    doc = build()
    sec = composition(doc)["section"][0]
    sec["text"]["div"] = ('<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">Klacht <a href="javascript:x()">'
                          'link</a><a href="https://example.org/a">ok</a></p><script>alert(1)</script>'
                          '<iframe src="https://evil.example"/><blink>knipper</blink></div>')
    page = render_html(doc, package())
    assert "onclick" not in page and "javascript:" not in page and "<script" not in page and "iframe" not in page
    assert '<a href="https://example.org/a">ok</a>' in page and "knipper" in page and "<blink" not in page


def test_render_rejects_what_is_not_a_document() -> None:
    with pytest.raises(DocumentError, match=r"Bundle\.type"):
        render_html({"resourceType": "Bundle", "type": "collection", "entry": []}, package())


# --- diff and edit --------------------------------------------------------------------------------

def ggz_version(doc: dict[str, Any]) -> dict[str, Any]:
    return add_step(doc, package(), description="Stap 2: begeleide afbouw oxycodon door de GGz",
                    start="2027-01-15", end="2027-06-15", performer="Organization/org-ggz-alkcentrum",
                    goal="Oxycodon gestopt zonder terugval", timestamp=T2, author="Organization/org-ggz-alkcentrum",
                    custodian=GGZ_ORG, perpetuating=True)


def test_add_step_makes_a_valid_new_version(validator: Validator) -> None:
    doc = build()
    new = ggz_version(doc)
    assert doc == build()  # the original is untouched
    assert new["identifier"] == doc["identifier"] and new["timestamp"] == T2
    comp = composition(new)
    assert comp["status"] == "amended" and comp["custodian"]["reference"] == "Organization/org-ggz-alkcentrum"
    assert comp["identifier"] == composition(doc)["identifier"]
    plan = resource(new, "CarePlan", "cp-dirk-stepplan")
    step = plan["activity"][-1]
    assert step["id"].startswith("step-") and step["detail"]["description"].startswith("Stap 2")
    goal_ref = step["detail"]["goal"][0]["reference"]
    assert goal_ref in [g["reference"] for g in plan["goal"]]
    assert resource(new, "Goal", goal_ref.split("/")[1])["description"]["text"] == "Oxycodon gestopt zonder terugval"
    assert "Stap 2: begeleide afbouw oxycodon" in text_of(section(new, "overview-step-plan")["text"]["div"])
    assert "Stap 2" in text_of(plan["text"]["div"])
    assert "§3.3 Stappenplan: 2 stappen" in text_of(comp["text"]["div"])
    assert not has_errors(validator.validate_document(new))


def test_add_step_refusals() -> None:
    doc = build(example_record())  # no care team, hence no step plan
    with pytest.raises(OverviewError, match="no step plan"):
        add_step(doc, package(), description="x", start="2027-01-01", performer="Organization/org-gp-delinde",
                 goal="y")
    with pytest.raises(OverviewError, match="performer 'Practitioner/nobody' is not in the document"):
        add_step(build(), package(), description="x", start="2027-01-01", performer="Practitioner/nobody", goal="y")
    with pytest.raises(OverviewError, match="status"):
        add_step(build(), package(), description="x", start="2027-01-01", performer="Organization/org-gp-delinde",
                 goal="y", status="done")


def test_diff_shows_exactly_the_added_step() -> None:
    doc = build()
    result = diff_overviews(doc, ggz_version(doc), package())
    data = result.to_json()
    assert data["changedSections"] == ["stepPlan"]
    step_plan = next(s for s in data["sections"] if s["section"] == "stepPlan")
    assert step_plan["guideline"] == "3.3" and not step_plan["removed"] and not step_plan["changed"]
    assert len(step_plan["added"]) == 1
    added = step_plan["added"][0]
    assert added["key"].startswith("CarePlan/cp-dirk-stepplan#step-")
    assert added["cells"][0] == "Stap 2: begeleide afbouw oxycodon door de GGz"
    assert added["flags"] == ["gericht op instandhoudende factor"]
    assert {d["field"] for d in data["document"]} == {"status", "datum", "auteur", "beheerder"}
    text = result.to_text()
    assert "§3.3 Stappenplan:\n  + toegevoegd: Stap 2: begeleide afbouw oxycodon door de GGz" in text
    assert text.count("toegevoegd") == 1 and "verwijderd" not in text and "~ gewijzigd" not in text


def test_diff_removed_and_changed_items() -> None:
    old = build()
    record = gp_record()
    record["entry"] = [e for e in record["entry"] if e["resource"].get("id") != "med-dirk-12"]
    for entry in record["entry"]:
        if entry["resource"].get("id") == "proc-dirk-act":
            entry["resource"]["outcome"]["coding"][0]["code"] = "outcome-worsened"
        if entry["resource"].get("id") == "ct-dirk":
            entry["resource"]["participant"][0]["period"]["end"] = "2026-11-20"  # coordinator stepped down
    result = diff_overviews(old, build(record, timestamp=T2), package())
    data = {s["section"]: s for s in result.to_json()["sections"]}
    assert [i["key"] for i in data["medication"]["removed"]] == ["MedicationStatement/med-dirk-12"]
    assert [c["key"] for c in data["treatments"]["changed"]] == ["Procedure/proc-dirk-act"]
    assert data["treatments"]["changed"][0]["fields"] == ["outcome"]
    assert data["treatments"]["changed"][0]["after"]["cells"][2] == "Klachten uitgebreid of functioneren verslechterd"
    changed_team = data["careTeam"]["changed"]
    assert [c["key"] for c in changed_team] == ["CareTeam/ct-dirk#Practitioner/prac-gp-jansen"]
    assert changed_team[0]["before"]["flags"] == ["casus-coördinator"] and "flags" not in changed_team[0]["after"]
    assert set(result.to_json()["changedSections"]) == {"medication", "treatments", "careTeam"}


def test_diff_of_identical_versions_is_empty_and_ignores_server_stamps() -> None:
    doc = build()
    stored = copy.deepcopy(doc)
    stored["id"] = "abc"
    stored["meta"] = {**stored["meta"], "versionId": "3", "lastUpdated": "2026-11-23T09:00:00.000Z"}
    result = diff_overviews(doc, stored, package())
    assert result.is_empty and result.document == []
    assert "Geen inhoudelijke wijzigingen" in result.to_text()


def test_diff_compares_text_only_sections_by_text() -> None:
    old = build()
    new = copy.deepcopy(old)
    sec = next(s for s in composition(new)["section"] if s["title"] == "Afgesproken verwachtingen")
    sec["text"]["div"] = '<div xmlns="http://www.w3.org/1999/xhtml"><p>Afgesproken: beter functioneren.</p></div>'
    data = diff_overviews(old, new, package()).to_json()
    assert data["changedSections"] == ["expectations"]
    changed = next(s for s in data["sections"] if s["section"] == "expectations")["changed"]
    assert changed[0]["after"]["cells"] == ["Afgesproken: beter functioneren."]


# --- CLI ------------------------------------------------------------------------------------------

def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_cli_build_render_diff(tmp_path: Path) -> None:
    runner = CliRunner()
    record = write(tmp_path / "record.json", gp_record())
    out = tmp_path / "doc.json"
    result = runner.invoke(main, ["overview", "build", str(record), "--date", "2026-11-23", "--timestamp", T1,
                                  "--recipient", GGZ_ORG, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == build()
    html = tmp_path / "doc.html"
    assert runner.invoke(main, ["overview", "render", str(out), "-o", str(html)]).exit_code == 0
    assert "Casus-coördinator:</strong> dr. Marieke Jansen" in html.read_text()
    new = write(tmp_path / "new.json", ggz_version(build()))
    result = runner.invoke(main, ["overview", "diff", str(out), str(new), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changedSections"] == ["stepPlan"]
    result = runner.invoke(main, ["overview", "diff", str(out), str(new)])
    assert "+ toegevoegd: Stap 2" in result.output


def test_cli_errors_name_the_file(tmp_path: Path) -> None:
    runner = CliRunner()
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    result = runner.invoke(main, ["overview", "build", str(broken)])
    assert result.exit_code == 1 and "broken.json: not JSON" in result.output
    result = runner.invoke(main, ["overview", "build", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "missing.json: cannot read" in result.output
    patient = write(tmp_path / "patient.json", {"resourceType": "Patient"})
    result = runner.invoke(main, ["overview", "build", str(patient)])
    assert result.exit_code == 1 and "patient.json: $.resourceType must be 'Bundle'" in result.output
    record = write(tmp_path / "record.json", gp_record())
    result = runner.invoke(main, ["overview", "build", str(record), "--date", "2026-11-23", "--recipient", OTHER_ORG])
    assert result.exit_code == 3 and "no active Consent" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["overview", "render", str(record)])
    assert result.exit_code == 1 and "record.json: not a case-overview document: Bundle.type" in result.output
    result = runner.invoke(main, ["overview", "build", str(record), "--date", "23-11-2026"])
    assert result.exit_code == 1 and "--date must be YYYY-MM-DD" in result.output


def test_cli_render_and_diff_refuse_malformed_documents_naming_file_and_path(tmp_path: Path) -> None:
    runner = CliRunner()
    record = write(tmp_path / "record.json", gp_record())
    good = tmp_path / "good.json"
    built = runner.invoke(main, ["overview", "build", str(record), "--date", "2026-11-23", "-o", str(good)])
    assert built.exit_code == 0, built.output
    document = json.loads(good.read_text(encoding="utf-8"))
    document["entry"][0]["resource"]["section"][0]["code"] = "x"
    bad = write(tmp_path / "bad.json", document)
    for args in (["render", str(bad)], ["diff", str(good), str(bad)]):
        result = runner.invoke(main, ["overview", *args])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert "bad.json: the document does not conform" in result.output
        assert "Bundle.entry[0].resource.section[0].code" in result.output


def test_patient_identifier_is_the_bsn() -> None:
    from alk_fhir.overview import document_context, patient_identifiers

    doc = build()
    ctx = document_context(doc, package())
    assert patient_identifiers(ctx, composition(doc)) == [f"{BSN}|{PATIENT_BSN}"]
    assert ctx.today == date(2026, 11, 23)


def test_cli_send_errors_are_clear_and_send_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    doc = write(tmp_path / "doc.json", build())
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/fhir"
    missing_key = ["--server", closed, "--client-id", "gp", "--private-key", str(tmp_path / "none.pem")]
    result = runner.invoke(main, ["overview", "send", str(doc), "--recipient", GGZ_ORG, "--date", "2026-11-23",
                                  *missing_key])
    assert result.exit_code == 1 and "none.pem: cannot read the private key" in result.output
    key = ec.generate_private_key(ec.SECP384R1())
    pem = tmp_path / "gp.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    args = ["--server", closed, "--client-id", "gp", "--private-key", str(pem), "--max-wait", "0.5"]
    result = runner.invoke(main, ["overview", "send", str(doc), "--recipient", GGZ_ORG, "--date", "2026-11-23", *args])
    assert result.exit_code == 1 and "not delivered" in result.output and "Traceback" not in result.output
    wrong_alg = [*args[:-2], "--alg", "RS384"]
    result = runner.invoke(main, ["overview", "send", str(doc), "--recipient", GGZ_ORG, "--date", "2026-11-23",
                                  *wrong_alg])
    assert result.exit_code == 1 and "RS384 needs an RSA private key" in result.output
    broken = copy.deepcopy(build())
    del broken["entry"][0]["resource"]["section"][0]
    result = runner.invoke(main, ["overview", "send", str(write(tmp_path / "bad.json", broken)), "--recipient",
                                  GGZ_ORG, "--date", "2026-11-23", *args])
    assert result.exit_code == 1 and "bad.json: not sent, the document does not conform" in result.output
    result = runner.invoke(main, ["overview", "fetch", "--patient", "999911156", *args])
    assert result.exit_code == 1 and "--patient must be system|value" in result.output


def test_dutch_gp_record_names_the_zib_prescriber_never_the_patient() -> None:
    """zib MedicationUse2: the prescriber is ext-MedicationUse2.Prescriber; informationSource (here the
    patient, as in the public Nictiz MP9 instances) only says who reported the use."""
    record = load(REPO / "examples" / "patients" / "patient-gp-icpc-gstandaard.json")
    sec = section(build(record), "overview-medication")
    text = text_of(sec["text"]["div"])
    assert "OXAZEPAM ACTAVIS TABLET 10MG 01-03-2022 Joost de Vries risicomedicatie: benzodiazepinen" in text
    assert "PARACETAMOL/CODEINE TABLET 500/10MG 20-05-2024 Joost de Vries risicomedicatie: opioïden" in text
    assert "Jan Bakker" not in text
    complaints = text_of(section(build(record), "overview-complaints")["text"]["div"])
    assert "Somatisatie" in complaints and "Fibromyalgie" in complaints  # ICPC P75 and L18.01
