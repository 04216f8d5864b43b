"""The recipient registry in the database. Secrets are sealed before they are stored and only
ever returned at creation and rotation; the audit log gets ids, never secrets or URLs' queries."""

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, exists, func, insert, select, union, update
from sqlalchemy.exc import IntegrityError

from services.api import audit
from services.api.api_keys import Principal
from services.api.recipients.schemas import (
    CreatedRecipient,
    NewRecipient,
    RecipientChange,
    RecipientHealthView,
    RecipientView,
    RotatedSecret,
    UnregisteredRecipient,
)
from shared.storage.tables.api import Recipient
from shared.storage.tables.notifier import (
    UNDELIVERED_STATES,
    Disclosure,
    Notification,
    RecipientHealth,
)
from shared.storage.tables.table import table_of
from shared.webhooks.signing_secrets import SecretBox, new_signing_secret

_RECIPIENTS = table_of(Recipient)
_HEALTH = table_of(RecipientHealth)
_DISCLOSURES = table_of(Disclosure)
_NOTIFICATIONS = table_of(Notification)


class RecipientExists(Exception):
    pass


class CursorError(ValueError):
    """The cursor was not one this API handed out."""


class RotationInGrace(Exception):
    """A rotation with a grace period while the previous secret's has not ended: it would end
    that secret at once, under a recipient that may still verify with it."""

    def __init__(self, previous_secret_valid_until: datetime) -> None:
        super().__init__(previous_secret_valid_until)
        self.previous_secret_valid_until = previous_secret_valid_until


def create(
    db: Engine, new: NewRecipient, box: SecretBox, *, actor: Principal, now: datetime
) -> CreatedRecipient:
    secret = new_signing_secret()
    values = {
        "recipient_id": new.recipient_id,
        "name": new.name,
        "kind": new.kind.value,
        "country": new.country,
        "webhook_url": new.webhook_url,
        "categories": " ".join(sorted({category.value for category in new.categories})),
        "active": new.active,
        "secret": box.seal(secret),
        "created_at": now,
        "updated_at": now,
    }
    try:
        with db.begin() as connection:
            connection.execute(insert(_RECIPIENTS).values(**values))
            audit.record(
                connection,
                actor=actor,
                action="recipients.created",
                at=now,
                recipient_id=new.recipient_id,
            )
    except IntegrityError:
        raise RecipientExists(new.recipient_id) from None
    view = one(db, new.recipient_id, now=now)
    assert view is not None
    return CreatedRecipient(**view.model_dump(), signing_secret=secret)


def all_recipients(db: Engine, *, now: datetime) -> list[RecipientView]:
    with db.connect() as connection:
        rows = connection.execute(
            select(_RECIPIENTS, *_health_columns())
            .outerjoin(_HEALTH, _HEALTH.c.recipient_id == _RECIPIENTS.c.recipient_id)
            .order_by(_RECIPIENTS.c.recipient_id)
        ).all()
    return [_view(row, now) for row in rows]


def one(db: Engine, recipient_id: str, *, now: datetime) -> RecipientView | None:
    with db.connect() as connection:
        row = connection.execute(
            select(_RECIPIENTS, *_health_columns())
            .outerjoin(_HEALTH, _HEALTH.c.recipient_id == _RECIPIENTS.c.recipient_id)
            .where(_RECIPIENTS.c.recipient_id == recipient_id)
        ).first()
    return _view(row, now) if row is not None else None


