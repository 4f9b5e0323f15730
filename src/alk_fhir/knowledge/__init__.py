"""The guideline as a FHIR package: loaded once, indexed by canonical URL, queried everywhere."""

from alk_fhir.knowledge.canonical import (
    CANONICAL_BASE,
    CONCEPTS_SYSTEM,
    GUIDELINE_SYSTEM,
    PACKAGE_ID,
    PACKAGE_VERSION,
    canonical,
)
from alk_fhir.knowledge.package import BrokenPackage, Package, load_package

__all__ = [
    "CANONICAL_BASE",
    "CONCEPTS_SYSTEM",
    "GUIDELINE_SYSTEM",
    "PACKAGE_ID",
    "PACKAGE_VERSION",
    "BrokenPackage",
    "Package",
    "canonical",
    "load_package",
]
