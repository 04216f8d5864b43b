"""Disposition review: the sweep's brake on unusual erasures, and the decisions that release or
keep what it stopped, on PostgreSQL and SQLite (a database of each test's own: the day's count
and the reviews are the whole database's)."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, func, select

from services.api.reviews.schemas import DecisionRequest
from services.api.subjects import service as lookup
from services.purger.disposition_review import admit
from services.purger.handlers import handle_batch
from services.purger.metrics import PurgerMetrics
from services.purger.sweep import sweep, sweep_subjects
from shared.domain.contract.review_messages import ReviewDecided, ReviewOpened
from shared.domain.engine import RetentionEngine
from shared.domain.policy.model import Review
from shared.messaging import topics
from shared.storage.database import begin_deciding
from tests.integration.purger.helpers import Subject, ago, clocks_of, retention_with
from tests.integration.purger.reviews_support import (
    CLOCKS,
    COUNTS,
    DPO,
    OUTBOX,
    PROOFS,
    all_reviews,
    counted_today,
    decide,
    sent_events,
    states,
)


def back_fill(db: Engine, retention: RetentionEngine, cases: int) -> list[Subject]:
    """``cases`` collection cases, each a subject's, closed 37 to 39 months ago: all overdue,
    their due times spread over three months. Applied as the consumer applies a back-fill."""
    people = [Subject() for _ in range(cases)]
    messages = [
        person.message("collection_case.closed", ago(months=37 + n % 3), {"case_id": f"C-{n}"})
        for n, person in enumerate(people)
    ]
    for start in range(0, cases, 1000):
        handle_batch(db, retention, messages[start : start + 1000], datetime.now(UTC))
    return people


def one_review_of_a_braked_back_fill(
    db: Engine, cases: int
) -> tuple[RetentionEngine, list[Subject], Any]:
    """A back-fill of ``cases`` under a ``max_per_day`` of one, swept once: one case erased, the
    others stopped in the one open review returned (with the policy and the back-fill's
    people)."""
    retention = retention_with(collection_case=Review(max_per_day=1))
    people = back_fill(db, retention, cases)
    sweep(db, retention, datetime.now(UTC), batch_size=10)
    [review] = all_reviews(db)
    return retention, people, review


def a_marketing_contact_past_its_period(db: Engine, retention: RetentionEngine) -> None:
    """A new subject's marketing contact of four years ago (due, not erased at once), applied as
    the consumer applies it: what a category's first erasure is tested with."""
    handle_batch(
        db, retention, [Subject().message("marketing.contact", ago(years=4))], datetime.now(UTC)
    )


def extend_on_a_dispute(db: Engine, review_id: int, days: int) -> None:
    """The DPO's extend decision on the review: its clocks kept ``days`` days from today, on the
    ground of a dispute."""
    until = (datetime.now(UTC) + timedelta(days=days)).date()
    decide(
        db,
        review_id,
        DecisionRequest(decision="extend", reason="r", ground="a dispute", until=until),
    )


def erased(db: Engine, category: str = "collection_case") -> int:
    with db.connect() as connection:
        return connection.execute(
            select(func.count()).where(PROOFS.c.category == category)
        ).scalar_one()


def told(db: Engine) -> list[Any]:
    """What the purger put on gallring.reviews.v1, in order."""
    with db.connect() as connection:
        return connection.execute(
            select(OUTBOX).where(OUTBOX.c.topic == topics.REVIEWS).order_by(OUTBOX.c.id)
        ).all()


