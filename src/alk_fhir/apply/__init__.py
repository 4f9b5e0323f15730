"""PlanDefinition/$apply: the guideline's applicable actions for one patient, as FHIR resources."""

from alk_fhir.apply.engine import ApplyResult, Engine, NoSubject, apply_plan, load_engine, pinned_day, run

__all__ = ["ApplyResult", "Engine", "NoSubject", "apply_plan", "load_engine", "pinned_day", "run"]
