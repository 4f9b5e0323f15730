"""From any set of FHIR R4 resources (a CDS prefetch, a FHIR search, a Bundle) to the facts the rules need."""

from alk_fhir.context.build import PatientContext, build_context, resources_of
from alk_fhir.context.facts import Fact, FactProgram, compile_facts, compute_facts

__all__ = ["Fact", "FactProgram", "PatientContext", "build_context", "compile_facts", "compute_facts", "resources_of"]
