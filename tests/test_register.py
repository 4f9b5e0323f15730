"""The case register export: no identifying value leaves, pseudonyms per key, rows, k-anonymity, CLI.

The document used is the case overview of the example patient Dirk Bos (built by the overview
module), with more to hide added to the record first: an address, a phone number, free-text notes,
a name text; and contacts and a recorded assessment where a test needs them. Every value the export
must never carry is collected from the document itself, so the test follows the document.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from alk_fhir.cli import main
from alk_fhir.knowledge import CONCEPTS_SYSTEM, GUIDELINE_SYSTEM
from alk_fhir.overview import build_overview
from alk_fhir.register import (
    FIELDS,
    KEY_VARIABLE,
    QUASI_IDENTIFIERS,
    RegisterKeyError,
    Version,
    dictionary_markdown,
    export_register,
    k_anonymise,
    patient_classes,
    pseudonym,
    register_key,
    register_row,
)
from alk_fhir.register.extract import age_band
from alk_fhir.store import open_store
from fixtures.overview.kit import BSN, GP_ORG, PATIENT_BSN, T1, T2, TODAY, URA, gp_record, package
from test_store import BACKENDS, database_url  # noqa: F401 (the fixture)

KEY = b"8f0d6c2a9e47b13f5d8a0c6e2b9f4a17d3e5c8b1a6f0e2d4"  # made once with `alk-fhir register key`
OTHER_KEY = b"c41e9a7f03b58d2e6a1f9c4b7e0d3a58f2b6c9e1d4a7b0f3"
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ADDRESS = {"line": ["Lindelaan 17 bis"], "city": "Zeist", "postalCode": "3705 KT", "country": "NL"}
PHONE = "06-98765432"
NOTES = ("Vertelt dat buurman Hendrik Verbeek hem naar de praktijk brengt",
         "Fysiotherapeut Ingrid Vos zag geen verbetering na twaalf sessies")


def identifying_record() -> dict[str, Any]:
    """Dirk Bos's record with an address, a phone number, a name text and free-text notes added."""
    record = gp_record()
    for entry in record["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Patient":
            res["address"] = [ADDRESS]
            res["telecom"] = [{"system": "phone", "value": PHONE}]
            res["name"][0]["text"] = "Dirk Bos"
        elif res["resourceType"] == "Condition" and res["id"] == "cond-dirk-pain":
            res["note"] = [{"text": NOTES[0]}]
        elif res["resourceType"] == "Procedure" and res["id"] == "proc-dirk-cbt":
            res["note"] = [{"text": NOTES[1]}]
    return record


def identifying_document(timestamp: str = T1) -> dict[str, Any]:
    return build_overview(identifying_record(), package(), today=TODAY, timestamp=timestamp)


def strings(node: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, string) leaf of a JSON value."""
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in strings(v, k)]
    if isinstance(node, list):
        return [pair for v in node for pair in strings(v, key)]
    return [(key, node)] if isinstance(node, str) else []


def forbidden_values(document: dict[str, Any]) -> set[str]:
    """What must never leave: names, identifiers (BSN, AGB, UZI, URA), addresses, telecom, ids, urls,
    exact dates, narratives and notes, all read from the document itself."""
    found: set[str] = {PATIENT_BSN, PHONE, *NOTES, *ADDRESS["line"], ADDRESS["city"], ADDRESS["postalCode"]}
    for key, value in strings(document):
        if key in ("family", "given", "prefix", "text", "display", "name", "title", "value", "id", "fullUrl",
                   "reference", "line", "city", "postalCode", "div", "birthDate", "date", "timestamp", "start", "end",
                   "onsetDateTime", "effectiveDateTime", "performedDateTime", "recordedDate", "authored"):
            if key == "div":  # narrative: every run of text between tags
                found.update(t.strip() for t in re.split(r"<[^>]+>", value) if len(t.strip()) >= 8)
            elif (len(value) >= 4 or key in ("family", "given")) and not value.startswith("http"):
                found.add(value)
        if DATE.search(value):
            found.update(DATE.findall(value))
    # codes and code-system URLs may leave; what is one of those is not forbidden; nor is the package's own
    # wording of a concept (a criterion's display in the overview's narrative is the data dictionary's too)
    own = [v for cs in package().of_type("CodeSystem") for _, v in strings(cs)]
    return {v for v in found if not re.fullmatch(r"[A-Z]?\d{1,2}(\.\d+)*|[a-z]+(-[a-z0-9]+)*|http\S*", v)
            and not any(v in text for text in own)}


def output_text(out_dir: Path) -> str:
    """Everything written, the Parquet file decoded into its values as well as its raw bytes."""
    parts = []
    for path in sorted(out_dir.iterdir()):
        if path.suffix == ".parquet":
            parts.append(json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False))
            parts.append(path.read_bytes().decode("latin-1"))
        else:
            parts.append(path.read_text(encoding="utf-8"))
    return "\n".join(parts)


def read_rows(out_dir: Path, fmt: str = "ndjson") -> list[dict[str, Any]]:
    path = out_dir / f"alk-register.{fmt}"
    if fmt == "parquet":
        return list(pq.read_table(path).to_pylist())
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- no identifying value leaves -----------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
@pytest.mark.parametrize("k", [1, 5])
def test_no_identifying_value_leaves_the_register(tmp_path: Path, fmt: str, k: int) -> None:
    doc = identifying_document()
    forbidden = forbidden_values(doc)
    assert {"Dirk", "Bos", PATIENT_BSN, "1969-11-04", "Lindelaan 17 bis", NOTES[0], "Marieke", "Jansen",
            "90000101", "900012345"} <= forbidden  # the collection above found the obvious ones
    result = export_register([Version(doc, 1), Version(identifying_document(T2), 2)], package(), KEY,
                             tmp_path, fmt=fmt, k=k)
    text = output_text(tmp_path)
    leaked = sorted(v for v in forbidden if v in text)
    assert leaked == []
    assert DATE.search(text) is None  # no exact date at all
    assert "1969" not in text  # not even the year of birth
    rows = read_rows(tmp_path, fmt)
    assert len(rows) == (2 if k == 1 else 0)  # one patient is a class of one: k=5 leaves nothing
    assert result.suppression.k == k


def test_every_value_is_a_pseudonym_code_count_month_or_band(tmp_path: Path) -> None:
    export_register([Version(identifying_document(), 1)], package(), KEY, tmp_path, k=1)
    (row,) = read_rows(tmp_path)
    assert list(row) == [f.name for f in FIELDS]
    allowed = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}|\d{4}-\d{2}|\d+-\d+|80\+|(male|female|other|unknown)"
                         r"|criterion-(met|not-met|unknown)|recorded|derived|feature-[a-z-]+|outcome-[a-z-]+"
                         r"|\d+(\.\d+)?|https?://[^|\s]+\|[A-Za-z0-9.\-]+")
    for key, value in strings(row):
        assert allowed.fullmatch(value), (key, value)


def test_a_recorded_assessment_gives_the_criteria_and_contacts_are_counted(tmp_path: Path) -> None:
    doc = identifying_document()
    patient_ref = doc["entry"][0]["resource"]["subject"]

    def coded(code: str) -> dict[str, Any]:
        return {"coding": [{"system": CONCEPTS_SYSTEM, "code": code}]}

    observation = {"resourceType": "Observation", "id": "assessment-1", "status": "final",
                   "code": coded("persistent-alk-assessment"), "subject": patient_ref,
                   "effectiveDateTime": "2026-11-20", "valueCodeableConcept": coded("criterion-met"),
                   "component": [
                       {"code": coded("criterion-1"), "valueCodeableConcept": coded("criterion-not-met")},
                       {"code": coded("criterion-2"), "valueCodeableConcept": coded("criterion-unknown")},
                       {"code": coded("criterion-3"), "valueCodeableConcept": coded("criterion-met")},
                       {"code": coded("feature-many-care-contacts"), "valueBoolean": True},
                       {"code": coded("not-a-feature Jan Jansen"), "valueBoolean": True}]}
    encounters = [{"resourceType": "Encounter", "id": f"enc-{i}", "status": "finished",
                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                   "subject": patient_ref, "period": {"start": f"2026-{month:02d}-03"}}
                  for i, month in enumerate((1, 4, 7, 10))] + [
        {"resourceType": "Encounter", "id": "enc-old", "status": "finished", "subject": patient_ref,
         "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
         "period": {"start": "2024-05-03"}}]
    doc["entry"] += [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in [observation, *encounters]]
    row = register_row(Version(doc, 1), package(), KEY)
    assert (row["criteria_source"], row["assessment"]) == ("recorded", "criterion-met")
    assert (row["criterion_1"], row["criterion_2"], row["criterion_3"]) == (
        "criterion-not-met", "criterion-unknown", "criterion-met")
    assert row["profile_features"] == ["feature-many-care-contacts"]  # the made-up code is not a feature
    assert row["care_contacts"] == 4


def test_row_of_the_example_document() -> None:
    row = register_row(Version(identifying_document(), 3), package(), KEY)
    assert row["pseudonym"] == hmac.new(KEY, f"bsn|{PATIENT_BSN}".encode(), hashlib.sha256).hexdigest()
    assert (row["version"], row["period"], row["age_band"], row["sex"]) == (3, "2026-11", "50-59", "male")
    assert row["alk_conditions"] == ["http://hl7.org/fhir/sid/icd-10|F45.4", "http://hl7.org/fhir/sid/icd-10|K58.0"]
    assert (row["criteria_source"], row["criterion_1"], row["assessment"]) == ("derived", "criterion-met",
                                                                               "criterion-met")
    assert (row["active_medication_count"], row["risk_medication_count"]) == (12, 5)
    assert (row["opioid_count"], row["benzodiazepine_count"]) == (2, 2)
    assert row["care_contacts"] is None  # the overview document carries no encounters
    assert row["psychiatric_comorbidity"] is True
    assert [t["outcome"] for t in row["treatments"]] == [f"{CONCEPTS_SYSTEM}|outcome-no-effect"] * 2
    assert row["gabapentinoid_count"] == 1
    assert f"{CONCEPTS_SYSTEM}|case-coordinator" in row["care_team_roles"]
    composition = identifying_document()["entry"][0]["resource"]
    filled = {c["code"] for s in composition["section"] if s.get("entry") for c in s["code"]["coding"]
              if c["system"] == GUIDELINE_SYSTEM}
    assert set(row["advice_sections"]) == filled and {"3.1", "3.3"} <= filled


def test_age_bands() -> None:
    from datetime import date

    on = date(2026, 11, 23)
    assert [age_band(date(y, m, d), on) for y, m, d in (
        (2009, 11, 24), (2008, 11, 23), (1997, 1, 1), (1996, 11, 23), (1946, 11, 24), (1946, 11, 23))] == [
        "0-17", "18-29", "18-29", "30-39", "70-79", "80+"]
    assert age_band(None, on) is None and age_band(date(2030, 1, 1), on) is None


# --- pseudonyms ----------------------------------------------------------------------------------

def test_pseudonym_is_stable_per_key_and_differs_across_keys(tmp_path: Path) -> None:
    doc = identifying_document()
    first = export_register([Version(doc, 1)], package(), KEY, tmp_path / "a", k=1).rows[0]
    again = export_register([Version(copy.deepcopy(doc), 1)], package(), KEY, tmp_path / "b", k=1).rows[0]
    other = export_register([Version(doc, 1)], package(), OTHER_KEY, tmp_path / "c", k=1).rows[0]
    assert first["pseudonym"] == again["pseudonym"] and first["document"] == again["document"]
    assert other["pseudonym"] != first["pseudonym"] and other["document"] != first["document"]
    assert first["pseudonym"] == pseudonym(KEY, PATIENT_BSN) == pseudonym(KEY, "9999 11156")
    assert pseudonym(KEY, "99991115") == pseudonym(KEY, "099991115")  # 8-digit BSN: leading zero restored
    assert pseudonym(KEY, PATIENT_BSN) != pseudonym(KEY, "999911168")
    assert re.fullmatch(r"[0-9a-f]{64}", first["pseudonym"])


def test_the_key_is_required_and_must_be_long_enough() -> None:
    with pytest.raises(RegisterKeyError, match=KEY_VARIABLE):
        register_key({})
    with pytest.raises(RegisterKeyError, match="too short"):
        register_key({KEY_VARIABLE: "short"})
    assert register_key({KEY_VARIABLE: KEY.decode()}) == KEY


# --- one row per patient per version, from the store ---------------------------------------------

def test_export_reads_every_stored_version(database_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = open_store(database_url)
    try:
        def put(doc: dict[str, Any]) -> None:
            ident = doc["identifier"]
            store.put_document(doc, identifier=(ident["system"], ident["value"]), author_org=GP_ORG,
                               recipients=[], patient_identifiers=[f"{BSN}|{PATIENT_BSN}"])

        put(identifying_document(T1))
        put(identifying_document(T2))  # another timestamp: a second version
        other = identifying_record()
        for entry in other["entry"]:
            if entry["resource"]["resourceType"] == "Patient":
                entry["resource"]["identifier"][0]["value"] = "999911120"
                entry["resource"]["birthDate"] = "1978-03-12"
                entry["resource"]["gender"] = "female"
        other_doc = build_overview(other, package(), today=TODAY, timestamp=T1, custodian=f"{URA}|90000101")
        other_doc["identifier"]["value"] = "urn:uuid:6f1c2a52-8d1e-4b7a-9c55-0e2f4d7a9b31"  # another record
        put(other_doc)
        versions = [Version(r.resource, r.version_id, r.last_updated) for r in store.document_versions()]
    finally:
        store.close()
    result = export_register(versions, package(), KEY, tmp_path / "out", k=1)
    per_patient = Counter(r["pseudonym"] for r in result.rows)
    assert sorted(per_patient.values()) == [1, 2]
    assert sorted((r["version"], r["sex"]) for r in result.rows) == [(1, "female"), (1, "male"), (2, "male")]


# --- k-anonymity ---------------------------------------------------------------------------------

def synthetic(patients: list[tuple[str, str | None, str, list[str]]]) -> list[dict[str, Any]]:
    """Rows: (pseudonym, age band, sex, [periods]) — one row per period."""
    return [{"pseudonym": p, "age_band": age, "sex": sex, "period": period, "version": i + 1}
            for p, age, sex, periods in patients for i, period in enumerate(periods)]


def classes(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], set[str]]:
    found: dict[tuple[Any, ...], set[str]] = {}
    for row in rows:
        found.setdefault(tuple(row[q] for q in QUASI_IDENTIFIERS), set()).add(row["pseudonym"])
    return found


def test_k_counts_patients_not_rows_and_generalises_in_order() -> None:
    rows = synthetic(
        [(f"a{i}", "40-49", "female", ["2026-01"]) for i in range(5)]  # a class of five: kept whole
        + [("b0", "40-49", "female", ["2026-02"] * 6)]  # six versions of one patient: still one person
        + [(f"c{i}", "60-69", "male", [f"2026-0{i + 1}"]) for i in range(5)]  # same age/sex, months differ
        + [("d0", "18-29", "other", ["2026-03"])])  # alone too
    out, report = k_anonymise(rows, 5)
    by_patient = {r["pseudonym"]: r for r in out}
    assert (by_patient["a0"]["period"], by_patient["a0"]["age_band"]) == ("2026-01", "40-49")
    assert by_patient["c0"]["period"] == "2026" and by_patient["c0"]["age_band"] == "60-69"  # month -> year
    assert all(len(patients) >= 5 for patients in patient_classes(out).values())
    assert report.rows_in == len(rows) and report.rows_out == len(out)
    # b0 and d0 are alone whatever is generalised (together they are two): left out with all their rows
    assert (report.dropped_patients, report.dropped_rows) == (2, 7) and "b0" not in by_patient
    assert report.generalised == {"period": 5} and report.cells == {} and report.patients == {}
    assert report.smallest_class is not None and report.smallest_class >= 5
    assert rows[0]["period"] == "2026-01" and rows[-1]["period"] == "2026-03"  # the input is not changed


def test_k_one_changes_nothing_and_too_few_patients_leave_nothing() -> None:
    rows = synthetic([(f"p{i}", "30-39", "female", ["2026-01"]) for i in range(3)])
    assert k_anonymise(rows, 1)[0] == rows
    out, report = k_anonymise(rows, 4)
    assert out == [] and report.dropped_rows == 3 and report.dropped_patients == 3
    with pytest.raises(ValueError):
        k_anonymise(rows, 0)


def test_nobody_is_left_out_while_others_still_join_their_class() -> None:
    """Two patients whose versions differ in sex (as two example records sharing a BSN do): the male
    class empties into the all-suppressed class a round before the female one follows."""
    rows = [{"pseudonym": p, "age_band": age, "sex": sex, "period": "2026-11"} for p, age, sex in (
        ("a", "50-59", "male"), ("b", "60-69", "female"), ("c", "40-49", "female"), ("d", "40-49", "female"),
        ("d", "50-59", "male"), ("e", "30-39", "female"), ("f", "70-79", "male"), ("g", "30-39", "male"),
        ("g", "30-39", "female"))]
    out, report = k_anonymise(rows, 5)
    assert report.dropped_patients == 0 and len(out) == 9
    assert {(r["age_band"], r["sex"], r["period"]) for r in out} == {(None, None, None)}
    assert report.cells == {"period": 9, "age_band": 9, "sex": 9}


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_every_published_class_has_k_patients(k: int) -> None:
    import random

    rng = random.Random(k)
    patients = [(f"p{i}", rng.choice(["18-29", "30-39", "40-49", "50-59", None]), rng.choice(["male", "female"]),
                 [f"2026-{rng.randint(1, 4):02d}" for _ in range(rng.randint(1, 3))]) for i in range(60)]
    out, report = k_anonymise(synthetic(patients), k)
    assert out and all(len(p) >= k for p in patient_classes(out).values())
    assert report.patients_out + report.dropped_patients == 60


# --- data dictionary ----------------------------------------------------------------------------

def test_data_dictionary_is_shipped_and_written_beside_the_export(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "src" / "alk_fhir" / "register" / "DATA-DICTIONARY.md"
    assert shipped.read_text(encoding="utf-8") == dictionary_markdown(), "regenerate DATA-DICTIONARY.md"
    export_register([Version(identifying_document(), 1)], package(), KEY, tmp_path, fmt="parquet", k=1)
    assert (tmp_path / "data-dictionary.md").read_text(encoding="utf-8") == dictionary_markdown()
    fields = json.loads((tmp_path / "data-dictionary.json").read_text(encoding="utf-8"))["fields"]
    assert [f["name"] for f in fields] == pq.read_table(tmp_path / "alk-register.parquet").schema.names
    assert [f for f in fields if f["quasi"]] and all(f["nl"] and f["en"] for f in fields)


# --- command line -------------------------------------------------------------------------------

def write(path: Path, body: Any) -> Path:
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_cli_refuses_without_a_key(tmp_path: Path) -> None:
    doc = write(tmp_path / "doc.json", identifying_document())
    result = CliRunner().invoke(main, ["register", "export", "--out", str(tmp_path / "out"), "--document", str(doc)],
                                env={KEY_VARIABLE: ""})
    assert result.exit_code != 0 and KEY_VARIABLE in result.output and "not set" in result.output
    assert not (tmp_path / "out").exists()


def test_cli_exports_files_and_reports_suppression(tmp_path: Path) -> None:
    docs = [write(tmp_path / "v1.json", identifying_document(T1)),
            write(tmp_path / "v2.json", identifying_document(T2))]
    args = ["register", "export", "--out", str(tmp_path / "out"), "--format", "parquet", "--k", "1",
            "--allow-small-k"]
    for doc in docs:
        args += ["--document", str(doc)]
    result = CliRunner().invoke(main, args, env={KEY_VARIABLE: KEY.decode()})
    assert result.exit_code == 0, result.output
    assert "2 rows, 1 patients (k=1)" in result.output
    assert len(read_rows(tmp_path / "out", "parquet")) == 2
    account = json.loads((tmp_path / "out" / "suppression.json").read_text(encoding="utf-8"))
    assert account["k"] == 1 and account["rowsOut"] == 2 and account["skippedVersions"] == {}

    default_k = CliRunner().invoke(main, ["register", "export", "--out", str(tmp_path / "out5"), "--document",
                                          str(docs[0])], env={KEY_VARIABLE: KEY.decode()})
    assert default_k.exit_code == 0 and "0 rows" in default_k.output and "k=5" in default_k.output


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not JSON"), (json.dumps({"resourceType": "Patient"}), "not a FHIR document Bundle")])
def test_cli_names_a_bad_document_file(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["register", "export", "--out", str(tmp_path / "out"), "--document", str(bad)],
                                env={KEY_VARIABLE: KEY.decode()})
    assert result.exit_code == 1 and str(bad) in result.output and message in result.output
    assert "Traceback" not in result.output


def test_cli_needs_an_existing_store_and_a_sensible_k(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sqlite3"
    result = CliRunner().invoke(main, ["register", "export", "--out", str(tmp_path / "out"),
                                       "--database-url", f"sqlite:///{missing}"], env={KEY_VARIABLE: KEY.decode()})
    assert result.exit_code == 1 and str(missing) in result.output and not missing.exists()
    zero = CliRunner().invoke(main, ["register", "export", "--out", str(tmp_path), "--k", "0"],
                              env={KEY_VARIABLE: KEY.decode()})
    assert zero.exit_code == 2 and "--k" in zero.output


def test_cli_skips_documents_without_bsn(tmp_path: Path) -> None:
    doc = identifying_document()
    for entry in doc["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["identifier"] = []
    path = write(tmp_path / "nobsn.json", doc)
    result = CliRunner().invoke(main, ["register", "export", "--out", str(tmp_path / "out"), "--k", "1",
                                       "--allow-small-k", "--document", str(path)], env={KEY_VARIABLE: KEY.decode()})
    assert result.exit_code == 0 and "1 no BSN" in result.output


def test_a_version_the_engine_cannot_read_is_counted_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alk_fhir.register import extract

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("Dirk Bos: boom")

    monkeypatch.setattr(extract, "build_context", broken)
    result = export_register([Version(identifying_document(), 1)], package(), KEY, tmp_path, k=1)
    assert result.rows == [] and result.skipped == Counter({"could not be evaluated": 1})
    assert "Dirk" not in output_text(tmp_path)  # the reason in the account is a fixed phrase