def test_a_back_fill_past_max_per_day_erases_the_limit_and_waits_for_approval_for_the_rest(
    fresh_db: Engine,
) -> None:
    retention = retention_with(collection_case=Review(max_per_day=1000))
    people = back_fill(fresh_db, retention, 5000)

    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=500) == 1000
    assert erased(fresh_db) == 1000
    assert states(fresh_db) == {"awaiting_review": 4000}
    [review] = all_reviews(fresh_db)
    assert (review.category, review.cause, review.state, review.clocks) == (
        "collection_case",
        "max_per_day",
        "open",
        4000,
    )
    counts = json.loads(review.counts)
    assert sum(n for by_rule in counts.values() for n in by_rule.values()) == 4000
    assert {rule for by_rule in counts.values() for rule in by_rule} == {
        "collection_case.retention"
    }
    assert len(counts) in (3, 4)  # three months of closings (a month's end may split one)
    [opened] = told(fresh_db)
    message = ReviewOpened.model_validate_json(opened.value)
    assert (opened.message_key, message.review_id, message.clocks) == (
        str(review.id),
        review.id,
        500,
    )
    assert not any(person.pseudonym in opened.value for person in people)

    # Nothing more is erased until a DPO approves: not later today, nor on the next days.
    for later in (timedelta(hours=1), timedelta(days=1), timedelta(days=3)):
        assert sweep(fresh_db, retention, datetime.now(UTC) + later, batch_size=500) == 0
    assert states(fresh_db) == {"awaiting_review": 4000}

    view = decide(
        fresh_db,
        review.id,
        DecisionRequest(decision="approve", reason="the back-fill's dates were checked"),
    )
    assert view.state == "approved" and view.decision is not None
    assert view.decision.applied is False  # until the purger's next sweep

    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=500) == 4000
    assert erased(fresh_db) == 5000 and states(fresh_db) == {}
    assert counted_today(fresh_db) == 1000  # the approved ones are not counted again
    [review] = all_reviews(fresh_db)
    assert (review.state, review.decided_by, review.reason) == (
        "approved",
        "k-dpo-1",
        "the back-fill's dates were checked",
    )
    decided = ReviewDecided.model_validate_json(told(fresh_db)[-1].value)
    assert (decided.review_id, decided.state, decided.decided_by) == (
        review.id,
        "approved",
        "k-dpo-1",
    )


def test_clocks_stopped_later_in_the_day_join_the_open_review(fresh_db: Engine) -> None:
    retention = retention_with(collection_case=Review(max_per_day=2))
    back_fill(fresh_db, retention, 3)
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 2
    back_fill(fresh_db, retention, 2)
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0
    [review] = all_reviews(fresh_db)
    assert review.clocks == 3 and states(fresh_db) == {"awaiting_review": 3}
    assert len(told(fresh_db)) == 1  # opened once


def test_a_review_decided_takes_no_more_clocks_even_before_the_decision_is_applied(
    fresh_db: Engine,
) -> None:
    retention, _, first = one_review_of_a_braked_back_fill(fresh_db, 2)
    decide(fresh_db, first.id, DecisionRequest(decision="approve", reason="checked"))
    # The immediate lane's sweep of a subject applies no decision: the review is still open
    # in the purger's table, yet decided, so the clock it stops goes into a new review.
    [late] = back_fill(fresh_db, retention, 1)
    assert sweep_subjects(fresh_db, retention, datetime.now(UTC), {late.pseudonym}) == 0
    first, second = all_reviews(fresh_db)
    assert (first.state, first.clocks, second.state, second.clocks) == ("open", 1, "open", 1)

    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 1  # the approved
    assert [r.state for r in all_reviews(fresh_db)] == ["approved", "open"]
    assert states(fresh_db) == {"awaiting_review": 1}


def test_an_extension_keeps_the_clocks_and_the_lookup_says_why(fresh_db: Engine) -> None:
    retention, people, review = one_review_of_a_braked_back_fill(fresh_db, 3)
    until = (datetime.now(UTC) + timedelta(days=400)).date()
    ground = "the client disputes the closing dates in court (GDPR art. 17(3)(e))"
    view = decide(
        fresh_db,
        review.id,
        DecisionRequest(decision="extend", reason="dates disputed", ground=ground, until=until),
    )
    assert view.decision is not None and view.decision.events == 2

    extensions = sent_events(fresh_db, "retention.extended")
    assert len(extensions) == 2
    handle_batch(fresh_db, retention, extensions, datetime.now(UTC))  # the consumer's
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0
    assert states(fresh_db) == {"pending": 2}
    assert all_reviews(fresh_db)[0].state == "extended"

    kept = [p for p in people if clocks_of(fresh_db, p)]
    assert len(kept) == 2
    _, [clock], _ = lookup.clocks_of(
        fresh_db, retention, kept[0].pseudonym, actor=DPO, now=datetime.now(UTC)
    )
    assert clock.state == "pending" and clock.rule == "collection_case.extended"
    assert f"kept until {until.isoformat()} because {ground}" in clock.reason
    assert f"in disposition review {review.id}" in clock.reason
    # When the extension ends, the clock is due again, and counted (and stopped) anew.
    assert sweep(fresh_db, retention, datetime.now(UTC) + timedelta(days=401), batch_size=10) == 1


