"""Running the purger: ``gallring purger`` (settings from the environment)."""

import asyncio
import logging
import signal

from services.purger.service import Purger
from services.purger.settings import PurgerSettings
from shared.database import make_engine
from shared.migrate import upgrade

log = logging.getLogger("gallring.purger")


def serve(settings: PurgerSettings) -> None:
    """Bring the database schema up to date, then run until SIGINT or SIGTERM."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    upgrade(settings.database_url)
    asyncio.run(_run(settings))


async def _run(settings: PurgerSettings) -> None:
    db = make_engine(settings.database_url)
    purger = Purger(settings, db)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, purger.stop)
    log.info(
        "purger: consuming %s as group %s, sweeping every %.0fs; Kafka at %s",
        "gallring.lifecycle.v1",
        settings.purger_consumer_group,
        settings.purger_sweep_interval_seconds,
        settings.kafka.bootstrap,
    )
    try:
        await purger.run()
    finally:
        db.dispose()
