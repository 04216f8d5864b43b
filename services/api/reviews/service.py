"""Reading disposition reviews (the purger's ``disposition_review``, and the clocks awaiting
them) and recording a DPO's decision on one.

A decision is the API's own record (``review_decision``: one per review, so a second is
refused), which the purger reads and applies at its next sweep, as it reads the register of
systems. It is recorded while the review's row is locked (``FOR UPDATE``; on SQLite the
transaction holds the write lock): the purger locks the row too before it adds clocks to an open
review, so a decision covers every clock the review holds when it is taken, and none joins it
after.

``extend`` and ``hold`` also send, in the same transaction, what upstream systems would send
for it: a ``retention.extended`` event per clock awaiting the review, or a ``legal_hold.placed``
per subject and case, on the lifecycle topics through the outbox, keyed by the subject's
pseudonym. The purger applies them as any event: the clocks leave the review, kept, and the
subject's lookup says why. An ``approve`` sends nothing: the purger makes the review's clocks
due again, and erases them.
"""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import Connection, Engine, func, insert, select

from services.api import audit
from services.api.api_keys import Principal
from services.api.reviews.schemas import (
    SAMPLE_SIZE,
    DecisionRequest,
    DecisionView,
    ReviewCount,
    ReviewState,
    ReviewView,
)
from shared.domain.contract.events import (
    LEGAL_HOLD_PLACED,
    RETENTION_EXTENDED,
    ExtendedData,
    HoldPlacedData,
)
from shared.domain.contract.lifecycle_message import SCHEMA_VERSION, LifecycleMessage
from shared.domain.contract.scope import Scope
from shared.domain.contract.vocabulary import WRITTEN_BY_GALLRING
from shared.messaging import topics
from shared.messaging.outbox import outbox_row
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import begin_deciding, one_of
from shared.storage.tables.api import ReviewDecision
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import (
    AWAITING_REVIEW,
    IN_A_REVIEW,
    DispositionReview,
    StoredClock,
)
from shared.storage.tables.table import table_of

_REVIEWS = table_of(DispositionReview)
_DECISIONS = table_of(ReviewDecision)
_CLOCKS = table_of(StoredClock)
_OUTBOX = table_of(OutboxMessage)
_STATE_OF = {
    "approve": ReviewState.APPROVED,
    "extend": ReviewState.EXTENDED,
    "hold": ReviewState.HELD,
}
#: What the API shows: reviews, not a policy change's clocks the purger is still gathering (nor
#: those it released as within the limits: ``services/purger/policy_change_review.py``).
_REVIEWABLE = _REVIEWS.c.state.in_([state.value for state in ReviewState])
#: A review with its decision, if one was recorded: the review's own decision columns are what
#: the purger applied (with no decision recorded: an automatic approval).
_VIEWED = select(
    _REVIEWS.c.id,
    _REVIEWS.c.category,
    _REVIEWS.c.cause,
    _REVIEWS.c.state,
    _REVIEWS.c.opened_date,
    _REVIEWS.c.created_at,
    _REVIEWS.c.clocks,
    _REVIEWS.c.counts,
    _REVIEWS.c.decided_at.label("applied_at"),
    _REVIEWS.c.reason.label("applied_reason"),
    _DECISIONS.c.decision,
    _DECISIONS.c.key_id,
    _DECISIONS.c.reason,
    _DECISIONS.c.ground,
    _DECISIONS.c.until_date,
    _DECISIONS.c.hold_id,
    _DECISIONS.c.events,
    _DECISIONS.c.decided_at,
    _REVIEWS.c.policy_digest,
    _REVIEWS.c.previous_policy_digest,
).outerjoin_from(_REVIEWS, _DECISIONS, _DECISIONS.c.review_id == _REVIEWS.c.id)


class ReviewNotFound(LookupError):
    pass


class AlreadyDecided(Exception):
    def __init__(self, view: ReviewView) -> None:
        super().__init__(view.review_id)
        self.view = view