def test_a_hold_decision_places_a_legal_hold(fresh_db: Engine) -> None:
    retention, _, review = one_review_of_a_braked_back_fill(fresh_db, 3)
    decide(
        fresh_db, review.id, DecisionRequest(decision="hold", reason="IMY asked about these cases")
    )
    holds = sent_events(fresh_db, "legal_hold.placed")
    assert [(h.data.hold_id, h.data.category) for h in holds] == [
        (f"review-{review.id}", "collection_case")
    ] * 2
    handle_batch(fresh_db, retention, holds, datetime.now(UTC))
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0
    assert states(fresh_db) == {"held": 2}
    assert all_reviews(fresh_db)[0].state == "held"


def test_the_first_erasure_of_a_category_waits_for_a_review_once(fresh_db: Engine) -> None:
    retention = retention_with(marketing=Review(first_erasure=True))
    for _ in range(3):
        a_marketing_contact_past_its_period(fresh_db, retention)
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0
    [review] = all_reviews(fresh_db)
    assert (review.category, review.cause, review.clocks) == ("marketing", "first_erasure", 3)

    decide(
        fresh_db,
        review.id,
        DecisionRequest(decision="approve", reason="the first marketing erasure looks right"),
    )
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 3
    # The category has been erased once: its next erasures go ahead.
    a_marketing_contact_past_its_period(fresh_db, retention)
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 1
    assert len(all_reviews(fresh_db)) == 1


def test_an_unsubscribe_is_erased_at_once_whatever_the_review_limits(fresh_db: Engine) -> None:
    retention = retention_with(marketing=Review(first_erasure=True, max_per_day=1))
    people = [Subject() for _ in range(3)]
    handle_batch(
        fresh_db,
        retention,
        [p.message("newsletter.unsubscribed", ago(minutes=1)) for p in people]
        + [p.message("marketing.contact", ago(days=2)) for p in people],
        datetime.now(UTC),
    )
    assert sweep_subjects(fresh_db, retention, datetime.now(UTC), {p.pseudonym for p in people})
    assert erased(fresh_db, "marketing") == 3 and all_reviews(fresh_db) == []


def test_a_review_nobody_decides_is_approved_after_auto_approve_after_days(
    fresh_db: Engine,
) -> None:
    retention = retention_with(collection_case=Review(max_per_day=1, auto_approve_after_days=2))
    back_fill(fresh_db, retention, 3)
    now = datetime.now(UTC)
    assert sweep(fresh_db, retention, now, batch_size=10) == 1
    assert sweep(fresh_db, retention, now + timedelta(days=1), batch_size=10) == 0
    assert all_reviews(fresh_db)[0].state == "open"

    assert sweep(fresh_db, retention, now + timedelta(days=2, minutes=1), batch_size=10) == 2
    [review] = all_reviews(fresh_db)
    assert (review.state, review.decided_by) == ("approved", None)
    assert "automatically" in (review.reason or "")
    decided = ReviewDecided.model_validate_json(told(fresh_db)[-1].value)
    assert (decided.state, decided.decided_by) == ("approved", None)


def test_a_clock_stays_in_its_review_until_the_engine_keeps_it(fresh_db: Engine) -> None:
    retention = retention_with(collection_case=Review(max_per_day=1))
    people = back_fill(fresh_db, retention, 2)
    sweep(fresh_db, retention, datetime.now(UTC), batch_size=10)
    [waiting] = [p for p in people if clocks_of(fresh_db, p)]
    [(key, _)] = clocks_of(fresh_db, waiting).items()

    # Another event of the subject: evaluated again, still due, still awaiting the review.
    handle_batch(
        fresh_db, retention, [waiting.message("marketing.contact", ago(days=1))], datetime.now(UTC)
    )
    assert clocks_of(fresh_db, waiting)[key] == "awaiting_review"
    # The case reopened: no longer due, out of the review.
    handle_batch(
        fresh_db,
        retention,
        [waiting.message("collection_case.reopened", ago(hours=1), {"case_id": key[1]})],
        datetime.now(UTC),
    )
    assert clocks_of(fresh_db, waiting)[key] == "cancelled"
    with fresh_db.connect() as connection:
        assert connection.execute(select(CLOCKS.c.review_id)).scalars().all() == [None, None]


def test_purgers_sweeping_together_erase_no_more_than_max_per_day(fresh_db: Engine) -> None:
    retention = retention_with(collection_case=Review(max_per_day=300))
    back_fill(fresh_db, retention, 1000)
    now = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=3) as purgers:
        swept = list(purgers.map(lambda _: sweep(fresh_db, retention, now, 25), range(3)))
    assert sum(swept) == erased(fresh_db) == 300
    assert states(fresh_db) == {"awaiting_review": 700}
    [review] = all_reviews(fresh_db)
    assert review.clocks == 700 and counted_today(fresh_db) == 300


