"""Disposition review: the brake on sweeps that would erase more of a category than usual.

The worst thing Gallring can do is erase early: a back-fill with wrong closing dates, or a policy
that shortens a period, and one night's sweep erases a hundred thousand cases irreversibly. So a
category's ``review:`` in the policy (``first_erasure``, ``max_per_day``) limits what a sweep
executes, and what goes past it is not erased: those clocks become ``awaiting_review`` (which the
sweep's index leaves out), in a review a DPO decides on through the API.

What counts: erasures whose time came (stored state ``pending`` or ``due``), not immediate ones
(``erase_now``: an unsubscribe, an objection, an erasure request the person made, which must not
wait for a review), nor the due clocks of a subject who asked for erasure (the engine leaves a
clock already due as it is, whatever the request: still the person's), nor clocks a review
approved (counted once, when they were stopped). The day is the UTC day of the sweep.

The brake (:func:`admit`) runs inside the sweep's transaction, on the clocks it locked, before
anything is erased. Per braked category it reads how many erasures the day has executed
(``disposition_count``) without a lock; if the batch fits under the limit, the batch goes on and
adds its own at the end (:meth:`Admission.record`), where the row's lock is held only until the
commit, so purgers sweeping a category together go on in parallel. Should another purger have
taken the rest of the day's limit meanwhile, the addition finds the total past the limit and the
batch is rolled back (:class:`QuotaTaken`) and swept again. Where the batch does not fit in one
category, the day's rows of all its braked categories are locked, in one order, before they are
read again (all, or two purgers each near one of two limits would wait for each other's row):
purgers near the limit take turns, and the clocks
past it join the category's open review of the day (or open one), which is locked too, so that a
decision taken through the API meanwhile is seen.

Decisions are the API's (``review_decision``, read here as the register of systems is); before
each sweep (:func:`settle_reviews`) the purger applies those it has not yet, and approves the
reviews the policy's ``auto_approve_after_days`` lets proceed, each in a transaction of its own
that locks only the review; then, in batches, it makes the clocks of approved reviews due again
(skipping, on PostgreSQL, those a consumer holds: the next sweep takes them).
Never the review and the clocks in one transaction: a sweep holds clocks while it waits for a
review, so a transaction holding a review must not wait for clocks. An ``extend`` or ``hold``
releases no clock: the events the API sent with the decision keep them when the consumer applies
them (``subject_clocks.store`` moves a clock out of its review once the engine keeps it).

A policy change that makes more of a category's clocks due at once than ``max_per_day`` opens
a review of its own (cause ``policy_change``), gathered by the policy refresh rather than the
sweep (:mod:`services.purger.policy_change_review`); once open it is decided, and its clocks
released, as any.

Ops hear of reviews on ``gallring.reviews.v1`` (keyed by the review id) and through the
``gallring_purger_reviews_open`` gauge.
"""

import json
import logging
import math
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import Connection, Engine, Row, exists, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shared.domain.contract.events import DSR_ERASURE_REQUESTED
from shared.domain.contract.review_messages import (
    SCHEMA_VERSION,
    Cause,
    DecidedState,
    ReviewDecided,
    ReviewOpened,
)
from shared.domain.contract.vocabulary import Category
from shared.domain.engine.evaluate import IMMEDIATE_RULE
from shared.domain.policy import Policy
from shared.domain.policy.model import Review
from shared.messaging import topics
from shared.messaging.outbox import outbox_row
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import begin_deciding, one_of
from shared.storage.tables.api import ReviewDecision
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.purger import (
    AWAITING_REVIEW,
    IN_A_REVIEW,
    RELEASED,
    DispositionCount,
    DispositionReview,
    ErasureProof,
    StoredClock,
    SubjectFact,
)
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_CLOCKS = table_of(StoredClock)
_REVIEWS = table_of(DispositionReview)
_COUNTS = table_of(DispositionCount)
_DECISIONS = table_of(ReviewDecision)
_PROOFS = table_of(ErasureProof)
_OUTBOX = table_of(OutboxMessage)
_FACTS = table_of(SubjectFact)
#: The causes of the reviews a sweep opens and adds to (a policy change's are gathered by the
#: policy refresh: ``policy_change_review.py``).
SWEEP_CAUSES = ("first_erasure", "max_per_day")
#: What each decision makes of its review.
DECIDED_STATES: dict[str, DecidedState] = {
    "approve": "approved",
    "extend": "extended",
    "hold": "held",
}


