"""Build-time tooling: authoring sources -> the published FHIR package in ``profiles/``."""
