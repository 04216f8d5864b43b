"""Review reminders: a hold whose ``review_by`` is within 30, 7 or 1 days, or past, is published
on ``gallring.holds.v1`` (``hold.review_due``) once per threshold, and counted in
``gallring_holds_review_due{threshold}`` so that ops can alert on it.

The API runs them, as it owns the register and is the topic's producer: every API process checks
every ``api_hold_reminder_interval_seconds`` (an hour; thresholds are days). Each reminder is
published once however many replicas check: the hold's row records the most urgent one published
(``reminded_days``), changed only if it still says what the check read, in the transaction that
writes the message to the outbox. A new ``review_by`` starts them again. Days are counted in the
policy's time zone (Europe/Stockholm), as the engine counts periods.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Engine, select, update

from shared.domain.contract.hold_messages import (
    THRESHOLD_DAYS,
    HoldReviewDue,
    ReviewThreshold,
    review_threshold,
)
from shared.domain.contract.vocabulary import HoldReason
from shared.messaging import topics
from shared.messaging.outbox import outbox_row
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import begin_deciding
from shared.storage.tables.api import LegalHold
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_HOLDS = table_of(LegalHold)
_OUTBOX = table_of(OutboxMessage)
_RELEASED = "released"


def remind(db: Engine, *, now: datetime, zone: ZoneInfo) -> list[HoldReviewDue]:
    """Publish the reminders due at ``now`` and not published yet; returns them."""
    today = now.astimezone(zone).date()
    sent = []
    with begin_deciding(db) as connection:
        rows = connection.execute(
            select(
                _HOLDS.c.hold_id,
                _HOLDS.c.review_by,
                _HOLDS.c.reminded_days,
                _HOLDS.c.reason,
                _HOLDS.c.owner_team,
            ).where(_HOLDS.c.state != _RELEASED)
        ).all()
        for hold_id, review_by, reminded, reason, owner_team in rows:
            days_left = (review_by - today).days
            threshold = review_threshold(days_left)
            if threshold is None:
                continue
            days = THRESHOLD_DAYS[threshold]
            if reminded is not None and reminded <= days:
                continue  # this one, or a more urgent one, went out already
            changed = connection.execute(
                update(_HOLDS)
                .where(
                    _HOLDS.c.hold_id == hold_id,
                    _HOLDS.c.review_by == review_by,
                    _still(reminded),
                )
                .values(reminded_days=days)
            ).rowcount
            if not changed:
                continue
            reminder = HoldReviewDue(
                event_id=uuid.uuid4(),
                hold_id=hold_id,
                at=now,
                review_by=review_by,
                days_left=days_left,
                threshold=threshold,
                reason=HoldReason(reason),
                owner_team=owner_team,
            )
            insert_rows(
                connection,
                _OUTBOX,
                [
                    outbox_row(
                        topics.HOLDS,
                        key=hold_id,
                        value=reminder.model_dump_json(),
                        event_type=reminder.type,
                        event_id=reminder.event_id,
                        schema_version=reminder.schema_version,
                        now=now,
                    )
                ],
            )
            sent.append(reminder)
    return sent


#: Standing holds per review threshold.
ReviewDue = dict[ReviewThreshold, int]


def review_due(db: Engine, *, today: date) -> ReviewDue:
    """Standing holds per threshold their review is at (each at its most urgent one), for
    ``gallring_holds_review_due``; every threshold, 0 where none."""
    with db.connect() as connection:
        dates = connection.execute(
            select(_HOLDS.c.review_by).where(_HOLDS.c.state != _RELEASED)
        ).scalars()
        counts = Counter(review_threshold((review_by - today).days) for review_by in dates)
    return {threshold: counts[threshold] for threshold in THRESHOLD_DAYS}


def _still(reminded: int | None) -> ColumnElement[bool]:
    """The row still records what the check read: no replica published meanwhile."""
    column = _HOLDS.c.reminded_days
    return column.is_(None) if reminded is None else column == reminded


class ReminderLoop:
    """Runs :func:`remind` (in a thread) at once and every ``every_seconds`` until :meth:`stop`;
    a failed round is logged and tried again at the next."""

    def __init__(self, remind: Callable[[], list[HoldReviewDue]], *, every_seconds: float) -> None:
        self._remind = remind
        self._every_seconds = every_seconds
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = await asyncio.to_thread(self._remind)
            except Exception as error:  # noqa: BLE001 - the database may be back next time
                log.warning(
                    "hold review reminders failed (%s); tried again in %.0f s",
                    type(error).__name__,
                    self._every_seconds,
                )
            else:
                for reminder in sent:
                    log.info(
                        "hold %s: review due %s (%s)",
                        reminder.hold_id,
                        reminder.review_by,
                        reminder.threshold,
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._every_seconds)
