"""ValueSet membership and expansion for the package's own ValueSets, precomputed at load.

Membership is asked on every request (is this medication a risk medication? is this condition
ALK-related?), so each ValueSet is compiled once into a set of exact (system, code) pairs plus a
few hierarchical filters. ``is-a``/``descendent-of`` filters on ATC and ICD-10 are answered by code
prefix: in both code systems a concept's code begins with the code of every ancestor
(N02AA01 is-a N02AA is-a N02A; F45.0 is-a F45), so the prefix *is* the hierarchy. ICPC-1-NL is the
same: NHG sub-codes extend their rubric after a dot (P75.01 is-a P75), under its URI and its OID.

Codes are codes: a prefix only answers for a code of its system's syntax (``codesyntax``: ICD-10,
ICPC-1-NL, ATC), so ``K58 Jan Pietersen 123456782`` is no member of a ValueSet that includes
``is-a K58``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from alk_fhir.codesyntax import CODE_SYNTAX, valid_code

PREFIX_HIERARCHY_SYSTEMS = frozenset({
    "http://www.whocc.no/atc",
    "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/icd-10-nl",
    "http://hl7.org/fhir/sid/icpc-1-nl",
    "urn:oid:2.16.840.1.113883.2.4.4.31.1",
})
__all__ = ["CODE_SYNTAX", "NotExpandable", "Terminology", "fold", "valid_code"]
# ConceptMap equivalences under which a target code stands for the source (R4 concept-map-equivalence)
_MAPPED = frozenset({"relatedto", "equivalent", "equal", "wider", "subsumes", "specializes"})


class NotExpandable(ValueError):
    """The ValueSet uses a filter on a code system whose content this server does not hold."""


@dataclass
class _Compiled:
    exact: set[tuple[str, str]] = field(default_factory=set)
    # one entry per include: system and its filters (ANDed, as FHIR says): (ancestor code, include self)
    prefixes: list[tuple[str, tuple[tuple[str, bool], ...]]] = field(default_factory=list)
    whole_systems: set[str] = field(default_factory=set)
    excluded: set[tuple[str, str]] = field(default_factory=set)
    expandable: bool = True


@dataclass
class Terminology:
    codesystems: dict[str, dict[str, Any]] = field(default_factory=dict)
    valuesets: dict[str, dict[str, Any]] = field(default_factory=dict)
    _concepts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _parents: dict[str, dict[str, str]] = field(default_factory=dict)
    _compiled: dict[str, _Compiled] = field(default_factory=dict)
    # (ValueSet url, system, code) -> member? The package never changes while loaded, and a record
    # repeats the same few codes (ATC filters walk the hierarchy): asked once, remembered.
    _members: dict[tuple[str, str, str], bool] = field(default_factory=dict)
    _expansions: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # (system, code) -> the (system, code)s ConceptMaps map it to
    translations: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    _names: dict[str, re.Pattern[str] | None] = field(default_factory=dict)
    _mapped_members: dict[tuple[str, str, str], bool] = field(default_factory=dict)
    _named: dict[tuple[str, str], bool] = field(default_factory=dict)

    @classmethod
    def from_resources(cls, resources: list[dict[str, Any]]) -> Terminology:
        term = cls()
        for res in resources:
            if res["resourceType"] == "CodeSystem":
                term.codesystems[res["url"]] = res
                concepts: dict[str, dict[str, Any]] = {}
                parents: dict[str, str] = {}
                _flatten(res.get("concept", []), None, concepts, parents)
                term._concepts[res["url"]] = concepts
                term._parents[res["url"]] = parents
            elif res["resourceType"] == "ValueSet":
                term.valuesets[res["url"]] = res
            elif res["resourceType"] == "ConceptMap":
                term.add_conceptmap(res)
        for url in term.valuesets:
            term._compile(url, ())
        return term

    def add_conceptmap(self, conceptmap: dict[str, Any]) -> None:
        for group in conceptmap.get("group", []):
            source, target = group.get("source"), group.get("target")
            for element in group.get("element", []):
                for tgt in element.get("target", []):
                    if tgt.get("equivalence", "equivalent") in _MAPPED and source and target and tgt.get("code"):
                        self.translations.setdefault((source, element["code"]), []).append((target, tgt["code"]))
        self._members.clear()
        self._mapped_members.clear()

    def member(self, valueset_url: str, system: str | None, code: str | None) -> bool:
        """Membership of a coding or of any code a ConceptMap maps it to (remembered: asked per request)."""
        key = (valueset_url, system or "", code or "")
        found = self._mapped_members.get(key)
        if found is None:
            found = self.contains(valueset_url, system, code) or bool(system and code and any(
                self.contains(valueset_url, s, c) for s, c in self.translations.get((system, code), ())))
            if len(self._mapped_members) >= 100_000:
                self._mapped_members.clear()
            self._mapped_members[key] = found
        return found

    def names(self, valueset_url: str) -> re.Pattern[str] | None:
        """One pattern matching, at a word start, the display or any designation of the ValueSet's own
        (enumerated) concepts, case- and accent-insensitive; None when it has none."""
        url = valueset_url.split("|", 1)[0]
        if url not in self._names:
            compiled = self._compiled.get(url)
            if compiled is None:
                raise KeyError(f"unknown ValueSet {valueset_url}")
            found: set[str] = set()
            for system, code in compiled.exact:
                concept = self.concept(system, code)
                if concept is None or concept.get("concept"):
                    continue  # only leaves name a substance; a group's display names no product
                found |= {fold(t) for t in [concept.get("display"), *(d.get("value") for d in concept.get(
                    "designation", []))] if isinstance(t, str) and t.strip()}
            self._names[url] = re.compile(r"(?<![a-z0-9])(?:" + "|".join(
                re.escape(n) for n in sorted(found, key=len, reverse=True)) + ")") if found else None
        return self._names[url]

    def names_in(self, valueset_url: str, text: str) -> bool:
        """Whether ``text`` (a product name) names a concept of the ValueSet; remembered, as names repeat."""
        key = (valueset_url, text)
        found = self._named.get(key)
        if found is None:
            pattern = self.names(valueset_url)
            found = pattern is not None and pattern.search(fold(text)) is not None
            if len(self._named) >= 100_000:
                self._named.clear()
            self._named[key] = found
        return found

    def concept(self, system: str, code: str) -> dict[str, Any] | None:
        return self._concepts.get(system, {}).get(code)

    def display(self, system: str, code: str) -> str | None:
        found = self.concept(system, code)
        return None if found is None else found.get("display")

    def is_a(self, system: str, code: str, ancestor: str) -> bool:
        if system in PREFIX_HIERARCHY_SYSTEMS:
            return code.startswith(ancestor) and valid_code(system, code)
        parents = self._parents.get(system, {})
        current: str | None = code
        while current is not None:
            if current == ancestor:
                return True
            current = parents.get(current)
        return False

    def contains(self, valueset_url: str, system: str | None, code: str | None) -> bool:
        compiled = self._compiled.get(valueset_url.split("|", 1)[0])
        if compiled is None:
            raise KeyError(f"unknown ValueSet {valueset_url}")
        if not system or not code or (system, code) in compiled.excluded:
            return False
        if (system, code) in compiled.exact:
            return True
        if system in compiled.whole_systems:
            return valid_code(system, code)
        key = (valueset_url.split("|", 1)[0], system, code)
        found = self._members.get(key)
        if found is None:
            found = valid_code(system, code) and any(
                s == system and all((code != c or self_ok) and self.is_a(system, code, c) for c, self_ok in filters)
                for s, filters in compiled.prefixes
            )
            if len(self._members) >= 100_000:  # codes from callers are unbounded: keep the memo bounded
                self._members.clear()
            self._members[key] = found
        return found

    def expand(self, valueset_url: str) -> list[dict[str, str]]:
        """The codes of an enumerable ValueSet, in definition order (computed once; callers get copies)."""
        url = valueset_url.split("|", 1)[0]
        found = self._expansions.get(url)
        if found is None:
            found = self._expansions[url] = self._expand(url)
        return [dict(item) for item in found]

    def _expand(self, valueset_url: str) -> list[dict[str, str]]:
        vs = self.valuesets.get(valueset_url)
        if vs is None:
            raise KeyError(f"unknown ValueSet {valueset_url}")
        if not self._compiled[vs["url"]].expandable:
            raise NotExpandable(
                f"ValueSet {vs['url']} filters on a code system whose content this server does not hold"
            )
        out: list[dict[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for inc in vs.get("compose", {}).get("include", []):
            for nested in inc.get("valueSet", []):
                for item in self.expand(nested):
                    key = (item["system"], item["code"])
                    if key not in seen:
                        seen.add(key)
                        out.append(item)
            for item in self._include_codes(inc):
                key = (item["system"], item["code"])
                if key not in seen and self.contains(vs["url"], *key):
                    seen.add(key)
                    out.append(item)
        return out

    def _include_codes(self, inc: dict[str, Any]) -> list[dict[str, str]]:
        system = inc.get("system")
        if not system:
            return []
        if inc.get("concept"):
            return [_item(system, c["code"], c.get("display") or self.display(system, c["code"]))
                    for c in inc["concept"]]
        concepts = self._concepts.get(system, {})
        codes = list(concepts)
        for flt in inc.get("filter", []):
            codes = [c for c in codes if self.is_a(system, c, flt["value"])
                     and (flt["op"] == "is-a" or c != flt["value"])]
        return [_item(system, c, concepts[c].get("display")) for c in codes]

    def _compile(self, url: str, stack: tuple[str, ...]) -> _Compiled:
        if url in self._compiled:
            return self._compiled[url]
        if url in stack:
            raise ValueError(f"ValueSet {url} includes itself")
        compiled = _Compiled()
        compose = self.valuesets[url].get("compose", {})
        for inc in compose.get("include", []):
            for nested in inc.get("valueSet", []):
                if nested not in self.valuesets:
                    raise ValueError(f"ValueSet {url} includes unknown ValueSet {nested}")
                child = self._compile(nested, (*stack, url))
                compiled.exact |= child.exact
                compiled.prefixes += child.prefixes
                compiled.whole_systems |= child.whole_systems
                compiled.expandable &= child.expandable
            self._compile_include(inc, compiled, exclude=False)
        for exc in compose.get("exclude", []):
            self._compile_include(exc, compiled, exclude=True)
        self._compiled[url] = compiled
        return compiled

    def _compile_include(self, inc: dict[str, Any], compiled: _Compiled, exclude: bool) -> None:
        system = inc.get("system")
        if not system:
            return
        target = compiled.excluded if exclude else compiled.exact
        own = system in self._concepts
        if inc.get("concept"):
            target.update((system, c["code"]) for c in inc["concept"])
        elif inc.get("filter"):
            for flt in inc["filter"]:
                if flt.get("property") not in ("concept", "code") or flt.get("op") not in ("is-a", "descendent-of"):
                    raise ValueError(f"unsupported ValueSet filter {flt}")
            if own:
                target.update((system, c["code"]) for c in self._include_codes(inc))
            elif system in PREFIX_HIERARCHY_SYSTEMS and not exclude:
                compiled.prefixes.append((system, tuple((f["value"], f["op"] == "is-a") for f in inc["filter"])))
                compiled.expandable = False
            else:
                raise ValueError(f"cannot evaluate filter on {system}")
        elif own:
            target.update((system, code) for code in self._concepts[system])
        elif not exclude:
            compiled.whole_systems.add(system)
            compiled.expandable = False


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Lower case without accents ("Codeïne" -> "codeine"), for matching names."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def _flatten(concepts: list[dict[str, Any]], parent: str | None,
             out: dict[str, dict[str, Any]], parents: dict[str, str]) -> None:
    for concept in concepts:
        out[concept["code"]] = concept
        if parent is not None:
            parents[concept["code"]] = parent
        _flatten(concept.get("concept", []), concept["code"], out, parents)


def _item(system: str, code: str, display: str | None) -> dict[str, str]:
    item = {"system": system, "code": code}
    if display:
        item["display"] = display
    return item
