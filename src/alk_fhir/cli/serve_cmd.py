"""``alk-fhir serve``: the service on uvicorn, with the embedded defaults unless configured."""

from __future__ import annotations

import logging
import os

import click

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def served_base_url(host: str, port: int) -> str:
    """The base URL when ``ALK_FHIR_BASE_URL`` is unset: the host and port actually served (a wildcard
    host is reached on this machine as 127.0.0.1; a public deployment sets ALK_FHIR_BASE_URL)."""
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes")
@click.option("--demo", is_flag=True, default=False,
              help="also serve the demo EHR under /demo (example patients, SMART launch, CDS view); "
                   "writes stay in memory. Same as ALK_FHIR_DEMO=1.")
def serve(host: str, port: int, workers: int, demo: bool) -> None:
    """Serve the knowledge repository, validation, $apply, CDS Hooks and the overview exchange."""
    import uvicorn

    from alk_fhir.api.app import create_served_app
    from alk_fhir.config import Settings

    # Workers read the settings from the environment themselves: say it there.
    if not os.environ.get("ALK_FHIR_BASE_URL", "").strip():
        os.environ["ALK_FHIR_BASE_URL"] = served_base_url(host, port)
    if demo:
        os.environ["ALK_FHIR_DEMO"] = "1"
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.demo:
        logging.getLogger("alk_fhir").warning("demo EHR on: open %s/demo/ (invented patients, kept in memory)",
                                              settings.base_url)
    if workers > 1:
        uvicorn.run("alk_fhir.api.app:create_served_app", factory=True, host=host, port=port, workers=workers,
                    log_level=settings.log_level, access_log=False)
    else:
        uvicorn.run(create_served_app(settings), host=host, port=port, log_level=settings.log_level,
                    access_log=False)
