"""Reasoning over time, status and content (issue 19): each point a small patient written as the
vignettes are, the seed sentence that decides it, and a one-change variant that flips the outcome.

- newer record evidence supersedes a criterion answer: the patient is "reassess" (§1.1 says what is new
  since the assessment of which date), never silent;
- a resolved ALK condition, or a successful treatment after the failures, takes the patient out of the
  pathway unless the clinician's newer answer says otherwise;
- "stuck" is read from the step plan's goals and steps, never from its age alone;
- the admission form counts by what it holds (goals and frame), and says what is missing;
- absence of psychiatric work-up is claimed only where the record could show it;
- coded psychiatric comorbidity is "possibly more than ALK" unless the clinician answers otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alk_fhir.apply import ApplyResult, Engine, run
from alk_fhir.apply.engine import _walk
from alk_fhir.context import compile_facts
from alk_fhir.knowledge import Package
from fixtures.vignettes import (
    CBT,
    IBS,
    ICD10NL,
    PHYSIO,
    SOMATIZATION,
    UNSUCCESSFUL,
    C,
    Vignette,
    _subject,
    cgt_with_rom,
    condition,
    consent,
    criteria,
    procedure,
    rom_score,
    sct,
    step_plan,
    wish_entry,
)
from test_facts import _comparable, _fhirpathpy_facts

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
TODAY = date(2026, 11, 23)
JSON = dict[str, Any]
TRIGGER = "https://alk-fhir.org/fhir/StructureDefinition/alk-trigger"
SUCCESSFUL = sct("385669000", "Successful")
HYPNO = {"coding": [{"system": C, "code": "treatment-hypnotherapy"}]}
GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"


def record(*resources: JSON) -> JSON:
    return Vignette("r", "", tuple(resources), frozenset()).record()


def apply(engine: Engine, *resources: JSON) -> ApplyResult:
    return run(engine, record(*resources), TODAY, practitioner={"reference": "Practitioner/gp"})


def actions(result: ApplyResult) -> set[str]:
    return {a["id"] for a in _walk(result.requestgroup.get("action", []))}


def triggers(result: ApplyResult, action_id: str) -> dict[str, JSON]:
    """The facts an applied action names as its trigger: value and the record's entries behind it."""
    action = next(a for a in _walk(result.requestgroup["action"]) if a["id"] == action_id)
    out = {}
    for ext in action.get("extension", []):
        assert ext["url"] == TRIGGER
        parts = ext["extension"]
        value: JSON = next((p for p in parts if p["url"] == "value"), {})
        out[next(p["valueString"] for p in parts if p["url"] == "fact")] = {
            "label": next(p["valueString"] for p in parts if p["url"] == "label"),
            "value": next((v for k, v in value.items() if k.startswith("value")), None),
            "evidence": sorted(p["valueReference"]["reference"] for p in parts if p["url"] == "evidence")}
    return out


def authored(form: JSON, when: str) -> JSON:
    return {**form, "authored": when}


def resolved(cond: JSON, abated: str | None = "2026-06-01") -> JSON:
    out = {**cond, "clinicalStatus": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]}}
    if abated:
        out["abatementDateTime"] = abated
    return out


