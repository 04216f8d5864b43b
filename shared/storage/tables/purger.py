"""Tables the purger owns: the facts its clocks need, the clocks, the proofs of erasures, the
systems each erasure expects a confirmation from, the confirmations of the company's systems, and
the disposition reviews of sweeps that would have erased more than the policy allows.

Facts and clocks hold subject pseudonyms and go when the subject's data is erased; what remains of
an erasure (``erasure``) names no subject, only a hash of the pseudonym. The ids of consumed
events (``consumed_event``), the dedupe, stay for ``purger_consumed_event_days``; after that a
redelivered event is still known by its fact, or, once its data was erased, by the proof.
"""

from datetime import date, datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, Date, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from shared.domain.contract.events import HOLD_EVENT_TYPES
from shared.storage.tables.types import UtcDateTime

#: Clock states the sweep looks at: whatever is not held, cancelled, awaiting review or erased.
SWEPT_STATES = ("pending", "due", "erase_now")
#: A clock the sweep would have erased past its category's review limits (``review:`` in the
#: policy): it waits in its ``review_id`` for a DPO's decision. Not the engine's: the purger's.
AWAITING_REVIEW = "awaiting_review"
#: Clocks in a review, awaiting it or approved by it: the partial index's predicate (alike, for
#: SQLite's sake), few of all clocks.
IN_A_REVIEW = text("review_id IS NOT NULL")
#: The same as SQL text: the sweep index's predicate, and the sweep's own condition (written
#: alike, so that SQLite, which does not look into bound parameters, uses the index).
SWEPT = text("state IN ('pending', 'due', 'erase_now')")
#: The facts that are holds as SQL text (a partial index's predicate and the sweep's condition,
#: written alike): few facts are, so the index is small. Literals, not bound parameters, for
#: SQLite to match the index; the contract's type names hold no quote to escape.
_HOLD_EVENT_TYPES_SQL = ", ".join(f"'{type_}'" for type_ in HOLD_EVENT_TYPES)
HOLD_FACTS = text(f"event_type IN ({_HOLD_EVENT_TYPES_SQL})")


class ConsumedEvent(SQLModel, table=True):
    """An event the purger has applied, by id only: the dedupe record, pruned by
    ``consumed_at``."""

    __tablename__ = "consumed_event"

    event_id: UUID = Field(primary_key=True)
    consumed_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False, index=True))


class SubjectFact(SQLModel, table=True):
    """A lifecycle message (pseudonymised) kept while one of its subject's clocks needs it."""

    __tablename__ = "subject_fact"
    __table_args__ = (
        Index(
            "ix_subject_fact_holds",
            "subject_pseudonym",
            postgresql_where=HOLD_FACTS,
            sqlite_where=HOLD_FACTS,
        ),
    )

    event_id: UUID = Field(primary_key=True)
    subject_pseudonym: str = Field(max_length=64, index=True)
    event_type: str = Field(max_length=50, description="the message's type, for SQL to see holds")
    message: str = Field(sa_column=Column(Text, nullable=False), description="the Kafka value")


class StoredClock(SQLModel, table=True):
    """The engine's latest verdict for one subject × category × scope, for the sweep to act on.

    ``erasure_id`` is fixed when the clock is first stored: the erasure it will become goes by
    it from then on (scheduled, held, executed).
    """

    __tablename__ = "retention_clock"
    __table_args__ = (
        UniqueConstraint(
            "subject_pseudonym",
            "category",
            "scope_key",
            "scope_value",
            name="uq_retention_clock_key",
        ),
        Index("ix_retention_clock_sweep", "due_at", postgresql_where=SWEPT, sqlite_where=SWEPT),
        Index(
            "ix_retention_clock_review",
            "review_id",
            "id",
            postgresql_where=IN_A_REVIEW,
            sqlite_where=IN_A_REVIEW,
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    erasure_id: UUID = Field(unique=True)
    subject_pseudonym: str = Field(max_length=64)
    category: str = Field(max_length=40, index=True)
    scope_key: str = Field(max_length=20, description="'' for subject-wide")
    scope_value: str = Field(max_length=200)
    state: str = Field(max_length=20)
    due_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    rule: str = Field(max_length=100)
    legal_basis: str = Field(max_length=300)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    policy_digest: str | None = Field(
        default=None,
        max_length=64,
        description="the policy the verdict was reached under; None: evaluate it again before "
        "acting on it (one of the subject's events lay in the future then)",
    )
    updated_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    review_id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), nullable=True),
        description="the disposition review that stopped it: awaiting it (state "
        "awaiting_review), or approved by it (due again, and not counted against the day's "
        "limit a second time); None once the clock is held, running or cancelled again",
    )


