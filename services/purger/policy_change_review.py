"""Policy changes through disposition review: a new policy that makes more of a category's clocks
due at once than its ``max_per_day`` waits for a DPO instead of being applied by the refresh.

A shortened period is applied by the hourly policy refresh (``policy_refresh.py``), a batch of
subjects per transaction: each batch's newly due clocks would be erased by the next sweep before
anyone knew how many the change makes due in all. So no clock a change makes due is due at first.
A clock is *made due by a policy change* when the running policy's verdict is ``due`` where its
stored verdict, reached under another policy or engine revision (``policy_digest``), had it wait
(running, cancelled or held; not a clock already due, or in a review), or, in the refresh, when
the running policy gives a stale subject a clock that is due at once; and its category has a
``max_per_day``. Erasures at once (``erase_now``: what a person asked for) are not gathered, as
the sweep's brake does not stop them.

Such clocks are written ``awaiting_review`` in the category's *gathering* review of the running
digest (``disposition_review``, cause ``policy_change``, state ``gathering``), in the transaction
that evaluated them (:class:`MadeDue`): the refresh's batches, and the consumer's, should an event
of a stale subject come first. A restart midway leaves them waiting, never erased. When a refresh
has been through every stale subject (not when it was told to stop), it closes the gathering
reviews (:func:`close_gathered`): one with more clocks than the category's ``max_per_day``
opens, and waits for a DPO's decision as any review (``review.opened`` on
``gallring.reviews.v1``); one with no more is ``released``: its clocks are made due as any and
the sweep's brake counts them, as before this module existed (a change below the limits is
applied as it was, an hour at most later).

Several purgers refreshing together count in one row as the brake does: the gathering review,
which each batch locks and adds to in its transaction (made at first by an insert that does
nothing when another purger's made it: a partial unique index). A refresh finds no stale subject
left only once every batch that took one has committed (it waits for their locks), and the close
locks the review, so it counts every batch's clocks. Clocks the same change makes due after the
close (a purger of the old policy stored them meanwhile) join the review while it is open and
undecided, or gather anew, closed by the next refresh. The locks: subjects and their clocks
first, then reviews in category order; the close locks a review alone, and makes clocks due in
transactions of their own (``disposition_review.release_clocks``).
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Connection, Engine, Row, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.purger import disposition_review
from shared.domain.contract.review_messages import ReviewOpened
from shared.domain.contract.vocabulary import Category
from shared.domain.engine import ClockState, RetentionClock
from shared.domain.engine.clock_diff import Verdict
from shared.domain.policy import Policy
from shared.storage.database import begin_deciding, one_of
from shared.storage.tables.purger import (
    AWAITING_REVIEW,
    GATHERING,
    GATHERING_SQL,
    IN_A_REVIEW,
    RELEASED,
    DispositionReview,
    StoredClock,
)
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_CLOCKS = table_of(StoredClock)
_REVIEWS = table_of(DispositionReview)
POLICY_CHANGE = "policy_change"
_CLOCK_STATES = frozenset(state.value for state in ClockState)


@dataclass(frozen=True, slots=True)
class _Noted:
    erasure_id: UUID
    due_at: datetime
    rule: str
    previous_digest: str | None


class MadeDue:
    """The clocks one transaction's evaluations made due by a policy change, noted as they are
    stored (``subject_clocks.store``) and moved into their categories' reviews by
    :meth:`gather` before the commit. ``new_clocks``: whether a new clock due at once counts
    (the refresh's, which evaluates stale subjects on facts they had; not the consumer's, whose
    new clocks come from the events it applies, which the sweep's brake is for)."""

    def __init__(self, policy: Policy, digest: str, *, new_clocks: bool) -> None:
        self._policy = policy
        self._digest = digest
        self._new_clocks = new_clocks
        self._noted: dict[str, list[_Noted]] = {}

    def note(
        self, clock: RetentionClock, row: Row[Any] | None, erasure_id: UUID, now: datetime
    ) -> None:
        """Note ``clock`` (just stored, as ``erasure_id``, over ``row`` if it had one) if the
        policy change made it due."""
        if clock.state is not ClockState.DUE or clock.due_at is None:
            return
        if self._policy.categories[clock.category].review.max_per_day is None:
            return  # no limit to measure the change by: as before
        previous = None
        if row is None:
            if not self._new_clocks:
                return
        else:
            previous = row.policy_digest
            if previous is None or previous == self._digest or row.review_id is not None:
                return  # not reached under another policy, or in a review already
            if row.state not in _CLOCK_STATES:
                return
            if Verdict(ClockState(row.state), row.due_at).erasable_at(now):
                return  # due already, whatever the change
        noted = _Noted(erasure_id, clock.due_at, clock.rule, previous)
        self._noted.setdefault(clock.category.value, []).append(noted)

    def gather(self, connection: Connection, now: datetime) -> int:
        """Move the noted clocks, stored as due in this transaction, into their category's
        review of the change (the gathering one, or the open one nobody decided on yet), and
        add them to its counts; how many."""
        gathered = 0
        for category in sorted(self._noted):  # in one order: purgers lock reviews alike
            noted = self._noted[category]
            previous = Counter(n.previous_digest for n in noted if n.previous_digest)
            review = _review_to_join(
                connection,
                category,
                self._digest,
                previous.most_common(1)[0][0] if previous else None,
                now,
            )
            connection.execute(
                update(_CLOCKS)
                .where(one_of(connection, _CLOCKS.c.erasure_id, [n.erasure_id for n in noted]))
                .values(state=AWAITING_REVIEW, review_id=review.id, updated_at=now)
            )
            connection.execute(
                update(_REVIEWS)
                .where(_REVIEWS.c.id == review.id)
                .values(
                    clocks=_REVIEWS.c.clocks + len(noted),
                    counts=disposition_review.add_counts(review.counts, noted),
                )
            )
            if review.state == "open":
                log.info(
                    "purger: %d %s clock(s) made due by the policy change joined its open "
                    "review %d",
                    len(noted),
                    category,
                    review.id,
                )
            gathered += len(noted)
        self._noted = {}
        return gathered


def _review_to_join(
    connection: Connection, category: str, digest: str, previous: str | None, now: datetime
) -> Any:
    """The category's review of the change to ``digest`` that clocks may still join, locked:
    the gathering one, or the open one nobody decided on; else a new gathering one."""
    of_the_change = (
        _REVIEWS.c.cause == POLICY_CHANGE,
        _REVIEWS.c.category == category,
        _REVIEWS.c.policy_digest == digest,
    )
    columns = (_REVIEWS.c.id, _REVIEWS.c.state, _REVIEWS.c.counts)
    latest = connection.execute(
        select(*columns)
        .where(*of_the_change)
        .order_by(_REVIEWS.c.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if latest is not None and (
        latest.state == GATHERING
        or (latest.state == "open" and not disposition_review.is_decided(connection, latest.id))
    ):
        return latest
    # Another purger may be making it too: one insert does nothing, then both lock the one.
    dialect_insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(
        dialect_insert(_REVIEWS)
        .values(
            category=category,
            cause=POLICY_CHANGE,
            opened_date=disposition_review.utc_date(now),
            state=GATHERING,
            clocks=0,
            counts="{}",
            created_at=now,
            policy_digest=digest,
            previous_policy_digest=previous,
        )
        .on_conflict_do_nothing(
            index_elements=[_REVIEWS.c.category, _REVIEWS.c.policy_digest],
            index_where=GATHERING_SQL,
        )
    )
    return connection.execute(
        select(*columns).where(*of_the_change, _REVIEWS.c.state == GATHERING).with_for_update()
    ).one()


@dataclass(frozen=True, slots=True)
class Closed:
    opened: int  # clocks of the reviews opened: they wait for a DPO
    released: int  # clocks made due as any (within the limits)


def close_gathered(db: Engine, policy: Policy, now: datetime, batch_size: int) -> Closed:
    """Once a refresh has been through every stale subject: open each gathering review with
    more clocks than its category's ``max_per_day`` (under ``policy``, the running one), and
    release the others' clocks to be swept as any. Each review in a transaction of its own that
    locks it alone; the released clocks are made due after, a batch per transaction."""
    with db.connect() as connection:
        gathering = list(
            connection.execute(
                select(_REVIEWS.c.id).where(_REVIEWS.c.state == GATHERING).order_by(_REVIEWS.c.id)
            ).scalars()
        )
    opened = released = 0
    for review_id in gathering:
        with begin_deciding(db) as connection:
            review = connection.execute(
                select(_REVIEWS)
                .where(_REVIEWS.c.id == review_id, _REVIEWS.c.state == GATHERING)
                .with_for_update()
            ).first()
            if review is None:  # another purger closed it
                continue
            awaiting = connection.execute(
                select(func.count()).where(
                    IN_A_REVIEW,
                    _CLOCKS.c.review_id == review_id,
                    _CLOCKS.c.state == AWAITING_REVIEW,
                )
            ).scalar_one()
            limit = policy.categories[Category(review.category)].review.max_per_day
            if limit is not None and review.clocks > limit and awaiting:
                _open(connection, review, limit, now)
                opened += review.clocks
            else:
                _release(connection, review, limit, awaiting, now)
                released += awaiting
    if released:
        disposition_review.release_clocks(db, now, batch_size)
    return Closed(opened, released)


def _open(connection: Connection, review: Row[Any], limit: int, now: datetime) -> None:
    connection.execute(
        update(_REVIEWS)
        .where(_REVIEWS.c.id == review.id)
        .values(state="open", opened_date=disposition_review.utc_date(now), created_at=now)
    )
    opened = ReviewOpened(
        event_id=uuid4(),
        review_id=review.id,
        category=Category(review.category),
        cause=POLICY_CHANGE,
        max_per_day=limit,
        clocks=review.clocks,
        opened_at=now,
        policy_digest=review.policy_digest,
        previous_policy_digest=review.previous_policy_digest,
    )
    disposition_review.tell(connection, review.id, opened, now)
    log.warning(
        "purger: the policy running now made %d %s clock(s) due at once, more than its "
        "max_per_day (%d): review %d opened; none is erased until a DPO decides "
        "(POST /v1/reviews/%d/decision)",
        review.clocks,
        review.category,
        limit,
        review.id,
        review.id,
    )


def _release(
    connection: Connection, review: Row[Any], limit: int | None, awaiting: int, now: datetime
) -> None:
    within = f"within max_per_day ({limit})" if limit is not None else "no max_per_day now"
    connection.execute(
        update(_REVIEWS)
        .where(_REVIEWS.c.id == review.id)
        .values(
            state=RELEASED,
            decided_at=now,
            reason=f"{review.clocks} clock(s) made due by the policy change, {within}: "
            "made due as any",
        )
    )
    log.info(
        "purger: the policy running now made %d %s clock(s) due at once, %s: made due as any "
        "(%d still awaiting)",
        review.clocks,
        review.category,
        within,
        awaiting,
    )
