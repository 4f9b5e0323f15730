"""alk-fhir: the NALK guideline on persistent physical symptoms (hardnekkige ALK) as FHIR R4."""

__version__ = "0.1.0"
