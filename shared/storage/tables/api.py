"""Tables the API service owns. None holds a raw personal identifier: subjects appear only as
keyed pseudonyms, request bodies only as keyed digests."""

from datetime import date, datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, Date, Integer, String, Text
from sqlmodel import Field, SQLModel

from shared.storage.tables.types import UtcDateTime


def _utc(*, nullable: bool = False, index: bool = False) -> Column:
    return Column(UtcDateTime(), nullable=nullable, index=index)


class IdempotencyRecord(SQLModel, table=True):
    """Tells a replay (same id, same body) from a conflict (same id, other body); kept for
    ``api_idempotency_days``, pruned by ``accepted_at``."""

    __tablename__ = "idempotency_record"

    event_id: UUID = Field(primary_key=True)
    body_digest: str = Field(max_length=64, description="keyed HMAC of the canonical body")
    accepted_at: datetime = Field(sa_column=_utc(index=True))


class ApiKey(SQLModel, table=True):
    """A machine client's credential: only a hash of the secret part is kept."""

    __tablename__ = "api_key"

    key_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100, index=True)
    scopes: str = Field(max_length=200, description="space-separated")
    secret_hash: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_utc())
    revoked_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))


class AuditEntry(SQLModel, table=True):
    """Who (a key's name) did what, when. Never personal data: ids and counts only; kept for
    ``api_audit_days``."""

    __tablename__ = "audit_entry"

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    at: datetime = Field(sa_column=_utc(index=True))
    actor: str = Field(max_length=100)
    action: str = Field(max_length=100)
    detail: str = Field(sa_column=Column(String(2000), nullable=False))


class Recipient(SQLModel, table=True):
    """Someone the company shares data with, who must hear of erasures (GDPR art. 19).

    Signing secrets are kept encrypted (``shared.webhooks.signing_secrets``): Gallring must sign
    with them, so a hash would not do. During a rotation's grace period the previous secret signs
    too.
    """

    __tablename__ = "recipient"

    recipient_id: str = Field(primary_key=True, max_length=128)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20, description="processor, controller, authority, internal")
    country: str = Field(max_length=2, description="ISO 3166-1 alpha-2")
    webhook_url: str = Field(max_length=2000)
    categories: str = Field(max_length=500, description="space-separated categories")
    active: bool = True
    secret: str = Field(sa_column=Column(String(500), nullable=False), description="encrypted")
    previous_secret: str | None = Field(
        default=None, sa_column=Column(String(500), nullable=True), description="encrypted"
    )
    previous_secret_expires_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())


class CompanySystem(SQLModel, table=True):
    """One of the company's own systems that holds personal data (``collection``, ``crm``,
    ``ledger``…): an erasure of a category it holds waits for its confirmation. The purger reads
    the register when it executes an erasure, and records there which systems it expects
    (``erasure_expected_system``), so that a later change here does not rewrite history."""

    __tablename__ = "company_system"

    system_id: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=200)
    categories: str = Field(max_length=500, description="space-separated categories")
    confirm_within_seconds: int = Field(
        sa_column=Column(Integer, nullable=False),
        description="how long after an erasure's execution its confirmation is due",
    )
    active: bool = True
    created_at: datetime = Field(sa_column=_utc())
    updated_at: datetime = Field(sa_column=_utc())


class LegalHold(SQLModel, table=True):
    """A legal hold in the register: why it stands (the matter, a reason from the list), who owns
    it, when it is to be reviewed, what it covers, and its release, which a second key approves.

    What it covers names no subject: a subject's hold says only that it is one (the subjects it
    was placed on are in ``legal_hold_subject``, by pseudonym, until its release). The case and
    client ids it names are blanked at its release; the row goes ``api_audit_days`` after it.
    """

    __tablename__ = "legal_hold"

    hold_id: str = Field(primary_key=True, max_length=64)
    matter: str = Field(max_length=100, description="the matter's reference, e.g. a court's")
    reason: str = Field(max_length=30)
    reason_text: str | None = Field(default=None, max_length=500, description="with 'other'")
    owner_team: str = Field(max_length=100)
    review_by: date
    coverage: str = Field(max_length=20, description="subject, subject_category, … (HoldCoverage)")
    category: str | None = Field(default=None, max_length=40)
    client_id: str | None = Field(default=None, max_length=128)
    case_ids: str | None = Field(
        default=None, sa_column=Column(Text, nullable=True), description="space-separated"
    )
    subjects: int = Field(description="the subjects its placement went to")
    state: str = Field(max_length=20, description="standing, release_requested, released")
    placed_at: datetime = Field(sa_column=_utc())
    placed_by: str = Field(max_length=100, description="the key's name")
    release_requested_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    release_requested_by: str | None = Field(default=None, max_length=100)
    release_requested_key: str | None = Field(
        default=None, max_length=32, description="the requesting key's id: another approves"
    )
    released_at: datetime | None = Field(default=None, sa_column=_utc(nullable=True))
    released_by: str | None = Field(default=None, max_length=100, description="the approver")
    reminded_days: int | None = Field(
        default=None,
        description="the most urgent review reminder published (30, 7, 1; -1: past), so each "
        "is published once",
    )
    updated_at: datetime = Field(sa_column=_utc())


class LegalHoldSubject(SQLModel, table=True):
    """A subject (pseudonym) a register's hold was placed on, under which of the engine's hold ids
    (the hold's own, or ``<hold>~<case or category>`` where one subject needs several
    placements): what its release is sent to. Deleted at the release."""

    __tablename__ = "legal_hold_subject"

    hold_id: str = Field(primary_key=True, max_length=64)
    subject_pseudonym: str = Field(primary_key=True, max_length=64)
    placement: str = Field(primary_key=True, max_length=128, description="the engine's hold id")


class ReviewDecision(SQLModel, table=True):
    """A DPO's decision on a disposition review (the purger's ``disposition_review``), taken
    through ``POST /v1/reviews/{id}/decision``: one per review, so a second is refused. The
    purger reads it at its next sweep and applies it (an approval lets the review's clocks be
    erased); an ``extend`` or ``hold`` also sent its events through the outbox, one per clock
    (``events``), which keep the clocks when the purger applies them."""

    __tablename__ = "review_decision"

    review_id: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
        )
    )
    decision: str = Field(max_length=10, description="approve, extend or hold")
    key_id: str = Field(max_length=32, description="the deciding API key's id")
    reason: str = Field(sa_column=Column(String(500), nullable=False))
    ground: str | None = Field(
        default=None, sa_column=Column(String(300), nullable=True), description="extend"
    )
    until_date: date | None = Field(
        default=None, sa_column=Column(Date(), nullable=True), description="extend"
    )
    hold_id: str | None = Field(default=None, max_length=128, description="hold")
    events: int = Field(description="the retention.extended or legal_hold.placed events sent")
    decided_at: datetime = Field(sa_column=_utc())
