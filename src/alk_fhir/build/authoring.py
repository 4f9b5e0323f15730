"""Turn the authoring sources (``authoring/*.yaml``) into the published package (``profiles/``).

The sources are plain FHIR R4 resources written in YAML with one convenience, so that clinicians
can review the Dutch and English side by side: wherever a string may stand, ``{nl: ..., en: ...}``
may stand instead. It becomes the Dutch string plus the standard ``translation`` extension
(``_field``) carrying the English; in a CodeSystem concept it becomes ``display`` plus an English
``designation``. The build also fills what must be uniform (canonical URL, version, language,
publisher, date), generates StructureDefinition snapshots from the R4 core package, and writes
``package.json`` and ``.index.json``. ``check`` regenerates in memory and compares, so a test can
prove the published JSON is in sync with its source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from alk_fhir.knowledge.canonical import (
    CANONICAL_BASE,
    FACTS_LIBRARY,
    FHIR_VERSION,
    PACKAGE_ID,
    PACKAGE_VERSION,
    TRANSLATION_EXT,
    canonical,
)

PUBLISHER = "alk-fhir (after the NALK working group 'Hardnekkige ALK')"
RELEASE_DATE = "2026-11-23"
_CANONICAL_TYPES = {
    "CodeSystem", "ValueSet", "Questionnaire", "PlanDefinition", "ActivityDefinition",
    "StructureDefinition", "Library", "CapabilityStatement", "OperationDefinition", "SearchParameter",
}

Snapshotter = Callable[[dict[str, Any], Callable[[str], dict[str, Any] | None]], dict[str, Any]]


class AuthoringError(ValueError):
    """A source file that cannot become a resource; the message names file and path."""


def translation(lang: str, content: str) -> dict[str, Any]:
    return {"url": TRANSLATION_EXT, "extension": [
        {"url": "lang", "valueCode": lang},
        {"url": "content", "valueString": content},
    ]}


def _is_bilingual(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"nl", "en"} and all(isinstance(v, str) for v in value.values())


def expand_bilingual(node: Any, where: str, in_codesystem: bool = False) -> Any:
    """Replace every ``{nl, en}`` pair by the FHIR representation (see module docstring)."""
    if isinstance(node, list):
        return [expand_bilingual(item, f"{where}[{i}]", in_codesystem) for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{where}.{key}"
        if _is_bilingual(value):
            out[key] = value["nl"]
            if in_codesystem and key == "display":
                out.setdefault("designation", []).append({"language": "en", "value": value["en"]})
            else:
                out[f"_{key}"] = {"extension": [translation("en", value["en"])]}
        elif isinstance(value, list) and any(_is_bilingual(v) for v in value):
            if not all(_is_bilingual(v) for v in value):
                raise AuthoringError(f"{path}: mix of bilingual and plain strings")
            out[key] = [v["nl"] for v in value]
            out[f"_{key}"] = [{"extension": [translation("en", v["en"])]} for v in value]
        else:
            nested_cs = in_codesystem or (key == "concept" and where.endswith("CodeSystem"))
            out[key] = expand_bilingual(value, path, nested_cs)
    return out


def finish(resource: dict[str, Any], source: str) -> dict[str, Any]:
    """Fill the uniform fields and put them in the conventional order."""
    rtype = resource.get("resourceType")
    rid = resource.get("id")
    if not isinstance(rtype, str) or not isinstance(rid, str):
        raise AuthoringError(f"{source}: resourceType and id are required")
    res = expand_bilingual(resource, rtype)
    res.setdefault("language", "nl-NL")
    if rtype in _CANONICAL_TYPES:
        res.setdefault("url", canonical(rtype, rid))
        if not res["url"].startswith(CANONICAL_BASE):
            raise AuthoringError(f"{source}: url {res['url']} is outside {CANONICAL_BASE}")
        res["version"] = PACKAGE_VERSION
        res.setdefault("status", "active")
        res.setdefault("experimental", False)
        res.setdefault("date", RELEASE_DATE)
        res.setdefault("publisher", PUBLISHER)
        res.setdefault("jurisdiction", [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "NL"}]}])
    if rtype == "CodeSystem" and res.get("content") == "complete":
        res["count"] = _count_concepts(res.get("concept", []))
    head = {k: res.pop(k) for k in ("resourceType", "id", "meta", "language", "text") if k in res}
    return {**head, **res}


def _count_concepts(concepts: list[dict[str, Any]]) -> int:
    return sum(1 + _count_concepts(c.get("concept", [])) for c in concepts)


def read_sources(src: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(src.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise AuthoringError(f"{path}: {exc}") from exc
        if not isinstance(data, dict):
            raise AuthoringError(f"{path}: not a mapping")
        out.append((path.name, data))
    return out


def manifest() -> dict[str, Any]:
    return {
        "name": PACKAGE_ID,
        "version": PACKAGE_VERSION,
        "canonical": CANONICAL_BASE,
        "url": CANONICAL_BASE,
        "title": "Hardnekkige ALK (NALK) — FHIR R4 package",
        "description": "Knowledge artifacts and profiles for the NALK 'Handreiking hardnekkige ALK' "
                       "(10-04-2023) and 'Profielschets hardnekkige ALK' (Sept 2021).",
        "fhirVersions": [FHIR_VERSION],
        "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION},
        "type": "fhir.ig",
        "jurisdiction": "urn:iso:std:iso:3166#NL",
        "license": "CC0-1.0",
        "author": PUBLISHER,
    }


def file_name(res: dict[str, Any]) -> str:
    return f"{res['resourceType']}-{res['id']}.json"


def index(resources: list[dict[str, Any]]) -> dict[str, Any]:
    files = []
    for res in resources:
        entry = {"filename": file_name(res), "resourceType": res["resourceType"], "id": res["id"]}
        for key in ("url", "version", "kind", "type"):
            if isinstance(res.get(key), str):
                entry[key] = res[key]
        files.append(entry)
    return {"index-version": 1, "files": files}


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def fill_displays(node: Any, concepts: dict[str, dict[str, dict[str, Any]]], where: str) -> None:
    """Codings of our own CodeSystems get their display (Dutch + English) from the CodeSystem.

    Displays are written once, in the CodeSystem; a coding that names an unknown code of ours is
    an authoring error, caught here rather than by a clinician.
    """
    if isinstance(node, list):
        for i, item in enumerate(node):
            fill_displays(item, concepts, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        return
    system, code = node.get("system"), node.get("code")
    if isinstance(system, str) and system in concepts and isinstance(code, str) and "filter" not in node:
        concept = concepts[system].get(code)
        if concept is None:
            raise AuthoringError(f"{where}: {code!r} is not a code of {system}")
        if "display" not in node and set(node) <= {"system", "code", "version", "userSelected"}:
            node["display"] = concept["display"]
            english = [d["value"] for d in concept.get("designation", []) if d.get("language") == "en"]
            if english:
                node["_display"] = {"extension": [translation("en", english[0])]}
    for key, value in node.items():
        if key != "concept" or node.get("resourceType") != "CodeSystem":
            fill_displays(value, concepts, f"{where}.{key}")


def _concept_index(resources: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}

    def walk(system: str, concepts: list[dict[str, Any]]) -> None:
        for concept in concepts:
            out[system][concept["code"]] = concept
            walk(system, concept.get("concept", []))

    for res in resources:
        if res["resourceType"] == "CodeSystem":
            out[res["url"]] = {}
            walk(res["url"], res.get("concept", []))
    return out


_PLACEHOLDER = re.compile(r"\{\{(%[A-Za-z0-9_]+|memberOf:[a-z0-9-]+)\}\}")


def _fact_literal(library: dict[str, Any], name: str, where: str) -> str:
    for param in library.get("parameter", []):
        if param.get("name") == name:
            for ext in param.get("extension", []):
                if ext.get("url") == "http://hl7.org/fhir/StructureDefinition/cqf-expression":
                    return str(ext["valueExpression"]["expression"])
    raise AuthoringError(f"{where}: {{{{%{name}}}}} names no parameter of Library alk-facts")


def _valueset_predicate(by_url: dict[str, dict[str, Any]], vs_id: str, where: str) -> str:
    """A standard FHIRPath predicate on a Coding for an enumerated/prefix ValueSet, so that a form
    renderer without a terminology server (SDC pre-population) tests the same codes as the engine."""
    vs = by_url.get(canonical("ValueSet", vs_id))
    if vs is None:
        raise AuthoringError(f"{where}: {{{{memberOf:{vs_id}}}}} names no ValueSet of the package")
    terms = []
    for inc in vs.get("compose", {}).get("include", []):
        system = inc.get("system")
        if not system or inc.get("valueSet"):
            raise AuthoringError(f"{where}: ValueSet {vs_id} cannot be written as a FHIRPath predicate")
        if inc.get("concept"):
            codes = " or ".join(f"code = '{c['code']}'" for c in inc["concept"])
            terms.append(f"(system = '{system}' and ({codes}))")
        for flt in inc.get("filter", []):
            terms.append(f"(system = '{system}' and code.startsWith('{flt['value']}'))")
    return "coding.where(" + " or ".join(terms) + ").exists()"


def _placeholder(name: str, by_url: dict[str, dict[str, Any]], where: str) -> str:
    if name.startswith("%"):
        return f"({_fact_literal(by_url.get(FACTS_LIBRARY, {}), name[1:], where)})"
    return _valueset_predicate(by_url, name.split(":", 1)[1], where)


def _fill_from_facts(node: Any, by_url: dict[str, dict[str, Any]], where: str) -> None:
    """Questionnaire expressions take the Library's numbers and the package's ValueSets at build time
    (``{{%name}}``, ``{{memberOf:valueset-id}}``): the form pre-fills with the same definitions the
    engine decides with, written once."""
    if isinstance(node, list):
        for item in node:
            _fill_from_facts(item, by_url, where)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "expression" and isinstance(value, str) and "{{" in value:
                node[key] = _PLACEHOLDER.sub(lambda m: _placeholder(m.group(1), by_url, where), value)
            else:
                _fill_from_facts(value, by_url, where)


def build(src: Path, snapshotter: Snapshotter | None) -> dict[str, str]:
    """All files of the package, name -> text, in memory."""
    resources: list[dict[str, Any]] = []
    for name, data in read_sources(src):
        resources.append(finish(data, name))
    concepts = _concept_index(resources)
    for res in resources:
        if res["resourceType"] != "StructureDefinition":
            fill_displays(res, concepts, f"{res['resourceType']}/{res['id']}")
    by_url = {r["url"]: r for r in resources if "url" in r}
    for res in resources:
        if res["resourceType"] == "Questionnaire":
            _fill_from_facts(res, by_url, f"Questionnaire/{res['id']}")
    if snapshotter is not None:
        done: dict[str, dict[str, Any]] = {}

        def lookup(url: str) -> dict[str, Any] | None:
            if url in done:
                return done[url]
            local = by_url.get(url)
            if local is not None and local["resourceType"] == "StructureDefinition":
                done[url] = snapshotter(local, lookup)
                return done[url]
            return None

        resources = [lookup(r["url"]) or r if r["resourceType"] == "StructureDefinition" else r for r in resources]
    names = [file_name(r) for r in resources]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise AuthoringError(f"two sources produce {sorted(dupes)}")
    files = {file_name(r): dumps(r) for r in resources}
    files["package.json"] = dumps(manifest())
    files[".index.json"] = dumps(index(resources))
    return files


def write(files: dict[str, str], out: Path) -> list[str]:
    """Write the package; remove stale resource files; return the names changed."""
    out.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in files.items():
        path = out / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    for path in out.glob("*.json"):
        if path.name not in files:
            path.unlink()
            changed.append(f"-{path.name}")
    return changed


def diff(files: dict[str, str], out: Path) -> list[str]:
    """Names whose published text differs from what the sources generate (empty = in sync)."""
    problems = []
    for name, text in files.items():
        path = out / name
        if not path.exists():
            problems.append(f"missing {name}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"stale {name}")
    problems += [f"extra {p.name}" for p in sorted(out.glob("*.json")) if p.name not in files]
    return problems
