"""Tables the notifier owns: who received what, the erasures it has heard of, the notifications
it owes recipients, every delivery attempt, and each recipient's delivery health.

Disclosures hold subject pseudonyms, and go once an erasure has covered them. Remembered erasures
keep only a hash of the pseudonym, like the purger's proofs, and go after the late-disclosure
window. Notifications and attempts name no subject: they are the proof each recipient was told.
A notification's particulars (the scope's values and the recipient's reference) go once it is
confirmed, or delivered or failed longer than ``notifier_keep_particulars_days`` ago.
"""

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, Index, Integer, String, text
from sqlmodel import Field, SQLModel

from shared.storage.tables.types import UtcDateTime

#: Notification states the delivery loop works on.
UNDELIVERED_STATES = ("pending", "delivering")
#: The same as SQL text: the due index's predicate and the claim's condition, written alike so
#: that SQLite, which does not look into bound parameters, uses the index.
UNDELIVERED = text("state IN ('pending', 'delivering')")
#: Finished notifications that still hold their particulars: the prune's candidates (a partial
#: index's predicate and the prune's condition, written alike). Few: those within the window.
PARTICULARS_KEPT = text("state IN ('delivered', 'failed') AND particulars_erased_at IS NULL")
#: A notification whose recipient is inactive: it waits, neither sent nor failed, until the
#: recipient is active again (then pending) or an admin closes it (closed).
AWAITING_RECIPIENT = "awaiting_recipient"
#: An admin ended it without delivery, with a reason (``close_reason``).
CLOSED = "closed"
#: The states an admin may close a notification in: nobody is delivering it.
CLOSABLE_STATES = (AWAITING_RECIPIENT, "failed")
#: SQL text for the waiting notifications' partial index and the queries it serves.
AWAITING = text("state = 'awaiting_recipient'")


def _utc(*, nullable: bool = False, index: bool = False) -> Column:
    return Column(UtcDateTime(), nullable=nullable, index=index)


def _bigint_id() -> Column:
    return Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


class Disclosure(SQLModel, table=True):
    """A ``data.disclosed`` event: the subject's data in one category went to a recipient."""

    __tablename__ = "disclosure"

    event_id: UUID = Field(primary_key=True)
    subject_pseudonym: str = Field(max_length=64, index=True)
    recipient_id: str = Field(max_length=128, index=True)  # GET /v1/unregistered-recipients
    category: str = Field(max_length=40)
    scope_key: str = Field(max_length=20, description='"" when subject-wide')
    scope_value: str = Field(max_length=128)
    recipient_ref: str = Field(max_length=128)
    disclosed_at: datetime = Field(sa_column=_utc())


class HeardErasure(SQLModel, table=True):
    """An executed erasure, remembered for a while so that a disclosure read after it (topics
    are not ordered against each other) still becomes a notification."""

    __tablename__ = "heard_erasure"

    erasure_id: UUID = Field(primary_key=True)
    subject_hash: str = Field(max_length=64, index=True, description="SHA-256 of the pseudonym")
    category: str = Field(max_length=40)
    scope_key: str = Field(max_length=20)
    scope_value: str = Field(max_length=128)
    legal_basis: str = Field(max_length=500)
    executed_at: datetime = Field(sa_column=_utc())
    forget_after: datetime = Field(sa_column=_utc(index=True))


class Notification(SQLModel, table=True):
    """What one recipient is told about one erasure (or rectification, or restriction), and how
    far that has got."""

    __tablename__ = "notification"
    __table_args__ = (
        Index(
            "ix_notification_due",
            "next_attempt_at",
            postgresql_where=UNDELIVERED,
            sqlite_where=UNDELIVERED,
        ),
        Index(
            "ix_notification_particulars_kept",
            "notification_id",
            postgresql_where=PARTICULARS_KEPT,
            sqlite_where=PARTICULARS_KEPT,
        ),
        # Few notifications wait for their recipient; housekeeping and the metrics find them.
        Index(
            "ix_notification_awaiting",
            "recipient_id",
            postgresql_where=AWAITING,
            sqlite_where=AWAITING,
        ),
    )

    # Derived from what caused it, the recipient and the recipient's reference: made twice, it
    # is the same notification (the reference goes once confirmed, the id stays).
    notification_id: UUID = Field(primary_key=True)
    erasure_id: UUID | None = Field(default=None, index=True, description="what was erased")
    event_id: UUID | None = Field(
        default=None, description="or the data.rectified / processing.restricted event"
    )
    recipient_id: str = Field(max_length=128, index=True)
    type: str = Field(
        max_length=40,
        description="erasure.requested, rectification.requested or restriction.requested",
    )
    category: str = Field(max_length=40)
    scope: str = Field(max_length=200, description="JSON object, {} when subject-wide")
    recipient_ref: str = Field(max_length=128)
    legal_basis: str = Field(max_length=500)
    respond_by: datetime = Field(sa_column=_utc())
    state: str = Field(
        max_length=20,
        description="pending (never tried), delivering (tried, or in flight: see lease_until), "
        "delivered, failed, awaiting_recipient (its recipient is inactive), closed (by an admin, "
        "undelivered); confirmed is delivered with confirmed_at set",
    )
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=_utc())
    lease_until: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    give_up_at: datetime = Field(sa_column=_utc())
    created_at: datetime = Field(sa_column=_utc())
    delivered_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    failed_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    confirmed_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    particulars_erased_at: datetime | None = Field(
        default=None,
        sa_column=_utc(nullable=True),
        description="when the scope's values and recipient_ref were blanked: it cannot be "
        "redelivered after",
    )
    closed_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    closed_by: str | None = Field(default=None, max_length=100, description="the API key's name")
    close_reason: str | None = Field(
        default=None, sa_column=Column(String(500), nullable=True), description="the admin's words"
    )


class DeliveryAttempt(SQLModel, table=True):
    """One POST of a notification: when, what came back, how long it took. No payload."""

    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, sa_column=_bigint_id())
    notification_id: UUID = Field(index=True)
    attempted_at: datetime = Field(sa_column=_utc())
    status_code: int | None = None
    latency_ms: int
    error: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))


class RecipientHealth(SQLModel, table=True):
    """How deliveries to one recipient have gone lately, for ops to see who keeps failing."""

    __tablename__ = "recipient_health"

    recipient_id: str = Field(primary_key=True, max_length=128)
    consecutive_failures: int = 0
    failing_since: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    last_success_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    last_failure_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