def test_ops_see_open_reviews_and_awaiting_clocks_on_metrics(fresh_db: Engine) -> None:
    retention = retention_with(collection_case=Review(max_per_day=1))
    back_fill(fresh_db, retention, 3)
    registry = PurgerMetrics(fresh_db, retention.digest).registry
    assert registry.get_sample_value("gallring_purger_reviews_open", {"category": "aml"}) == 0

    sweep(fresh_db, retention, datetime.now(UTC), batch_size=10)
    [review] = all_reviews(fresh_db)
    for category, open_reviews in (("collection_case", 1), ("aml", 0)):
        labels = {"category": category}
        assert registry.get_sample_value("gallring_purger_reviews_open", labels) == open_reviews
    awaiting = {"state": "awaiting_review"}
    assert registry.get_sample_value("gallring_purger_clocks", awaiting) == 2

    decide(fresh_db, review.id, DecisionRequest(decision="approve", reason="fine"))
    sweep(fresh_db, retention, datetime.now(UTC), batch_size=10)
    labels = {"category": "collection_case"}
    assert registry.get_sample_value("gallring_purger_reviews_open", labels) == 0


def test_an_extension_that_ended_before_the_purger_applied_it_is_counted_anew(
    fresh_db: Engine,
) -> None:
    """The lifecycle lane lagged past the extension's ``until``: the engine finds the clocks due
    again, and they must not await their extended review for ever (it releases nothing) but be
    counted anew by the brake: erased within the day's limit, the rest in a new open review."""
    retention, _, review = one_review_of_a_braked_back_fill(fresh_db, 3)
    extend_on_a_dispute(fresh_db, review.id, days=1)
    later = datetime.now(UTC) + timedelta(days=3)
    handle_batch(fresh_db, retention, sent_events(fresh_db, "retention.extended"), later)

    assert sweep(fresh_db, retention, later, batch_size=10) == 1
    first, second = all_reviews(fresh_db)
    assert (first.state, second.state, second.cause, second.clocks) == (
        "extended",
        "open",
        "max_per_day",
        1,
    )
    assert states(fresh_db) == {"awaiting_review": 1}
    with fresh_db.connect() as connection:
        assert connection.execute(select(CLOCKS.c.review_id)).scalars().all() == [second.id]


def test_an_extension_no_dpo_decided_is_ignored(fresh_db: Engine) -> None:
    """A retention.extended that did not come from an extend decision (a made-up review id, or
    another until than the DPO's) keeps nothing: the clocks fall due as their period says."""
    retention, people, review = one_review_of_a_braked_back_fill(fresh_db, 3)
    extend_on_a_dispute(fresh_db, review.id, days=400)
    [decided, _] = sent_events(fresh_db, "retention.extended")
    longer = decided.model_copy(
        update={"data": decided.data.model_copy(update={"until": date(2199, 1, 1)})}
    )
    made_up = [
        person.message(
            "retention.extended",
            ago(minutes=1),
            {"case_id": f"C-{n}"},
            {"category": "collection_case", "until": "2199-01-01", "ground": "x", "review_id": 77},
        )
        for n, person in enumerate(people)
    ]
    handle_batch(fresh_db, retention, [longer, *made_up], datetime.now(UTC))
    assert states(fresh_db) == {"awaiting_review": 2}  # still waiting for their review

    # Erasures due without a review: the made-up extension keeps nothing.
    unreviewed = retention_with()
    [fresh] = back_fill(fresh_db, unreviewed, 1)
    forged = fresh.message(
        "retention.extended",
        ago(minutes=1),
        {"case_id": "C-0"},
        {"category": "collection_case", "until": "2199-01-01", "ground": "x", "review_id": 77},
    )
    handle_batch(fresh_db, unreviewed, [forged], datetime.now(UTC))
    assert clocks_of(fresh_db, fresh) == {("collection_case", "C-0"): "due"}


def test_an_unsubscribe_does_not_count_as_the_first_erasure_of_its_category(
    fresh_db: Engine,
) -> None:
    retention = retention_with(marketing=Review(first_erasure=True))
    unsubscribed = Subject()
    handle_batch(
        fresh_db,
        retention,
        [
            unsubscribed.message("marketing.contact", ago(days=2)),
            unsubscribed.message("newsletter.unsubscribed", ago(minutes=1)),
        ],
        datetime.now(UTC),
    )
    assert sweep_subjects(fresh_db, retention, datetime.now(UTC), {unsubscribed.pseudonym}) == 1

    # The first erasure of marketing whose period ran still waits for a review.
    a_marketing_contact_past_its_period(fresh_db, retention)
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0
    [review] = all_reviews(fresh_db)
    assert (review.category, review.cause, review.clocks) == ("marketing", "first_erasure", 1)


