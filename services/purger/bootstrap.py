"""The purger process's composition root: it builds the retention engine, the lifecycle
consumers (one for the immediate lane), the sweep on an APScheduler interval, the outbox relay
that publishes the erasures, and the status server, and runs them. ``gallring purger`` runs it
(``main.py``); a test may hand it parts of its own (an engine with another policy, a relay of its
own).

One interval job sweeps every due clock, however many there are: clocks live in the database,
never as scheduler jobs. An immediate erasure asks for a sweep at once instead of at the next
tick; if a sweep is running, another follows it. Another job, at start and hourly, brings clocks
stored under another policy up to this one (``policy_refresh.py``); a third prunes the dedupe
record of consumed events (``prune.py``).
"""

import asyncio
import logging
import threading
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine

from services.purger import prune
from services.purger.consumer import lifecycle_consumers
from services.purger.metrics import PurgerMetrics
from services.purger.policy_refresh import REFRESH_EVERY_SECONDS, refresh_stale_verdicts
from services.purger.settings import PurgerSettings
from services.purger.sweep import sweep
from shared.domain.engine import RetentionEngine
from shared.messaging.outbox import OutboxRelay
from shared.runtime.status_server import status_server
from shared.runtime.worker_process import STOP_SECONDS, supervise
from shared.storage.pruning import PRUNE_EVERY_SECONDS

log = logging.getLogger(__name__)
SWEEP_JOB = "sweep"
REFRESH_JOB = "refresh-stale-verdicts"
PRUNE_JOB = "prune"


class Purger:
    def __init__(
        self,
        settings: PurgerSettings,
        db: Engine,
        *,
        retention: RetentionEngine | None = None,
        relay: OutboxRelay | None = None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._retention = retention or RetentionEngine(settings.policy())
        self.metrics = PurgerMetrics(db, self._retention.digest)
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._sweeping = False
        self._jobs: set[asyncio.Task[None]] = set()  # the scheduler's jobs under way
        self._sweep_again = False
        self.consumers = lifecycle_consumers(
            db,
            self._retention,
            settings,
            on_erasable=self.sweep_soon,
            on_erased=self.metrics.erased.inc,
            on_dead_letter=self.metrics.dead_letters.inc,
            on_unregistered_confirmations=self.metrics.unregistered_confirmations.inc,
        )
        self.relay = relay or OutboxRelay(db, settings.kafka, settings.relay, self.metrics.outbox)
        self._stopping = asyncio.Event()
        self._refresh_stopping = threading.Event()  # read by the refresh's thread
        self._prune_stopping = threading.Event()  # and the prune's

    async def run(self) -> None:
        """Consume, sweep and publish until :meth:`stop`."""
        self._scheduler.add_job(
            self._sweep,
            "interval",
            seconds=self._settings.purger_sweep_interval_seconds,
            id=SWEEP_JOB,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.add_job(
            self._refresh_stale_verdicts,
            "interval",
            seconds=REFRESH_EVERY_SECONDS,
            id=REFRESH_JOB,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # however late: a start must not skip it
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.add_job(
            self._prune,
            "interval",
            seconds=PRUNE_EVERY_SECONDS,
            id=PRUNE_JOB,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # however late: the next tick is an hour away
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.start()
        settings = self._settings
        try:
            with status_server(
                settings.purger_metrics_host,
                settings.purger_metrics_port,
                self.metrics.registry,
                self._db,
                stalled=lambda: any(consumer.stalled() for consumer in self.consumers),
                joined=lambda: all(consumer.joined() for consumer in self.consumers),
            ):
                tasks = [
                    asyncio.create_task(consumer.run(), name=f"{consumer.name}-consumer")
                    for consumer in self.consumers
                ]
                if settings.relay.enabled:
                    tasks.append(asyncio.create_task(self.relay.run(), name="purger-relay"))
                await supervise(tasks, self._stopping, self._stop_tasks)
        finally:
            # A sweep or a refresh under way finishes first (the refresh stops early, told by
            # _refresh_stopping): shutting the scheduler down cancels its jobs, which cut off
            # would be logged as failed.
            self._scheduler.pause()
            if self._jobs:
                await asyncio.wait(self._jobs, timeout=STOP_SECONDS)
            self._scheduler.shutdown(wait=False)

    def _stop_tasks(self) -> None:
        self._refresh_stopping.set()
        self._prune_stopping.set()
        for consumer in self.consumers:
            consumer.stop()
        self.relay.stop()

    def stop(self) -> None:
        self._stopping.set()

    def _track_job(self) -> None:
        """Note the scheduler's job running in this task, until it ends, so a stop can wait."""
        task = asyncio.current_task()
        if task is not None:
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)

    def sweep_soon(self) -> None:
        """Sweep now rather than at the next tick (an immediate erasure came in)."""
        if self._sweeping:
            self._sweep_again = True
        elif self._scheduler.running:
            self._scheduler.modify_job(SWEEP_JOB, next_run_time=datetime.now(UTC))

    async def _refresh_stale_verdicts(self) -> None:
        self._track_job()
        try:
            refreshed = await asyncio.to_thread(
                refresh_stale_verdicts,
                self._db,
                self._retention,
                self._settings.purger_sweep_batch_size,
                self._refresh_stopping,
            )
        except Exception as error:  # noqa: BLE001 - consuming and sweeping go on
            log.warning(
                "purger: bringing clocks up to the policy failed (%s); tried again in %.0f s",
                type(error).__name__,
                REFRESH_EVERY_SECONDS,
            )
            return
        if refreshed.erasable_clocks:
            self.sweep_soon()

    async def _prune(self) -> None:
        self._track_job()
        try:
            pruned = await asyncio.to_thread(
                prune.prune, self._db, self._settings, datetime.now(UTC), self._prune_stopping
            )
        except Exception as error:  # noqa: BLE001 - consuming and sweeping go on
            log.warning(
                "purger: pruning failed (%s); tried again in %.0f s",
                type(error).__name__,
                PRUNE_EVERY_SECONDS,
            )
            return
        self.metrics.pruned.count(pruned)
        if any(pruned.values()):
            log.info("purger: pruned %s", pruned)

    async def _sweep(self) -> None:
        self._track_job()
        self._sweeping = True
        try:
            while True:
                self._sweep_again = False
                started = asyncio.get_running_loop().time()
                erased = await asyncio.to_thread(
                    sweep,
                    self._db,
                    self._retention,
                    datetime.now(UTC),
                    self._settings.purger_sweep_batch_size,
                )
                self.metrics.sweep_duration.observe(asyncio.get_running_loop().time() - started)
                self.metrics.erased.inc(erased)
                if erased:
                    log.info(
                        "purger: erased %d clock(s) in %.2fs",
                        erased,
                        asyncio.get_running_loop().time() - started,
                    )
                if not self._sweep_again:
                    return
        except Exception as error:  # noqa: BLE001 - the next tick tries again
            log.warning(
                "purger: the sweep failed (%s); the next tick tries again", type(error).__name__
            )
        finally:
            self._sweeping = False
