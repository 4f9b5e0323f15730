"""A StructureDefinition snapshot as a tree: element → named children → slices.

Snapshot elements are a flat, ordered list; their ``id`` (``CareTeam.participant:coordinator.role``)
says where each belongs (R4 elementdefinition.html#id): a segment ``name:slice`` is slice
``slice`` of element ``name``. ``contentReference`` (``#Composition.section``) points at the element
whose children an element shares (Composition.section.section).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SnapshotError(ValueError):
    """A StructureDefinition without a usable snapshot; the message names the element."""


@dataclass
class Node:
    el: dict[str, Any]
    children: dict[str, Node] = field(default_factory=dict)
    slices: dict[str, Node] = field(default_factory=dict)
    parent: Node | None = None

    @property
    def path(self) -> str:
        return str(self.el.get("path", ""))

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def build(sd: dict[str, Any]) -> Node:
    elements = sd.get("snapshot", {}).get("element", [])
    if not elements:
        raise SnapshotError(f"StructureDefinition {sd.get('url')} has no snapshot")
    by_id: dict[str, Node] = {}
    by_path: dict[str, Node] = {}
    root: Node | None = None
    for el in elements:
        eid = str(el.get("id") or el.get("path"))
        node = Node(el)
        if root is None:
            root = node
            by_id[eid] = node
            by_path[node.path] = node
            continue
        head, _, last = eid.rpartition(".")
        name, _, slice_name = last.partition(":")
        if slice_name:
            owner = by_id.get(f"{head}.{name}" if head else name)
            if owner is None:
                raise SnapshotError(f"{sd.get('url')}: slice {eid} comes before its sliced element")
            base, _, reslice = slice_name.rpartition("/")
            if reslice and base:
                owner = owner.slices.get(base, owner)
                slice_name = reslice
            node.parent = owner.parent
            owner.slices[slice_name] = node
        else:
            parent = by_id.get(head)
            if parent is None:
                raise SnapshotError(f"{sd.get('url')}: element {eid} has no parent element {head}")
            node.parent = parent
            parent.children[name] = node
            if ":" not in eid:
                by_path.setdefault(node.path, node)
        by_id[eid] = node
    assert root is not None
    for node in by_id.values():
        ref = node.el.get("contentReference")
        if ref and not node.children:
            target = by_path.get(str(ref).split("#", 1)[-1])
            if target is None:
                raise SnapshotError(f"{sd.get('url')}: contentReference {ref} does not resolve")
            node.children = target.children
            node.el = {**target.el, **{k: v for k, v in node.el.items() if k != "contentReference"},
                       "type": target.el.get("type", [{"code": "BackboneElement"}]), "constraint": target.el.get(
                           "constraint", [])}
    return root
