"""The requests $apply proposed, as CDS Hooks ``create`` actions an EHR can carry out.

Inside the applied RequestGroup the requests are options (``intent = option``) that reference each
other with ``urn:uuid:`` ids. Handed to an EHR as suggestions they change in two ways only:

- ``intent`` ``option`` becomes ``proposal``: R4 RequestIntent defines ``option`` as a component of
  a RequestGroup, and ``proposal`` as "a suggestion made by someone/something that does not have
  an intention to ensure it occurs and without providing an authorization to act", which is
  exactly a CDS suggestion;
- a ``urn:uuid:`` reference to a resource created by the same suggestion becomes the relative
  reference ``Type/id``: CDS Hooks 2.0 ("Suggestion") processes a suggestion's actions like a FHIR
  transaction with ``fhirServer`` as the base of the inferred full URLs, so ``Type/id`` points to
  the entry created alongside and the server rewrites it to the id it assigns (R4 http.html
  "Transaction Processing Rules"). A reference to anything else of the $apply result (the
  computed assessment, the RequestGroup) exists only in our answer: the reference is dropped,
  and so is an element left empty by that (CDS Hooks forbids empty values, FHIR too).

The created resources appear in dependency order: what a request references comes first. Each
gets a generated narrative (its title or description) so that an EHR can show what it holds
(R4 dom-6: "A resource should have narrative for robust management").
"""

from __future__ import annotations

import html
from typing import Any

JSON = dict[str, Any]
URN = "urn:uuid:"


def _urn_targets(node: Any, found: list[str] | None = None) -> list[str]:
    """The ``urn:uuid`` ids referenced anywhere in ``node``, in document order (one list, filled in
    place: this walk runs over every suggested resource on the CDS hot path)."""
    if found is None:
        found = []
    if type(node) is dict:
        ref = node.get("reference")
        if type(ref) is str and ref.startswith(URN):
            found.append(ref[len(URN):])
        for value in node.values():
            if type(value) is dict or type(value) is list:
                _urn_targets(value, found)
    elif type(node) is list:
        for item in node:
            if type(item) is dict or type(item) is list:
                _urn_targets(item, found)
    return found


def suggested(main: JSON, requests: dict[str, JSON]) -> list[tuple[JSON, JSON]]:
    """(original, copy for the EHR) of ``main`` and of the resources of ``requests`` it references
    (transitively), dependencies first; each resource is walked for its references once."""
    targets: dict[str, list[str]] = {}
    ordered = bundle_for(main, requests, targets)
    return list(zip(ordered, for_ehr(ordered, targets), strict=True))


def bundle_for(main: JSON, requests: dict[str, JSON], targets: dict[str, list[str]] | None = None) -> list[JSON]:
    """``main`` and the resources of ``requests`` it references (transitively), dependencies first;
    ``targets`` remembers each resource's ``urn:uuid`` references by id."""
    ordered: list[JSON] = []
    seen: set[str] = set()
    known = {} if targets is None else targets
    # depth first, each resource after what it references; a loop, not a recursive closure (a closure
    # that calls itself is a reference cycle, which kept every call's requests alive until the next
    # garbage collection)
    stack: list[tuple[JSON, bool]] = [(main, False)]
    while stack:
        res, expanded = stack.pop()
        if expanded:
            ordered.append(res)
            continue
        if res["id"] in seen:
            continue
        seen.add(res["id"])
        found = known[res["id"]] = _urn_targets(res)
        stack.append((res, True))
        stack.extend((requests[t], False) for t in reversed(found) if t in requests)
    return ordered


_DROP = object()


def _rewrite(node: Any, local: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith(URN):
            target = ref[len(URN):]
            if target not in local:
                return _DROP
            node = {**node, "reference": f"{local[target]}/{target}"}
        out = {}
        for key, value in node.items():
            new = _rewrite(value, local)
            if new is not _DROP and new not in ([], {}):
                out[key] = new
        return out if out else _DROP
    if isinstance(node, list):
        items = [n for n in (_rewrite(i, local) for i in node) if n is not _DROP]
        return items if items else _DROP
    return node


def _headline(res: JSON) -> str | None:
    for key in ("title", "description", "name"):
        if isinstance(res.get(key), str) and res[key]:
            return str(res[key])
    code = res.get("code") or {}
    for coding in code.get("coding", []) if isinstance(code, dict) else []:
        if isinstance(coding.get("display"), str):
            return str(coding["display"])
    return None


def narrative(res: JSON) -> JSON | None:
    headline = _headline(res)
    if headline is None:
        return None
    return {"status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{html.escape(headline, quote=False)}</p></div>'}


def for_ehr(resources: list[JSON], targets: dict[str, list[str]] | None = None) -> list[JSON]:
    """Copies ready to create: references between them kept as ``Type/id``, others dropped
    (``targets``: the ``urn:uuid`` references already found per resource id)."""
    local = {r["id"]: r["resourceType"] for r in resources}
    out = []
    for res in resources:
        # Only the top level is changed below, so a shallow copy keeps the $apply result as it was; with
        # urn:uuid references the rewrite builds new dicts and lists all the way down.
        found = targets[res["id"]] if targets is not None and res["id"] in targets else _urn_targets(res)
        copied = _rewrite(res, local) if found else dict(res)
        if not isinstance(copied, dict):
            continue
        if copied.get("intent") == "option":
            copied["intent"] = "proposal"
        if "text" not in copied and (text := narrative(copied)) is not None:
            copied["text"] = text
        out.append(copied)
    return out
