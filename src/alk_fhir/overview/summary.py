"""What a colleague reads first in the case overview: the summary in the Composition's narrative.

The ten sections say what the record holds; the colleague who receives the overview also needs
what the sender concluded from it and what is asked: the persistent-ALK conclusion with each
criterion and its evidence, the features of the profile sketch (Profielschets), a lasting wish to
die where the record or form holds one, the patient's consent to consultation (the fact
``consentConsultation`` of Library alk-facts, the same fact the app's results view shows), the
question to the colleague and how to reach the sender. Every judgement is the assessment's
(``alk_fhir.criteria.assess``, facts of the Library); this module only words it in Dutch, in the
Composition.text that FHIR documents attest together with the sections (documents.html: "the
narrative of the Composition and its sections").
"""

from __future__ import annotations

import re
from typing import Any

from alk_fhir.context import PatientContext
from alk_fhir.context.fhirdata import JSON
from alk_fhir.criteria.assess import MET, UNKNOWN, assess
from alk_fhir.knowledge import CONCEPTS_SYSTEM, Package
from alk_fhir.overview.narrative import esc
from alk_fhir.overview.text import concept_text, human_name, nl_date, reference_text

SUMMARY_CLASS = "alk-summary"  # render.py shows this part of Composition.text under the header
SHOWN = 4  # evidence entries per criterion before "en n meer"


def _display(pkg: Package, code: str) -> str:
    return pkg.terminology.display(CONCEPTS_SYSTEM, code) or code


def _entry(ctx: PatientContext, pkg: Package, ref: JSON) -> str:
    """One evidence entry in words, with its date; never an id."""
    res = ctx.resolve(ref)
    if res is None:
        return ""
    kind = res.get("resourceType")
    if kind == "QuestionnaireResponse":
        return f"antwoord in de vragenlijst van {nl_date(str(res.get('authored') or ''))[:10]}".strip()
    if kind == "Procedure":
        when = nl_date(res.get("performedDateTime")) or nl_date((res.get("performedPeriod") or {}).get("start"))
        outcome = concept_text(res.get("outcome"), pkg)
        return ", ".join(b for b in (concept_text(res.get("code"), pkg) or "behandeling", when, outcome) if b)
    if kind == "Condition":
        return ", ".join(b for b in (concept_text(res.get("code")), nl_date(res.get("onsetDateTime"))) if b)
    if kind == "Encounter":
        kind_text = concept_text((res.get("type") or [None])[0]) or "contact"
        return f"{kind_text} {nl_date((res.get('period') or {}).get('start'))}".strip()
    if kind in ("MedicationStatement", "MedicationRequest"):
        medication = ctx.resolve(res.get("medicationReference")) or {}
        concept = res.get("medicationCodeableConcept") or medication.get("code")
        return concept_text(concept) or "geneesmiddel"
    if kind == "Consent":
        return f"toestemmingsverklaring van {nl_date(res.get('dateTime'))}".strip()
    return concept_text(res.get("code")) or reference_text(ctx, ref)


def _entries(ctx: PatientContext, pkg: Package, refs: list[JSON]) -> str:
    texts = list(dict.fromkeys(t for t in (_entry(ctx, pkg, r) for r in refs) if t))
    if not texts:
        return "—"
    more = len(texts) - SHOWN
    return "; ".join(texts[:SHOWN]) + (f"; en {more} meer" if more > 0 else "")


def conclusion_text(criteria: list[Any], assessed: bool) -> str:
    """'criterium 2 en 3 voldaan' (as the app's results view says it)."""
    met = [m.group(1) for c in criteria if c.status == MET and (m := re.search(r"(\d+)$", c.code))]
    if met:
        listed = met[0] if len(met) == 1 else f"{', '.join(met[:-1])} en {met[-1]}"
        return f"criterium {listed} voldaan"
    if not assessed:
        return "nog niet beoordeeld (de criteria zijn nog niet ingevuld)"
    if all(c.status != UNKNOWN for c in criteria):
        return "geen criterium voldaan"
    return "nog niet vastgesteld"


def _yes_no(value: Any) -> str:
    return "ja" if value is True else "nee" if value is False else "niet vastgelegd"


