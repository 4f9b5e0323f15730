"""The persistent-ALK assessment: Profielschets criteria 1–3 and features, with their evidence."""

from alk_fhir.criteria.assess import Assessment, CriterionResult, assess, assessment_observation

__all__ = ["Assessment", "CriterionResult", "assess", "assessment_observation"]
