"""What the CDS endpoints share, built once per app: compiled card catalog, engine, feedback sink.

Built by the router's start-up hook (so a broken plan stops the service at start-up), or on first
use when an app is driven without its lifespan (tests). ``snoozer`` remembers overrides in the
app's store (``app.state.store``; in memory without one). ``today``, ``open_source`` and ``feedback``
are the seams tests replace: the date rules see, the FHIR server reader, the feedback store. The
feedback store is ``app.state.cds_feedback`` when the app wires one (``alk_fhir.store.Store``
fits the ``FeedbackSink`` protocol), otherwise feedback is kept in memory with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from alk_fhir.apply import Engine
from alk_fhir.appstate import state_of
from alk_fhir.cds.cards import Catalog, compile_catalog
from alk_fhir.cds.discovery import configure
from alk_fhir.cds.feedback import FeedbackSink, MemoryFeedbackSink
from alk_fhir.cds.prefetch import SourceFactory, http_source
from alk_fhir.cds.snooze import MemorySnoozes, Snoozer, load_key, policy_of
from alk_fhir.config import Settings

log = logging.getLogger("alk_fhir.cds")


@dataclass
class CdsState:
    engine: Engine
    catalog: Catalog
    settings: Settings
    feedback: FeedbackSink
    snoozer: Snoozer
    today: Callable[[], date] = date.today
    open_source: SourceFactory = http_source


def build_cds_state(app: Any) -> CdsState:
    engine: Engine = app.state.engine
    feedback = getattr(app.state, "cds_feedback", None)
    if feedback is None:
        log.warning("no feedback store configured: CDS Hooks feedback is kept in memory only")
        feedback = MemoryFeedbackSink()
    configure(engine)  # the services' prefetch, generated from the plan and the facts it reads
    settings: Settings = app.state.settings
    store = getattr(app.state, "store", None)
    snoozes = store if store is not None and hasattr(store, "snoozes_for") else MemorySnoozes()
    snoozer = Snoozer(policy_of(engine.package), load_key(settings.snooze_key_file), snoozes)
    state = CdsState(engine=engine, catalog=compile_catalog(engine), settings=settings, feedback=feedback,
                     snoozer=snoozer)
    app.state.cds = state
    return state


def cds_state(app: Any) -> CdsState:
    return state_of(app, "cds", CdsState, build_cds_state)
