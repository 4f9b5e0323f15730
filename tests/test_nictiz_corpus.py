"""Real Dutch records, read right: the public Nictiz instances (MP9 3.0 qualification fixtures,
zib2020 examples; tests/fixtures/nictiz/NOTICE.md) through the facts, ``alk-fhir apply --explain``
and the overview.

``MP9_IN_USE`` is written by hand from MP9 3.0's rules for the test date T of the fixtures
(tests/fixtures/nictizcorpus.py: 2026-03-16), one row per medication agreement with the reason:
the period of use decides (start and end, or start + duration, the day the duration ends no longer
included), a later agreement naming it in ``priorPrescription`` replaces it (stop, change,
suspension, correction), stop type *geannuleerd* was never in use, a start on a condition has not
begun before its date. Sources: examples/patients/README.md, "How MP9 3.0 says a medicine is in use".
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from alk_fhir.context import build_context
from alk_fhir.context.fhirdata import resource_key
from alk_fhir.knowledge import Package
from alk_fhir.overview.build import build_overview
from fixtures.nictizcorpus import MP9_PATIENTS, T, mp9_record, zib_record

# (patient, agreement identifier without the "MBH_300_" prefix and "-tmgs" suffix, in use on T, why)
MP9_IN_USE: list[tuple[str, str, bool, str]] = [
    ("brugge", "start_eind_MA", False, "2026-03-06 to 2026-03-11: ended"),
    ("brugge", "start_duur_MA", True, "2026-02-24 + 3 weeks: last day 2026-03-16"),
    ("brugge", "chronisch_MA", True, "from 2026-02-14, no end (chronic)"),
    ("brugge", "start_duur2_MA", False, "2026-01-15 + 28 days: last day 2026-02-11"),
    ("brugge", "dosis_stuks_MA", False, "2025-11-06 to 2025-12-05: ended"),
    ("brugge", "start_criterium_MA", False, "starts 2026-03-17, on a condition: not begun"),
    ("coenen", "aanvullendeinstructie_MA", True, "2025-11-16 to 2026-11-16"),
    ("coenen", "toelichting_MA", True, "from 2026-02-23, no end"),
    ("coenen", "redenvanvoorschrijven_MA", True, "2026-03-03 to 2026-03-30"),
    ("coenen", "aanvullendeinformatiewensen_MA", True, "2026-03-12 to 2026-03-21"),
    ("coenen", "Toedieningsweg_MA", True, "2026-03-11 to 2026-03-18"),
    ("voortman", "stoppen_MA_start", False, "stopped: the stop agreement names it (priorPrescription)"),
    ("voortman", "stoppen_MA_staken", True, "stop agreement (stopgezet) ending 2026-03-16 23:59: last day is T"),
    ("voortman", "wijzigen_verhoging_MA_start", False, "changed: replaced by the new agreement"),
    ("voortman", "wijzigen_verhoging_MA_wijzigingmetVV", True, "the changed agreement, from 2026-03-14, no end"),
    ("voortman", "wijzigen_verhoging_MA_techstaken", False, "technical stop agreement ended 2026-03-13"),
    ("voortman", "wijzigen_verlaging_MA_start", False, "changed: replaced by the new agreement"),
    ("voortman", "wijzigen_verlaging_MA_wijzigingzonderVV", True, "the changed agreement, 2026-03-15 to 2026-03-30"),
    ("voortman", "wijzigen_verlaging_MA_techstaken", False, "technical stop agreement ended 2026-03-14"),
    ("voortman", "onderbreken_MA_start", False, "suspended: the suspension names it"),
    ("voortman", "onderbreken_MA_onderbreken", False, "suspension (onderbroken) ended 2026-03-15: suspended since"),
    ("voortman", "TAwijzigen_MA", False, "2026-01-15 + 28 days: ended 2026-02-11"),
    ("voortman", "annuleren_MA_starten", False, "cancelled by the next agreement"),
    ("voortman", "annuleren_MA_geannuleerd", False, "stop type geannuleerd: never in use"),
    ("voortman", "VolgendeBehandelaar_MA_Start1", False, "suspended and replaced (priorPrescription)"),
    ("voortman", "VolgendeBehandelaar_MA_Stop1", False, "suspension ended 2026-03-15"),
    ("voortman", "VolgendeBehandelaar_MA_Start2", False, "resumes 2026-03-19: not begun"),
    ("voortman", "VolgendeBehandelaar_Zorgaanb_MA", False, "2026-03-10 + 5 days: last day 2026-03-14"),
    ("voortman", "stoppen_parallele_TA_MA_start", True, "2026-03-02 + 28 days: last day 2026-03-29"),
    ("voortman", "MTDopschorten_MA", True, "from 2026-03-11, no end"),
    ("voortman", "AfwijkendeToediening_MA", True, "from 2026-03-15, no end"),
    ("voortman", "wijzigen_correctie_MA", False, "corrected: replaced"),
    ("voortman", "wijzigen_correctie_MA_stopMA", False, "stop agreement ended 2026-03-09 11:00"),
    ("voortman", "wijzigen_correctie_MA_correctieMA", True, "2026-03-09 11:01 to 2026-03-17 00:00"),
    ("voortman", "CorrectieToediening_MA", True, "from 2026-03-14 13:45, no end"),
    ("voortman", "CorrectieOpToediening_MA", True, "from 2026-03-13 07:45, no end"),
    ("hemsbergen", "redundantefrequentie_MA", True, "2026-03-16 09:00 + 14 days"),
    ("hemsbergen", "WDS_trombose_medicatie_MA", True, "2026-03-16 (a date) + 2 days"),
    ("hemsbergen", "tijdstippen_niet_flexibel_MA", True, "2026-03-16 to 2026-03-23"),
    ("hemsbergen", "toedieningsduur_MA", True, "from 2026-03-16, no end"),
]
# the day after T, where durations and ends meet the rules' other side
MP9_IN_USE_NEXT_DAY = [
    ("brugge", "start_duur_MA", False, "2026-02-24 + 3 weeks ended with 2026-03-16"),
    ("brugge", "start_criterium_MA", True, "its start 2026-03-17 has come; + 3 days"),
    ("voortman", "stoppen_MA_staken", False, "stopped at the end of 2026-03-16"),
    ("voortman", "wijzigen_correctie_MA_correctieMA", True, "ends 2026-03-17 00:00"),
]


def _key(res: dict[str, Any]) -> str:
    return str(res["identifier"][0]["value"]).removeprefix("MBH_300_").removeprefix("mbh_300_").removesuffix("-tmgs")


def _agreements_in_use(package: Package, patient: str, offset: int = 0) -> tuple[dict[str, bool], Any]:
    day = T + timedelta(days=offset)
    facts = build_context(mp9_record(patient, T), package, day).facts
    in_use = {id(r) for r in facts["medicationsInUse"]}
    return {_key(r): id(r) in in_use for r in facts["medicationAgreements"]
            if r.get("identifier") and "_MA" in str(r["identifier"][0]["value"])}, facts


@pytest.mark.parametrize("patient", sorted(MP9_PATIENTS))
def test_mp9_agreements_are_in_use_as_mp9_says(package: Package, patient: str) -> None:
    got, _ = _agreements_in_use(package, patient)
    rows = [r for r in MP9_IN_USE if r[0] == patient]
    assert rows
    for _, key, expected, why in rows:
        assert got[key] is expected, f"{patient} {key}: expected {'in use' if expected else 'not in use'} ({why})"


def test_mp9_in_use_the_day_after(package: Package) -> None:
    for patient, key, expected, why in MP9_IN_USE_NEXT_DAY:
        got, _ = _agreements_in_use(package, patient, offset=1)
        assert got[key] is expected, f"{patient} {key} on T+1: {why}"


def test_the_table_covers_at_least_twenty_agreements() -> None:
    assert len({(p, k) for p, k, _, _ in MP9_IN_USE}) >= 20


def test_one_medicine_is_counted_once(package: Package) -> None:
    # Hemsbergen: 18 agreements in use, metformin twice (two treatments, one product: GPK) -> 17 medicines
    _, facts = _agreements_in_use(package, "hemsbergen")
    agreements = [r for r in facts["medicationsInUse"] if r["resourceType"] == "MedicationRequest"]
    assert len(agreements) == 18 and facts["activeMedicationRecordCount"] == 17
    # Coenen: agreements, medication use, dispense requests, administration agreements and dispenses of the
    # same five medicines: five medicines, and no dispense or dispense request among them
    _, facts = _agreements_in_use(package, "coenen")
    assert facts["activeMedicationRecordCount"] == 5
    assert {r["resourceType"] for r in facts["activeMedications"]} == {"MedicationRequest"}
    kinds = {r["resourceType"] for r in facts["medicationUseEvidence"]}
    assert kinds == {"MedicationRequest", "MedicationDispense"}
    assert not {resource_key(r) for r in facts["medicationUseEvidence"]} & {
        resource_key(r) for r in facts["activeMedications"]}


def test_zib2020_shapes_read_right(package: Package) -> None:
    facts = build_context(zib_record(), package, T).facts
    # lab results (category laboratory) and a radiology report coded 363680008 are somatic work-up
    somatic = {resource_key(r) for r in facts["somaticWorkups"]}
    assert {"Observation/nl-core-LaboratoryTestResult-01", "Observation/nl-core-LaboratoryTestResult-02",
            "DiagnosticReport/nl-core-TextResult-01"} <= somatic
    assert facts["psychiatricWorkups"] == []
    # a knee replacement is no work-up; a care team without status counts while its period is open
    assert "Procedure/nl-core-Procedure-event-01" not in somatic
    assert [resource_key(t) for t in facts["currentCareTeams"]] == ["CareTeam/nl-core-CareTeam-01"]


def _records() -> dict[str, dict[str, Any]]:
    out = {name: mp9_record(name) for name in sorted(MP9_PATIENTS)}
    out["zib2020"] = zib_record()
    return out


@pytest.mark.parametrize("name", [*sorted(MP9_PATIENTS), "zib2020"])
def test_corpus_through_apply_explain_and_the_overview(package: Package, tmp_path: Path, name: str) -> None:
    from alk_fhir.cli import main

    record = _records()[name]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    out = CliRunner().invoke(main, ["apply", str(path), "--date", T.isoformat(), "--explain"])
    assert out.exit_code == 0, out.stderr
    explained = json.loads(out.stderr)
    assert json.loads(out.stdout)["resourceType"] == "Bundle"
    facts = explained["facts"]
    # no resource counted twice
    for fact in ("activeMedications", "medicationsInUse", "somaticWorkups", "psychiatricWorkups", "coordinators"):
        values = [json.dumps(v, sort_keys=True) for v in facts.get(fact) or []]
        assert len(values) == len(set(values)), fact
    assert facts["activeMedicationRecordCount"] == len(facts["activeMedications"])
    # what no data requirement reads is named, with its count
    held: dict[str, int] = {}
    for entry in record["entry"]:
        held[entry["resource"]["resourceType"]] = held.get(entry["resource"]["resourceType"], 0) + 1
    assert explained["unread"] == {t: n for t, n in sorted(held.items()) if t in explained["unread"]}
    assert "MedicationRequest" not in explained["unread"] and "Observation" not in explained["unread"]
    if "MedicationAdministration" in held:
        assert explained["unread"]["MedicationAdministration"] == held["MedicationAdministration"]
    # the overview builds, and its medication section lists exactly the medicines the facts count
    orgs = [e["resource"] for e in record["entry"] if e["resource"]["resourceType"] == "Organization"]
    document = build_overview(record, package, today=T, timestamp="2026-03-16T12:00:00Z",
                              custodian=resource_key(orgs[0]))
    composition = document["entry"][0]["resource"]
    (medication,) = [s for s in composition["section"] if s["code"]["coding"][0]["code"] == "overview-medication"]
    refs = [e["reference"] for e in medication.get("entry", [])]
    assert len(refs) == len(set(refs)) == facts["activeMedicationRecordCount"]
    keys = [resource_key(e["resource"]) for e in document["entry"]]
    assert len(keys) == len(set(keys))


def test_overview_of_a_ggz_record_in_zib2020_and_mp9_shapes(package: Package) -> None:
    from datetime import date

    repo = Path(__file__).resolve().parents[1]
    record = json.loads((repo / "examples" / "patients" / "patient-ggz-zib2020-rom.json").read_text(encoding="utf-8"))
    day = date(2026, 11, 23)
    facts = build_context(record, package, day).facts
    document = build_overview(record, package, today=day, timestamp="2026-11-23T12:00:00Z")
    composition = document["entry"][0]["resource"]
    # the general practice named through a PractitionerRole keeps the overview
    assert composition["custodian"]["reference"] == "Organization/org-ha-bakker"
    sections = {s["code"]["coding"][0]["code"]: s for s in composition["section"]}

    def refs(code: str) -> list[str]:
        return [e["reference"] for e in sections[code].get("entry", [])]
    # one medicine (the restarted oxazepam agreement), "Sinds" its MP9 start; not the dispense request,
    # the dispense, the stopped agreement or tramadol whose period ended
    assert refs("overview-medication") == ["MedicationRequest/ma-sem-oxa-2"]
    assert facts["activeMedicationRecordCount"] == 1
    assert "05-10-2026" in sections["overview-medication"]["text"]["div"]
    # a care team without status, with its coordinator; lab and psychiatric report in their own sections
    assert refs("overview-care-team") == ["CareTeam/ct-sem"]
    assert "Casus-coördinator" in sections["overview-care-team"]["text"]["div"]
    assert refs("overview-somatic-diagnostics") == ["Observation/obs-sem-tsh"]
    assert "1.8 mU/l" in sections["overview-somatic-diagnostics"]["text"]["div"]
    assert refs("overview-psychiatric-diagnostics") == ["DiagnosticReport/dr-sem-psych"]
    # the treatment's outcome is the ROM measurement's: worse
    assert "(meting)" in sections["overview-treatments"]["text"]["div"]
    assert [resource_key(t) for t in facts["worsenedTreatments"]] == ["Procedure/proc-sem-cgt"]
    assert facts["criterion2"] is True and facts["hasCaseCoordinator"] is True
    assert [resource_key(c) for c in facts["longStandingAlkConditions"]] == ["Condition/cond-sem-f451"]


def test_a_resource_sent_twice_is_read_once(package: Package) -> None:
    # CDS prefetch asks for the assessments and for all Observations: the assessment arrives twice
    record = mp9_record("coenen")
    twice = {"resourceType": "Bundle", "type": "collection", "entry": record["entry"] + record["entry"][:3]}
    once = build_context(record, package, T)
    again = build_context(twice, package, T)
    for rtype in ("MedicationRequest", "Medication", "Patient"):
        assert len(again.of_type(rtype)) == len(once.of_type(rtype))
    assert again.facts["activeMedicationRecordCount"] == once.facts["activeMedicationRecordCount"] == 5
