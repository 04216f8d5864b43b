"""The purger's retention of its dedupe record: ``consumed_event`` rows (an event id and when it
was consumed) after ``purger_consumed_event_days``. The service runs :func:`prune` as an
APScheduler job at start and hourly.

Redelivered lifecycle messages stay recognised after their row went: an event whose fact is kept
(a clock still needs it) is known by the fact; one whose data was erased is recognised by the
erasure's proof and not kept. The window still ought to cover the lifecycle topic's retention,
so that a consumer group that starts again from the beginning skips what it has seen cheaply.
"""

import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine

from services.purger.settings import PurgerSettings
from shared.storage.pruning import delete_in_batches
from shared.storage.tables.purger import ConsumedEvent
from shared.storage.tables.table import table_of

_CONSUMED = table_of(ConsumedEvent)


def prune(
    db: Engine, settings: PurgerSettings, now: datetime, halt: threading.Event | None = None
) -> dict[str, int]:
    """Delete dedupe records older than the window; how many rows went, per table."""
    before = now - timedelta(days=settings.purger_consumed_event_days)
    return {
        "consumed_event": delete_in_batches(
            db,
            _CONSUMED,
            _CONSUMED.c.consumed_at < before,
            order_by=_CONSUMED.c.consumed_at,
            halt=halt,
        )
    }
