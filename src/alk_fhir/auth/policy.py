"""Which documents a partner may touch (case-overview access rule).

A partner writes only documents whose author/custodian is its own organisation — the custodian
when the document names one (it is the organisation answerable for the document), otherwise one of
the authors — and reads only documents it authored or that are addressed to it. Organisations
are compared by identifier (system, value) — URA or AGB — never by name. The caller extracts the
identifiers from the document (Composition.author / custodian, the recipients); this module only
decides.
"""

from __future__ import annotations

from collections.abc import Iterable

from alk_fhir.auth.dependencies import Principal

OrgId = tuple[str, str]


def may_write(principal: Principal, authors: Iterable[OrgId], custodian: OrgId | None) -> bool:
    own = principal.organization
    if custodian is not None:
        return custodian == own
    return own in set(authors)


def may_read(principal: Principal, authors: Iterable[OrgId], recipients: Iterable[OrgId]) -> bool:
    own = principal.organization
    return own in set(authors) or own in set(recipients)