def reviews(db: Engine, state: ReviewState | None, limit: int) -> list[ReviewView]:
    """Up to ``limit`` reviews in ``state`` (any if None), the newest first."""
    with db.connect() as connection:
        query = _VIEWED.where(_REVIEWABLE)
        if state is ReviewState.OPEN:  # what waits for a DPO: not decided, nor being applied
            query = query.where(_REVIEWS.c.state == "open", _DECISIONS.c.review_id.is_(None))
        elif state is not None:
            query = query.where(
                (_REVIEWS.c.state == state.value) | (_DECISIONS.c.decision == _decision_of(state))
            )
        rows = connection.execute(query.order_by(_REVIEWS.c.id.desc()).limit(limit)).all()
        return _views(connection, rows)


def one(db: Engine, review_id: int) -> ReviewView | None:
    with db.connect() as connection:
        return _one(connection, review_id)


def decide(
    db: Engine,
    review_id: int,
    decision: DecisionRequest,
    *,
    actor: Principal,
    now: datetime,
) -> ReviewView:
    """Record ``decision`` and send its events, in one transaction with its audit entry; the
    review as it now stands. Raises :class:`ReviewNotFound` or :class:`AlreadyDecided`."""
    with begin_deciding(db) as connection:
        query = select(_REVIEWS.c.id, _REVIEWS.c.state).where(
            _REVIEWS.c.id == review_id, _REVIEWABLE
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()  # see the module's docstring
        review = connection.execute(query).first()
        if review is None:
            raise ReviewNotFound(review_id)
        earlier = connection.execute(
            select(_DECISIONS.c.review_id).where(_DECISIONS.c.review_id == review_id)
        ).first()
        if earlier is not None or review.state != "open":
            view = _one(connection, review_id)
            assert view is not None
            raise AlreadyDecided(view)
        messages = _messages(connection, review_id, decision, now)
        insert_rows(connection, _OUTBOX, [_outbox_row(message, now) for message in messages])
        details: dict[str, Any] = {
            "ground": decision.ground,
            "until_date": decision.until,
            "hold_id": _hold_id(review_id, decision) if decision.decision == "hold" else None,
        }
        connection.execute(
            insert(_DECISIONS).values(
                review_id=review_id,
                decision=decision.decision,
                key_id=actor.key_id,
                reason=decision.reason,
                events=len(messages),
                decided_at=now,
                **details,
            )
        )
        audit.record(
            connection,
            actor=actor,
            action="reviews.decided",
            at=now,
            review_id=review_id,
            decision=decision.decision,
            key_id=actor.key_id,
            reason=decision.reason,
            events=len(messages),
            **{name: value for name, value in details.items() if value is not None},
        )
        view = _one(connection, review_id)
    assert view is not None
    return view


def _messages(
    connection: Connection,
    review_id: int,
    decision: DecisionRequest,
    now: datetime,
) -> list[LifecycleMessage]:
    """The events that keep the review's awaiting clocks, as upstream systems would send them
    (none for an approval)."""
    if decision.decision == "approve":
        return []
    clocks = connection.execute(
        select(
            _CLOCKS.c.subject_pseudonym,
            _CLOCKS.c.category,
            _CLOCKS.c.scope_key,
            _CLOCKS.c.scope_value,
        )
        .where(IN_A_REVIEW, _CLOCKS.c.review_id == review_id, _CLOCKS.c.state == AWAITING_REVIEW)
        .order_by(_CLOCKS.c.subject_pseudonym, _CLOCKS.c.id)
    ).all()
    if decision.decision == "extend":
        assert decision.ground is not None and decision.until is not None  # problems() said
        ground, until = decision.ground, decision.until
        return [
            _message(
                RETENTION_EXTENDED,
                clock.subject_pseudonym,
                {clock.scope_key: clock.scope_value} if clock.scope_key else {},
                ExtendedData(
                    category=clock.category, until=until, ground=ground, review_id=review_id
                ),
                now,
            )
            for clock in clocks
        ]
    hold_id = _hold_id(review_id, decision)
    holds: dict[tuple[str, str | None, str], HoldPlacedData] = {}
    for clock in clocks:
        # A hold narrows to a case and a category only: a clock kept per client or
        # relationship is held with every clock of its category (more kept, never less).
        case_id = clock.scope_value if clock.scope_key == "case_id" else None
        holds.setdefault(
            (clock.subject_pseudonym, case_id, clock.category),
            HoldPlacedData(hold_id=hold_id, case_id=case_id, category=clock.category),
        )
    return [
        _message(LEGAL_HOLD_PLACED, subject, {}, data, now)
        for (subject, _, _), data in holds.items()
    ]


def _message(
    event_type: str, subject: str, scope: dict[str, str], data: Any, now: datetime
) -> LifecycleMessage:
    return LifecycleMessage.model_construct(
        event_id=uuid4(),
        type=event_type,
        occurred_at=now,
        subject=subject,
        scope=Scope.model_validate(scope, context=WRITTEN_BY_GALLRING),
        data=data,
    )


def _outbox_row(message: LifecycleMessage, now: datetime) -> dict[str, Any]:
    return outbox_row(
        topics.lifecycle_topic(message.type),
        key=message.subject,
        value=message.to_json(),
        event_type=message.type,
        event_id=message.event_id,
        schema_version=SCHEMA_VERSION,
        now=now,
    )


def _hold_id(review_id: int, decision: DecisionRequest) -> str:
    return decision.hold_id or f"review-{review_id}"


def _decision_of(state: ReviewState) -> str:
    return {"approved": "approve", "extended": "extend", "held": "hold"}[state.value]


def _one(connection: Connection, review_id: int) -> ReviewView | None:
    rows = connection.execute(_VIEWED.where(_REVIEWS.c.id == review_id, _REVIEWABLE)).all()
    views = _views(connection, rows)
    return views[0] if views else None


def _views(connection: Connection, rows: Sequence[Any]) -> list[ReviewView]:
    ids = [row.id for row in rows]
    if not ids:
        return []
    awaiting_now = (IN_A_REVIEW, one_of(connection, _CLOCKS.c.review_id, ids))
    awaiting: dict[int, int] = dict(
        connection.execute(
            select(_CLOCKS.c.review_id, func.count())
            .where(*awaiting_now, _CLOCKS.c.state == AWAITING_REVIEW)
            .group_by(_CLOCKS.c.review_id)
        ).all()
    )
    return [_view(connection, row, awaiting.get(row.id, 0)) for row in rows]


def _view(connection: Connection, row: Any, awaiting: int) -> ReviewView:
    sample = (
        connection.execute(
            select(_CLOCKS.c.erasure_id)
            .where(IN_A_REVIEW, _CLOCKS.c.review_id == row.id, _CLOCKS.c.state == AWAITING_REVIEW)
            .order_by(_CLOCKS.c.review_id, _CLOCKS.c.id)  # the index's order: no sort
            .limit(SAMPLE_SIZE)
        )
        .scalars()
        .all()
        if awaiting
        else []
    )
    counts = [
        ReviewCount(month=month, rule=rule, clocks=clocks)
        for month, by_rule in sorted(json.loads(row.counts).items())
        for rule, clocks in sorted(by_rule.items())
    ]
    decision = _decision_view(row)
    state = ReviewState(row.state)
    if decision is not None and state is ReviewState.OPEN:
        state = ReviewState(_STATE_OF[decision.decision])
    return ReviewView(
        review_id=row.id,
        category=row.category,
        cause=row.cause,
        state=state,
        opened_date=row.opened_date,
        created_at=row.created_at,
        clocks=row.clocks,
        awaiting=awaiting,
        counts=counts,
        sample_erasure_ids=list(sample),
        decision=decision,
        policy_digest=row.policy_digest,
        previous_policy_digest=row.previous_policy_digest,
    )


def _decision_view(row: Any) -> DecisionView | None:
    applied = row.state != "open"
    if row.decision is not None:  # the API's record
        return DecisionView(
            decision=row.decision,
            decided_by=row.key_id,
            reason=row.reason,
            decided_at=row.decided_at,
            applied=applied,
            ground=row.ground,
            until=row.until_date,
            hold_id=row.hold_id,
            events=row.events,
        )
    if applied:  # approved by the purger alone, auto_approve_after_days after it opened
        return DecisionView(
            decision="approve",
            decided_by=None,
            reason=row.applied_reason,
            decided_at=row.applied_at,
            applied=True,
        )
    return None
