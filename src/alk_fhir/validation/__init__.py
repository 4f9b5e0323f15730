"""Profile validation: our StructureDefinitions compiled to checks, results as OperationOutcome.

``build_validator(package, core_dir)`` compiles every StructureDefinition of the package (and,
lazily, the base R4 definitions an instance reaches) once; ``Validator.validate(resource,
profile=None)`` returns an OperationOutcome whose issues carry FHIRPath locations with indexes
(``CareTeam.participant[1].role``, ``Bundle.entry[3].resource.status``). What is checked follows
R4 validation.html "Validating Resources": structure (known elements, JSON shape, cardinality),
primitive formats, fixed/pattern values, slicing, required/extensible bindings, invariants,
reference targets, and the bundle/document rules. Modules: defs (where definitions come from),
tree (snapshot → element tree), compile (tree → check closures, cached per URL), structure (the
walk), primitives, patterns, slicing, bindings, invariants + xhtml + ``alk_fhir.fastpath`` (constraints),
bundle (references between entries, document rules), outcome/report (results).

Speed (≥ 3× the R4B parse of the same content, benchmarks/validate.py): a resource is walked once
per definition, key by key, with closures prepared at compile time — no per-element lookups in the
StructureDefinition; a sliced element finds each item's slice through an index of the slices'
discriminator values (slicing.py), and a primitive's location string is built only when something
about it is reported. Invariants are where a naive validator spends its time: ``ele-1``/``ext-1``
would be a fhirpathpy call on every element. They are decided by the walk itself (an object has a
key besides ``id``; an extension has a value xor extensions), the core invariants on hot paths
(``dom-*``, ``ref-1``, ``per-1``, ``bdl-*``, ``cmp-*`` …) are Python functions, and every other
invariant is compiled by ``fastpath`` into closures when it stays within the FHIRPath subset
invariants use (about 80% of the R4 core and our invariants), falling back to fhirpathpy otherwise. The semantics are
the FHIRPath ones, per element occurrence, as the specification defines; tests/test_validation_fhirpath.py
runs both engines side by side on every node of a corpus and requires identical results. Where a
native follows HL7's later correction rather than R4's letter (per-1 on partial dates, ref-1 and
bdl-8 when the element is absent, '#' references to the container), invariants.py says so.

The input is never modified (fhirpathpy may annotate what it is given; tests deep-copy every
instance before validating and compare afterwards). The faces that store or send documents call
``Validator.validate_document(bundle)`` before they do, and reject on ``has_errors(outcome)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alk_fhir.knowledge import Package
from alk_fhir.knowledge.canonical import canonical
from alk_fhir.validation.compile import CompileError, Compiler
from alk_fhir.validation.defs import FHIR_SD, Definitions
from alk_fhir.validation.outcome import Issue, counts, fatal_outcome, has_errors, to_outcome
from alk_fhir.validation.run import Run

DOCUMENT_PROFILE = canonical("StructureDefinition", "alk-case-overview-document")

# Content nested deeper than Python's recursion limit (decoding it, or walking it) is refused as a
# whole, rather than escaping as a RecursionError: no FHIR resource nests anywhere near that deep.
TOO_DEEP = "the content is nested too deeply to be processed (more levels than Python's recursion limit)"

__all__ = [
    "DOCUMENT_PROFILE",
    "CompileError",
    "Issue",
    "UnknownProfile",
    "Validator",
    "build_validator",
    "counts",
    "has_errors",
]


class UnknownProfile(LookupError):
    """A profile was asked for that neither our package nor the core package defines (or that this
    validator cannot compile, e.g. a core example profile without a snapshot)."""


class Validator:
    def __init__(self, compiler: Compiler) -> None:
        self.compiler = compiler
        self.defs = compiler.defs

    @property
    def profiles(self) -> list[str]:
        """Our profiles' canonical URLs (resource and datatype profiles, extensions)."""
        return sorted(str(sd["url"]) for sd in self.defs.package.of_type("StructureDefinition"))

    def knows(self, profile: str) -> bool:
        return self.defs.structure(profile) is not None

    def require_profile(self, profile: str) -> None:
        """Raise UnknownProfile unless ``profile`` is defined and this validator can compile it."""
        if not self.knows(profile):
            raise UnknownProfile(f"profile {profile} is not known to this server")
        try:
            self.compiler.plan(profile)
        except CompileError as exc:
            raise UnknownProfile(f"profile {profile} cannot be used by this validator: {exc}") from exc

    def validate(self, resource: Any, profile: str | None = None) -> dict[str, Any]:
        """An OperationOutcome for ``resource`` against its base definition, the profiles it claims
        in ``meta.profile``, and ``profile`` when given (unknown ``profile``: UnknownProfile)."""
        return self._validate(resource, profile, "")

    def _validate(self, resource: Any, profile: str | None, source: str) -> dict[str, Any]:
        """``validate``, with ``source`` (``"file.json: "``) before the text of a fatal issue. The walk
        recurses once per level of nesting: content nested deeper than Python's recursion limit is a
        fatal issue, not a RecursionError escaping to the caller."""
        if profile is not None:
            self.require_profile(profile)
        if not isinstance(resource, dict):
            return fatal_outcome("the content is not a FHIR resource (a JSON object with a resourceType)")
        run = Run()
        rtype = resource.get("resourceType")
        path = rtype if isinstance(rtype, str) and rtype in self.defs.resource_types else "Resource"
        try:
            self.compiler.check_resource(resource, path, run, (profile,) if profile else ())
        except RecursionError:
            return fatal_outcome(source + TOO_DEEP, code="too-costly")
        return to_outcome(run.issues, run.dropped)

    def validate_file(self, path: Path, profile: str | None = None) -> dict[str, Any]:
        """Validate one JSON file; a file that cannot be read or parsed gives a fatal issue naming it.
        ``json.loads`` raises RecursionError, not JSONDecodeError, for nesting deeper than Python's
        recursion limit (about 1,000 levels): such a file is as unusable as one that is not JSON."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return fatal_outcome(f"{path}: cannot read the file: {exc}", code="exception")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return fatal_outcome(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        except RecursionError:
            return fatal_outcome(f"{path}: cannot be decoded: {TOO_DEEP}")
        return self._validate(data, profile, f"{path}: ")

    def validate_document(self, bundle: Any) -> dict[str, Any]:
        """The check a face runs before it stores or sends a case-overview document: the Bundle
        against ``alk-case-overview-document`` (when our package defines it), every entry against
        its own definitions and claimed profiles."""
        profile = DOCUMENT_PROFILE if self.knows(DOCUMENT_PROFILE) else None
        if isinstance(bundle, dict) and bundle.get("resourceType") != "Bundle":
            return fatal_outcome("a document must be a Bundle", code="invalid")
        return self.validate(bundle, profile)


def build_validator(package: Package, core_dir: Path) -> Validator:
    """Compile our profiles (a broken one raises CompileError naming it) and their base definitions."""
    defs = Definitions.load(package, core_dir)
    compiler = Compiler(defs)
    for sd in package.of_type("StructureDefinition"):
        if sd.get("kind") in ("resource", "complex-type") and sd.get("snapshot"):
            compiler.plan(str(sd["url"]))
            compiler.plan(FHIR_SD + str(sd.get("type")))
    for base in ("Bundle", "Patient", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson"):
        compiler.plan(FHIR_SD + base)
    return Validator(compiler)


__all__ += ["fatal_outcome", "to_outcome"]
