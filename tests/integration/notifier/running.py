"""A notifier running in the test's event loop, on the test's database and the session broker,
with waits short enough for tests."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from services.notifier.bootstrap import Notifier
from services.notifier.settings import NotifierSettings
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from tests.integration.conftest import SEALING_KEY, SECRET


def notifier_settings(
    database_url: str, kafka: KafkaSettings, **changes: object
) -> NotifierSettings:
    fields: dict = {
        "pseudonym_secret": SECRET,
        "secret_sealing_key": SEALING_KEY,
        "database_url": database_url,
        "kafka": kafka,
        "webhook_allow_loopback": True,
        "notifier_consumer_group": f"notifier-test-{uuid.uuid4().hex[:8]}",
        "notifier_metrics_port": 0,
        "notifier_timeout_seconds": 1.0,
        "notifier_retry_base_seconds": 0.1,
        "notifier_retry_max_seconds": 0.5,
        "notifier_retry_horizon_seconds": 60.0,
        "notifier_failing_after": 3,
        "notifier_poll_interval_seconds": 0.05,
    }
    fields.update(changes)
    return NotifierSettings(**fields)


@contextlib.asynccontextmanager
async def running_notifier(
    database_url: str, kafka: KafkaSettings, **changes: object
) -> AsyncIterator[Notifier]:
    """Its own consumer group, so it reads every topic from the start."""
    engine = make_engine(database_url)
    notifier = Notifier(notifier_settings(database_url, kafka, **changes), engine)
    task = asyncio.create_task(notifier.run())
    try:
        yield notifier
    finally:
        notifier.stop()
        await task
        engine.dispose()
