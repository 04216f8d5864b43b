"""Pruning in batches (``shared.storage.pruning``): rows past their window go, a bounded number per
transaction; newer rows stay; a stopping service ends it; what went is counted."""

import asyncio
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, event, func, insert, select

from shared.storage.pruning import PeriodicPruner, PruneMetrics, delete_in_batches
from shared.storage.tables.purger import ConsumedEvent
from shared.storage.tables.table import table_of

_CONSUMED = table_of(ConsumedEvent)
NOW = datetime.now(UTC)
CUTOFF = NOW - timedelta(days=30)


def seed(db: Engine, *, old: int, new: int) -> None:
    rows = [
        {"event_id": uuid.uuid4(), "consumed_at": CUTOFF - timedelta(minutes=i + 1)}
        for i in range(old)
    ] + [{"event_id": uuid.uuid4(), "consumed_at": NOW - timedelta(minutes=i)} for i in range(new)]
    with db.begin() as connection:
        connection.execute(insert(_CONSUMED), rows)


def left(db: Engine) -> tuple[int, int]:
    """(rows past the cutoff, rows within it)."""
    with db.connect() as connection:
        old = connection.execute(
            select(func.count()).where(_CONSUMED.c.consumed_at < CUTOFF)
        ).scalar_one()
        new = connection.execute(
            select(func.count()).where(_CONSUMED.c.consumed_at >= CUTOFF)
        ).scalar_one()
    return old, new


@pytest.fixture
def deletes(fresh_db: Engine) -> Iterator[list[int]]:
    """The row count of every DELETE statement run on ``fresh_db``."""
    counts: list[int] = []

    def count(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            counts.append(cursor.rowcount)

    event.listen(fresh_db, "after_cursor_execute", count)
    yield counts
    event.remove(fresh_db, "after_cursor_execute", count)


def test_rows_past_the_window_go_in_bounded_batches_and_newer_stay(
    fresh_db: Engine, deletes: list[int]
) -> None:
    seed(fresh_db, old=25, new=5)
    deleted = delete_in_batches(
        fresh_db,
        _CONSUMED,
        _CONSUMED.c.consumed_at < CUTOFF,
        order_by=_CONSUMED.c.consumed_at,
        batch_size=10,
    )
    assert deleted == 25
    assert deletes == [10, 10, 5]  # one transaction each, never more than the batch
    assert left(fresh_db) == (0, 5)


def test_a_stopping_service_prunes_no_further_batch(fresh_db: Engine) -> None:
    seed(fresh_db, old=5, new=0)
    halt = threading.Event()
    halt.set()
    deleted = delete_in_batches(
        fresh_db,
        _CONSUMED,
        _CONSUMED.c.consumed_at < CUTOFF,
        order_by=_CONSUMED.c.consumed_at,
        halt=halt,
    )
    assert deleted == 0
    assert left(fresh_db) == (5, 0)


async def test_the_periodic_pruner_counts_what_each_table_lost() -> None:
    registry = CollectorRegistry()
    pruner: PeriodicPruner

    loop = asyncio.get_running_loop()

    def prune(halt: threading.Event) -> Mapping[str, int]:
        loop.call_soon_threadsafe(pruner.stop)  # one turn (this runs in a worker thread)
        return {"consumed_event": 7, "heard_erasure": 0}

    pruner = PeriodicPruner(prune, PruneMetrics(registry, "purger"), service="purger")
    await asyncio.wait_for(pruner.run(), timeout=30)

    def pruned(table: str) -> float | None:
        return registry.get_sample_value("gallring_purger_pruned_rows_total", {"table": table})

    assert pruned("consumed_event") == 7
    assert pruned("heard_erasure") == 0


def test_on_sqlite_a_prune_that_deleted_leaves_nothing_in_the_write_ahead_log(
    tmp_path, fresh_db: Engine
) -> None:
    """The log would keep page images of the rows that went, as after an erasing sweep."""
    if fresh_db.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's write-ahead log is the operator's (deploy/README.md)")
    seed(fresh_db, old=5, new=0)
    wal = tmp_path / "gallring.db-wal"
    assert wal.stat().st_size > 0
    delete_in_batches(
        fresh_db, _CONSUMED, _CONSUMED.c.consumed_at < CUTOFF, order_by=_CONSUMED.c.consumed_at
    )
    assert wal.stat().st_size == 0
