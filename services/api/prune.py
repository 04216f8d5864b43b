"""The API's retention of its own leftovers: idempotency records (an event id and a keyed digest
of its body) after ``api_idempotency_days``, audit entries (key names, counts, event ids) and
released legal holds (the register's rows: a matter, a reason, key names) after
``api_audit_days``. The lifespan runs :func:`prune` at start and hourly
(``shared.storage.pruning.PeriodicPruner``).

An idempotency record must outlive any retry of its event: within the window a retried request
is still answered 200 (the same body) or 409 (another body); after it, the same event id is taken
for a new event, which the purger recognises by its kept fact, or by the proof once its data is
erased.
"""

import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine

from services.api.settings import ApiSettings
from shared.storage.pruning import delete_in_batches
from shared.storage.tables.api import AuditEntry, IdempotencyRecord, LegalHold
from shared.storage.tables.table import table_of

_RECORDS = table_of(IdempotencyRecord)
_AUDIT = table_of(AuditEntry)
_HOLDS = table_of(LegalHold)


def prune(
    db: Engine, settings: ApiSettings, now: datetime, halt: threading.Event | None = None
) -> dict[str, int]:
    """Delete what outlived its window; how many rows went, per table."""
    records_before = now - timedelta(days=settings.api_idempotency_days)
    audit_before = now - timedelta(days=settings.api_audit_days)
    return {
        "idempotency_record": delete_in_batches(
            db,
            _RECORDS,
            _RECORDS.c.accepted_at < records_before,
            order_by=_RECORDS.c.accepted_at,
            halt=halt,
        ),
        "audit_entry": delete_in_batches(
            db, _AUDIT, _AUDIT.c.at < audit_before, order_by=_AUDIT.c.at, halt=halt
        ),
        # Released holds only (released_at is set): a standing one stays however old.
        "legal_hold": delete_in_batches(
            db,
            _HOLDS,
            _HOLDS.c.released_at < audit_before,
            order_by=_HOLDS.c.released_at,
            halt=halt,
        ),
    }
