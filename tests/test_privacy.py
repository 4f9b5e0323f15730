"""Issue 22: the learning loop keeps no one identifiable. Each test plants a name and a BSN where an
attacker or a careless client would (a diagnosis code, a section code, feedback text, a card id) and
fails if either leaves: into the register, the store, the report or a card uuid.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from alk_fhir.cli import main
from alk_fhir.knowledge import CONCEPTS_SYSTEM, GUIDELINE_SYSTEM, Package
from alk_fhir.knowledge.valuesets import valid_code
from alk_fhir.register import (
    KEY_VARIABLE,
    RegisterKeyError,
    Version,
    export_register,
    k_anonymise,
    key_problem,
    new_key,
    patient_classes,
    register_key,
)
from alk_fhir.register.anonymity import WIDE_AGE_BANDS
from alk_fhir.register.export import OutputDirectoryError
from alk_fhir.report import Labels, build_report, render
from alk_fhir.store import Retention, open_store
from alk_fhir.store.learning import FeedbackFact, ShownCount
from alk_fhir.validation import Validator, build_validator
from fixtures.overview.kit import BSN, GP_ORG, PATIENT_BSN, T1, T2
from test_register import KEY, identifying_document, output_text
from test_store import database_url  # noqa: F401 (the fixture: SQLite, and PostgreSQL when configured)

NAME = "Jan Pietersen"
PLANTED_BSN = "123456782"
PLANTED = f"{NAME} {PLANTED_BSN}"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICPC = "http://hl7.org/fhir/sid/icpc-1-nl"
CONDITIONS = "https://alk-fhir.org/fhir/ValueSet/alk-conditions"


def leaked(text: str) -> list[str]:
    return [s for s in ("Jan", "Pietersen", PLANTED_BSN) if s in text]


# --- 1, 2: codes are codes ------------------------------------------------------------------------

@pytest.mark.parametrize(("system", "code", "member"), [
    (ICD10, "K58.0", True), (ICD10, "K58", True), ("http://hl7.org/fhir/sid/icd-10-nl", "K58.9", True),
    (ICPC, "P75", True), (ICPC, "P75.01", True), ("urn:oid:2.16.840.1.113883.2.4.4.31.1", "D93", True),
    (ICD10, f"K58 {PLANTED}", False), (ICD10, f"K58.{PLANTED_BSN}", False), (ICD10, "K58.0 ", False),
    (ICPC, f"P75 {NAME}", False), (ICPC, "P75.001", False), (ICPC, "P75x", False),
    ("urn:oid:2.16.840.1.113883.2.4.4.31.1", f"D93{PLANTED_BSN}", False),
])
def test_membership_needs_the_code_systems_syntax(package: Package, system: str, code: str, member: bool) -> None:
    assert package.terminology.contains(CONDITIONS, system, code) is member
    assert package.terminology.member(CONDITIONS, system, code) is member


def test_code_syntax_of_atc_icd10_icpc() -> None:
    atc = "http://www.whocc.no/atc"
    assert all(valid_code(atc, c) for c in ("N", "N02", "N02A", "N02AA", "N02AA01"))
    assert not any(valid_code(atc, c) for c in ("N02AA01 Jan", "N2", "N02AA1", "n02aa01", ""))
    assert valid_code("http://snomed.info/sct", "anything at all")  # no syntax rule: checked otherwise
    assert not valid_code(ICPC, "Q75")  # no ICPC chapter Q


def planted_document() -> dict[str, Any]:
    """The example overview with the name and BSN typed into an ICD-10 code and a section code."""
    doc = identifying_document()
    conditions = [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Condition"
                  and any(c.get("code") == "K58.0" for c in e["resource"]["code"]["coding"])]
    assert conditions
    for coding in conditions[0]["code"]["coding"]:
        if coding.get("code") == "K58.0":
            coding["code"] = f"K58 {PLANTED}"
    composition = doc["entry"][0]["resource"]
    filled = next(s for s in composition["section"] if s.get("entry"))
    filled["code"]["coding"].append({"system": GUIDELINE_SYSTEM, "code": f"1.1 {PLANTED}"})
    return doc


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_a_name_in_a_code_or_section_never_reaches_the_register(tmp_path: Path, fmt: str) -> None:
    result = export_register([Version(planted_document(), 1)], identifying_document.__globals__["package"](), KEY,
                             tmp_path / "out", fmt=fmt, k=1)
    assert leaked(output_text(tmp_path / "out")) == []
    (row,) = result.rows
    assert row["alk_conditions"] == [f"{ICD10}|F45.4"]  # the planted "K58 …" is no code, so no condition
    assert all(" " not in s for s in row["advice_sections"])
    account = json.loads((tmp_path / "out" / "suppression.json").read_text(encoding="utf-8"))
    assert account["droppedCodes"] == {"malformed code": 1, "unknown guideline section": 1}


@pytest.fixture(scope="module")
def validator(package: Package, core_dir: Path) -> Validator:
    return build_validator(package, core_dir)


def test_the_validator_calls_free_text_in_a_code_an_error(validator: Validator) -> None:
    clean = validator.validate(identifying_document())
    assert not [i for i in clean["issue"] if i["severity"] == "error"]
    outcome = validator.validate(planted_document())
    errors = [i for i in outcome["issue"] if i["severity"] == "error"]
    assert any(i["code"] == "code-invalid" and "does not have the code system's syntax" in i["diagnostics"]
               and f"K58 {PLANTED}" in i["diagnostics"] for i in errors)
    assert any(f"1.1 {PLANTED}" in i["diagnostics"] for i in errors)  # the section code is no guideline code


def test_a_partner_cannot_store_a_document_with_a_name_in_a_code(tmp_path: Path) -> None:
    from test_overview_api import bearer, gp_document, post, running

    doc = gp_document()
    coded = [c for e in doc["entry"] for c in (e["resource"].get("code") or {}).get("coding", [])
             if c.get("system") == ICD10]
    assert coded
    coded[0]["code"] = f"{coded[0]['code'][:3]} {PLANTED}"
    with running(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite3'}") as env:
        response = post(env, doc, bearer(env, "gp"))
        assert response.status_code == 422 and "syntax" in response.text
        assert list(env.store.document_versions()) == []
    assert leaked(database_text(tmp_path / "store.sqlite3")) == []  # nor in the audit of the refusal


def test_the_store_refuses_a_document_with_a_name_in_a_code(database_url: str) -> None:  # noqa: F811
    from alk_fhir.store import InvalidRecord

    doc = planted_document()
    ident = doc["identifier"]
    store = open_store(database_url)
    try:
        with pytest.raises(InvalidRecord, match="syntax") as refused:
            store.put_document(doc, identifier=(ident["system"], ident["value"]), author_org=GP_ORG,
                               recipients=[], patient_identifiers=[f"{BSN}|{PATIENT_BSN}"])
        assert leaked(str(refused.value)) == []  # the refusal does not repeat the text either
        assert list(store.document_versions()) == []
    finally:
        store.close()


# --- 3: k per patient, across linked rows -----------------------------------------------------------

def test_linked_rows_cannot_single_out_a_patient() -> None:
    """Two versions of one woman's overview, each row in a group of six, form a pair no one else has
    (and her age band changing between the two months narrows her birthday to a month). Counted per
    row she is hidden; counted per patient she is not, so she must be generalised."""
    rows = ([{"pseudonym": f"a{i}", "period": "2026-01", "age_band": "40-49", "sex": "female"} for i in range(5)]
            + [{"pseudonym": f"b{i}", "period": "2026-02", "age_band": "50-59", "sex": "female"} for i in range(5)]
            + [{"pseudonym": "her", "period": "2026-01", "age_band": "40-49", "sex": "female"},
               {"pseudonym": "her", "period": "2026-02", "age_band": "50-59", "sex": "female"}])
    per_row: dict[tuple[Any, ...], set[str]] = {}
    for row in rows:
        per_row.setdefault((row["period"], row["age_band"], row["sex"]), set()).add(row["pseudonym"])
    assert all(len(p) >= 5 for p in per_row.values())  # the premise: row by row, nobody stands out

    out, report = k_anonymise(rows, 5)
    assert all(len(p) >= 5 for p in patient_classes(out).values())

    # the attacker knows both her visits: month and age band each time; who in the export fits both?
    def fits(published: dict[str, Any], known: dict[str, Any]) -> bool:  # null, a year, a wide band all fit
        return all(published[q] in (None, known[q], str(known[q])[:4], WIDE_AGE_BANDS.get(known[q]))
                   for q in ("period", "age_band", "sex"))
    visits = [r for r in rows if r["pseudonym"] == "her"]
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for row in out:
        by_patient.setdefault(row["pseudonym"], []).append(row)
    candidates = [p for p, published in by_patient.items()
                  if all(any(fits(r, v) for r in published) for v in visits)]
    assert "her" not in by_patient or len(candidates) >= 5
    assert report.generalised or report.cells or report.dropped_patients


def test_rare_diagnosis_codes_are_generalised_not_published_for_few_patients() -> None:
    """Five patients share F45.4; four have F45.1 and one F45.0 (codes that point at them): those five
    are published together under the category F45, in the year, not the month."""
    codes = [f"{ICD10}|F45.4"] * 5 + [f"{ICD10}|F45.1"] * 4 + [f"{ICD10}|F45.0"]
    rows = [{"pseudonym": f"p{i}", "period": "2026-03", "age_band": "30-39", "sex": "male",
             "alk_conditions": [code], "advice_sections": ["3.1"]} for i, code in enumerate(codes)]
    out, report = k_anonymise(rows, 5)
    published = {tuple(r["alk_conditions"] or ()) for r in out}
    assert published == {(f"{ICD10}|F45.4",), (f"{ICD10}|F45",)}
    assert all(len(p) >= 5 for p in patient_classes(out).values()) and report.dropped_patients == 0
    assert report.generalised == {"period": 5, "alk_conditions": 5}


# --- 4: keys ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["a" * 64, "0" * 64, "passwordpassword" * 3, "0123456789abcdef" * 3,
                                 "Correct-Horse-Battery-Staple-2024", "welkom01welkom02welkom03welkom04",
                                 "correcthorsebatterystaplecorrecthorse", "1a2b3c4d" * 5])
def test_guessable_keys_are_refused(key: str) -> None:
    assert key_problem(key) is not None
    with pytest.raises(RegisterKeyError, match="guessable"):
        register_key({KEY_VARIABLE: key})


def test_register_key_makes_a_key_the_export_accepts() -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["register", "key"])
    second = runner.invoke(main, ["register", "key"])
    assert first.exit_code == 0 and second.exit_code == 0
    made = first.stdout.strip()
    assert len(made) == 64 and int(made, 16) >= 0 and made != second.stdout.strip()
    assert register_key({KEY_VARIABLE: made}) == made.encode()
    assert all(key_problem(new_key()) is None for _ in range(200))


def test_the_cli_refuses_a_guessable_key(tmp_path: Path) -> None:
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(identifying_document()), encoding="utf-8")
    result = CliRunner().invoke(main, ["register", "export", "--out", str(tmp_path / "out"), "--document",
                                       str(doc)], env={KEY_VARIABLE: "passwordpassword" * 3})
    assert result.exit_code == 1 and "guessable" in result.output and "register key" in result.output
    assert not (tmp_path / "out").exists()


# --- 5: the output directory --------------------------------------------------------------------

def test_an_old_k1_file_never_stays_beside_a_k5_account(tmp_path: Path, package: Package) -> None:
    out = tmp_path / "out"
    export_register([Version(identifying_document(), 1)], package, KEY, out, fmt="parquet", k=1)
    with pytest.raises(OutputDirectoryError, match="not empty"):
        export_register([Version(identifying_document(), 1)], package, KEY, out, fmt="ndjson", k=5)
    assert (out / "alk-register.parquet").exists()  # refused: nothing changed
    export_register([Version(identifying_document(), 1)], package, KEY, out, fmt="ndjson", k=5, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["alk-register.ndjson", "data-dictionary.json",
                                                     "data-dictionary.md", "suppression.json"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())


def test_symlinks_are_never_followed(tmp_path: Path, package: Package) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "alk-register.ndjson").symlink_to(victim)
    with pytest.raises(OutputDirectoryError):
        export_register([Version(identifying_document(), 1)], package, KEY, out, k=1)
    export_register([Version(identifying_document(), 1)], package, KEY, out, k=1, force=True)
    assert victim.read_text(encoding="utf-8") == "untouched"
    assert not (out / "alk-register.ndjson").is_symlink()
    linked = tmp_path / "linked"
    linked.symlink_to(out, target_is_directory=True)
    with pytest.raises(OutputDirectoryError, match="symbolic link"):
        export_register([Version(identifying_document(), 1)], package, KEY, linked, k=1, force=True)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    with pytest.raises(OutputDirectoryError, match="holds directories"):
        export_register([Version(identifying_document(), 1)], package, KEY, tree, k=1, force=True)
    assert (tree / "sub").is_dir()


def test_a_small_k_needs_allow_small_k(tmp_path: Path) -> None:
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps(identifying_document()), encoding="utf-8")
    env = {KEY_VARIABLE: KEY.decode()}
    args = ["register", "export", "--document", str(doc), "--k", "1"]
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")], env=env)
    assert refused.exit_code == 2 and "--allow-small-k" in refused.output and not (tmp_path / "a").exists()
    allowed = CliRunner().invoke(main, [*args, "--allow-small-k", "--out", str(tmp_path / "b")], env=env)
    assert allowed.exit_code == 0 and "warning: --k 1 is below 5" in allowed.output
    again = CliRunner().invoke(main, [*args, "--allow-small-k", "--out", str(tmp_path / "b")], env=env)
    assert again.exit_code == 1 and "not empty" in again.output and "--force" in again.output


# --- 6: feedback keeps codes, not text; retention and purge ----------------------------------------

def planted_feedback() -> list[dict[str, Any]]:
    return [
        {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-03T14:27:31+01:00",
         "overrideReason": {"reason": {"system": CONCEPTS_SYSTEM, "code": "override-not-now",
                                       "display": f"Niet nu, {NAME}"}, "userComment": f"Patiënt {PLANTED}"}},
        {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-03T14:28:00Z",
         "overrideReason": {"reason": {"system": f"https://ehr.example/{PLANTED_BSN}", "code": NAME,
                                       "display": PLANTED}}},
        {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2026-11-03T14:29:00Z",
         "overrideReason": {"reason": {"system": CONCEPTS_SYSTEM, "code": PLANTED}}},
        {"card": PLANTED, "outcome": "accepted", "outcomeTimestamp": "2026-11-03T14:30:00Z",
         "acceptedSuggestions": [{"id": NAME}]},
    ]


def database_text(path: Path) -> str:
    with sqlite3.connect(path) as db:
        tables = [t for (t,) in db.execute("select name from sqlite_master where type='table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f'select * from "{t}"'))


def test_feedback_keeps_reason_code_and_outcome_only(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = open_store(f"sqlite:///{path}")
    try:
        store.save_feedback_items("alk-patient-view", planted_feedback())
        records = store.list_feedback("alk-patient-view")
        facts = store.feedback_facts()
    finally:
        store.close()
    assert leaked(database_text(path)) == []
    assert "14:2" not in database_text(path)  # no time of day
    assert [r.outcome_timestamp for r in records] == ["2026-11-03"] * 4
    assert [(f.reason_code, f.commented) for f in facts] == [
        ("override-not-now", True), ("other", False), ("other", False), (None, False)]
    assert records[3].card == "not-a-uuid"


def test_free_text_only_with_a_retention_and_purged_after_it(database_url: str) -> None:  # noqa: F811
    store = open_store(database_url, Retention(comment_days=30))
    try:
        store.save_feedback_items("alk-patient-view", planted_feedback()[:2])
        kept = json.dumps([r.item for r in store.list_feedback("alk-patient-view")], ensure_ascii=False)
        assert f"Patiënt {PLANTED}" in kept and f"https://ehr.example/{PLANTED_BSN}" in kept
        assert store.purge().comments == 0  # within 30 days: kept
        result = store.purge(now=datetime.now(UTC) + timedelta(days=31))
        assert result.comments == 2
        first, second = store.list_feedback("alk-patient-view")
        assert first.item["overrideReason"] == {"reason": {"system": CONCEPTS_SYSTEM, "code": "override-not-now"},
                                                "commented": True}
        assert second.item["overrideReason"] == {"reason": {"code": "other"}}
        assert leaked(json.dumps([first.item, second.item])) == []
        assert store.purge(now=datetime.now(UTC) + timedelta(days=32)).comments == 0  # nothing left to strip
    finally:
        store.close()


def test_feedback_stored_verbatim_before_is_reduced_by_the_purge(database_url: str) -> None:  # noqa: F811
    from alk_fhir.store.db import run_write
    from alk_fhir.store.models import CdsFeedback

    store = open_store(database_url)
    try:
        item = planted_feedback()[0]
        run_write(store.engine, lambda s: s.add(CdsFeedback(  # as the store kept it before issue 22
            service_id="alk-patient-view", card=item["card"], outcome="overridden",
            outcome_timestamp=item["outcomeTimestamp"], item=item,
            received_at=datetime(2026, 11, 3, 13, 27, 40, tzinfo=UTC))))
        assert store.purge(now=datetime(2026, 11, 10, tzinfo=UTC)).reduced == 1
        (record,) = store.list_feedback("alk-patient-view")
        assert leaked(json.dumps(record.item)) == [] and record.outcome_timestamp == "2026-11-03"
        assert (record.received_at.hour, record.received_at.minute) == (0, 0)
        assert record.item["overrideReason"]["commented"] is True
        assert store.purge(now=datetime(2026, 11, 10, tzinfo=UTC)).reduced == 0
    finally:
        store.close()


def test_purge_removes_old_feedback_shown_cards_and_superseded_versions(database_url: str) -> None:  # noqa: F811
    store = open_store(database_url, Retention(feedback_days=30, shown_months=2, version_days=10))
    try:
        def put(timestamp: str) -> Any:
            doc = identifying_document(timestamp)
            ident = doc["identifier"]
            return store.put_document(doc, identifier=(ident["system"], ident["value"]), author_org=GP_ORG,
                                      recipients=[], patient_identifiers=[f"{BSN}|{PATIENT_BSN}"])

        first, second = put(T1), put(T2)
        assert second.version_id == 2
        store.save_feedback("alk-patient-view", planted_feedback()[3])
        now = datetime.now(UTC)
        months = [f"{d.year:04d}-{d.month:02d}" for d in (now - timedelta(days=365), now - timedelta(days=20), now)]
        store.save_shown_cards([{"service_id": "alk-patient-view", "card": str(uuid.uuid4()), "section": "3.1",
                                 "action_id": None, "month": month} for month in months])
        first_purge = store.purge(now=now)  # only the shown month a year ago is older than two months
        assert (first_purge.feedback, first_purge.shown, first_purge.versions) == (0, 1, 0)
        result = store.purge(now=now + timedelta(days=400))
        assert (result.feedback, result.versions) == (1, 1)
        assert result.shown == 2  # the other two months are now more than 2 months old
        assert store.list_feedback("alk-patient-view") == []
        assert [d.version_id for d in store.history(first.id)] == [2]  # the current version stays
        assert store.get_document(first.id) is not None
    finally:
        store.close()


def test_store_purge_command(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = open_store(f"sqlite:///{path}")
    store.save_shown_cards([{"service_id": "s", "card": str(uuid.uuid4()), "section": None, "action_id": None,
                             "month": "2001-01"}])
    store.close()
    result = CliRunner().invoke(main, ["store", "purge", "--database-url", f"sqlite:///{path}"],
                                env={"ALK_FHIR_RETENTION_SHOWN_MONTHS": "12"})
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["removed"]["shown"] == 1 and body["retention"]["shown_months"] == 12
    bad = CliRunner().invoke(main, ["store", "purge", "--database-url", f"sqlite:///{path}"],
                             env={"ALK_FHIR_RETENTION_SHOWN_MONTHS": "zero"})
    assert bad.exit_code == 1 and "ALK_FHIR_RETENTION_SHOWN_MONTHS" in bad.output
    missing = CliRunner().invoke(main, ["store", "purge", "--database-url", f"sqlite:///{tmp_path / 'no.db'}"])
    assert missing.exit_code == 1 and "no such database" in missing.output


# --- 7: small report cells; card uuids ------------------------------------------------------------

def test_report_cells_below_five_are_shown_as_less_than_five() -> None:
    shown = [ShownCount("2026-11", "3.1", "a", 3), ShownCount("2026-11", "3.3", "b", 12)]
    facts = [FeedbackFact("2026-11", "accepted", "3.1", "a", None, None, False)] + [
        FeedbackFact("2026-11", "accepted", "3.3", "b", None, None, False)] * 6
    report = build_report(shown, facts, Labels())
    as_json = json.loads(render(report, "json"))
    rows = {r["action"]: r for r in as_json["rows"]}
    assert (rows["a"]["shown"], rows["a"]["accepted"]) == ("<5", "<5")
    assert (rows["b"]["shown"], rows["b"]["accepted"]) == (12, 6)
    csv_text = render(report, "csv")
    assert ",<5,<5," in csv_text and ",12,6," in csv_text
    html = render(report, "html")
    assert "&lt;5" in html and ">3<" not in html and ">1<" not in html
    assert "33 %" not in html and "50 %" in html  # no rate from a small cell


def test_card_uuids_cannot_be_derived_from_the_hook_instance(package: Package) -> None:
    from alk_fhir.cds.cards import _NAMESPACE, CardOptions, _uuid
    from alk_fhir.fhir import uuid5_text

    hook = str(uuid.uuid4())
    made = _uuid(CardOptions(lang="nl", hook_instance=hook), "action-1")
    assert made == _uuid(CardOptions(lang="nl", hook_instance=hook), "action-1")  # stable for one call
    assert made != uuid5_text(_NAMESPACE, f"{hook}|action-1")  # the old, public rule
    code = "from alk_fhir.cds.cards import UUID_SALT; print(UUID_SALT)"
    salts = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ}).stdout.strip() for _ in range(2)}
    assert len(salts) == 2 and all(len(s) == 64 for s in salts)  # a new secret per process


def test_nothing_planted_in_a_cds_call_reaches_the_shown_cards(tmp_path: Path) -> None:
    """Feedback and a hook call through the service, with the name and BSN in every free field."""
    from fastapi.testclient import TestClient

    from alk_fhir.api.app import create_app
    from alk_fhir.config import REPO_ROOT, Settings

    path = tmp_path / "store.sqlite3"
    app = create_app(Settings(database_url=f"sqlite:///{path}", cds_auth="off"))
    body = json.loads((REPO_ROOT / "examples" / "hooks" / "patient-view-care-team-coordinator.json")
                      .read_text(encoding="utf-8"))
    body = copy.deepcopy(body)
    body["context"]["userId"] = f"Practitioner/{PLANTED_BSN}"
    with TestClient(app) as client:
        cards = client.post("/cds-services/alk-patient-view", json=body).json()["cards"]
        assert cards
        feedback = planted_feedback()
        feedback[0]["card"] = cards[0]["uuid"]
        assert client.post("/cds-services/alk-patient-view/feedback", json={"feedback": feedback}).status_code == 200
        assert app.state.cds_shown.flush()
    app.state.store.close()
    text = database_text(path)
    assert leaked(text) == [] and body["hookInstance"] not in text
    assert cards[0]["uuid"] in text  # the card and its feedback are linked, by the uuid only


def test_the_service_purges_at_start_up(tmp_path: Path) -> None:
    from alk_fhir.api.app import create_app
    from alk_fhir.config import Settings

    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    store = open_store(url)
    store.save_shown_cards([{"service_id": "s", "card": str(uuid.uuid4()), "section": None, "action_id": None,
                             "month": month} for month in ("2001-01", f"{datetime.now(UTC):%Y-%m}")])
    store.close()
    app = create_app(Settings(database_url=url, cds_auth="off", retention_shown_months=12))
    try:
        assert sum(c.count for c in app.state.store.shown_counts()) == 1  # 2001-01 is gone, this month stays
        assert app.state.store.retention.shown_months == 12
    finally:
        app.state.store.close()