def test_a_subject_who_asks_for_erasure_is_not_braked_nor_left_awaiting(fresh_db: Engine) -> None:
    """An erasure request leaves a clock already due as it is (collection cases are not erased
    at once by one), yet it is the person's request: their due clocks are erased without
    waiting for a review, past the day's limit, whether already awaiting one or not."""
    retention = retention_with(collection_case=Review(max_per_day=1))
    people = back_fill(fresh_db, retention, 2)
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 1
    [waiting] = [p for p in people if clocks_of(fresh_db, p)]
    [asking] = back_fill(fresh_db, retention, 1)
    requests = [p.message("dsr.erasure_requested", ago(minutes=1)) for p in (waiting, asking)]
    handle_batch(fresh_db, retention, requests, datetime.now(UTC))

    sweep_subjects(fresh_db, retention, datetime.now(UTC), {waiting.pseudonym, asking.pseudonym})
    assert states(fresh_db) == {} and erased(fresh_db) == 3
    assert counted_today(fresh_db) == 1  # not counted against the day either


def test_purgers_near_two_limits_at_once_do_not_deadlock(fresh_db: Engine) -> None:
    """One purger's batch fits collection_case's day but not marketing's, another's the other
    way round: each must not hold one category's day while it waits for the other's."""
    retention = retention_with(
        collection_case=Review(max_per_day=3), marketing=Review(max_per_day=3)
    )
    now = datetime.now(UTC)

    def batch(start: int, cases: int, contacts: int) -> list[Any]:
        categories = ["collection_case"] * cases + ["marketing"] * contacts
        return [
            SimpleNamespace(
                id=start + n,
                subject_pseudonym=Subject().pseudonym,
                category=category,
                state="due",
                review_id=None,
                due_at=now - timedelta(days=1),
                rule=f"{category}.retention",
            )
            for n, category in enumerate(categories)
        ]

    first, second = batch(1, cases=1, contacts=5), batch(100, cases=5, contacts=1)
    admitted_second = threading.Event()

    def other_purger() -> None:
        with begin_deciding(fresh_db) as connection:
            admission = admit(connection, retention.policy, second, now)
            admitted_second.set()
            admission.record(connection, admission.admitted, now)

    with ThreadPoolExecutor(max_workers=1) as pool:
        with begin_deciding(fresh_db) as connection:
            admission = admit(connection, retention.policy, first, now)
            running = pool.submit(other_purger)
            admitted_second.wait(timeout=1)  # with the fix it waits for this transaction
            time.sleep(0.3)
            admission.record(connection, admission.admitted, now)
        running.result(timeout=30)
    assert (counted_today(fresh_db), counted_today(fresh_db, "marketing")) == (3, 3)


def test_an_unsubscribe_is_erased_at_once_even_when_another_purger_takes_the_day(
    fresh_db: Engine,
) -> None:
    """The immediate lane's batch holds an unsubscribe and a case due; another purger's
    erasures take the case's day while the batch runs (PostgreSQL: the brake read the day
    before they were committed). The batch is swept again: the unsubscribe is erased, the case
    waits for a review."""
    retention = retention_with(collection_case=Review(max_per_day=1))
    person = Subject()
    handle_batch(
        fresh_db,
        retention,
        [
            person.message("collection_case.closed", ago(months=38), {"case_id": "C-1"}),
            person.message("marketing.contact", ago(days=2)),
            person.message("newsletter.unsubscribed", ago(minutes=1)),
        ],
        datetime.now(UTC),
    )
    counting = threading.Event()

    def other_purger() -> None:
        with begin_deciding(fresh_db) as connection:
            connection.execute(
                COUNTS.insert().values(
                    category="collection_case", utc_date=datetime.now(UTC).date(), erased=1
                )
            )
            counting.set()
            time.sleep(0.5)

    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(other_purger)
        counting.wait(timeout=10)
        sweep_subjects(fresh_db, retention, datetime.now(UTC), {person.pseudonym})
        running.result(timeout=30)
    assert erased(fresh_db, "marketing") == 1
    assert clocks_of(fresh_db, person) == {("collection_case", "C-1"): "awaiting_review"}
