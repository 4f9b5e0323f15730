"""Settings, read once from ``ALK_FHIR_*`` environment variables.

Every setting has an embedded default so that ``make serve`` works on a fresh machine with no
configuration at all; production deployments override them (see README, "Configuration").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alk_fhir.store.retention import Retention

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _env_int(name: str, default: int, low: int, high: int) -> int:
    """An integer setting within [low, high]; anything else stops start-up with the variable's name."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _env_json(name: str) -> dict[str, str]:
    """Parse a JSON object setting; a broken value must stop start-up, not be ignored."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{name} must be a JSON object of issuer -> JWKS URL")
    return {str(k): v for k, v in value.items()}


@dataclass(frozen=True)
class Settings:
    base_url: str = "http://127.0.0.1:8080"
    # ALK_FHIR_DEMO=1 (``alk-fhir serve --demo``, on in ``make serve``): the demo EHR under /demo
    demo: bool = False
    database_url: str = "sqlite:///" + str(REPO_ROOT / "var" / "alk-fhir.sqlite3")
    package_dir: Path = REPO_ROOT / "profiles"
    # ALK_FHIR_CONCEPTMAPS: FHIR ConceptMap JSON files the installation supplies (separated by the OS path
    # separator), e.g. its licensed G-Standaard -> ATC table; memberOf() in the facts follows them
    conceptmaps: tuple[Path, ...] = ()
    package_cache: Path = Path.home() / ".fhir" / "packages"
    cds_auth: str = "jwt"
    cds_trusted_issuers: dict[str, str] = field(default_factory=dict)
    cors_origins: tuple[str, ...] = ()
    log_level: str = "info"
    app_launch_url: str = ""
    # The clinician app (SMART App Launch public client): the client id the EHR registered for it and
    # the scopes it asks for (ALK_FHIR_APP_CLIENT_ID, ALK_FHIR_APP_SCOPE).
    app_client_id: str = "alk-fhir-app"
    # read the record, write answers, and create what the plan proposes (Task, ServiceRequest, CarePlan, CareTeam)
    app_scope: str = ("openid fhirUser patient/*.rs patient/QuestionnaireResponse.c patient/Task.c "
                      "patient/ServiceRequest.c patient/CarePlan.c patient/CareTeam.c")
    partners_file: str = ""
    # Auth (alk_fhir.auth). Environment variables and defaults:
    #   ALK_FHIR_CDS_AUTH            "jwt" (default) | "off": CDS client JWTs required (CDS Hooks 2.0)
    #   ALK_FHIR_CDS_TRUSTED_ISSUERS {} : JSON object, CDS client issuer -> its JWKS URL; a JWT's `jku`,
    #                                if present, must equal that URL (no other URL is ever fetched)
    #   ALK_FHIR_PARTNERS_FILE       "" : JSON list of exchange partners (SMART Backend Services clients)
    #   ALK_FHIR_TOKEN_KEY_FILE      "" : PEM EC P-384 private key signing our access tokens; when unset a
    #                                key is generated at start-up and kept in memory, so tokens do not
    #                                survive a restart and are not valid across workers: multi-worker
    #                                deployments MUST set it
    #   ALK_FHIR_TOKEN_LIFETIME      300 : access-token lifetime in seconds (1-300, SMART Backend Services)
    #   ALK_FHIR_AUTH_CLOCK_SKEW     60 : seconds of clock difference tolerated on exp/iat (0-300)
    #   ALK_FHIR_CDS_TOKEN_MAX_LIFETIME 300 : a CDS client JWT's exp may be at most this many seconds past
    #                                its iat (1-3600); longer-lived tokens are refused, so a seen jti is
    #                                never kept longer than this (plus the clock skew)
    token_key_file: str = ""
    # Remembered overrides (issue 21): ALK_FHIR_SNOOZE_KEY_FILE "" : a file holding the secret key (at least
    # 32 bytes) of the keyed pseudonym (HMAC-SHA256) under which a snoozed card's patient is stored; when
    # unset a key is generated at start-up and kept in memory, so snoozes end at a restart and are not
    # shared across workers: multi-worker deployments MUST set it
    snooze_key_file: str = ""
    token_lifetime: int = 300
    auth_clock_skew: int = 60
    cds_token_max_lifetime: int = 300
    # ALK_FHIR_MAX_BODY_MB 15: the largest request body, in MiB (1-100; fhir.body.MAX_BODY, set by
    # `alk-fhir serve`). FHIR JSON costs about 6 times its size while handled (the body and its tree)
    # over a serving process of 160-230 MB: 15 keeps any body under 300 MB; 20 admits a 19 MB Bundle,
    # which peaks at 275 MB alone and 291-297 MB after others (issue 25).
    max_body_mb: int = 15
    # Retention (issue 22, README "Privacy"): what the store keeps, how long; `alk-fhir store purge` and
    # start-up enforce it. ALK_FHIR_RETENTION_FEEDBACK_DAYS (CDS feedback), _SHOWN_MONTHS (cards shown),
    # _VERSION_DAYS (superseded document versions; the current one is always kept), _COMMENT_DAYS
    # (0: user comments and foreign override-reason text are not stored at all).
    retention_feedback_days: int = 730
    retention_shown_months: int = 24
    retention_version_days: int = 365
    retention_comment_days: int = 0

    def retention(self) -> Retention:
        from alk_fhir.store.retention import Retention

        return Retention(feedback_days=self.retention_feedback_days, shown_months=self.retention_shown_months,
                         version_days=self.retention_version_days, comment_days=self.retention_comment_days)

    @classmethod
    def from_env(cls) -> Settings:
        cds_auth = _env("ALK_FHIR_CDS_AUTH", "jwt").lower()
        if cds_auth not in ("jwt", "off"):
            raise ValueError("ALK_FHIR_CDS_AUTH must be 'jwt' or 'off'")
        return cls(
            base_url=_env("ALK_FHIR_BASE_URL", cls.base_url).rstrip("/"),
            database_url=_env("ALK_FHIR_DATABASE_URL", cls.database_url),
            demo=_env("ALK_FHIR_DEMO", "").strip().lower() in ("1", "true", "yes", "on"),
            package_dir=Path(_env("ALK_FHIR_PACKAGE_DIR", str(REPO_ROOT / "profiles"))),
            conceptmaps=tuple(Path(p) for p in _env("ALK_FHIR_CONCEPTMAPS", "").split(os.pathsep) if p.strip()),
            package_cache=Path(_env("ALK_FHIR_PACKAGE_CACHE", str(Path.home() / ".fhir" / "packages"))),
            cds_auth=cds_auth,
            cds_trusted_issuers=_env_json("ALK_FHIR_CDS_TRUSTED_ISSUERS"),
            cors_origins=_env_list("ALK_FHIR_CORS_ORIGINS"),
            log_level=_env("ALK_FHIR_LOG_LEVEL", "info").lower(),
            app_launch_url=_env("ALK_FHIR_APP_LAUNCH_URL", ""),
            app_client_id=_env("ALK_FHIR_APP_CLIENT_ID", "").strip() or cls.app_client_id,
            app_scope=_env("ALK_FHIR_APP_SCOPE", "").strip() or cls.app_scope,
            partners_file=_env("ALK_FHIR_PARTNERS_FILE", ""),
            token_key_file=_env("ALK_FHIR_TOKEN_KEY_FILE", ""),
            snooze_key_file=_env("ALK_FHIR_SNOOZE_KEY_FILE", ""),
            token_lifetime=_env_int("ALK_FHIR_TOKEN_LIFETIME", 300, 1, 300),
            auth_clock_skew=_env_int("ALK_FHIR_AUTH_CLOCK_SKEW", 60, 0, 300),
            cds_token_max_lifetime=_env_int("ALK_FHIR_CDS_TOKEN_MAX_LIFETIME", 300, 1, 3600),
            max_body_mb=_env_int("ALK_FHIR_MAX_BODY_MB", 15, 1, 100),
            retention_feedback_days=_env_int("ALK_FHIR_RETENTION_FEEDBACK_DAYS", 730, 1, 3650),
            retention_shown_months=_env_int("ALK_FHIR_RETENTION_SHOWN_MONTHS", 24, 1, 120),
            retention_version_days=_env_int("ALK_FHIR_RETENTION_VERSION_DAYS", 365, 0, 3650),
            retention_comment_days=_env_int("ALK_FHIR_RETENTION_COMMENT_DAYS", 0, 0, 365),
        )
