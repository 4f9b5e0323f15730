"""PlanDefinition/$apply speed for a 50-resource patient, next to merely parsing that patient.

Run: ``.venv/bin/python benchmarks/apply.py [--runs N]``. Prints median and p99 in milliseconds for
(a) json.loads of the bundle text, (b) json.loads + fhir.resources R4B Bundle parse, and
(c) json.loads + context + assessment + $apply, (d) the same answered as POST $apply answers (the
CarePlan with everything contained), and (e) what a ``patient-view`` call evaluates (its cards read
the criteria, not the whole assessment), all measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from alk_fhir.apply import load_engine, run
from alk_fhir.config import REPO_ROOT
from alk_fhir.knowledge import load_package


def fifty_resource_patient() -> dict[str, Any]:
    """The polypharmacy example patient, topped up with encounters to exactly 50 resources."""
    bundle: dict[str, Any] = json.loads(
        (REPO_ROOT / "examples/patients/patient-polypharmacy-opioid-benzo.json").read_text(encoding="utf-8"))
    i = 0
    while len(bundle["entry"]) < 50:
        i += 1
        enc = {"resourceType": "Encounter", "id": f"bench-enc-{i}", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": {"reference": "Patient/pat-dirk"}, "period": {"start": f"2025-{1 + i % 12:02d}-15"}}
        bundle["entry"].append({"fullUrl": f"https://example.org/fhir/Encounter/{enc['id']}", "resource": enc})
    return bundle


def five_hundred_resource_patient() -> dict[str, Any]:
    """The GGz record in zib2020/MP9 3.0 shapes, topped up to 500 resources the way a long Dutch record
    grows: MP9 agreements (each with its dispense request and dispense), lab results and contacts."""
    bundle: dict[str, Any] = json.loads(
        (REPO_ROOT / "examples/patients/patient-ggz-zib2020-rom.json").read_text(encoding="utf-8"))
    nictiz = "http://nictiz.nl/fhir/StructureDefinition/"
    sct = "http://snomed.info/sct"
    i = 0
    while len(bundle["entry"]) < 500:
        i += 1
        month = f"{2020 + i % 6}-{1 + i % 12:02d}"
        kind = i % 5
        if kind in (0, 1):  # an agreement, its dispense request and its dispense
            ma = {"resourceType": "MedicationRequest", "id": f"bench-ma-{i}", "status": "active", "intent": "order",
                  "identifier": [{"system": "urn:oid:2.16.840.1.113883.2.4.3.11.999.77.16076005.1",
                                  "value": f"bench-ma-{i}"}],
                  "category": [{"coding": [{"system": sct, "code": "16076005"}]}],
                  "medicationCodeableConcept": {"coding": [{"system": "urn:oid:2.16.840.1.113883.2.4.4.1",
                                                            "code": str(1000 + i % 40)}], "text": f"product {i % 40}"},
                  "subject": {"reference": "Patient/pat-sem"},
                  "extension": [{"url": nictiz + "ext-TimeInterval.Period", "valuePeriod": {
                      "start": f"2026-{1 + i % 10:02d}-01", "extension": [{"url": nictiz + "ext-TimeInterval.Duration",
                                                            "valueDuration": {"value": 8 + i % 60, "unit": "week",
                                                                              "system": "http://unitsofmeasure.org",
                                                                              "code": "wk"}}]}}]}
            vv = {"resourceType": "MedicationRequest", "id": f"bench-vv-{i}", "status": "active", "intent": "order",
                  "category": [{"coding": [{"system": sct, "code": "52711000146108"}]}],
                  "medicationCodeableConcept": ma["medicationCodeableConcept"], "subject": ma["subject"],
                  "basedOn": [{"identifier": ma["identifier"][0]}]}
            mve = {"resourceType": "MedicationDispense", "id": f"bench-mve-{i}", "status": "completed",
                   "medicationCodeableConcept": ma["medicationCodeableConcept"], "subject": ma["subject"]}
            bundle["entry"] += [{"resource": r} for r in (ma, vv, mve)][: 500 - len(bundle["entry"])]
        elif kind in (2, 3):
            lab = {"resourceType": "Observation", "id": f"bench-lab-{i}", "status": "final",
                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                             "code": "laboratory"}]}],
                   "code": {"coding": [{"system": "http://loinc.org", "code": "2947-0"}]},
                   "subject": {"reference": "Patient/pat-sem"}, "effectiveDateTime": f"{month}-12",
                   "valueQuantity": {"value": 138, "unit": "mmol/l"}}
            bundle["entry"].append({"resource": lab})
        else:
            enc = {"resourceType": "Encounter", "id": f"bench-enc-{i}", "status": "finished",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                   "subject": {"reference": "Patient/pat-sem"}, "period": {"start": f"{month}-15"}}
            bundle["entry"].append({"resource": enc})
    return bundle


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    for _ in range(min(50, runs)):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    engine = load_engine(load_package(REPO_ROOT / "profiles"))
    text = json.dumps(fifty_resource_patient())
    today = date(2026, 11, 23)
    practitioner = {"reference": "Practitioner/prac-gp-jansen"}
    rows = [
        ("json.loads (baseline)", lambda: json.loads(text)),
        ("json.loads + fhir.resources R4B parse", lambda: Bundle.model_validate_json(text)),
        # context, facts, plan and the assessment Observation (the figure measured before 2026-11-30)
        ("json.loads + $apply (context, assessment, plan)",
         lambda: run(engine, json.loads(text), today, practitioner=practitioner).observation),
        # what POST $apply answers: the CarePlan with the RequestGroup, the assessment and the requests
        ("json.loads + $apply, CarePlan answer with all contained",
         lambda: run(engine, json.loads(text), today, practitioner=practitioner).as_careplan()),
        # what a patient-view call evaluates (cards read the criteria, not the whole assessment)
        ("json.loads + $apply for patient-view, no assessment",
         lambda: run(engine, json.loads(text), today, hook="patient-view", practitioner=practitioner)),
    ]
    print(f"50-resource patient, {args.runs} runs each")
    print(f"{'what':54} {'median ms':>10} {'p99 ms':>10}")
    for name, fn in rows:
        med, p99 = measure(fn, args.runs)
        print(f"{name:54} {med:10.3f} {p99:10.3f}")
    big = json.dumps(five_hundred_resource_patient())
    big_runs = max(20, args.runs // 10)
    print(f"500-resource patient (zib2020/MP9 3.0 shapes), {big_runs} runs each")
    for name, fn in [("json.loads (baseline)", lambda: json.loads(big)),
                     ("json.loads + $apply (context, assessment, plan)",
                      lambda: run(engine, json.loads(big), today, practitioner=practitioner).observation)]:
        med, p99 = measure(fn, big_runs)
        print(f"{name:54} {med:10.3f} {p99:10.3f}")


if __name__ == "__main__":
    main()
