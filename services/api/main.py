"""Running the API: ``gallring api`` (settings from the environment) and ``gallring up``'s part."""

import logging

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.runtime.logs import configure_logging, quiet_libraries
from shared.storage.migrate import upgrade

log = logging.getLogger("gallring.api")


def serve(settings: ApiSettings) -> None:
    """Bring the database schema up to date, then serve until interrupted."""
    configure_logging()
    upgrade(settings.database_url)
    log.info(
        "API on http://%s:%d (OpenAPI docs at /docs); Kafka at %s",
        settings.api_host,
        settings.api_port,
        settings.kafka.bootstrap,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        access_log=not quiet_libraries(),
        proxy_headers=True,
    )
