"""Which URLs may carry tokens and patient data: https, or plain http to this machine only.

SMART App Launch 2.x ("client-confidential-asymmetric": all exchanges SHALL use TLS) and CDS Hooks
2.0 (security: TLS for every call) require TLS; plain http to the loopback interface is allowed so
that development and tests can run without certificates. JWKS URLs, the exchange partner's FHIR
server and its token endpoint, and the CDS ``fhirServer`` all follow this one rule.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def is_secure_transport(url: str, *, allow_http: bool = False) -> bool:
    """True for an https URL with a host, or an http URL to the loopback interface (to any host
    when ``allow_http``, an explicit opt-in for test rigs)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced "[" in the netloc
        return False
    if not host:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and (allow_http or host in LOOPBACK_HOSTS)


def require_secure_transport(url: str, *, allow_http: bool = False) -> None:
    """``ValueError`` naming ``url`` unless :func:`is_secure_transport` allows it."""
    if not is_secure_transport(url, allow_http=allow_http):
        raise ValueError(f"{url!r} is not an https URL (plain http is only allowed to localhost)")
