"""Pruning what Gallring keeps only for a while: rows deleted (or blanked) in small batches, one
transaction each, so a large backlog never holds a long lock; and the loop that prunes
periodically in a service that has no scheduler of its own.

Each service prunes only its own tables (the README's *What Gallring keeps, and for how long*
lists them). What a prune took is counted in ``gallring_<service>_pruned_rows_total{table}``.
"""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import ColumnElement, Engine, Table, delete, select

from shared.storage.database import begin_deciding, checkpoint_wal, one_of

log = logging.getLogger(__name__)
#: Rows per transaction: small enough that a backlog of millions never holds a long lock.
BATCH_SIZE = 1_000
#: How often a service prunes. The windows are days long; an hour late is nothing.
PRUNE_EVERY_SECONDS = 3_600.0


def delete_in_batches(
    db: Engine,
    table: Table,
    *conditions: ColumnElement[bool],
    order_by: ColumnElement[Any],
    batch_size: int = BATCH_SIZE,
    halt: threading.Event | None = None,
) -> int:
    """Delete the rows of ``table`` that meet ``conditions``, ``batch_size`` per transaction,
    oldest (``order_by``) first, until none is left; returns how many went.

    Each batch is chosen by an index on ``order_by`` and deleted by primary key. On PostgreSQL
    rows another pruner (a replica) holds are skipped, not waited for. ``halt`` set (the
    service stops) ends it after the batch under way. On SQLite the write-ahead log is emptied
    after, as after an erasing sweep: it would keep page images of the rows that went.
    """
    (key,) = table.primary_key.columns
    deleted = 0
    while halt is None or not halt.is_set():
        with begin_deciding(db) as connection:
            chosen = select(key).where(*conditions).order_by(order_by).limit(batch_size)
            if connection.dialect.name == "postgresql":
                chosen = chosen.with_for_update(skip_locked=True)
            ids = connection.execute(chosen).scalars().all()
            if ids:
                connection.execute(delete(table).where(one_of(connection, key, ids)))
        deleted += len(ids)
        if len(ids) < batch_size:
            break
    if deleted:
        checkpoint_wal(db)
    return deleted


class PruneMetrics:
    """``gallring_<service>_pruned_rows_total{table}``: rows a service's prune deleted or
    blanked, per table."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.pruned = Counter(
            f"gallring_{service}_pruned_rows_total",
            "Rows deleted (or, in notification, blanked) because their retention ended, by table.",
            ["table"],
            registry=registry,
        )

    def count(self, pruned: Mapping[str, int]) -> None:
        for table, rows in pruned.items():
            self.pruned.labels(table).inc(rows)


class PeriodicPruner:
    """Runs a service's ``prune`` (blocking: in a thread) at once and every ``every_seconds``
    until :meth:`stop`, for a service without a scheduler. A failed prune is logged and tried
    again at the next turn; a stop lets the batch under way finish and starts no other."""

    def __init__(
        self,
        prune: Callable[[threading.Event], Mapping[str, int]],
        metrics: PruneMetrics,
        *,
        service: str,
        every_seconds: float = PRUNE_EVERY_SECONDS,
    ) -> None:
        self._prune = prune
        self._metrics = metrics
        self._service = service
        self._every_seconds = every_seconds
        self._halt = threading.Event()  # read by the pruning thread between batches
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._halt.set()
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                pruned = await asyncio.to_thread(self._prune, self._halt)
            except Exception as error:  # noqa: BLE001 - the database may be back next time
                log.warning(
                    "%s: pruning failed (%s); tried again in %.0f s",
                    self._service,
                    type(error).__name__,
                    self._every_seconds,
                )
            else:
                self._metrics.count(pruned)
                if any(pruned.values()):
                    log.info("%s: pruned %s", self._service, dict(pruned))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._every_seconds)
