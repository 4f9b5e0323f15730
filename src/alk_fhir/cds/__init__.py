"""CDS Hooks 2.0 service: discovery, hook calls answered with cards built by ``$apply``, feedback.

``routes.router`` is mounted by ``alk_fhir.api`` behind the CDS client JWT check; everything else
here is plain functions over FHIR JSON (see each module's docstring for the part of the
specification it follows).
"""

from alk_fhir.cds.cards import CardOptions, Catalog, build_cards, compile_catalog
from alk_fhir.cds.discovery import SERVICES, SERVICES_BY_ID, Service, discovery_document, templates_for
from alk_fhir.cds.errors import CdsError
from alk_fhir.cds.feedback import FeedbackSink, MemoryFeedbackSink, check_feedback
from alk_fhir.cds.prefetch import FetchError, FhirSource, HttpFhirSource, Resolved, resolve
from alk_fhir.cds.request import HookRequest, parse_hook_request
from alk_fhir.cds.routes import router
from alk_fhir.cds.state import CdsState, cds_state

__all__ = [
    "SERVICES",
    "SERVICES_BY_ID",
    "CardOptions",
    "Catalog",
    "CdsError",
    "CdsState",
    "FeedbackSink",
    "FetchError",
    "FhirSource",
    "HookRequest",
    "HttpFhirSource",
    "MemoryFeedbackSink",
    "Resolved",
    "Service",
    "build_cards",
    "cds_state",
    "check_feedback",
    "compile_catalog",
    "discovery_document",
    "parse_hook_request",
    "resolve",
    "router",
    "templates_for",
]
