"""Exchange partners: the organisations allowed to write and read case overviews.

Registration is configuration (SMART App Launch 2.x, "Client Authentication: Asymmetric",
"Registering a client"): each partner has a ``client_id``, an organisation identifier (URA or AGB),
the scopes it is pre-authorised for, and its public keys as a JWKS URL (preferred: lets the
partner rotate keys) or an inline JWK Set. The file named by ``ALK_FHIR_PARTNERS_FILE`` is a JSON
list of::

    {"client_id": "...", "name": "...",
     "organization": {"system": "http://fhir.nl/fhir/NamingSystem/ura", "value": "12345678"},
     "scopes": ["system/Bundle.write", "system/Bundle.read"],
     "jwks_url": "https://partner.example/jwks.json"}     # or "jwks": {"keys": [...]}

A broken file stops start-up with the file name and the JSON path of the fault.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alk_fhir.fhir import is_secure_transport

URA_SYSTEM = "http://fhir.nl/fhir/NamingSystem/ura"
AGB_SYSTEM = "http://fhir.nl/fhir/NamingSystem/agb-z"
ORGANIZATION_SYSTEMS = (URA_SYSTEM, AGB_SYSTEM)
SCOPE_WRITE = "system/Bundle.write"
SCOPE_READ = "system/Bundle.read"
# The learning-loop reports (aggregate counts, no patient data): GET /report/feedback. Not a FHIR type on purpose.
SCOPE_REPORT = "system/alk-report.read"
SUPPORTED_SCOPES = (SCOPE_WRITE, SCOPE_READ, SCOPE_REPORT)
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class PartnerConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Partner:
    client_id: str
    name: str
    organization_system: str
    organization_value: str
    scopes: frozenset[str]
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None


class PartnerRegistry:
    def __init__(self, partners: Iterable[Partner] = ()) -> None:
        self._by_client: dict[str, Partner] = {}
        for partner in partners:
            if partner.client_id in self._by_client:
                raise PartnerConfigError(f"client_id {partner.client_id!r} registered twice")
            self._by_client[partner.client_id] = partner

    def get(self, client_id: str) -> Partner | None:
        return self._by_client.get(client_id)

    def jwks_urls(self) -> frozenset[str]:
        return frozenset(p.jwks_url for p in self._by_client.values() if p.jwks_url)

    def __iter__(self) -> Iterator[Partner]:
        return iter(self._by_client.values())

    def __len__(self) -> int:
        return len(self._by_client)


def _text(entry: dict[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PartnerConfigError(f"{where}.{name}: a non-empty string is required")
    return value.strip()


def _jwks(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list) or not value["keys"]:
        raise PartnerConfigError(f"{where}: a JWK Set with a non-empty 'keys' array is required")
    for i, key in enumerate(value["keys"]):
        if not isinstance(key, dict) or not key.get("kty") or not key.get("kid"):
            raise PartnerConfigError(f"{where}.keys[{i}]: each key needs 'kty' and 'kid'")
        if any(member in key for member in _PRIVATE_JWK_MEMBERS):
            raise PartnerConfigError(f"{where}.keys[{i}]: a private or symmetric key; "
                                     "register public keys only")
    return value


def _partner(entry: Any, where: str) -> Partner:
    if not isinstance(entry, dict):
        raise PartnerConfigError(f"{where}: an object is required")
    org = entry.get("organization")
    if not isinstance(org, dict):
        raise PartnerConfigError(f"{where}.organization: an object with system and value is required")
    system = _text(org, "system", f"{where}.organization")
    if system not in ORGANIZATION_SYSTEMS:
        raise PartnerConfigError(f"{where}.organization.system: must be URA ({URA_SYSTEM}) "
                                 f"or AGB ({AGB_SYSTEM})")
    scopes = entry.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise PartnerConfigError(f"{where}.scopes: a non-empty list of scope strings is required")
    unknown = sorted(set(scopes) - set(SUPPORTED_SCOPES))
    if unknown:
        raise PartnerConfigError(f"{where}.scopes: unsupported {', '.join(unknown)} "
                                 f"(supported: {', '.join(SUPPORTED_SCOPES)})")
    jwks, jwks_url = entry.get("jwks"), entry.get("jwks_url")
    if (jwks is None) == (jwks_url is None):
        raise PartnerConfigError(f"{where}: exactly one of 'jwks' and 'jwks_url' is required")
    if jwks_url is not None and (not isinstance(jwks_url, str) or not is_secure_transport(jwks_url)):
        raise PartnerConfigError(f"{where}.jwks_url: must be an https URL (http only on loopback)")
    return Partner(
        client_id=_text(entry, "client_id", where),
        name=_text(entry, "name", where),
        organization_system=system,
        organization_value=_text(org, "value", f"{where}.organization"),
        scopes=frozenset(scopes),
        jwks=_jwks(jwks, f"{where}.jwks") if jwks is not None else None,
        jwks_url=jwks_url,
    )


def parse_partners(data: Any, source: str = "partners") -> PartnerRegistry:
    if not isinstance(data, list):
        raise PartnerConfigError(f"{source}: a JSON list of partners is required")
    try:
        return PartnerRegistry(_partner(entry, f"{source}: [{i}]") for i, entry in enumerate(data))
    except PartnerConfigError as exc:
        raise PartnerConfigError(str(exc) if str(exc).startswith(source) else f"{source}: {exc}") from None


def load_partners(path: str | Path) -> PartnerRegistry:
    """The registry from a partners file; PartnerConfigError names the file and the JSON path."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PartnerConfigError(f"{file}: cannot be read ({exc.strerror})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PartnerConfigError(f"{file}: not valid JSON ({exc})") from exc
    return parse_partners(data, str(file))
