"""Terminology checks: required/extensible bindings and codes of code systems we hold.

Binding strengths (R4 terminologies.html#strength): ``required`` — the code SHALL come from the
ValueSet (error); ``extensible`` — it SHALL come from the ValueSet when a suitable code exists
there, which a validator cannot decide, so a miss is a warning (a text-only CodeableConcept is
accepted); ``preferred``/``example`` are not checked.

Our ValueSets are answered by ``Package.terminology``. Base ValueSets (care-team-status, ...) come
from the core package and are expanded here once, at compile time, when they are small
enumerations of complete core CodeSystems; a ValueSet that cannot be expanded that way (e.g. all
of BCP-13 MIME types) is not checked and is listed in ``unchecked``. A Coding whose system is one
of ours or a complete core CodeSystem must name a code that exists in it, and a Coding of ICD-10,
ICD-10-NL, ICPC-1-NL or ATC must have that system's code syntax (``codesyntax.CODE_SYNTAX``): free
text in a code is an error whatever the binding strength, since whatever reads codes (the register,
the facts) must be able to trust that a code is one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alk_fhir.codesyntax import CODE_SYNTAX, valid_code
from alk_fhir.knowledge.valuesets import Terminology
from alk_fhir.validation.defs import Definitions
from alk_fhir.validation.invariants import ValueCheck
from alk_fhir.validation.run import Run

Member = Callable[[str | None, str | None], bool]


class Terminologies:
    """Membership tests per ValueSet URL and code lists per code system, built lazily, cached."""

    def __init__(self, defs: Definitions) -> None:
        self.defs = defs
        self.unchecked: set[str] = set()
        self._members: dict[str, tuple[Member, frozenset[str] | None] | None] = {}
        self._systems: dict[str, frozenset[str] | None] = {}

    def membership(self, url: str) -> tuple[Member, frozenset[str] | None] | None:
        """(is (system, code) in the ValueSet, the set of its codes if enumerable) or None."""
        bare = url.split("|", 1)[0]
        if bare not in self._members:
            self._members[bare] = self._build(bare)
            if self._members[bare] is None:
                self.unchecked.add(bare)
        return self._members[bare]

    def _build(self, url: str) -> tuple[Member, frozenset[str] | None] | None:
        term = self.defs.package.terminology
        if url in term.valuesets:
            try:
                codes: frozenset[str] | None = frozenset(c["code"] for c in term.expand(url))
            except ValueError:
                codes = None
            return (lambda s, c: type(s) is str and type(c) is str and term.contains(url, s, c)), codes
        core = self._core_expansion(url)
        if core is None:
            return None
        pairs = frozenset(core)
        # only strings are codes: a system or code that is an object or array (reported by the walk) is in no set
        return (lambda s, c: type(s) is str and type(c) is str and (s, c) in pairs), frozenset(c for _, c in pairs)

    def _core_expansion(self, url: str) -> list[tuple[str, str]] | None:
        resources: list[dict[str, Any]] = []
        if not self._collect(url, resources, set()):
            return None
        try:
            term = Terminology.from_resources(resources)
            return [(i["system"], i["code"]) for i in term.expand(url)]
        except (ValueError, KeyError):
            return None

    def _collect(self, url: str, out: list[dict[str, Any]], seen: set[str]) -> bool:
        if url in seen:
            return True
        seen.add(url)
        vs = self.defs.resolve(url)
        if vs is None or vs.get("resourceType") != "ValueSet":
            return False
        out.append(vs)
        for part in vs.get("compose", {}).get("include", []) + vs.get("compose", {}).get("exclude", []):
            for nested in part.get("valueSet", []):
                if not self._collect(nested.split("|", 1)[0], out, seen):
                    return False
            system = part.get("system")
            if system and system not in seen:
                seen.add(system)
                cs = self.defs.resolve(system)
                if cs is None or cs.get("resourceType") != "CodeSystem" or cs.get("content") != "complete":
                    if not part.get("concept") or part.get("filter"):
                        return False
                    continue
                out.append(cs)
        return True

    def system_codes(self, system: str) -> frozenset[str] | None:
        """All codes of a code system we hold completely, else None (not checkable)."""
        if system not in self._systems:
            self._systems[system] = self._load_system(system)
        return self._systems[system]

    def _load_system(self, system: str) -> frozenset[str] | None:
        cs = self.defs.resolve(system)
        if cs is None or cs.get("resourceType") != "CodeSystem" or cs.get("content") != "complete":
            return None
        codes: set[str] = set()
        stack = list(cs.get("concept", []))
        while stack:
            concept = stack.pop()
            codes.add(concept["code"])
            stack.extend(concept.get("concept", []))
        return frozenset(codes)


def compile_binding(terms: Terminologies, binding: dict[str, Any], type_code: str) -> ValueCheck | None:
    strength = binding.get("strength")
    url = binding.get("valueSet")
    if strength not in ("required", "extensible") or not url:
        return None
    found = terms.membership(url)
    if found is None:
        return None
    member, codes = found
    severity = "error" if strength == "required" else "warning"
    label = f"{url.split('|', 1)[0]} ({strength} binding)"

    if type_code in ("code", "string", "uri"):
        if codes is None:
            return None

        def check_code(value: Any, path: str, run: Run) -> None:
            if isinstance(value, str) and value not in codes:
                run.add(severity, "code-invalid", f"the value '{value}' is not in the value set {label}", path)
        return check_code

    if type_code == "Coding":
        def check_coding(value: Any, path: str, run: Run) -> None:
            if not isinstance(value, dict):
                return
            system, code = value.get("system"), value.get("code")
            if not member(system, code):
                run.add(severity, "code-invalid",
                        f"the code {system}#{code} is not in the value set {label}", path)
        return check_coding

    if type_code == "CodeableConcept":
        def check_concept(value: Any, path: str, run: Run) -> None:
            if not isinstance(value, dict):
                return
            coding = value.get("coding")
            codings = [c for c in coding if isinstance(c, dict)] if isinstance(coding, list) else []
            if any(member(c.get("system"), c.get("code")) for c in codings):
                return
            if not codings:
                if strength == "required":
                    run.add(severity, "code-invalid", f"no code provided; one is required from {label}", path)
                return
            shown = ", ".join(f"{c.get('system')}#{c.get('code')}" for c in codings)
            run.add(severity, "code-invalid", f"none of the codes ({shown}) is in the value set {label}", path)
        return check_concept
    return None


def compile_coding_check(terms: Terminologies) -> ValueCheck:
    """Every Coding: a code of a code system we hold completely must exist in it; a code of a system
    with a known syntax must have it."""
    def check(value: Any, path: str, run: Run) -> None:
        if not isinstance(value, dict):
            return
        system, code = value.get("system"), value.get("code")
        if not isinstance(system, str) or not isinstance(code, str):
            return
        if system in CODE_SYNTAX and not valid_code(system, code):
            run.error("code-invalid", f"'{code}' is not a code of {system}: it does not have the code "
                      "system's syntax", path)
            return
        codes = terms.system_codes(system)
        if codes is not None and code not in codes:
            run.error("code-invalid", f"unknown code '{code}' in code system {system}", path)
    return check
