"""PlanDefinition/$apply: the guideline's applicable actions for one patient, as FHIR resources."""

from alk_fhir.apply.engine import ApplyResult, Engine, apply_plan, load_engine, run

__all__ = ["ApplyResult", "Engine", "apply_plan", "load_engine", "run"]