def seeded(sentence: str) -> str:
    """The seed sentence, checked against ../shared/seeds when they are there."""
    if SEEDS.is_dir():
        text = " ".join(p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt"))
        plain = re.sub(r"\*|\[|\]\(#\)", "", " ".join(text.split()))
        assert sentence in plain, sentence
    return sentence


# ---------------------------------------------------------------- 1. resolved ALK, success after failures

TREATED_WELL = seeded("Ook patiënten met ernstige ALK kunnen vaak nog goed behandeld worden")
FAILED_THEN_SUCCESS = (procedure("cgt", CBT, "2024-03-01", UNSUCCESSFUL),
                       procedure("fysio", PHYSIO, "2025-03-01", UNSUCCESSFUL),
                       procedure("hypno", HYPNO, "2026-03-01", SUCCESSFUL))


def test_resolved_alk_after_a_successful_treatment_leaves_the_pathway(engine: Engine) -> None:
    """Older treatments failed, the newest succeeded and the condition is resolved: no §2–§4 and no
    §1.1 (TREATED_WELL), only the information that the pathway is not offered and why, though no criteria
    form was ever filled in (the resolved condition and the successful treatment, dated). One change, the
    same condition active again: the ALK is back, so §1.1 asks to assess the criteria (the failures are
    there), while the success still keeps §2 away."""
    out = apply(engine, resolved(SOMATIZATION), *FAILED_THEN_SUCCESS)
    assert actions(out) == {"alk-resolved"}, TREATED_WELL
    why = triggers(out, "alk-resolved")
    assert list(why) == ["outOfPathway"]
    assert why["outOfPathway"]["value"] == "2026-06-01"
    assert why["outOfPathway"]["evidence"] == ["Condition/som", "Procedure/hypno"]
    assert out.context.facts["persistenceStatus"] == "criterion-not-met"
    again = apply(engine, SOMATIZATION, *FAILED_THEN_SUCCESS)
    assert "screen-persistent-alk" in actions(again) and "persistent-alk" not in actions(again)
    assert again.context.facts["treatmentSucceededLast"] is True
    success = triggers(again, "screen-persistent-alk")["succeededAfterFailures"]  # the card says why no §2
    assert success["value"] == "2026-03-01" and success["evidence"] == ["Procedure/hypno"]


def test_resolution_alone_and_a_later_failure(engine: Engine) -> None:
    """Two failures and a resolved condition (no success recorded): out of the pathway. One change,
    the condition still active: criterion 1 from the record, the pathway (H §1.1)."""
    failures = FAILED_THEN_SUCCESS[:2]
    assert "persistent-alk" not in actions(apply(engine, resolved(SOMATIZATION), *failures))
    assert "persistent-alk" in actions(apply(engine, SOMATIZATION, *failures))
    # after the success the count starts again: one failure since is a reason to assess, two are criterion 1
    pmt = procedure("pmt", {"coding": [{"system": C, "code": "treatment-psychomotor"}]}, "2026-09-01", UNSUCCESSFUL)
    one_since = actions(apply(engine, SOMATIZATION, *FAILED_THEN_SUCCESS, pmt))
    assert "screen-persistent-alk" in one_since and "persistent-alk" not in one_since
    two_since = apply(engine, SOMATIZATION, *FAILED_THEN_SUCCESS, pmt,
                      procedure("cgt2", CBT, "2026-10-01", UNSUCCESSFUL))
    assert "persistent-alk" in actions(two_since)
    (crit1,) = [c for c in two_since.assessment.criteria if c.code == "criterion-1"]
    assert crit1.status == "criterion-met"


def test_the_clinicians_newer_answer_overrides_a_resolution(engine: Engine) -> None:
    """"unless the clinician's newer answer says otherwise": a form authored after the abatement that
    answers criterion 1 met keeps the pathway; the same form authored before it does not, and then §1.1
    says what is new since the assessment's date (the resolved condition)."""
    form = criteria(criterion_1="met")
    newer = apply(engine, resolved(SOMATIZATION), authored(form, "2026-09-01"))
    assert "persistent-alk" in actions(newer) and "screen-persistent-alk" not in actions(newer)
    older = apply(engine, resolved(SOMATIZATION), authored(form, "2026-01-15"))
    assert "persistent-alk" not in actions(older) and "screen-persistent-alk" in actions(older)
    why = triggers(older, "screen-persistent-alk")["reassess"]
    assert why["value"] == "2026-01-15" and why["evidence"] == ["Condition/som"]
    assert why["label"].startswith("Nieuw in het dossier sinds de beoordeling")
    # an undated resolution is the record's current status: newer than any form
    undated = apply(engine, resolved(SOMATIZATION, abated=None), authored(form, "2026-09-01"))
    assert "persistent-alk" not in actions(undated) and "screen-persistent-alk" in actions(undated)


# ---------------------------------------------------------------- 2. answers superseded by newer evidence

NO_EFFECT = seeded("Bovenstaande ALK-behandelingen geen effect hebben gehad")


def test_an_old_not_met_is_superseded_by_newer_failures(engine: Engine) -> None:
    """Criteria answered "not met" in 2023, two treatments without effect since (NO_EFFECT): reassess
    (§1.1, naming the date and the new entries) and the record decides (criterion 1 met). One change,
    the same failures dated before the form: the answer holds and nothing is offered."""
    form = authored(criteria(criterion_1="not-met", criterion_2="not-met", criterion_3="not-met"), "2023-01-10")
    since = apply(engine, SOMATIZATION, form, procedure("cgt", CBT, "2024-03-01", UNSUCCESSFUL),
                  procedure("fysio", PHYSIO, "2025-03-01", UNSUCCESSFUL))
    assert {"screen-persistent-alk", "persistent-alk"} <= actions(since), NO_EFFECT
    why = triggers(since, "screen-persistent-alk")["reassess"]
    assert why["value"] == "2023-01-10" and why["evidence"] == ["Procedure/cgt", "Procedure/fysio"]
    assert since.context.facts["criterion1"] is True and since.context.facts["criterion1Superseded"] is True
    # the assessment cites the record's entries first, the superseded answer last
    (crit1,) = [c for c in since.assessment.criteria if c.code == "criterion-1"]
    assert crit1.status == "criterion-met" and crit1.superseded
    assert [e["reference"] for e in crit1.evidence] == [
        "Procedure/cgt", "Procedure/fysio", "QuestionnaireResponse/qr-criteria"]
    assert since.observation["status"] == "preliminary"  # interim until the clinician reassesses
    before = apply(engine, SOMATIZATION, form, procedure("cgt", CBT, "2021-03-01", UNSUCCESSFUL),
                   procedure("fysio", PHYSIO, "2022-03-01", UNSUCCESSFUL))
    assert actions(before) == set()
    assert before.context.facts["persistenceStatus"] == "criterion-not-met"
    assert before.observation["status"] == "final"


def test_an_old_met_is_superseded_by_a_newer_success(engine: Engine) -> None:
    """Criterion 1 answered met in 2024, a successful treatment since (TREATED_WELL): out of the pathway and
    §1.1 says why. One change, a treatment without effect since instead: the answer is confirmed, no
    reassessment, the pathway stays."""
    form = authored(criteria(criterion_1="met"), "2024-06-01")
    success = apply(engine, SOMATIZATION, form, procedure("hypno", HYPNO, "2025-05-01", SUCCESSFUL))
    assert "persistent-alk" not in actions(success) and "screen-persistent-alk" in actions(success)
    assert triggers(success, "screen-persistent-alk")["reassess"]["evidence"] == ["Procedure/hypno"]
    failure = apply(engine, SOMATIZATION, form, procedure("hypno", HYPNO, "2025-05-01", UNSUCCESSFUL))
    assert "persistent-alk" in actions(failure) and "screen-persistent-alk" not in actions(failure)
    assert failure.context.facts["reassess"] is False


def test_a_recorded_assessment_counts_until_a_newer_outcome(engine: Engine) -> None:
    """A recorded assessment (criterion not met) silences §1.1 only until a treatment outcome newer than
    it appears."""
    observation = {"resourceType": "Observation", "id": "assessed", "status": "final", "subject": _subject(),
                   "code": {"coding": [{"system": C, "code": "persistent-alk-assessment"}]},
                   "effectiveDateTime": "2025-01-01",
                   "valueCodeableConcept": {"coding": [{"system": C, "code": "criterion-not-met"}]}}
    older = procedure("fysio", PHYSIO, "2024-03-01", UNSUCCESSFUL)
    assert "screen-persistent-alk" not in actions(apply(engine, SOMATIZATION, observation, older))
    newer = procedure("fysio", PHYSIO, "2025-09-01", UNSUCCESSFUL)
    assert "screen-persistent-alk" in actions(apply(engine, SOMATIZATION, observation, newer))


# ---------------------------------------------------------------- 3. progress is read, not assumed

WEEKS_TO_MONTHS = seeded("Soms kost het nu eenmaal weken tot maanden om tot een volgende stap te kunnen komen.")
NOTHING_WORKS = seeded("Niets uit deze handreiking lijkt te lukken of tot iets te leiden")


def goal(gid: str, achievement: str) -> JSON:
    return {"resourceType": "Goal", "id": gid, "lifecycleStatus": "active", "subject": _subject(),
            "description": {"text": "Dagelijks een korte wandeling"},
            "achievementStatus": {"coding": [{"system": GOAL_ACHIEVEMENT, "code": achievement}]}}


def plan(*, goals: tuple[str, ...] = (), steps: tuple[str, ...] = (), since: str = "2024-11-01") -> JSON:
    out = step_plan(since)
    if goals:
        out["goal"] = [{"reference": f"Goal/{g}"} for g in goals]
    if steps:
        out["activity"] = [{"detail": {"status": s, "description": f"stap {i}"}} for i, s in enumerate(steps, 1)]
    return out


PERSISTENT_WITH_CONSENT = (SOMATIZATION, criteria(criterion_1="met"), consent())


def test_a_long_plan_that_progresses_is_not_stuck(engine: Engine) -> None:
    """Two years of a step plan whose steps are completed and whose goal improves: no chapter 4
    (WEEKS_TO_MONTHS). One change, the goal shows no progress and the steps were stopped: nothing seems
    to work (NOTHING_WORKS), so chapter 4 and the TOPGGz consultation."""
    going = apply(engine, *PERSISTENT_WITH_CONSENT, plan(goals=("g",), steps=("completed", "completed")),
                  goal("g", "improving"))
    assert not {"nothing-works", "consult-topggz"} & actions(going), WEEKS_TO_MONTHS
    stopped = apply(engine, *PERSISTENT_WITH_CONSENT, plan(goals=("g",), steps=("stopped", "not-started")),
                    goal("g", "no-progress"))
    assert {"nothing-works", "consult-topggz"} <= actions(stopped), NOTHING_WORKS
    why = triggers(stopped, "consult-topggz")["stuck"]
    assert why["evidence"] == ["CarePlan/plan", "Goal/g"]


def test_time_alone_never_makes_a_plan_stuck(engine: Engine) -> None:
    """A plan in place for two years with no goals or steps recorded says nothing about progress: not
    stuck. One change, the same plan only three months old with its goal not progressing: still too early
    (weeks to months per step)."""
    assert "nothing-works" not in actions(apply(engine, *PERSISTENT_WITH_CONSENT, plan()))
    young = apply(engine, *PERSISTENT_WITH_CONSENT, plan(goals=("g",), since="2026-09-01"), goal("g", "no-progress"))
    assert "nothing-works" not in actions(young)
    old = apply(engine, *PERSISTENT_WITH_CONSENT, plan(goals=("g",)), goal("g", "no-progress"))
    assert "nothing-works" in actions(old)
    # the clinician's "no" in the form wins over the record
    answered = apply(engine, SOMATIZATION, criteria(criterion_1="met", nothing_works=False), consent(),
                     plan(goals=("g",)), goal("g", "no-progress"))
    assert "nothing-works" not in actions(answered)


# ---------------------------------------------------------------- 4. a form counts by what it says

FRAME_AND_GOALS = seeded("Kaders en doelen dienen bij een opname altijd zeer helder geformuleerd te worden "
                         "alvorens opname plaatsvindt.")


def admission_form(**answers: Any) -> JSON:
    items = []
    for link, value in answers.items():
        answer = {"valueBoolean": value} if isinstance(value, bool) else {"valueString": value}
        items.append({"linkId": link, "answer": [answer]})
    return {"resourceType": "QuestionnaireResponse", "id": "qr-admission", "status": "completed",
            "questionnaire": "https://alk-fhir.org/fhir/Questionnaire/alk-admission-goals", "authored": "2026-11-10",
            "subject": _subject(), "item": items}


def test_an_admission_form_without_goals_and_frame_does_not_count(engine: Engine) -> None:
    """Admission considered and an admission form holding only "crisis: yes": §4.1 stays and names what
    is missing (FRAME_AND_GOALS). One change, goals and frame filled in: §4.1 is done."""
    considered = (SOMATIZATION, criteria(criterion_1="met", admission_considered=True))
    crisis = apply(engine, *considered, admission_form(crisis=True))
    assert "admission" in actions(crisis), FRAME_AND_GOALS
    missing = triggers(crisis, "admission")
    assert {"admissionGoalsMissing", "admissionFrameMissing"} <= set(missing)
    assert missing["admissionGoalsMissing"]["evidence"] == ["QuestionnaireResponse/qr-admission"]
    complete = apply(engine, *considered, admission_form(
        goals="Activatie in kleine stappen", frame="Zes weken, planbaar, weekenden thuis", crisis=False))
    assert "admission" not in actions(complete)
    goals_only = apply(engine, *considered, admission_form(goals="Activatie in kleine stappen"))
    assert set(triggers(goals_only, "admission")) >= {"admissionFrameMissing"}
    assert "admissionGoalsMissing" not in triggers(goals_only, "admission")


def test_an_admission_form_in_the_record_means_an_admission_is_considered(engine: Engine) -> None:
    """The admission form itself says an admission is being considered, unless the clinician answered no."""
    assert "admission" in actions(apply(engine, SOMATIZATION, criteria(criterion_1="met"),
                                        admission_form(crisis=True)))
    assert "admission" not in actions(apply(engine, SOMATIZATION, criteria(criterion_1="met",
                                                                           admission_considered=False),
                                            admission_form(crisis=True)))


# ---------------------------------------------------------------- 5. absence only where the record could show it

LIST_PSYCHIATRIC = seeded("Zet de verrichte psychiatrische diagnostiek op een rij en ga na of deze zorgvuldig "
                          "verricht is.")
PSYCHIATRY_VISIT = {"resourceType": "Encounter", "id": "psy-visit", "status": "finished", "subject": _subject(),
                    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                    "serviceType": {"text": "Polikliniek psychiatrie"}, "period": {"start": "2025-04-01"}}
PSYCHIATRIC_EXAM = procedure("psy-exam", {"text": "Psychiatrisch onderzoek"}, "2025-04-01")


def test_no_absence_claimed_where_entries_are_only_text(engine: Engine) -> None:
    """A psychiatry visit and a psychiatric examination recorded only as text: the advice does not say that
    no psychiatric work-up is known; it says it was not found in coded data and names the two entries
    (LIST_PSYCHIATRIC). One change, without those entries: absence is claimed."""
    persistent = (SOMATIZATION, criteria(criterion_1="met"))
    text_only = apply(engine, *persistent, PSYCHIATRY_VISIT, PSYCHIATRIC_EXAM)
    assert "consider-psychiatric-diagnostics" not in actions(text_only), LIST_PSYCHIATRIC
    assert "psychiatric-diagnostics-uncoded" in actions(text_only)
    why = triggers(text_only, "psychiatric-diagnostics-uncoded")["psychiatricWorkupUnknown"]
    assert why["value"] == 2 and why["evidence"] == ["Encounter/psy-visit", "Procedure/psy-exam"]
    assert why["label"].startswith("Niet gevonden in gecodeerde gegevens")
    absent = apply(engine, *persistent)
    assert "consider-psychiatric-diagnostics" in actions(absent)
    assert "psychiatric-diagnostics-uncoded" not in actions(absent)


def test_coded_entries_of_a_known_kind_do_not_block_the_claim(engine: Engine) -> None:
    """A laboratory report (category LAB) named only in text is somatic by its category: it cannot hold
    psychiatric work-up, so absence is still claimed; a class-only GP contact neither."""
    lab = {"resourceType": "DiagnosticReport", "id": "lab", "status": "final", "subject": _subject(),
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
           "code": {"text": "Bloedbeeld"}, "effectiveDateTime": "2026-01-10"}
    visit = {**PSYCHIATRY_VISIT, "id": "gp-visit"}
    visit.pop("serviceType")
    out = apply(engine, SOMATIZATION, criteria(criterion_1="met"), lab, visit)
    assert "consider-psychiatric-diagnostics" in actions(out)


COORDINATOR = seeded("Het allerbelangrijkste is dat één zorgverlener zich")


def team(role: JSON) -> JSON:
    return {"resourceType": "CareTeam", "id": "team", "status": "active", "subject": _subject(),
            "participant": [{"role": [role], "member": {"display": "J. de Vries"}}]}


def test_no_coordinator_absence_claimed_where_roles_are_only_text(engine: Engine) -> None:
    """A care team whose member's role is only text ("casusregisseur"): the urgent "no case coordinator yet"
    is not claimed; the advice asks to check the roles (COORDINATOR). One change, the role coded as a GP:
    the codes show no coordinator, so the urgent advice stands."""
    persistent = (SOMATIZATION, criteria(criterion_1="met"))
    text_only = apply(engine, *persistent, team({"text": "casusregisseur"}))
    assert "case-coordinator" not in actions(text_only) and "case-coordinator-uncoded" in actions(text_only)
    assert triggers(text_only, "case-coordinator-uncoded")["coordinatorUnknown"]["evidence"] == ["CareTeam/team"]
    coded = apply(engine, *persistent, team(sct("62247001", "Family medicine specialist")))
    assert "case-coordinator" in actions(coded) and "case-coordinator-uncoded" not in actions(coded)


# ---------------------------------------------------------------- 6. possibly more than ALK

MORE_THAN_ALK = seeded("voor vastgelopen behandelingen, waarbij er mogelijk meer speelt dan alleen hardnekkige ALK")
PERSONALITY = condition("pd", ICD10NL, "F60.3", "Emotioneel instabiele persoonlijkheidsstoornis")
ALCOHOL = condition("alc", ICD10NL, "F10.2", "Alcoholafhankelijkheid")


@pytest.mark.parametrize("finding", [PERSONALITY, ALCOHOL], ids=["personality", "addiction"])
def test_psychiatric_comorbidity_in_the_record_is_possibly_more(engine: Engine, finding: JSON) -> None:
    """A stuck treatment with consent and a personality disorder or addiction in the record: possibly more
    than ALK, so the CCE (MORE_THAN_ALK), citing the record's condition. One change, the clinician answers
    "no" to "more than ALK": the answer decides, no CCE."""
    stuck = criteria(criterion_1="met", nothing_works=True)
    out = apply(engine, SOMATIZATION, stuck, consent(), finding)
    assert "consult-cce" in actions(out), MORE_THAN_ALK
    why = triggers(out, "consult-cce")["moreThanAlk"]
    assert why["label"] == "Mogelijk meer dan hardnekkige ALK" and why["evidence"] == [f"Condition/{finding['id']}"]
    answered = apply(engine, SOMATIZATION, criteria(criterion_1="met", nothing_works=True, more_than_alk=False),
                     consent(), finding)
    assert "consult-cce" not in actions(answered) and "consult-topggz" in actions(answered)
    assert "consult-cce" not in actions(apply(engine, SOMATIZATION, stuck, consent()))


def test_a_psychiatric_condition_recorded_after_the_forms_no_is_newest(engine: Engine) -> None:
    """The form says "no more than ALK" (2026-11-01); a personality disorder is recorded after it
    (2026-11-15): the newest wins, so possibly more (CCE, MORE_THAN_ALK) citing the condition, and §1.1
    asks to reassess, naming what is new since the assessment's date. One change, the condition recorded
    before the form: the clinician's answer holds, no CCE and nothing to reassess."""
    stuck_no = criteria(criterion_1="met", nothing_works=True, more_than_alk=False)
    newer = apply(engine, SOMATIZATION, stuck_no, consent(), {**PERSONALITY, "recordedDate": "2026-11-15"})
    assert {"consult-cce", "screen-persistent-alk"} <= actions(newer), MORE_THAN_ALK
    assert triggers(newer, "consult-cce")["moreThanAlk"]["evidence"] == ["Condition/pd"]
    why = triggers(newer, "screen-persistent-alk")["reassess"]
    assert why["value"] == "2026-11-01" and why["evidence"] == ["Condition/pd"]
    assert newer.observation["status"] == "preliminary"
    older = apply(engine, SOMATIZATION, stuck_no, consent(), {**PERSONALITY, "recordedDate": "2026-10-01"})
    assert not {"consult-cce", "screen-persistent-alk"} & actions(older)
    assert older.context.facts["reassess"] is False and older.context.facts["moreThanAlk"] is False
    # without a recorded date, the onset dates the condition
    onset = apply(engine, SOMATIZATION, stuck_no, consent(), {**ALCOHOL, "onsetDateTime": "2026-11-20"})
    assert "consult-cce" in actions(onset)


WISH = seeded("Expertisecentrum Euthanasie als er een duurzame doodswens speelt n.a.v. de hardnekkige ALK")


@pytest.mark.parametrize("form_says", [False, True], ids=["form-no", "form-yes"])
def test_a_wish_to_die_entry_newer_than_the_form_reopens_it(engine: Engine, form_says: bool) -> None:
    """The record says otherwise about the wish to die than the form did, after it (a wish after "no", a
    denial after "yes"): the newest wins, so the wish is to be assessed again, with what is new since the
    assessment's date; no consultation of the Euthanasia Expertise Centre on a single newer entry (WISH:
    "duurzame"). One change, the entry dated before the form: the form's answer holds."""
    form = criteria(criterion_1="met", nothing_works=True, wish_to_die=form_says)
    newer = apply(engine, SOMATIZATION, form, consent(), wish_entry("2026-11-15", present=not form_says))
    assert "wish-to-die-assess" in actions(newer), WISH
    assert "consult-euthanasia-expertise" not in actions(newer)
    why = triggers(newer, "wish-to-die-assess")["wishToDieSuperseded"]
    assert why["value"] == "2026-11-01" and why["evidence"] == ["Observation/wish-2026-11-15"]
    assert why["label"].startswith("Doodswens: nieuw in het dossier sinds de beoordeling")
    assert newer.context.facts["wishToDie"] is False
    older = apply(engine, SOMATIZATION, form, consent(), wish_entry("2026-10-01", present=not form_says))
    assert "wish-to-die-assess" not in actions(older)
    assert ("consult-euthanasia-expertise" in actions(older)) is form_says


def test_a_wish_to_die_only_in_the_record_is_never_silent(engine: Engine) -> None:
    """A wish to die recorded in the record while the form does not answer it: to be assessed, naming the
    entry (WISH). One change, the newest entry denies it: nothing to assess."""
    form = criteria(criterion_1="met")
    wish = apply(engine, SOMATIZATION, form, wish_entry("2026-10-01"))
    why = triggers(wish, "wish-to-die-assess")
    assert list(why) == ["wishToDieInRecord"] and why["wishToDieInRecord"]["evidence"] == [
        "Observation/wish-2026-10-01"]
    denied = apply(engine, SOMATIZATION, form, wish_entry("2026-10-01"), wish_entry("2026-11-10", present=False))
    assert "wish-to-die-assess" not in actions(denied)


# ---------------------------------------------------------------- 7. the newest word on consent

CONSENT = seeded("afhankelijk van of de patiënt hier toestemming voor geeft")


def refusal(when: str) -> JSON:
    return {**consent(), "id": "refusal", "dateTime": when, "provision": {"type": "deny"}}


def test_a_refusal_newer_than_the_forms_yes_withdraws_consent(engine: Engine) -> None:
    """The form says yes (2026-11-01), a refusing Consent follows (2026-11-15): no consultation, the
    consent step instead (CONSENT). One change, the refusal dated before the form: the form's yes holds."""
    form = criteria(criterion_1="met", nothing_works=True, consent_consultation=True)
    withdrawn = actions(apply(engine, SOMATIZATION, form, refusal("2026-11-15")))
    assert "consultation-consent-needed" in withdrawn and "consult-topggz" not in withdrawn, CONSENT
    earlier = actions(apply(engine, SOMATIZATION, form, refusal("2026-10-01")))
    assert "consult-topggz" in earlier and "consultation-consent-needed" not in earlier
    # the form's "no" newer than a permitting Consent is the newest word too
    said_no = criteria(criterion_1="met", nothing_works=True, consent_consultation=False)
    permit = {**consent(), "dateTime": "2026-06-01"}
    assert "consultation-consent-needed" in actions(apply(engine, SOMATIZATION, said_no, permit))
    assert "consult-topggz" in actions(apply(engine, SOMATIZATION, authored(said_no, "2026-01-01"), permit))


# ---------------------------------------------------------------- 8. outcomes from a pre and a post measurement

WORSENS = seeded("De klachten steeds verder uitbreiden of het functioneren verslechtert ondanks of tijdens een "
                 "evidence-based ALK-behandeling.")
CGT_ROM = "Procedure/cgt-rom"


def outcome_lists(result: ApplyResult) -> dict[str, list[str]]:
    names = ("effectiveTreatments", "worsenedTreatments", "noClearChangeTreatments", "uncodedOutcomeTreatments")
    return {name: [r["reference"] for r in result.context.evidence(name)] for name in names}


@pytest.mark.parametrize(("pre", "post", "outcome"), [
    (18, 10, "effectiveTreatments"), (18, 15, "effectiveTreatments"), (18, 16, "noClearChangeTreatments"),
    (12, 17, "worsenedTreatments"), (12, 15, "worsenedTreatments"), (12, 13, "noClearChangeTreatments"),
    (12, 12, "noClearChangeTreatments")])
def test_a_change_between_pre_and_post_is_the_treatments_outcome(engine: Engine, pre: float, post: float,
                                                                 outcome: str) -> None:
    """PHQ-15 (LOINC 70273-8, higher = more symptoms) before and after a CBT course without a recorded outcome:
    a fall of at least the Library's clear change (3 points here) is an effect, a rise of as much a worsening
    (WORSENS), anything smaller no clear change: unknown and named, never a success or a failure."""
    out = apply(engine, SOMATIZATION, *cgt_with_rom(pre, post))
    lists = outcome_lists(out)
    assert [name for name, refs in lists.items() if CGT_ROM in refs and name != "uncodedOutcomeTreatments"] == [outcome]
    assert (CGT_ROM in lists["uncodedOutcomeTreatments"]) is (outcome == "noClearChangeTreatments")
    crit2 = out.context.facts["criterion2Record"]
    assert (crit2 if crit2 in (True, False) else None) is (True if outcome == "worsenedTreatments" else
                                                           False if outcome == "effectiveTreatments" else None)


def test_only_linked_scores_of_a_known_instrument_count(engine: Engine) -> None:
    """Scores count only when they are partOf/focus the treatment and their code names an instrument the
    package has a threshold for; the first and the last score make the pair (not any two)."""
    cgt, pre, post = cgt_with_rom(12, 17)
    loose = [{k: v for k, v in obs.items() if k != "partOf"} for obs in (pre, post)]
    assert outcome_lists(apply(engine, SOMATIZATION, cgt, *loose))["worsenedTreatments"] == []
    unknown_code = [{**obs, "code": {"text": "SCL-90 totaalscore"}} for obs in (pre, post)]
    assert outcome_lists(apply(engine, SOMATIZATION, cgt, *unknown_code))["worsenedTreatments"] == []
    middle = rom_score("phq-mid", "cgt-rom", "2025-12-01", 25)  # 12 -> 25 -> 13: first and last differ by 1
    lists = outcome_lists(apply(engine, SOMATIZATION, *cgt_with_rom(12, 13), middle))
    assert CGT_ROM in lists["noClearChangeTreatments"] and lists["worsenedTreatments"] == []


def test_the_card_names_a_treatment_without_clear_change(engine: Engine) -> None:
    """One failed treatment and a CBT course whose PHQ-15 rose by one point: §1.1 asks to assess, and its card
    names the course as no clear change with the scores (nothing left out silently)."""
    from alk_fhir.cds.cards import CardOptions, build_cards, compile_catalog

    physio = procedure("fysio", PHYSIO, "2024-06-30", UNSUCCESSFUL)
    out = apply(engine, SOMATIZATION, physio, *cgt_with_rom(12, 13))
    assert "screen-persistent-alk" in actions(out) and "persistent-alk" not in actions(out), WORSENS
    (card,) = [c for c in build_cards(out, compile_catalog(engine), CardOptions(lang="nl", hook_instance="x"))
               if c["summary"].startswith("Mogelijk hardnekkige ALK")]
    named = "Cognitive and behavioral therapy (2025-09-01): geen duidelijke verandering (PHQ-15 12 → 13)"
    assert named in card["detail"]
    assert "hier: bij de PHQ-15 (0–30, hoger = meer lichamelijke klachten) is een verschil van 3" in card["detail"]
    # the number is said only where this record reaches it: not for the same patient without ROM pairs
    plain = apply(engine, SOMATIZATION, physio, procedure("cgt", CBT, "2025-09-01", UNSUCCESSFUL))
    (other,) = [c for c in build_cards(plain, compile_catalog(engine), CardOptions(lang="nl", hook_instance="x"))
                if c["summary"].startswith("Mogelijk hardnekkige ALK") or c["summary"].startswith("Hardnekkige ALK")]
    assert "PHQ-15" not in other["detail"]
    worse = apply(engine, SOMATIZATION, physio, *cgt_with_rom(12, 17))
    assert "persistent-alk" in actions(worse)


@pytest.mark.parametrize(("pre", "post", "said", "not_said"), [
    (18, 10, "Effectief (meting)", "Geen duidelijke verandering"),
    (18, 16, "Geen duidelijke verandering (meting)", "Effectief")])
def test_the_overview_says_the_measured_outcome(package: Package, pre: float, post: float, said: str,
                                                not_said: str) -> None:
    """The overview's treatment line is the engine's fact: a clear fall is an effect "(meting)", a change
    below the threshold "geen duidelijke verandering (meting): uitkomst onbekend"."""
    from alk_fhir.overview import build_overview

    practice = {"resourceType": "Organization", "id": "gp", "name": "Huisartsenpraktijk"}
    document = build_overview(record(SOMATIZATION, practice, *cgt_with_rom(pre, post)), package, today=TODAY,
                              timestamp="2026-11-23T12:00:00Z", custodian="Organization/gp")
    sections = {s["code"]["coding"][0]["code"]: s for s in document["entry"][0]["resource"]["section"]}
    text = sections["overview-treatments"]["text"]["div"]
    assert said in text and not_said not in text


def test_the_clear_change_is_the_librarys_number(engine: Engine, tmp_path: Path) -> None:
    """The threshold is an operationalisation of Library alk-facts (romClearChangePhq15, "hier: …"): set to 1,
    the same one-point rise is a worsening and criterion 2 is met."""
    import json
    import shutil

    from alk_fhir.apply import load_engine
    from alk_fhir.knowledge import load_package

    copy = tmp_path / "profiles"
    shutil.copytree(Path(__file__).resolve().parents[1] / "profiles", copy)
    lib = json.loads((copy / "Library-alk-facts.json").read_text(encoding="utf-8"))
    (param,) = [p for p in lib["parameter"] if p["name"] == "romClearChangePhq15"]
    assert any(e["url"].endswith("alk-operationalisation") for e in param["extension"])
    for ext in param["extension"]:
        if ext["url"].endswith("cqf-expression"):
            ext["valueExpression"]["expression"] = "1"
    (copy / "Library-alk-facts.json").write_text(json.dumps(lib, ensure_ascii=False), encoding="utf-8")
    records = (SOMATIZATION, *cgt_with_rom(12, 13))
    assert "persistent-alk" not in actions(apply(engine, *records))  # no clear change: unknown, assess
    strict = run(load_engine(load_package(copy)), record(*records), TODAY)
    assert "persistent-alk" in actions(strict) and strict.context.facts["criterion2Record"] is True


# ---------------------------------------------------------------- both engines agree on these records

RECORDS: dict[str, Callable[[], tuple[JSON, ...]]] = {
    "resolved": lambda: (resolved(SOMATIZATION), *FAILED_THEN_SUCCESS),
    "active-again": lambda: (SOMATIZATION, *FAILED_THEN_SUCCESS),
    "older-form": lambda: (resolved(SOMATIZATION), authored(criteria(criterion_1="met"), "2026-01-15")),
    "superseded": lambda: (SOMATIZATION, authored(criteria(criterion_1="not-met"), "2023-01-10"),
                           procedure("cgt", CBT, "2024-03-01", UNSUCCESSFUL),
                           procedure("fysio", PHYSIO, "2025-03-01", UNSUCCESSFUL)),
    "plan": lambda: (*PERSISTENT_WITH_CONSENT, plan(goals=("g",), steps=("stopped",)), goal("g", "no-progress")),
    "admission": lambda: (SOMATIZATION, criteria(criterion_1="met"), admission_form(goals="Activatie")),
    "text-only": lambda: (SOMATIZATION, criteria(criterion_1="met"), PSYCHIATRY_VISIT, PSYCHIATRIC_EXAM),
    "more": lambda: (SOMATIZATION, criteria(criterion_1="met", nothing_works=True), consent(), PERSONALITY, IBS),
    "relapse": lambda: (SOMATIZATION, *FAILED_THEN_SUCCESS, procedure("cgt2", CBT, "2026-10-01", UNSUCCESSFUL)),
    "more-newer": lambda: (SOMATIZATION, criteria(criterion_1="met", more_than_alk=False),
                           {**PERSONALITY, "recordedDate": "2026-11-15"}),
    "wish-newer": lambda: (SOMATIZATION, criteria(criterion_1="met", wish_to_die=False), wish_entry("2026-11-15")),
    "wish-only": lambda: (SOMATIZATION, wish_entry("2026-10-01"), wish_entry("2026-09-01", present=False)),
    "rom-better": lambda: (SOMATIZATION, *FAILED_THEN_SUCCESS[:2], *cgt_with_rom(18, 10)),
    "rom-unclear": lambda: (SOMATIZATION, *cgt_with_rom(12, 13, link="focus"),
                            rom_score("phq-mid", "cgt-rom", "2025-12-01", 25, link="focus")),
    "rom-worse": lambda: (SOMATIZATION, *cgt_with_rom(12, 17)),
    "refusal": lambda: (SOMATIZATION, criteria(criterion_1="met", consent_consultation=True), refusal("2026-11-15"),
                        {**consent(), "dateTime": "2026-06-01"}),
}


@pytest.mark.parametrize("name", list(RECORDS))
def test_both_engines_agree_on_the_new_facts(package: Package, name: str) -> None:
    data = record(*RECORDS[name]())
    from alk_fhir.context import build_context

    fast = build_context(data, package, TODAY).facts
    reference = _fhirpathpy_facts(package, data)
    for fact in compile_facts(package).facts:
        if fact.name == "profileFeatureCount":  # fhirpathpy's union of typed and plain values (test_facts)
            continue
        got = fast[fact.name]
        assert _comparable(got if isinstance(got, list) else [got]) == _comparable(reference[fact.name]), fact.name
