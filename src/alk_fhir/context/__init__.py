"""From any set of FHIR R4 resources (a CDS prefetch, a FHIR search, a Bundle) to the facts the rules need."""

from alk_fhir.context.build import PatientContext, build_context, resources_of
from alk_fhir.context.facts import FACT_NAMES

__all__ = ["FACT_NAMES", "PatientContext", "build_context", "resources_of"]
