"""``alk-fhir serve``: the service on uvicorn, with the embedded defaults unless configured.

The HTTP protocol is uvicorn's httptools one with the request head bounded (``cli.http_limits``:
431 beyond 32 kB or 100 header fields, before anything else runs)."""

from __future__ import annotations

import logging

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the knowledge repository, validation, $apply, CDS Hooks and the overview exchange."""
    import uvicorn

    from alk_fhir.api.app import create_served_app
    from alk_fhir.cli.http_limits import BoundedHttpToolsProtocol
    from alk_fhir.config import Settings

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if workers > 1:
        uvicorn.run("alk_fhir.api.app:create_served_app", factory=True, host=host, port=port, workers=workers,
                    log_level=settings.log_level, access_log=False, http=BoundedHttpToolsProtocol)
    else:
        uvicorn.run(create_served_app(settings), host=host, port=port, log_level=settings.log_level,
                    access_log=False, http=BoundedHttpToolsProtocol)
