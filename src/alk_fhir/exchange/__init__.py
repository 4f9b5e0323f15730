"""Sending and fetching case-overview documents over plain FHIR R4 REST, with SMART Backend Services."""

from __future__ import annotations

from alk_fhir.exchange.backend_services import BackendServicesAuth, public_jwk
from alk_fhir.exchange.client import FhirClient, SendResult
from alk_fhir.exchange.errors import ExchangeError
from alk_fhir.exchange.provenance import document_provenance
from alk_fhir.exchange.retry import RetryPolicy
from alk_fhir.fhir import document_identifier

__all__ = [
    "BackendServicesAuth",
    "ExchangeError",
    "FhirClient",
    "RetryPolicy",
    "SendResult",
    "document_identifier",
    "document_provenance",
    "public_jwk",
]
