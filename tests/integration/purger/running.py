"""A purger running in the test's event loop, on the test's database and the session broker."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from services.purger.bootstrap import Purger
from services.purger.settings import PurgerSettings
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from tests.integration.conftest import SECRET, relay_settings


@contextlib.asynccontextmanager
async def running_purger(
    database_url: str, kafka: KafkaSettings, **changes: object
) -> AsyncIterator[Purger]:
    """Its own consumer group, so it reads the lifecycle topic from the start."""
    fields: dict = {
        "pseudonym_secret": SECRET,
        "database_url": database_url,
        "kafka": kafka,
        "relay": relay_settings(),
        "purger_consumer_group": f"purger-test-{uuid.uuid4().hex[:8]}",
        "purger_sweep_interval_seconds": 0.5,
        "purger_metrics_port": 0,
    }
    fields.update(changes)
    engine = make_engine(database_url)
    purger = Purger(PurgerSettings(**fields), engine)
    task = asyncio.create_task(purger.run())
    try:
        yield purger
    finally:
        purger.stop()
        await task
        engine.dispose()