class ErasureProof(SQLModel, table=True):
    """What is left after an erasure: when, what and why, and no way back to the person."""

    __tablename__ = "erasure"
    # Every index is written by every erasure, so each must earn its place. The API pages
    # erasures in due order, by (due_at, erasure_id) after a cursor, and filters them by
    # category. The consumer looks erased clocks up by clock_hash, and knows their subject,
    # which has few: an index on subject_hash serves it, and an auditor's query for a subject.
    # On PostgreSQL a hash index: it keeps 4 bytes of each 64-character key, where a B-tree of
    # these random keys outgrew memory at a million proofs and slowed the sweep.
    __table_args__ = (
        Index("ix_erasure_due_at_erasure_id", "due_at", "erasure_id"),
        Index("ix_erasure_subject_hash", "subject_hash", postgresql_using="hash"),
    )

    erasure_id: UUID = Field(primary_key=True)
    subject_hash: str = Field(max_length=64, description="SHA-256 of the pseudonym")
    clock_hash: str | None = Field(
        default=None,
        max_length=64,
        description="SHA-256 of pseudonym, category and scope: a late event about the erased "
        "data is recognised by it and not kept",
    )
    category: str = Field(max_length=40, index=True)
    rule: str = Field(max_length=100)
    legal_basis: str = Field(max_length=300)
    due_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    executed_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class ErasureConfirmation(SQLModel, table=True):
    """One of the company's systems confirmed it erased what an erasure command asked for (the
    API passes the confirmation on; the purger records it and publishes ``erasure.confirmed``)."""

    __tablename__ = "erasure_confirmation"

    erasure_id: UUID = Field(primary_key=True)
    system: str = Field(primary_key=True, max_length=100)
    confirmed_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


#: An expected system that has not confirmed yet: the partial index's predicate, and the
#: condition of every query for what a system still owes (written alike, for SQLite's sake).
UNCONFIRMED = text("confirmed_at IS NULL")


class ErasureExpectedSystem(SQLModel, table=True):
    """A system of the company's register (``company_system``) that held the erasure's category
    when the erasure was executed: the erasure is ``confirmed`` once every one of them confirmed,
    and ``overdue`` while one has not by its ``due_by`` (execution + the system's
    ``confirm_within`` then). Written with the proof, in its transaction, and never rewritten by
    a change of the register; ``confirmed_at`` is set when the system's confirmation is recorded.
    """

    __tablename__ = "erasure_expected_system"
    # What a system still owes (the API's ?system= and the per-system metrics) is found through
    # a partial index of the unconfirmed rows: the confirmed ones, most of them, are left out.
    __table_args__ = (
        Index(
            "ix_erasure_expected_system_unconfirmed",
            "system",
            "due_by",
            postgresql_where=UNCONFIRMED,
            sqlite_where=UNCONFIRMED,
        ),
    )

    erasure_id: UUID = Field(primary_key=True)
    system: str = Field(primary_key=True, max_length=100)
    due_by: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    confirmed_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


