"""The demo EHR's record: the example patients of ``examples/patients/``, in memory.

Why in memory: the demo must start on a fresh clone with nothing configured and must be the same
after every restart (issue: "writes kept in memory …, reset on restart"). Nothing here is a real
patient and nothing is written to disk.

The searches are the ones the clinician app and the CDS services' prefetch templates use
(``Type?patient=``, ``code=system|code``, ``status=``, ``_include=Type:element``,
``Bundle?type=document&composition.patient=``); a search parameter this store does not know is
refused (``UnsupportedSearch``), never silently ignored, so a template that needs more fails loudly.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from alk_fhir.fhir import FHIR_ID, RESOURCE_TYPE

JSON = dict[str, Any]
PATIENT_REFS = ("subject", "patient", "for", "beneficiary")
SHARED_TYPES = frozenset({"Medication", "Practitioner", "PractitionerRole", "Organization", "Location"})


class UnsupportedSearch(ValueError):
    """A search this demo store cannot answer exactly."""


@dataclass(frozen=True)
class DemoPatient:
    id: str
    name: str
    file: str
    summary: dict[str, str]  # language -> one sentence


def _name(patient: JSON) -> str:
    for name in patient.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("given", []), name.get("family", "")]
        if any(parts):
            return " ".join(p for p in parts if p)
    return str(patient.get("id"))


def _refs(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            yield ref
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _codings(value: Any) -> Iterable[tuple[str, str]]:
    """(system, code) of every Coding in a CodeableConcept, a list of them, or a Coding."""
    if isinstance(value, list):
        for item in value:
            yield from _codings(item)
    elif isinstance(value, dict):
        if "code" in value and isinstance(value.get("code"), str):
            yield str(value.get("system", "")), value["code"]
        for coding in value.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                yield str(coding.get("system", "")), coding["code"]


@dataclass
class DemoStore:
    """One in-memory FHIR record for all example patients (shared resources such as Medication and
    Practitioner are visible to every patient, as in an EHR)."""

    resources: dict[tuple[str, str], JSON] = field(default_factory=dict)
    patients: list[DemoPatient] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_examples(cls, folder: Path, summaries: dict[str, dict[str, str]]) -> DemoStore:
        store = cls()
        for path in sorted(folder.glob("*.json")):
            bundle = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                continue
            resources = [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
            patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
            if patient is None:
                continue
            for res in resources:
                store.resources[(res["resourceType"], res["id"])] = res
            summary = summaries.get(path.name) or {
                "nl": f"Voorbeelddossier {path.name} ({len(resources)} gegevens).",
                "en": f"Example record {path.name} ({len(resources)} entries)."}
            store.patients.append(DemoPatient(patient["id"], _name(patient), path.name, summary))
        return store

    def patient(self, pid: str) -> DemoPatient | None:
        return next((p for p in self.patients if p.id == pid), None)

    def in_compartment(self, res: JSON, pid: str) -> bool:
        rtype = res.get("resourceType")
        if rtype == "Patient":
            return bool(res.get("id") == pid)
        if rtype in SHARED_TYPES:
            return True
        if rtype == "Bundle":
            first = ((res.get("entry") or [{}])[0]).get("resource") or {}
            return f"Patient/{pid}" in set(_refs(first.get("subject")))
        return any(ref == f"Patient/{pid}" for key in PATIENT_REFS for ref in _refs(res.get(key)))

    def read(self, rtype: str, rid: str) -> JSON | None:
        with self.lock:
            res = self.resources.get((rtype, rid))
            return copy.deepcopy(res) if res is not None else None

    def search(self, rtype: str, query: str | dict[str, str], pid: str) -> list[JSON]:
        """Matches (then their includes) in the compartment of patient ``pid``; the caller's
        ``patient=`` must name that patient."""
        params = dict(parse_qsl(query, keep_blank_values=True)) if isinstance(query, str) else dict(query)
        params.pop("_count", None)
        includes = [v for k, v in params.items() if k == "_include"]
        params.pop("_include", None)
        if rtype == "Bundle":
            wanted = params.pop("composition.patient", "").removeprefix("Patient/")
            if params.pop("type", None) != "document" or not wanted:
                raise UnsupportedSearch("Bundle searches need type=document&composition.patient=")
        else:
            wanted = params.pop("patient", "").removeprefix("Patient/")
            if not wanted:
                raise UnsupportedSearch(f"{rtype} searches need patient=")
        if wanted != pid:
            return []
        code = params.pop("code", None)
        status = params.pop("status", None)
        if params:
            raise UnsupportedSearch(f"search parameter(s) not supported here: {', '.join(sorted(params))}")
        with self.lock:
            found = [copy.deepcopy(r) for (t, _), r in sorted(self.resources.items())
                     if t == rtype and self.in_compartment(r, pid)]
        if code is not None:
            tokens = {tuple(c.split("|", 1)) if "|" in c else ("", c) for c in code.split(",")}
            found = [r for r in found if any((s, c) in tokens or ("", c) in tokens for s, c in _codings(r.get("code")))]
        if status is not None:
            found = [r for r in found if r.get("status") in status.split(",")]
        return found + self._included(found, includes)

    def _included(self, matches: list[JSON], includes: list[str]) -> list[JSON]:
        out: dict[tuple[str, str], JSON] = {}
        for spec in includes:
            _, _, element = spec.partition(":")
            for res in matches:
                value = res.get(element) if element else None
                if element and value is None:  # medication[x], performer[].actor
                    value = res.get(element + "Reference")
                if isinstance(value, list):
                    value = [v.get("actor", v) if isinstance(v, dict) else v for v in value]
                for ref in _refs(value):
                    rtype, _, rid = ref.partition("/")
                    target = self.read(rtype, rid)
                    if target is not None:
                        out[(rtype, rid)] = target
        return list(out.values())

    def create(self, res: JSON, if_none_exist: str | None, pid: str) -> tuple[JSON, bool]:
        """Store a new resource; with ``If-None-Exist`` (FHIR R4 http.html#ccreate) an existing match
        is returned instead (created = False)."""
        rtype = str(res.get("resourceType", ""))
        if not RESOURCE_TYPE.fullmatch(rtype):
            raise ValueError("resourceType is missing or malformed")
        if not self.in_compartment({**res, "id": "new"}, pid):
            raise PermissionError("a resource for another patient")
        if if_none_exist:
            params = dict(parse_qsl(if_none_exist))
            identifier = params.pop("identifier", None)
            if params or not identifier:
                raise UnsupportedSearch("If-None-Exist supports identifier=system|value only")
            system, _, value = identifier.rpartition("|")
            with self.lock:
                for (t, _), existing in self.resources.items():
                    if t == rtype and self.in_compartment(existing, pid) and any(
                            i.get("value") == value and (not system or i.get("system") == system)
                            for i in existing.get("identifier") or [] if isinstance(i, dict)):
                        return copy.deepcopy(existing), False
        stored = copy.deepcopy(res)
        rid = stored.get("id")
        if not isinstance(rid, str) or not FHIR_ID.fullmatch(rid) or (rtype, rid) in self.resources:
            stored["id"] = str(uuid.uuid4())
        stored["meta"] = {"versionId": "1", "lastUpdated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        with self.lock:
            self.resources[(rtype, stored["id"])] = stored
        return copy.deepcopy(stored), True

    def record(self, pid: str) -> list[JSON]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.resources.values() if self.in_compartment(r, pid)
                    and r.get("resourceType") != "Bundle"]
