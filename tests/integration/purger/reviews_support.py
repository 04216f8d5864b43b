"""What the disposition-review tests (the sweep's brake, and a policy change's review) read from
the purger's tables, and the DPO's decision as the API records it: one place, so that both
read the reviews, the clocks and the day's count the same way."""

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from services.api.api_keys import Principal, Scope
from services.api.reviews import service as reviews
from services.api.reviews.schemas import DecisionRequest, ReviewView
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.messaging import topics
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import (
    DispositionCount,
    DispositionReview,
    ErasureProof,
    StoredClock,
)
from shared.storage.tables.table import table_of

CLOCKS = table_of(StoredClock)
PROOFS = table_of(ErasureProof)
REVIEWS = table_of(DispositionReview)
COUNTS = table_of(DispositionCount)
OUTBOX = table_of(OutboxMessage)
#: The key a DPO decides with (a role's, as the audit log names it).
DPO = Principal("k-dpo-1", "dpo", frozenset({Scope.REVIEWS_DECIDE}))


def states(db: Engine) -> Counter[str]:
    """How many of the database's clocks are in each state (the tests' databases are their own,
    so this is every clock the test made)."""
    with db.connect() as connection:
        rows = connection.execute(select(CLOCKS.c.state, func.count()).group_by(CLOCKS.c.state))
        return Counter(dict(rows.all()))


def all_reviews(db: Engine) -> list[Any]:
    """Every review row the purger made, gathering ones included, oldest first."""
    with db.connect() as connection:
        return connection.execute(select(REVIEWS).order_by(REVIEWS.c.id)).all()


def counted_today(db: Engine, category: str = "collection_case") -> int:
    """How many of the category's erasures the brake counted against today's ``max_per_day``
    (0 when it counted none, and so stored no row)."""
    with db.connect() as connection:
        counted = connection.execute(
            select(COUNTS.c.erased).where(
                COUNTS.c.category == category, COUNTS.c.utc_date == datetime.now(UTC).date()
            )
        ).scalar_one_or_none()
    return counted or 0


def decide(db: Engine, review_id: int, decision: DecisionRequest) -> ReviewView:
    """The DPO's ``decision`` on the review, recorded now by the API's service (which the
    purger then applies at its next sweep)."""
    return reviews.decide(db, review_id, decision, actor=DPO, now=datetime.now(UTC))


def sent_events(db: Engine, event_type: str) -> list[LifecycleMessage]:
    """The lifecycle events of this type the API sent (as the relay would publish them): an
    extend decision's ``retention.extended``, a hold decision's ``legal_hold.placed``."""
    with db.connect() as connection:
        rows = connection.execute(
            select(OUTBOX.c.value).where(
                OUTBOX.c.topic.in_((topics.LIFECYCLE, topics.LIFECYCLE_IMMEDIATE))
            )
        ).scalars()
        messages = [LifecycleMessage.from_json(value) for value in rows]
    return [message for message in messages if message.type == event_type]
