"""FHIR ids, resource type names and RESTful references: the one place their patterns are written.

R4 datatypes.html#id: ``[A-Za-z0-9\\-\\.]{1,64}``. A resource type name is a capitalised word
(``Patient``, ``PlanDefinition``). A RESTful reference (R4 references.html#literal) is
``[base/]Type/id[/_history/vid]``; the base, when there is one, is an http(s) URL without query or
fragment. Every module that checks an id, a type or a reference uses these, so that a correction
(or a stricter rule) lands everywhere at once. Deterministic ids (name-based UUIDs) are made here too.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

ID = r"[A-Za-z0-9\-.]{1,64}"
TYPE = r"[A-Z][A-Za-z]{1,63}"

# Compiled; use ``fullmatch``.
FHIR_ID = re.compile(ID)
RESOURCE_TYPE = re.compile(TYPE)
RELATIVE_REFERENCE = re.compile(rf"(?P<type>{TYPE})/(?P<id>{ID})(?:/_history/(?P<vid>{ID}))?")
REFERENCE = re.compile(rf"(?P<base>(?:https?://[^?#\s]*?/)?){RELATIVE_REFERENCE.pattern}")

# Anchored JSON Schema (ECMA 262) patterns for the OpenAPI descriptions of request bodies.
ID_SCHEMA_PATTERN = f"^{ID}$"


def reference_schema_pattern(*types: str) -> str:
    """A JSON Schema pattern for ``Type/id`` restricted to ``types``."""
    return f"^({'|'.join(types)})/{ID}$"


@dataclass(frozen=True)
class Reference:
    base: str  # "" for a relative reference; otherwise ends with "/"
    type: str
    id: str
    version: str | None


def parse_reference(text: str) -> Reference | None:
    """The parts of a RESTful reference (absolute or relative, optionally versioned); None otherwise."""
    match = REFERENCE.fullmatch(text)
    if match is None:
        return None
    return Reference(match.group("base"), match.group("type"), match.group("id"), match.group("vid"))


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` (RFC 9562 §5.5) without building UUID objects: about a
    third of the cost, and a CDS call names some twenty resources and cards this way."""
    return uuid5_from_sha1(hashlib.sha1(namespace.bytes + name.encode("utf-8"), usedforsecurity=False).digest())


def uuid5_from_sha1(digest: bytes) -> str:
    """The version-5 UUID text of a SHA-1 digest of namespace + name (for callers that hash a shared
    prefix once and copy the hash object per name)."""
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