def contact_line(ctx: PatientContext, writer: JSON | None, holder: JSON | None, contact: str | None) -> str:
    """Who sent it and how to reach them: the author, the organisation, their phone/e-mail/address."""
    bits = [human_name(writer)] if writer is not None and writer is not holder else []
    if holder is not None:
        bits.append(human_name(holder))
    if contact:
        bits.append(contact)
    for res in (writer, holder):
        for point in (res or {}).get("telecom") or []:
            if isinstance(point, dict) and point.get("value"):
                label = {"phone": "tel.", "email": "e-mail", "fax": "fax"}.get(str(point.get("system")), "")
                bits.append(f"{label} {point['value']}".strip())
    if len(bits) <= 2 and holder is not None:
        for address in holder.get("address") or []:
            if isinstance(address, dict):
                line = ", ".join(str(x) for x in [*(address.get("line") or []), address.get("city")] if x)
                if line:
                    bits.append(line)
                    break
    return ", ".join(dict.fromkeys(b for b in bits if b))


def summary_html(ctx: PatientContext, pkg: Package, *, question: str | None = None, contact: str | None = None,
                 writer: JSON | None = None, holder: JSON | None = None) -> str:
    """The summary as an XHTML fragment (a div of class ``alk-summary``) for Composition.text."""
    assessment = assess(ctx, pkg)
    facts = ctx.facts
    response = assessment.questionnaire
    parts = ['<h2>Samenvatting voor de collega</h2>',
             f"<p><b>Conclusie hardnekkige ALK:</b> {esc(conclusion_text(assessment.criteria, response is not None))}"
             f" (beoordeeld op {esc(nl_date(ctx.today.isoformat()))}; Handreiking §1.1).</p>"]
    rows = "".join(f"<tr><td>{esc(_display(pkg, c.code))}</td><td>{esc(_display(pkg, c.status))}</td>"
                   f"<td>{esc(_entries(ctx, pkg, c.evidence + c.unknown))}</td></tr>" for c in assessment.criteria)
    parts.append(f"<table><thead><tr><th>Criterium</th><th>Status</th><th>Onderbouwing</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table>")
    if assessment.features:
        items = "".join(f"<li>{esc(_display(pkg, code))} ({esc(_entries(ctx, pkg, refs))})</li>"
                        for code, refs in sorted(assessment.features.items()))
        parts.append(f"<p><b>Profielschets, aanvullende kenmerken:</b></p><ul>{items}</ul>")
    else:
        parts.append("<p><b>Profielschets, aanvullende kenmerken:</b> geen vastgesteld.</p>")
    answers = [{"reference": f"QuestionnaireResponse/{response['id']}"}] if response and response.get("id") else []
    if facts.get("wishToDie") is True:
        source = f" ({esc(_entries(ctx, pkg, answers))})" if answers else ""
        parts.append(f'<p class="alert"><b>Let op: duurzame doodswens</b> vastgelegd{source}; '
                     "consultatie bij het Expertisecentrum Euthanasie is mogelijk met toestemming van de patiënt "
                     "(Handreiking §4.3).</p>")
    consent = facts.get("consentConsultation")
    consent_refs = ctx.evidence("consultationConsents")
    if consent is True and not consent_refs:
        consent_refs = answers
    parts.append(f"<p><b>Toestemming van de patiënt voor consultatie:</b> {esc(_yes_no(consent))}"
                 + (f" ({esc(_entries(ctx, pkg, consent_refs))})" if consent_refs else "") + ".</p>")
    asked = (question or "").strip()
    parts.append(f"<p><b>Vraag aan de collega:</b> {esc(asked) if asked else 'geen vraag gesteld.'}</p>")
    line = contact_line(ctx, writer, holder, contact)
    parts.append(f"<p><b>Contact afzender:</b> {esc(line or 'niet vastgelegd')}</p>")
    return f'<div class="{SUMMARY_CLASS}">{"".join(parts)}</div>'


def consent_sentence(ctx: PatientContext) -> str | None:
    """The consultations section's sentence when it holds no entries but the consent fact is known,
    so that the section and the summary say the same (None: keep the section's own sentence)."""
    consent = ctx.facts.get("consentConsultation")
    if consent is None:
        return None
    return (f"Geen consultaties gevraagd. Toestemming van de patiënt voor consultatie: {_yes_no(consent)} "
            "(Handreiking §4.3).")