class QuotaTaken(Exception):
    """Another purger executed erasures of a category while this batch did, and together they
    went past its ``max_per_day``: the batch is rolled back and swept again, counting theirs."""


@dataclass(slots=True)
class Admission:
    """What the brake let through of a batch's clocks: their ids (``admitted``), and of those
    the ones whose erasure counts against their category's day (``counted``: id -> category)."""

    admitted: list[int]
    counted: dict[int, str] = field(default_factory=dict)
    limits: dict[str, int | None] = field(default_factory=dict)  # per counted category
    stopped: int = 0  # moved into a review

    def record(self, connection: Connection, erased: Iterable[int], now: datetime) -> None:
        """Add the counted clocks among ``erased`` to their categories' day; raise
        :class:`QuotaTaken` if another purger's erasures meanwhile took the day past a limit."""
        if not self.counted:
            return
        per_category = Counter(self.counted[i] for i in erased if i in self.counted)
        day = utc_date(now)
        for category in sorted(per_category):  # in one order: purgers lock rows alike
            total = _add_to_day(connection, category, day, per_category[category])
            limit = self.limits[category]
            if limit is not None and total > limit:
                raise QuotaTaken(category)


def admit(
    connection: Connection, policy: Policy, candidates: Sequence[Row[Any]], now: datetime
) -> Admission:
    """Let through what the review limits allow of ``candidates`` (locked clock rows, in due
    order: ``id``, ``subject_pseudonym``, ``category``, ``state``, ``review_id``, ``due_at``,
    ``rule``); move the rest into their category's review of the day. Nothing is erased here.
    Immediate erasures, approved clocks and those of subjects who asked for erasure
    (:func:`requesting_erasure`) go through unbraked."""
    admission = Admission(admitted=[])
    braked: dict[str, list[Row[Any]]] = {}
    reviews = {category.value: _review_of(policy, category) for category in Category}
    for row in candidates:
        review = reviews[row.category]
        if review is None or row.state == "erase_now" or row.review_id is not None:
            admission.admitted.append(row.id)
        else:
            braked.setdefault(row.category, []).append(row)
    requested = requesting_erasure(
        connection, {row.subject_pseudonym for rows in braked.values() for row in rows}
    )
    if requested:  # what the person asked to be erased is not braked (nor counted)
        for category in list(braked):
            admission.admitted += [
                row.id for row in braked[category] if row.subject_pseudonym in requested
            ]
            rest = [row for row in braked[category] if row.subject_pseudonym not in requested]
            if rest:
                braked[category] = rest
            else:
                del braked[category]
    day = utc_date(now)
    allowances = {
        category: _allowance(connection, category, reviews[category], day, lock=False)
        for category in sorted(braked)
    }
    if any(len(rows) > allowances[category][0] for category, rows in braked.items()):
        # Near a limit: take turns, and count again. Every braked category's day is locked,
        # in one order, not only those past their limit: :meth:`Admission.record` locks the
        # counted ones (in that order) at the end, and a purger holding one category's row
        # while it waits for another's, held by a purger waiting for the first, deadlocks.
        allowances = {
            category: _allowance(connection, category, reviews[category], day, lock=True)
            for category in sorted(braked)
        }
    for category in sorted(braked):
        rows = braked[category]
        review = reviews[category]
        assert review is not None
        allowance, cause = allowances[category]
        let_through = rows[: int(min(allowance, len(rows)))]
        admission.admitted += [row.id for row in let_through]
        if review.max_per_day is not None:
            admission.counted.update((row.id, category) for row in let_through)
            admission.limits[category] = review.max_per_day
        stopped = rows[len(let_through) :]
        if stopped:
            _stop(connection, category, cause, review, stopped, now)
            admission.stopped += len(stopped)
    return admission


