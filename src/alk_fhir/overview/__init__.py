"""The shared case overview (Handreiking §2.2, §2.5, §3.1–§3.3, §4.3) as a FHIR document.

    doc = build_overview(record, pkg, today=date.today(), recipient="http://fhir.nl/fhir/NamingSystem/ura|…")
    html = render_html(doc, pkg)
    changes = diff_overviews(old_doc, new_doc, pkg)      # .to_text() / .to_json()
    newer = add_step(doc, pkg, description=…, start=…, performer="Organization/…", goal=…)

Imports only ``context`` and ``knowledge`` (architecture.md); the consent gate lives here because
building *for* an exchange is where it first applies, and ``exchange``/``cli`` reuse it.
"""

from alk_fhir.overview.build import OverviewError, build_overview, overview_identifiers
from alk_fhir.overview.consent import (
    ConsentRefused,
    find_exchange_consent,
    require_exchange_consent,
    sharing_parties,
)
from alk_fhir.overview.diff import OverviewDiff, diff_overviews
from alk_fhir.overview.document import (
    DocumentError,
    author_orgs,
    composition_of,
    custodian_orgs,
    document_context,
    patient_identifiers,
)
from alk_fhir.overview.edit import add_step, refresh_narratives, revise
from alk_fhir.overview.render import render_html
from alk_fhir.overview.sections import DOCUMENT_PROFILE, PROFILE, SectionSpec, section_specs

__all__ = [
    "DOCUMENT_PROFILE",
    "PROFILE",
    "ConsentRefused",
    "DocumentError",
    "OverviewDiff",
    "OverviewError",
    "SectionSpec",
    "add_step",
    "author_orgs",
    "build_overview",
    "composition_of",
    "custodian_orgs",
    "diff_overviews",
    "document_context",
    "find_exchange_consent",
    "overview_identifiers",
    "patient_identifiers",
    "refresh_narratives",
    "render_html",
    "require_exchange_consent",
    "revise",
    "section_specs",
    "sharing_parties",
]
