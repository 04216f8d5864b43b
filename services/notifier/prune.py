"""The notifier's retention of what an erasure leaves with it:

- ``heard_erasure`` (a hash of the pseudonym, the scope): forgotten after the late-disclosure
  window (``notifier_late_disclosure_days``), when no disclosure read late can need it;
- a notification's particulars — the values of its scope (a case or client id) and the
  recipient's reference — blanked once the notification is confirmed (at once, by ``apply.py``,
  and here for any confirmed before that was so), or delivered or failed longer than
  ``notifier_keep_particulars_days`` ago. What is still to be sent keeps them, for the webhook
  body; a failed one keeps them through the window, for an admin to redeliver it. The scope keeps
  its keys (``{"case_id": ""}``): what kind of data went stays in the proof.

The service runs :func:`prune` at start and hourly (``shared.storage.pruning.PeriodicPruner``).
"""

import json
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, or_, select, update

from services.notifier.settings import NotifierSettings
from shared.storage.database import begin_deciding, checkpoint_wal
from shared.storage.pruning import BATCH_SIZE, delete_in_batches
from shared.storage.tables.notifier import PARTICULARS_KEPT, HeardErasure, Notification
from shared.storage.tables.table import table_of

_ERASURES = table_of(HeardErasure)
_NOTIFICATIONS = table_of(Notification)


def prune(
    db: Engine, settings: NotifierSettings, now: datetime, halt: threading.Event | None = None
) -> dict[str, int]:
    """Forget old erasures and blank finished notifications' particulars; how many rows, per
    table."""
    return {
        "heard_erasure": delete_in_batches(
            db,
            _ERASURES,
            _ERASURES.c.forget_after < now,
            order_by=_ERASURES.c.forget_after,
            halt=halt,
        ),
        "notification": blank_particulars(
            db, now - timedelta(days=settings.notifier_keep_particulars_days), now, halt=halt
        ),
    }


def blank_scope(scope_json: str) -> str:
    """The scope with its keys and without their values: ``{"case_id": ""}``."""
    return json.dumps(dict.fromkeys(json.loads(scope_json), ""))


def without_particulars(scope_json: str, at: datetime) -> dict[str, Any]:
    """The column values of a notification whose particulars go at ``at`` (confirmed, closed):
    its scope's values and the recipient's reference blanked, and when."""
    return {"scope": blank_scope(scope_json), "recipient_ref": "", "particulars_erased_at": at}


#: One notification's particulars blanked, if nobody has changed its state since it was chosen.
_BLANK = (
    update(_NOTIFICATIONS)
    .where(
        _NOTIFICATIONS.c.notification_id == bindparam("b_id"),
        PARTICULARS_KEPT,
    )
    .values(scope=bindparam("b_scope"), recipient_ref="", particulars_erased_at=bindparam("b_now"))
)


def blank_particulars(
    db: Engine,
    finished_before: datetime,
    now: datetime,
    *,
    batch_size: int = BATCH_SIZE,
    halt: threading.Event | None = None,
) -> int:
    """Blank the particulars of notifications confirmed, or delivered or failed before
    ``finished_before``, ``batch_size`` per transaction; how many were blanked."""
    table = _NOTIFICATIONS
    due = select(table.c.notification_id, table.c.scope).where(
        PARTICULARS_KEPT,
        or_(
            table.c.confirmed_at.is_not(None),
            table.c.delivered_at < finished_before,
            table.c.failed_at < finished_before,
        ),
    )
    blanked = 0
    while halt is None or not halt.is_set():
        with begin_deciding(db) as connection:
            batch = due.order_by(table.c.notification_id).limit(batch_size)
            if connection.dialect.name == "postgresql":
                batch = batch.with_for_update(skip_locked=True)  # another notifier's is its own
            rows = connection.execute(batch).all()
            if rows:
                connection.execute(
                    _BLANK,
                    [
                        {"b_id": notification_id, "b_scope": blank_scope(scope), "b_now": now}
                        for notification_id, scope in rows
                    ],
                )
        blanked += len(rows)
        if len(rows) < batch_size:
            break
    if blanked:
        checkpoint_wal(db)  # the log would keep the values blanked
    return blanked
