"""The demo EHR (``alk-fhir serve --demo``): example patients, a SMART launch and an EHR-style CDS view."""

from alk_fhir.demo.routes import Demo, demo_settings, install_demo

__all__ = ["Demo", "demo_settings", "install_demo"]
