"""The notifier's delivery state in the database: claiming due notifications and recording
what each attempt got.

A claim is a lease (``lease_until``): the notification is this process's until then, so several
notifiers share the work (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and a notifier killed
mid-delivery loses nothing: its leases lapse and another attempt follows. An outcome is recorded
only if the lease is still the one it was claimed with.
"""

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from services.notifier.backoff import retry_delay
from services.notifier.settings import NotifierSettings
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import one_of
from shared.storage.tables.api import Recipient
from shared.storage.tables.notifier import (
    UNDELIVERED,
    UNDELIVERED_STATES,
    DeliveryAttempt,
    Notification,
    RecipientHealth,
)
from shared.storage.tables.table import table_of

_NOTIFICATIONS = table_of(Notification)
_ATTEMPTS = table_of(DeliveryAttempt)
_HEALTH = table_of(RecipientHealth)
_RECIPIENTS = table_of(Recipient)
CANDIDATES_PER_SLOT = 4  # rows looked at per free slot, so busy recipients can be passed over
ERROR_LENGTH = 300  # the attempt log's error column


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notification this process may deliver until ``lease_until``, with its recipient."""

    notification_id: UUID
    erasure_id: UUID | None
    event_id: UUID | None
    recipient_id: str
    type: str
    category: str
    scope: str
    recipient_ref: str
    legal_basis: str
    respond_by: datetime
    attempts: int
    give_up_at: datetime
    lease_until: datetime
    webhook_url: str
    secret: str  # sealed
    previous_secret: str | None  # sealed; signs too until it expires
    previous_secret_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Outcome:
    claimed: Claimed
    attempted_at: datetime
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    retry_after: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def current_senders(db: Engine, recipient_ids: Collection[str]) -> dict[str, tuple[str, str]]:
    """``(webhook_url, secret)`` of each of these recipients that is still active: what a
    notification claimed a while ago must still match to be sent."""
    table = _RECIPIENTS
    with db.connect() as connection:
        rows = connection.execute(
            select(table.c.recipient_id, table.c.webhook_url, table.c.secret).where(
                one_of(connection, table.c.recipient_id, recipient_ids),
                table.c.active.is_(True),
            )
        )
        return {recipient_id: (url, secret) for recipient_id, url, secret in rows}


def claim(
    db: Engine,
    *,
    limit: int,
    free_slots: dict[str, int],
    default_slots: int,
    lease: timedelta,
    now: datetime,
) -> list[Claimed]:
    """Lease up to ``limit`` due notifications of active recipients, at most
    ``free_slots.get(recipient, default_slots)`` per recipient."""
    table = _NOTIFICATIONS
    full = [recipient for recipient, free in free_slots.items() if free <= 0]
    claimable = (
        UNDELIVERED,
        table.c.next_attempt_at <= now,
        or_(table.c.lease_until.is_(None), table.c.lease_until < now),
    )
    query = (
        select(table.c.notification_id, table.c.recipient_id)
        .join(_RECIPIENTS, _RECIPIENTS.c.recipient_id == table.c.recipient_id)
        .where(*claimable, _RECIPIENTS.c.active.is_(True))
        .order_by(table.c.next_attempt_at)
        .limit(limit * CANDIDATES_PER_SLOT)
    )
    if full:
        query = query.where(table.c.recipient_id.not_in(full))
    with db.begin() as connection:
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=table)
        chosen: list[UUID] = []
        taken: dict[str, int] = defaultdict(int)
        for notification_id, recipient_id in connection.execute(query):
            if taken[recipient_id] < free_slots.get(recipient_id, default_slots):
                taken[recipient_id] += 1
                chosen.append(notification_id)
                if len(chosen) == limit:
                    break
        if not chosen:
            return []
        # The conditions again: on SQLite the select took no lock, so a row may have been
        # claimed (or confirmed) meanwhile. The lease is this claim's token.
        lease_until = now + lease
        connection.execute(
            update(table)
            .where(one_of(connection, table.c.notification_id, chosen), *claimable)
            .values(lease_until=lease_until, state="delivering")
        )
        rows = connection.execute(
            select(
                table,
                _RECIPIENTS.c.webhook_url,
                _RECIPIENTS.c.secret,
                _RECIPIENTS.c.previous_secret,
                _RECIPIENTS.c.previous_secret_expires_at,
            )
            .join(_RECIPIENTS, _RECIPIENTS.c.recipient_id == table.c.recipient_id)
            .where(
                one_of(connection, table.c.notification_id, chosen),
                table.c.lease_until == lease_until,
            )
        ).all()
    return [_claimed(row) for row in rows]


#: A notification after an attempt, if its lease is still the one it was claimed with.
_MOVE_ON = (
    update(_NOTIFICATIONS)
    .where(
        _NOTIFICATIONS.c.notification_id == bindparam("b_id"),
        _NOTIFICATIONS.c.lease_until == bindparam("b_lease"),
    )
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        delivered_at=bindparam("b_delivered_at"),
        failed_at=bindparam("b_failed_at"),
        lease_until=None,
    )
)


def record(db: Engine, outcomes: list[Outcome], settings: NotifierSettings, now: datetime) -> int:
    """Store the attempts and move each notification on: delivered, retried later, or failed
    once the next try would fall past its horizon. Returns how many failed for good."""
    if not outcomes:
        return 0
    updates, attempts, gave_up = [], [], 0
    for outcome in outcomes:
        claimed = outcome.claimed
        attempts.append(
            {
                "notification_id": claimed.notification_id,
                "attempted_at": outcome.attempted_at,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error[:ERROR_LENGTH] if outcome.error else None,
            }
        )
        values: dict[str, Any] = {
            "b_id": claimed.notification_id,
            "b_lease": claimed.lease_until,
            "b_attempts": claimed.attempts + 1,
            "b_delivered_at": None,
            "b_failed_at": None,
            "b_next": now,
        }
        if outcome.delivered:
            values.update(b_state="delivered", b_delivered_at=outcome.attempted_at)
        else:
            wait = retry_delay(
                claimed.attempts + 1,
                base_seconds=settings.notifier_retry_base_seconds,
                max_seconds=settings.notifier_retry_max_seconds,
                retry_after=outcome.retry_after,
                now=now,
            )
            if now + wait > claimed.give_up_at:
                values.update(b_state="failed", b_failed_at=now)
                gave_up += 1
            else:
                values.update(b_state="delivering", b_next=now + wait)
        updates.append(values)
    with db.begin() as connection:
        insert_rows(connection, _ATTEMPTS, attempts)
        connection.execute(_MOVE_ON, updates)
        _record_health(connection, outcomes, settings.notifier_failing_after, now)
    return gave_up


#: A claimed notification given back unsent, if it is still this claim's.
_GIVE_BACK = (
    update(_NOTIFICATIONS)
    .where(
        _NOTIFICATIONS.c.notification_id == bindparam("b_id"),
        _NOTIFICATIONS.c.lease_until == bindparam("b_lease"),
    )
    .values(lease_until=None)
)


def give_back(db: Engine, unsent: list[Claimed]) -> None:
    """End the leases of claimed notifications that will not be sent (the notifier stops), so
    that another notifier can send them now rather than when the leases lapse."""
    if unsent:
        with db.begin() as connection:
            connection.execute(
                _GIVE_BACK, [{"b_id": c.notification_id, "b_lease": c.lease_until} for c in unsent]
            )


def housekeep(db: Engine, now: datetime) -> int:
    """Fail what outlived its horizon undelivered (a recipient never registered, or never
    claimed; an inactive recipient's notifications wait instead, ``awaiting.py``). Returns how
    many notifications failed. (Erasures past the late-disclosure window are forgotten by the
    prune, ``prune.py``.)"""
    table = _NOTIFICATIONS
    with db.begin() as connection:
        failed = connection.execute(
            update(table)
            .where(
                table.c.state.in_(UNDELIVERED_STATES),
                table.c.give_up_at <= now,
                or_(table.c.lease_until.is_(None), table.c.lease_until < now),
            )
            .values(state="failed", failed_at=now, lease_until=None)
        ).rowcount
    return failed


def _record_health(
    connection: Connection, outcomes: list[Outcome], failing_after: int, now: datetime
) -> None:
    """Per recipient: failures in a row (reset by a success), and since when it is failing.

    Rows in recipient order, so that two notifiers recording at once lock them in the same
    order."""
    summary: dict[str, dict[str, Any]] = {}
    for outcome in sorted(outcomes, key=lambda o: o.attempted_at):
        entry = summary.setdefault(
            outcome.claimed.recipient_id,
            {"consecutive_failures": 0, "last_success_at": None, "last_failure_at": None},
        )
        if outcome.delivered:
            entry.update(consecutive_failures=0, last_success_at=outcome.attempted_at)
        else:
            entry["consecutive_failures"] += 1
            entry["last_failure_at"] = outcome.attempted_at
    rows = [
        {
            "recipient_id": recipient_id,
            **entry,
            "failing_since": now if entry["consecutive_failures"] >= failing_after else None,
            "b_now": now,
            "b_failing_after": failing_after,
        }
        for recipient_id, entry in sorted(summary.items())
    ]
    connection.execute(_HEALTH_UPSERT[connection.dialect.name], rows)


def _health_upsert(dialect: Any) -> Any:
    """Store a round's health of one recipient (``_record_health``'s rows). Built once: it is
    written every round."""
    statement = dialect.insert(_HEALTH)
    old, new = _HEALTH.c, statement.excluded
    succeeded = new.last_success_at.is_not(None)  # the round's failures came after a success
    in_a_row = case(
        (succeeded, new.consecutive_failures),
        else_=old.consecutive_failures + new.consecutive_failures,
    )
    now = bindparam("b_now", type_=old.failing_since.type)
    return statement.on_conflict_do_update(
        index_elements=[old.recipient_id],
        set_={
            "consecutive_failures": in_a_row,
            "failing_since": case(
                (in_a_row < bindparam("b_failing_after", type_=Integer), None),
                (succeeded, now),  # failing anew
                else_=func.coalesce(old.failing_since, now),
            ),
            "last_success_at": func.coalesce(new.last_success_at, old.last_success_at),
            "last_failure_at": func.coalesce(new.last_failure_at, old.last_failure_at),
        },
    )


_HEALTH_UPSERT = {"postgresql": _health_upsert(postgresql), "sqlite": _health_upsert(sqlite)}


def _claimed(row: Any) -> Claimed:
    return Claimed(
        notification_id=row.notification_id,
        erasure_id=row.erasure_id,
        event_id=row.event_id,
        recipient_id=row.recipient_id,
        type=row.type,
        category=row.category,
        scope=row.scope,
        recipient_ref=row.recipient_ref,
        legal_basis=row.legal_basis,
        respond_by=row.respond_by,
        attempts=row.attempts,
        give_up_at=row.give_up_at,
        lease_until=row.lease_until,
        webhook_url=row.webhook_url,
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )
