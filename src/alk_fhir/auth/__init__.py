"""Who may call: CDS client JWTs (CDS Hooks 2.0), partner tokens (SMART Backend Services), audit.

Imports nothing from the faces (architecture.md); ``api`` mounts ``smart_routes.router`` and uses
``CdsClientAuth`` / ``RequirePartner`` as dependencies.
"""

from alk_fhir.auth.audit import AuditSink, MemoryAuditSink, audit_event
from alk_fhir.auth.cds_jwt import CdsClientAuth, CdsJwtError, verify_cds_jwt
from alk_fhir.auth.dependencies import Principal, RequirePartner, audit_access
from alk_fhir.auth.partners import (
    AGB_SYSTEM,
    SCOPE_READ,
    SCOPE_REPORT,
    SCOPE_WRITE,
    URA_SYSTEM,
    Partner,
    PartnerRegistry,
    load_partners,
)
from alk_fhir.auth.policy import may_read, may_write
from alk_fhir.auth.replay import JtiCache, MemoryJtiCache
from alk_fhir.auth.state import AuthState, auth_state, install_auth_state

__all__ = [
    "AGB_SYSTEM",
    "SCOPE_READ",
    "SCOPE_REPORT",
    "SCOPE_WRITE",
    "URA_SYSTEM",
    "AuditSink",
    "AuthState",
    "CdsClientAuth",
    "CdsJwtError",
    "JtiCache",
    "MemoryAuditSink",
    "MemoryJtiCache",
    "Partner",
    "PartnerRegistry",
    "Principal",
    "RequirePartner",
    "audit_access",
    "audit_event",
    "auth_state",
    "install_auth_state",
    "load_partners",
    "may_read",
    "may_write",
    "verify_cds_jwt",
]