def requesting_erasure(connection: Connection, subjects: Collection[str]) -> set[str]:
    """Those of ``subjects`` that asked for erasure (a ``dsr.erasure_requested`` among their
    facts). Their due clocks are erased as the engine finds them due, unbraked: the engine
    erases at once only the categories the policy's ``immediate_erasure`` lists for a request,
    and leaves a clock already due as it is, yet the request is the person's, as an unsubscribe
    is, and must not wait for a review."""
    if not subjects:
        return set()
    return set(
        connection.execute(
            select(_FACTS.c.subject_pseudonym)
            .where(
                one_of(connection, _FACTS.c.subject_pseudonym, subjects),
                _FACTS.c.event_type == DSR_ERASURE_REQUESTED,
            )
            .distinct()
        ).scalars()
    )


def _review_of(policy: Policy, category: Category) -> Review | None:
    review = policy.categories[category].review
    return review if review.brakes else None


def _allowance(
    connection: Connection, category: str, review: Review | None, day: date, *, lock: bool
) -> tuple[float, Cause]:
    """How many more of the category's erasures the day allows, and why no more. With
    ``lock``, the day's row (made if need be) is held until the commit first: purgers that may
    stop clocks of the category take turns, and count exactly."""
    assert review is not None  # a braked category's
    erased = _add_to_day(connection, category, day, 0) if lock else None
    if review.first_erasure and _never_erased(connection, category):
        return 0, "first_erasure"
    if review.max_per_day is None:
        return math.inf, "max_per_day"
    if erased is None:
        erased = connection.execute(
            select(_COUNTS.c.erased).where(
                _COUNTS.c.category == category, _COUNTS.c.utc_date == day
            )
        ).scalar_one_or_none()
    return max(0, review.max_per_day - (erased or 0)), "max_per_day"


def _never_erased(connection: Connection, category: str) -> bool:
    """No erasure of the category whose time came was ever executed, nor a review of it approved
    (whose clocks are being erased: the DPO has seen the category's first erasure). Immediate
    erasures do not count: an unsubscribe is erased at once, unbraked, and says nothing of
    whether the category's periods erase what they should."""
    erased = exists().where(
        _PROOFS.c.category == category, _PROOFS.c.rule != f"{category}.{IMMEDIATE_RULE}"
    )
    approved = exists().where(_REVIEWS.c.category == category, _REVIEWS.c.state == "approved")
    return not connection.execute(select(erased | approved)).scalar_one()


def _add_to_day(connection: Connection, category: str, day: date, erased: int) -> int:
    """Add ``erased`` to the category's day (making its row), locking the row until the commit;
    the day's total."""
    dialect_insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    values = dialect_insert(_COUNTS).values(category=category, utc_date=day, erased=erased)
    statement = values.on_conflict_do_update(
        index_elements=[_COUNTS.c.category, _COUNTS.c.utc_date],
        set_={"erased": _COUNTS.c.erased + values.excluded.erased},
    ).returning(_COUNTS.c.erased)
    total: int = connection.execute(statement).scalar_one()
    return total