#: What a disposition review was opened for: the category's first erasure ever, more of its
#: erasures in a UTC day than ``max_per_day``, or a change of policy (or engine revision) that
#: made more of its clocks due at once than ``max_per_day``.
REVIEW_CAUSES = ("first_erasure", "max_per_day", "policy_change")
#: A policy change's clocks gathered while the refresh runs, before anyone knows how many there
#: will be: not a review yet (the API does not show it). Once the refresh has been through every
#: stale subject it becomes ``open`` (more than ``max_per_day``) or ``released`` (no more: its
#: clocks are made due as any, and counted by the sweep's brake).
GATHERING = "gathering"
RELEASED = "released"
#: ``open`` until decided; then what was decided (``approved`` also when approved automatically,
#: ``auto_approve_after_days`` after it was opened, with no ``decided_by``). ``gathering`` and
#: ``released``: a policy change's, see above.
REVIEW_STATES = ("open", "approved", "extended", "held", GATHERING, RELEASED)
#: A category's gathering review of one policy digest: one at a time, which purgers refreshing
#: together make with an insert that does nothing if another made it first (the partial unique
#: index's predicate, written alike for SQLite's sake).
GATHERING_SQL = text("state = 'gathering'")


class DispositionReview(SQLModel, table=True):
    """The clocks one sweep's brake stopped, for a DPO to decide on: those of one category, in
    one UTC day, for one cause. Clocks stopped later in the day join it while it is open and
    undecided. The clocks themselves point at it (``retention_clock.review_id``); this row keeps
    how many it stopped, by month of their due time and rule (``counts``, JSON:
    ``{"2022-03": {"collection_case.retention": 120}}``), and the decision once applied. No
    subject, no scope: a review outlives the clocks it stopped.

    A ``policy_change`` review holds the clocks of one category that the policy running now
    (``policy_digest``) made due at once where the stored verdicts, reached under another
    (``previous_policy_digest``), had them wait: gathered (``gathering``) while the policy
    refresh runs, then ``open`` or ``released`` (``services/purger/policy_change_review.py``);
    ``opened_date`` and ``created_at`` are then those of its opening."""

    __tablename__ = "disposition_review"
    __table_args__ = (
        Index(
            "uq_disposition_review_gathering",
            "category",
            "policy_digest",
            unique=True,
            postgresql_where=GATHERING_SQL,
            sqlite_where=GATHERING_SQL,
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    category: str = Field(max_length=40)
    cause: str = Field(max_length=20, description="first_erasure, max_per_day or policy_change")
    opened_date: date = Field(sa_column=Column(Date(), nullable=False), description="UTC")
    state: str = Field(max_length=20, index=True)
    clocks: int = Field(description="how many clocks it stopped")
    counts: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    decided_at: datetime | None = Field(
        default=None,
        sa_column=Column(UtcDateTime(), nullable=True),
        description="when the purger applied the decision",
    )
    decided_by: str | None = Field(
        default=None,
        max_length=32,
        description="the deciding API key's id; None while open, and when approved automatically",
    )
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    policy_digest: str | None = Field(
        default=None,
        max_length=64,
        description="policy_change: the digest of the policy (and engine revision) that made "
        "its clocks due",
    )
    previous_policy_digest: str | None = Field(
        default=None,
        max_length=64,
        description="policy_change: the digest their stored verdicts were reached under (of the "
        "first clocks gathered, should there have been several)",
    )


class DispositionCount(SQLModel, table=True):
    """How many of a category's erasures the sweep executed in a UTC day that count against its
    ``max_per_day``: erasures whose time had come, not those a review approved, nor immediate
    ones. One row per category and day, which several purgers add to (its row lock makes them
    take turns where the limit is near: ``services/purger/disposition_review.py``)."""

    __tablename__ = "disposition_count"

    category: str = Field(primary_key=True, max_length=40)
    utc_date: date = Field(sa_column=Column(Date(), primary_key=True))
    erased: int
