"""The auth objects one app shares: caches, partner registry, token key, audit sink.

They live on ``app.state.auth``. ``install_auth_state`` builds them (the store module passes its
database-backed ``JtiCache`` and ``AuditSink`` there); ``auth_state`` returns them, building the
in-memory defaults on first use, so a dependency never finds them missing. The SMART router's
lifespan calls ``auth_state`` at start-up so that a broken partners file or key file stops the
service then, not at the first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alk_fhir.appstate import state_of
from alk_fhir.auth.audit import AuditSink, MemoryAuditSink
from alk_fhir.auth.jwks import Fetcher, JwksCache, http_fetch
from alk_fhir.auth.partners import PartnerRegistry, load_partners
from alk_fhir.auth.replay import JtiCache, MemoryJtiCache
from alk_fhir.auth.tokens import TokenIssuer, token_issuer
from alk_fhir.config import Settings


@dataclass
class AuthState:
    settings: Settings
    partners: PartnerRegistry
    jwks: JwksCache
    replay: JtiCache
    audit: AuditSink
    tokens: TokenIssuer


def build_auth_state(settings: Settings, *, partners: PartnerRegistry | None = None,
                     replay: JtiCache | None = None, audit: AuditSink | None = None,
                     tokens: TokenIssuer | None = None, fetcher: Fetcher = http_fetch) -> AuthState:
    if partners is None:
        partners = load_partners(settings.partners_file) if settings.partners_file else PartnerRegistry()
    allowed = set(settings.cds_trusted_issuers.values()) | partners.jwks_urls()
    return AuthState(
        settings=settings,
        partners=partners,
        jwks=JwksCache(allowed, fetcher=fetcher),
        replay=replay if replay is not None else MemoryJtiCache(),
        audit=audit if audit is not None else MemoryAuditSink(),
        tokens=tokens or token_issuer(settings.base_url, settings.token_key_file, settings.token_lifetime,
                                      settings.auth_clock_skew),
    )


def install_auth_state(app: Any, **overrides: Any) -> AuthState:
    """Build the state from ``app.state.settings`` (plus ``overrides``) and attach it to ``app``."""
    state = build_auth_state(app.state.settings, **overrides)
    app.state.auth = state
    return state


def auth_state(app: Any) -> AuthState:
    return state_of(app, "auth", AuthState, install_auth_state)
