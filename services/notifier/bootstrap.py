"""The notifier process's composition root: it builds the consumer that turns erasures into
notifications, the delivery loop that sends them, the prune of what they leave behind and the
status server, and runs them. ``gallring notifier`` runs it (``main.py``); a test may hand it a
delivery loop of its own."""

import asyncio
from datetime import UTC, datetime

from sqlalchemy import Engine

from services.notifier import prune
from services.notifier.consumer import notifier_consumer
from services.notifier.delivery_loop import DeliveryLoop
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierSettings
from shared.runtime.status_server import status_server
from shared.runtime.worker_process import supervise
from shared.storage.pruning import PeriodicPruner


class Notifier:
    def __init__(
        self,
        settings: NotifierSettings,
        db: Engine,
        *,
        delivery_loop: DeliveryLoop | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self.metrics = NotifierMetrics(db)
        self.delivery_loop = delivery_loop or DeliveryLoop(db, settings, self.metrics)
        self.consumer = notifier_consumer(
            db,
            settings,
            on_new_notifications=self.delivery_loop.wake,
            on_dead_letter=self.metrics.dead_letters.inc,
        )
        self.pruner = PeriodicPruner(
            lambda halt: prune.prune(db, settings, datetime.now(UTC), halt),
            self.metrics.pruned,
            service="notifier",
        )
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Consume and deliver until :meth:`stop`."""
        settings = self._settings
        with status_server(
            settings.notifier_metrics_host,
            settings.notifier_metrics_port,
            self.metrics.registry,
            self._db,
            stalled=self.consumer.stalled,
            joined=self.consumer.joined,
        ):
            tasks = [
                asyncio.create_task(self.consumer.run(), name="notifier-consumer"),
                asyncio.create_task(self.delivery_loop.run(), name="notifier-delivery-loop"),
                asyncio.create_task(self.pruner.run(), name="notifier-pruner"),
            ]
            await supervise(tasks, self._stopping, self._stop_tasks)

    def _stop_tasks(self) -> None:
        self.consumer.stop()
        self.delivery_loop.stop()
        self.pruner.stop()

    def stop(self) -> None:
        self._stopping.set()