def _stop(
    connection: Connection,
    category: str,
    cause: Cause,
    review: Review,
    rows: Sequence[Row[Any]],
    now: datetime,
) -> None:
    """Move ``rows`` (locked by the sweep's transaction) into the category's open review of the
    day, opening one if there is none, or if the one there was decided meanwhile."""
    found = _open_review_of_the_day(connection, category, utc_date(now))
    counted = add_counts(found.counts if found is not None else None, rows)
    if found is not None:
        review_id = found.id
        connection.execute(
            update(_REVIEWS)
            .where(_REVIEWS.c.id == review_id)
            .values(clocks=_REVIEWS.c.clocks + len(rows), counts=counted)
        )
    else:
        review_id = connection.execute(
            insert(_REVIEWS)
            .values(
                category=category,
                cause=cause,
                opened_date=utc_date(now),
                state="open",
                clocks=len(rows),
                counts=counted,
                created_at=now,
            )
            .returning(_REVIEWS.c.id)
        ).scalar_one()
        opened = ReviewOpened(
            event_id=uuid4(),
            review_id=review_id,
            category=Category(category),
            cause=cause,
            max_per_day=review.max_per_day,
            clocks=len(rows),
            opened_at=now,
        )
        tell(connection, review_id, opened, now)
        log.warning(
            "purger: %s erasures past the policy's review limits (%s): review %d opened; they "
            "wait for a decision (POST /v1/reviews/%d/decision)",
            category,
            cause,
            review_id,
            review_id,
        )
    connection.execute(
        update(_CLOCKS)
        .where(one_of(connection, _CLOCKS.c.id, [row.id for row in rows]))
        .values(state=AWAITING_REVIEW, review_id=review_id, updated_at=now)
    )


def _open_review_of_the_day(connection: Connection, category: str, day: date) -> Any:
    """The category's open review of ``day`` that nobody decided on yet, locked, or None (a
    policy change's reviews are the policy change's: ``policy_change_review.py``).

    Locked before the decision is looked for, in a statement of its own: the API locks the
    review while it records a decision, so once the lock is had, a decision recorded is seen
    (a statement sees what was committed before it began), and none can be recorded until the
    clocks have joined."""
    query = (
        select(_REVIEWS.c.id, _REVIEWS.c.counts)
        .where(
            _REVIEWS.c.category == category,
            _REVIEWS.c.opened_date == day,
            _REVIEWS.c.state == "open",
            _REVIEWS.c.cause.in_(SWEEP_CAUSES),
        )
        .order_by(_REVIEWS.c.id.desc())
        .limit(1)
        .with_for_update()
    )
    found = connection.execute(query).first()
    if found is None or is_decided(connection, found.id):
        return None
    return found


def is_decided(connection: Connection, review_id: int) -> bool:
    """Whether the API recorded a decision on the review (which the purger may not have applied
    yet): read after the review was locked, see :func:`_open_review_of_the_day`."""
    decided: bool = connection.execute(
        select(exists().where(_DECISIONS.c.review_id == review_id))
    ).scalar_one()
    return decided


def add_counts(counts: str | None, rows: Iterable[Any]) -> str:
    """A review's ``counts`` (JSON: per due month, UTC, and rule) with ``rows`` (``due_at``,
    ``rule``) added."""
    by_month: dict[str, dict[str, int]] = json.loads(counts) if counts is not None else {}
    for row in rows:
        month = by_month.setdefault(row.due_at.astimezone(UTC).strftime("%Y-%m"), {})
        month[row.rule] = month.get(row.rule, 0) + 1
    return json.dumps(by_month, sort_keys=True)


def settle_reviews(db: Engine, policy: Policy, now: datetime, batch_size: int) -> int:
    """Before a sweep: apply the decisions the API recorded, approve what the policy lets
    proceed unreviewed, and make the clocks of approved reviews due again, so that the sweep
    erases them (uncounted). How many clocks were made due."""
    with db.connect() as connection:  # no lock: each review is locked when decided
        open_reviews = connection.execute(
            select(_REVIEWS.c.id, _REVIEWS.c.category, _REVIEWS.c.created_at).where(
                _REVIEWS.c.state == "open"
            )
        ).all()
        decided = set(
            connection.execute(
                select(_DECISIONS.c.review_id).where(
                    one_of(connection, _DECISIONS.c.review_id, [r.id for r in open_reviews])
                )
            ).scalars()
        )
    for review in open_reviews:
        if review.id in decided or _auto_approvable(
            policy, review.category, review.created_at, now
        ):
            with begin_deciding(db) as connection:
                _decide(connection, policy, review.id, now)
    return release_clocks(db, now, batch_size)


def _auto_approvable(policy: Policy, category: str, created_at: datetime, now: datetime) -> bool:
    days = policy.categories[Category(category)].review.auto_approve_after_days
    return days is not None and created_at + timedelta(days=days) <= now


