"""FHIR plumbing every face shares: id and reference patterns, OperationOutcome, the one JSON body
reader, the URL transport rule and the document identifier (architecture.md, module ``fhir``).

One helper for one job: a face that needs one of these imports it from here, never writes its own.
"""

from __future__ import annotations

from alk_fhir.fhir.body import (
    BIG_BODY,
    MAX_BODY,
    MAX_DEPTH,
    MAX_VALUES,
    BodyError,
    BodyGate,
    dump_json,
    holds_big_body,
    parse_json,
    read_body,
    read_json,
    run_body_work,
    shallow_enough,
)
from alk_fhir.fhir.document import document_identifier
from alk_fhir.fhir.ids import (
    FHIR_ID,
    ID_SCHEMA_PATTERN,
    REFERENCE,
    RELATIVE_REFERENCE,
    RESOURCE_TYPE,
    Reference,
    parse_reference,
    reference_schema_pattern,
    uuid5_from_sha1,
    uuid5_text,
)
from alk_fhir.fhir.outcome import FHIR_JSON, OUTCOME_SYSTEM, issue_code, operation_outcome, outcome_details
from alk_fhir.fhir.transport import LOOPBACK_HOSTS, is_secure_transport, require_secure_transport

__all__ = [
    "BIG_BODY",
    "FHIR_ID",
    "FHIR_JSON",
    "ID_SCHEMA_PATTERN",
    "LOOPBACK_HOSTS",
    "MAX_BODY",
    "MAX_DEPTH",
    "MAX_VALUES",
    "OUTCOME_SYSTEM",
    "REFERENCE",
    "RELATIVE_REFERENCE",
    "RESOURCE_TYPE",
    "BodyError",
    "BodyGate",
    "Reference",
    "document_identifier",
    "dump_json",
    "holds_big_body",
    "is_secure_transport",
    "issue_code",
    "operation_outcome",
    "outcome_details",
    "parse_json",
    "parse_reference",
    "read_body",
    "read_json",
    "reference_schema_pattern",
    "require_secure_transport",
    "run_body_work",
    "shallow_enough",
    "uuid5_from_sha1",
    "uuid5_text",
]