def encode_cursor(recipient: UnregisteredRecipient) -> str:
    return base64.urlsafe_b64encode(recipient.recipient_id.encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        after = base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise CursorError("not a cursor from a previous page") from error
    if not after:
        raise CursorError("not a cursor from a previous page")
    return after


def unregistered(
    db: Engine, *, after: str | None, limit: int
) -> tuple[list[UnregisteredRecipient], bool]:
    """Recipient ids named by disclosures, or owed undelivered notifications, that are not
    registered: what was disclosed to them is kept, and their notifications wait for the
    registration (until their retry horizon). Usually a typo upstream, or a registration
    forgotten. Up to ``limit`` of them by id, after ``after``; and whether more follow."""
    disclosures, notifications = _DISCLOSURES.c, _NOTIFICATIONS.c
    named = union(
        select(disclosures.recipient_id).where(~_registered(disclosures.recipient_id)),
        select(notifications.recipient_id).where(
            notifications.state.in_(UNDELIVERED_STATES), ~_registered(notifications.recipient_id)
        ),
    ).subquery()
    query = select(named.c.recipient_id).order_by(named.c.recipient_id).limit(limit + 1)
    if after is not None:
        query = query.where(named.c.recipient_id > after)
    with db.connect() as connection:
        ids = list(connection.execute(query).scalars())
        shown = ids[:limit]
        disclosed = connection.execute(
            select(disclosures.recipient_id, func.count(), func.min(disclosures.disclosed_at))
            .where(disclosures.recipient_id.in_(shown))
            .group_by(disclosures.recipient_id)
        ).all()
        waiting = connection.execute(
            select(notifications.recipient_id, func.count())
            .where(
                notifications.state.in_(UNDELIVERED_STATES), notifications.recipient_id.in_(shown)
            )
            .group_by(notifications.recipient_id)
        ).all()
    kept = {recipient_id: (count, first) for recipient_id, count, first in disclosed}
    owed: dict[str, int] = dict(waiting)
    listed = []
    for recipient_id in shown:
        count, first = kept.get(recipient_id, (0, None))
        listed.append(
            UnregisteredRecipient(
                recipient_id=recipient_id,
                disclosures_kept=count,
                first_disclosed_at=first,
                notifications_waiting=owed.get(recipient_id, 0),
            )
        )
    return listed, len(ids) > limit


def _registered(recipient_id: Any) -> Any:
    return exists().where(_RECIPIENTS.c.recipient_id == recipient_id)


def change(
    db: Engine, recipient_id: str, change: RecipientChange, *, actor: Principal, now: datetime
) -> RecipientView | None:
    values: dict[str, Any] = change.model_dump(exclude_unset=True, exclude_none=True)
    if "categories" in values:
        values["categories"] = " ".join(sorted({c.value for c in change.categories or []}))
    if "kind" in values:
        values["kind"] = values["kind"].value
    with db.begin() as connection:
        updated = connection.execute(
            update(_RECIPIENTS)
            .where(_RECIPIENTS.c.recipient_id == recipient_id)
            .values(updated_at=now, **values)
        ).rowcount
        if not updated:
            return None
        audit.record(
            connection,
            actor=actor,
            action="recipients.changed",
            at=now,
            recipient_id=recipient_id,
            fields=sorted(values),
        )
    return one(db, recipient_id, now=now)


def rotate_secret(
    db: Engine,
    recipient_id: str,
    grace: timedelta,
    box: SecretBox,
    *,
    actor: Principal,
    now: datetime,
) -> RotatedSecret | None:
    """A new secret signs from now on; the current one also signs until ``now + grace``, so
    that the recipient can switch without rejecting a delivery.

    Two secrets sign at most (a recipient verifies against the ones it knows): while the
    previous secret's grace lasts, a rotation with a grace of its own is refused
    (:class:`RotationInGrace`) rather than ending it at once. A grace of zero is the way to end
    every secret but the new one now (a leaked secret), and is always taken."""
    secret = new_signing_secret()
    with db.begin() as connection:
        found = connection.execute(
            select(_RECIPIENTS.c.secret, _RECIPIENTS.c.previous_secret_expires_at)
            .where(_RECIPIENTS.c.recipient_id == recipient_id)
            .with_for_update()
        ).first()
        if found is None:
            return None
        current, previous_until = found
        if grace and previous_until is not None and previous_until > now:
            raise RotationInGrace(previous_until)
        connection.execute(
            update(_RECIPIENTS)
            .where(_RECIPIENTS.c.recipient_id == recipient_id)
            .values(
                secret=box.seal(secret),
                previous_secret=current,
                previous_secret_expires_at=now + grace,
                updated_at=now,
            )
        )
        audit.record(
            connection,
            actor=actor,
            action="recipients.secret_rotated",
            at=now,
            recipient_id=recipient_id,
            grace_seconds=grace.total_seconds(),
        )
    return RotatedSecret(
        recipient_id=recipient_id, signing_secret=secret, previous_secret_valid_until=now + grace
    )


def _health_columns() -> list[Any]:
    return [
        _HEALTH.c.recipient_id.label("health_of"),
        _HEALTH.c.consecutive_failures,
        _HEALTH.c.failing_since,
        _HEALTH.c.last_success_at,
        _HEALTH.c.last_failure_at,
    ]


def _view(row: Any, now: datetime) -> RecipientView:
    expires = row.previous_secret_expires_at
    return RecipientView(
        recipient_id=row.recipient_id,
        name=row.name,
        kind=row.kind,
        country=row.country,
        webhook_url=row.webhook_url,
        categories=row.categories.split(),
        active=row.active,
        previous_secret_valid_until=expires if expires is not None and expires > now else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        health=RecipientHealthView(
            failing=row.failing_since is not None,
            consecutive_failures=row.consecutive_failures,
            failing_since=row.failing_since,
            last_success_at=row.last_success_at,
            last_failure_at=row.last_failure_at,
        )
        if row.health_of is not None
        else None,
    )