def _decide(connection: Connection, policy: Policy, review_id: int, now: datetime) -> None:
    """Apply the decision on an open review, or approve it automatically if its time has come;
    the review alone is locked (see the module's docstring)."""
    review = connection.execute(
        select(_REVIEWS)
        .where(_REVIEWS.c.id == review_id, _REVIEWS.c.state == "open")
        .with_for_update()
    ).first()
    if review is None:  # another purger applied it
        return
    decision = connection.execute(
        select(_DECISIONS).where(_DECISIONS.c.review_id == review_id)
    ).first()
    state: DecidedState
    if decision is not None:
        state = DECIDED_STATES[decision.decision]
        decided_by, reason = decision.key_id, decision.reason
    elif _auto_approvable(policy, review.category, review.created_at, now):
        days = policy.categories[Category(review.category)].review.auto_approve_after_days
        state, decided_by = "approved", None
        reason = f"approved automatically: nobody decided on it in {days} day(s)"
    else:
        return
    connection.execute(
        update(_REVIEWS)
        .where(_REVIEWS.c.id == review_id)
        .values(state=state, decided_at=now, decided_by=decided_by, reason=reason)
    )
    told = ReviewDecided(
        event_id=uuid4(),
        review_id=review_id,
        category=Category(review.category),
        state=state,
        clocks=review.clocks,
        decided_by=decided_by,
        decided_at=now,
    )
    tell(connection, review_id, told, now)
    log.info(
        "purger: review %d (%s, %d clock(s)) %s by %s",
        review_id,
        review.category,
        review.clocks,
        state,
        decided_by or "auto_approve_after_days",
    )


def release_clocks(db: Engine, now: datetime, batch_size: int) -> int:
    """Make the clocks of approved reviews due again (they keep their ``review_id``: the brake
    lets them through uncounted), and those of policy changes released as within the limits due
    as any (out of the review: counted), a batch per transaction; how many. Each review's clocks
    in id order from the index on (review_id, id), so a batch reads only what it takes. On
    PostgreSQL a clock another transaction holds (a consumer applying an event of its subject)
    is skipped rather than waited for: the next sweep takes it."""
    with db.connect() as connection:
        reviewed = connection.execute(
            select(_REVIEWS.c.id, _REVIEWS.c.state).where(
                _REVIEWS.c.state.in_(("approved", RELEASED))
            )
        ).all()
    released = 0
    for review_id, state in reviewed:
        uncounted = state == "approved"
        after = 0
        while True:
            with begin_deciding(db) as connection:
                query = (
                    select(_CLOCKS.c.id)
                    .where(
                        IN_A_REVIEW,
                        _CLOCKS.c.review_id == review_id,
                        _CLOCKS.c.id > after,
                        _CLOCKS.c.state == AWAITING_REVIEW,
                    )
                    .order_by(_CLOCKS.c.review_id, _CLOCKS.c.id)
                    .limit(batch_size)
                )
                if connection.dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                ids = list(connection.execute(query).scalars())
                if ids:
                    values: dict[str, Any] = {"state": "due", "updated_at": now}
                    if not uncounted:
                        values["review_id"] = None
                    connection.execute(
                        update(_CLOCKS).where(one_of(connection, _CLOCKS.c.id, ids)).values(values)
                    )
            released += len(ids)
            if len(ids) < batch_size:
                break
            after = ids[-1]
    return released


def tell(
    connection: Connection, review_id: int, message: ReviewOpened | ReviewDecided, now: datetime
) -> None:
    """Put ``message`` on ``gallring.reviews.v1`` through the outbox, keyed by the review."""
    row = outbox_row(
        topics.REVIEWS,
        key=str(review_id),
        value=message.model_dump_json(),
        event_type=message.type,
        event_id=message.event_id,
        schema_version=SCHEMA_VERSION,
        now=now,
    )
    insert_rows(connection, _OUTBOX, [row])


def utc_date(now: datetime) -> date:
    return now.astimezone(UTC).date()
