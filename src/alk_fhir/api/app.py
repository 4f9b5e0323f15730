"""The FastAPI application: loads everything once, then mounts each face's router.

Faces register here and nowhere else; a face never imports another face (architecture.md).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException

from alk_fhir import __version__
from alk_fhir.api import (
    app_routes,
    apply_routes,
    home_routes,
    knowledge_routes,
    overview_routes,
    report_routes,
    validate_routes,
)
from alk_fhir.api.capability import capability_statement
from alk_fhir.api.outcome import (
    FHIRError,
    FHIRResponse,
    fhir_error_handler,
    fhir_response,
    http_error_handler,
    unexpected_error_handler,
    validation_error_handler,
)
from alk_fhir.apply import load_engine
from alk_fhir.auth import CdsClientAuth, install_auth_state, smart_routes
from alk_fhir.cds.routes import router as cds_router
from alk_fhir.config import Settings
from alk_fhir.demo import demo_settings, install_demo
from alk_fhir.fhir import BodyGate, body
from alk_fhir.knowledge import Package, load_package
from alk_fhir.store import Store, StoreAuditSink, StoreJtiCache, open_store

log = logging.getLogger("alk_fhir")


@asynccontextmanager
async def _store_backed_auth(app: FastAPI) -> AsyncIterator[None]:
    """At start-up (before the routers' own start-up): replay protection and audit in the database."""
    extra: dict[str, Any] = {"fetcher": app.state.demo.fetcher()} if app.state.settings.demo else {}
    install_auth_state(app, replay=StoreJtiCache(app.state.store), audit=StoreAuditSink(app.state.store), **extra)
    yield


def purge_on_start(store: Store) -> None:
    """Enforce the retention once at start-up (README "Privacy"); a purge that fails is logged, the
    service still starts (``alk-fhir store purge`` can be run by hand)."""
    try:
        result = store.purge()
    except Exception as exc:  # a locked or read-only database must not keep the service down
        log.warning("retention purge at start-up failed: %s", exc)
        return
    if any(result.to_dict().values()):
        log.info("retention purge: %s", result.to_dict())


def create_app(settings: Settings | None = None, package: Package | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    if settings.demo:
        settings = demo_settings(settings)  # the demo EHR is a trusted CDS client of this instance
    pkg = package or load_package(settings.package_dir, settings.conceptmaps)
    app = FastAPI(
        title="alk-fhir",
        version=__version__,
        description="FHIR R4 knowledge repository, validation, $apply and CDS Hooks for hardnekkige ALK",
        lifespan=_store_backed_auth,
    )
    app.state.settings = settings
    if settings.cds_auth == "off":
        log.warning("ALK_FHIR_CDS_AUTH=off: CDS Hooks requests are accepted without a client JWT "
                    "(local development only; never in production)")
    app.state.package = pkg
    app.state.engine = load_engine(pkg)  # compiles every condition once; fails loudly on a broken plan
    app.state.capability_extra = []  # faces append CapabilityStatement.rest.resource entries
    app.state.capability_operations = []  # and system-level operations
    # One database for CDS feedback, seen JWT ids (replay protection shared by all workers) and audit.
    app.state.store = open_store(settings.database_url, settings.retention())
    purge_on_start(app.state.store)
    app.state.cds_feedback = app.state.store
    app.add_middleware(BodyGate)  # big request bodies one at a time, in a worker thread (fhir.body)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["Authorization", "Content-Type"])

    app.add_exception_handler(FHIRError, fhir_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)

    @app.get("/fhir/metadata", response_class=FHIRResponse, tags=["knowledge"])
    def metadata(request: Request) -> FHIRResponse:
        return fhir_response(capability_statement(
            settings.base_url, pkg, request.app.state.capability_extra, request.app.state.capability_operations))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "package": f"{pkg.name}#{pkg.version}", "resources": len(pkg.resources)}

    # Faces: specific routes first, the generic knowledge routes (/fhir/{type}/{id}) last.
    app.include_router(home_routes.router)  # GET /: a page for people, an OperationOutcome for FHIR clients
    app.include_router(smart_routes.router)
    app.include_router(apply_routes.router)
    app.state.capability_operations.append(
        {"name": "apply", "definition": "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply"})
    app.include_router(validate_routes.install(app))
    app.include_router(overview_routes.install(app))
    app.include_router(report_routes.install(app))  # learning loop: shown cards recorded, feedback report
    app.include_router(cds_router, dependencies=[Depends(CdsClientAuth())])  # every CDS call: client JWT
    app.include_router(app_routes.router)
    if settings.demo:
        install_demo(app)  # /demo: example patients, SMART launch, an EHR-style CDS view (nothing when off)
    app.include_router(knowledge_routes.router)
    return app


# Collections start when this many container objects have been allocated and not yet freed (CPython's
# default is 700, which a parsed 20 kB hook request passes on its own).
GC_THRESHOLD = 10_000


def create_served_app(settings: Settings | None = None) -> FastAPI:
    """The app as ``alk-fhir serve`` runs it (each worker): :func:`create_app`, and once start-up is
    complete, the garbage collector set for a request/response server. Why: a request's data is
    acyclic (tests/test_engine.py checks that a CDS call leaves no cyclic garbage) and is freed by
    reference counting, while the ~250,000 objects loaded at start-up (package, R4 definitions,
    compiled rules) live as long as the process. Left as they are, the collector ran in almost every
    request (a parsed body passes its default threshold) and every so often walked all of them: a
    140 ms pause. ``gc.freeze()`` takes the start-up objects out of its walks and a higher threshold
    lets it run every few dozen requests instead. Tests use :func:`create_app`, untouched."""
    app = create_app(settings)
    body.MAX_BODY = app.state.settings.max_body_mb * 1024 * 1024  # this process serves one app
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[Any]:
        async with started(application) as state:
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
            yield state

    app.router.lifespan_context = lifespan
    return app
