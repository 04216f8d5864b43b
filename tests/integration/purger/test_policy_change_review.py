"""A policy change that makes more of a category's clocks due at once than its ``max_per_day``
goes through disposition review instead of being applied by the policy refresh: counted first by
``gallring policy diff --database``, then every clock it makes due waits for a DPO; below the
limit it is applied as before. On PostgreSQL and SQLite (a database of each test's own: the
reviews and the day's count are the whole database's)."""

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from services.api.reviews import service as reviews
from services.api.reviews.schemas import DecisionRequest, ReviewState
from services.cli.main import main
from services.purger import subject_clocks
from services.purger.handlers import handle_batch
from services.purger.metrics import PurgerMetrics
from services.purger.policy_change_review import MadeDue
from services.purger.policy_refresh import refresh_stale_verdicts
from services.purger.sweep import sweep
from shared.domain.contract.review_messages import ReviewOpened
from shared.domain.engine import RetentionEngine
from shared.domain.policy.loader import parse_policy
from shared.messaging import topics
from shared.runtime.settings import KafkaSettings
from shared.storage.database import begin_deciding
from shared.storage.tables.outbox import PublishedMessage
from shared.storage.tables.table import table_of
from tests.integration.purger.helpers import (
    RETENTION,
    Subject,
    ago,
    policy_with_case_period,
    proofs_of,
)
from tests.integration.purger.reviews_support import (
    OUTBOX,
    PROOFS,
    all_reviews,
    counted_today,
    decide,
    sent_events,
    states,
)
from tests.integration.purger.running import running_purger
from tests.polling import eventually

_PUBLISHED = table_of(PublishedMessage)


def halved_policy(max_per_day: int = 10000) -> str:
    """The default policy file with collection-case data kept 18 months instead of 36, and at
    most ``max_per_day`` of its erasures a day."""
    return policy_with_case_period(18, max_per_day)


def halved(max_per_day: int = 10000) -> RetentionEngine:
    return RetentionEngine(parse_policy(halved_policy(max_per_day), source="a halved policy"))


def cases_under_the_default_policy(db: Engine, overdue: int, recent: int = 0) -> list[Subject]:
    """Collection cases stored by the purger under the default policy (36 months): ``overdue``
    closed 24 months ago (due in a year; overdue at 18 months), ``recent`` closed 6 months ago."""
    people = [Subject() for _ in range(overdue + recent)]
    messages = [
        person.message(
            "collection_case.closed", ago(months=24 if n < overdue else 6), {"case_id": f"C-{n}"}
        )
        for n, person in enumerate(people)
    ]
    handle_batch(db, RETENTION, messages, datetime.now(UTC))
    return people[:overdue]


def erased(db: Engine) -> int:
    with db.connect() as connection:
        return connection.execute(select(func.count()).select_from(PROOFS)).scalar_one()


def opened_messages(db: Engine) -> list[Any]:
    """The review.opened messages the purger put on gallring.reviews.v1 (published or not)."""
    found = []
    with db.connect() as connection:
        for table in (OUTBOX, _PUBLISHED):
            found += connection.execute(
                select(table.c.id, table.c.message_key, table.c.value).where(
                    table.c.topic == topics.REVIEWS, table.c.value.contains('"review.opened"')
                )
            ).all()
    return sorted(found)


def diff_database(
    db: Engine, policy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, *args: str
) -> str:
    new = tmp_path / "new.yaml"
    new.write_text(policy)
    monkeypatch.setenv("GALLRING_DATABASE_URL", db.url.render_as_string(hide_password=False))
    assert main(["policy", "diff", "--database", str(new), *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return str(captured.out)


def test_a_halved_period_past_max_per_day_is_counted_then_waits_for_a_review_and_erases_nothing(
    fresh_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    people = cases_under_the_default_policy(fresh_db, overdue=5, recent=1)
    policy = halved_policy(max_per_day=3)

    # Counted before it is applied: five fall due at once, more than the three a day allowed.
    report = json.loads(diff_database(fresh_db, policy, tmp_path, monkeypatch, capsys, "--json"))
    assert report["categories"]["collection_case"]["due_at_once"] == 5
    assert report["to_review"] == {"collection_case": {"clocks": 5, "max_per_day": 3}}
    lines = diff_database(fresh_db, policy, tmp_path, monkeypatch, capsys).splitlines()
    assert lines[-2:] == [
        f"5 clock(s) fall due at once under {tmp_path / 'new.yaml'}: all of them wait for a "
        "disposition review (cause policy_change) once it is applied.",
        "collection_case: 5 clock(s) made due at once exceed its max_per_day (3): none is erased "
        "until a DPO approves the review.",
    ]

    # Applied by the purger's refresh, batch by batch: all five wait in one review.
    retention = halved(max_per_day=3)
    refreshed = refresh_stale_verdicts(fresh_db, retention, batch_size=2)
    assert (refreshed.subjects, refreshed.erasable_clocks, refreshed.to_review) == (6, 0, 5)
    assert states(fresh_db) == {"awaiting_review": 5, "pending": 1}
    [review] = all_reviews(fresh_db)
    assert (review.category, review.cause, review.state, review.clocks) == (
        "collection_case",
        "policy_change",
        "open",
        5,
    )
    assert (review.policy_digest, review.previous_policy_digest) == (
        retention.digest,
        RETENTION.digest,
    )
    counts = json.loads(review.counts)  # by the month they fell due under the new policy
    assert {rule for by_rule in counts.values() for rule in by_rule} == {
        "collection_case.retention"
    }
    assert sum(n for by_rule in counts.values() for n in by_rule.values()) == 5
    [opened] = opened_messages(fresh_db)
    message = ReviewOpened.model_validate_json(opened.value)
    assert (message.review_id, message.cause, message.clocks, message.max_per_day) == (
        review.id,
        "policy_change",
        5,
        3,
    )
    assert (message.policy_digest, message.previous_policy_digest) == (
        retention.digest,
        RETENTION.digest,
    )
    assert not any(person.pseudonym in opened.value for person in people)
    [view] = reviews.reviews(fresh_db, ReviewState.OPEN, 100)
    assert (view.review_id, view.cause, view.awaiting, view.policy_digest) == (
        review.id,
        "policy_change",
        5,
        retention.digest,
    )
    registry = PurgerMetrics(fresh_db, retention.digest).registry
    labels = {"category": "collection_case"}
    assert registry.get_sample_value("gallring_purger_reviews_open", labels) == 1

    # Nothing is erased until a DPO approves: not now, nor on the next days.
    for later in (timedelta(0), timedelta(days=1), timedelta(days=3)):
        assert sweep(fresh_db, retention, datetime.now(UTC) + later, batch_size=10) == 0
    assert erased(fresh_db) == 0
    # Counted again, the clocks awaiting the review are due already: none falls due at once.
    again = json.loads(diff_database(fresh_db, policy, tmp_path, monkeypatch, capsys, "--json"))
    assert (again["total"]["due_at_once"], again["to_review"]) == (0, {})

    decide(
        fresh_db,
        review.id,
        DecisionRequest(decision="approve", reason="the shorter period was decided on"),
    )
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 5
    assert erased(fresh_db) == 5 and states(fresh_db) == {"pending": 1}
    assert counted_today(fresh_db) == 0  # approved: not counted against the day's limit
    assert all_reviews(fresh_db)[0].state == "approved"


def test_a_change_within_max_per_day_is_applied_as_before(
    fresh_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    cases_under_the_default_policy(fresh_db, overdue=3, recent=1)
    report = json.loads(
        diff_database(fresh_db, halved_policy(3), tmp_path, monkeypatch, capsys, "--json")
    )
    assert (report["total"]["due_at_once"], report["to_review"]) == (3, {})
    retention = halved(max_per_day=3)

    refreshed = refresh_stale_verdicts(fresh_db, retention, batch_size=2)

    assert (refreshed.subjects, refreshed.erasable_clocks, refreshed.to_review) == (4, 3, 0)
    assert states(fresh_db) == {"due": 3, "pending": 1}
    assert reviews.reviews(fresh_db, None, 100) == [] and opened_messages(fresh_db) == []
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 3
    assert counted_today(fresh_db) == 3  # counted by the sweep's brake, as any erasure


class StopAfter(threading.Event):
    """A shutdown that comes after ``batches`` batches of the refresh (which asks before each)."""

    def __init__(self, batches: int) -> None:
        super().__init__()
        self._asked = 0
        self._batches = batches

    def is_set(self) -> bool:
        self._asked += 1
        return self._asked > self._batches


def test_a_refresh_cut_off_midway_erases_nothing_and_the_next_one_opens_the_review(
    fresh_db: Engine,
) -> None:
    cases_under_the_default_policy(fresh_db, overdue=4)
    retention = halved(max_per_day=2)

    cut_off = refresh_stale_verdicts(fresh_db, retention, 2, StopAfter(batches=1))

    assert (cut_off.subjects, cut_off.to_review) == (2, 0)
    assert states(fresh_db) == {"awaiting_review": 2, "pending": 2}
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0
    # Gathering: not a review yet, which nobody sees or decides on.
    [gathering] = all_reviews(fresh_db)
    assert (gathering.state, gathering.clocks) == ("gathering", 2)
    assert reviews.reviews(fresh_db, None, 100) == []
    assert reviews.one(fresh_db, gathering.id) is None
    with pytest.raises(reviews.ReviewNotFound):
        decide(fresh_db, gathering.id, DecisionRequest(decision="approve", reason="too early"))
    assert opened_messages(fresh_db) == []

    refreshed = refresh_stale_verdicts(fresh_db, retention, batch_size=2)  # the restart's

    assert (refreshed.subjects, refreshed.to_review) == (2, 4)
    [review] = all_reviews(fresh_db)
    assert (review.id, review.cause, review.state, review.clocks) == (
        gathering.id,
        "policy_change",
        "open",
        4,
    )
    assert states(fresh_db) == {"awaiting_review": 4}
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0
    assert len(opened_messages(fresh_db)) == 1


def test_an_event_applied_before_the_refresh_reaches_its_subject_waits_with_the_rest(
    fresh_db: Engine,
) -> None:
    people = cases_under_the_default_policy(fresh_db, overdue=3)
    retention = halved(max_per_day=2)
    # The consumer, running the new policy, applies an event of a subject the refresh has not
    # reached: its case falls due under the new policy, and is not erased.
    handle_batch(
        fresh_db,
        retention,
        [people[0].message("marketing.contact", ago(days=1))],
        datetime.now(UTC),
    )
    assert states(fresh_db)["awaiting_review"] == 1
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0

    refresh_stale_verdicts(fresh_db, retention, batch_size=10)

    [review] = all_reviews(fresh_db)
    assert (review.cause, review.state, review.clocks) == ("policy_change", "open", 3)
    assert states(fresh_db) == {"awaiting_review": 3, "pending": 1}  # and the marketing clock
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0


def test_clocks_the_change_makes_due_later_join_its_open_review(fresh_db: Engine) -> None:
    cases_under_the_default_policy(fresh_db, overdue=3)
    retention = halved(max_per_day=2)
    refresh_stale_verdicts(fresh_db, retention, batch_size=10)
    # A purger still running the old policy (a rolling deploy) stored another such case.
    cases_under_the_default_policy(fresh_db, overdue=1)

    assert refresh_stale_verdicts(fresh_db, retention, batch_size=10).to_review == 0

    [review] = all_reviews(fresh_db)
    assert (review.state, review.clocks) == ("open", 4)
    assert states(fresh_db) == {"awaiting_review": 4}
    assert len(opened_messages(fresh_db)) == 1


def test_a_hold_decision_on_a_policy_change_keeps_its_clocks(fresh_db: Engine) -> None:
    cases_under_the_default_policy(fresh_db, overdue=3)
    retention = halved(max_per_day=2)
    refresh_stale_verdicts(fresh_db, retention, batch_size=10)
    [review] = all_reviews(fresh_db)

    decide(
        fresh_db, review.id, DecisionRequest(decision="hold", reason="the new period is disputed")
    )
    holds = sent_events(fresh_db, "legal_hold.placed")
    assert len(holds) == 3
    handle_batch(fresh_db, retention, holds, datetime.now(UTC))

    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0
    assert states(fresh_db) == {"held": 3}
    assert all_reviews(fresh_db)[0].state == "held"


def test_purgers_refreshing_together_open_one_review_with_every_clock(fresh_db: Engine) -> None:
    cases_under_the_default_policy(fresh_db, overdue=40)
    retention = halved(max_per_day=10)

    with ThreadPoolExecutor(max_workers=3) as purgers:
        refreshed = list(
            purgers.map(lambda _: refresh_stale_verdicts(fresh_db, retention, 4), range(3))
        )

    assert sum(r.subjects for r in refreshed) == 40
    [review] = all_reviews(fresh_db)
    assert (review.cause, review.state, review.clocks) == ("policy_change", "open", 40)
    assert states(fresh_db) == {"awaiting_review": 40}
    assert len(opened_messages(fresh_db)) == 1
    assert sweep(fresh_db, retention, datetime.now(UTC), batch_size=10) == 0


def test_batches_that_gather_a_change_at_the_same_moment_share_one_review(
    fresh_db: Engine,
) -> None:
    """Two purgers' batches (other subjects each) find no review of the change and make one at
    the same moment: the second waits for the first's, then joins it."""
    first, second = cases_under_the_default_policy(fresh_db, overdue=2)
    retention = halved(max_per_day=1)

    def refresh_batch(person: Subject, before_commit: threading.Event | None = None) -> int:
        made_due = MadeDue(retention.policy, retention.digest, new_clocks=True)
        with begin_deciding(fresh_db) as connection:
            clocks = subject_clocks.lock_subjects(connection, [person.pseudonym])
            facts = subject_clocks.load_facts_of(connection, [person.pseudonym])
            now = datetime.now(UTC)
            subject_clocks.reevaluate(
                connection,
                retention,
                person.pseudonym,
                facts[person.pseudonym],
                clocks[person.pseudonym],
                now,
                made_due=made_due,
            )
            gathered = made_due.gather(connection, now)
            if before_commit is not None:
                before_commit.set()
                time.sleep(0.5)  # the other batch reaches the review meanwhile, and waits
        return gathered

    gathering = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as other_purger:
        later = other_purger.submit(lambda: gathering.wait(10) and refresh_batch(second))
        assert refresh_batch(first, before_commit=gathering) == 1
        assert later.result() == 1

    [review] = all_reviews(fresh_db)
    assert (review.state, review.clocks) == ("gathering", 2)
    assert refresh_stale_verdicts(fresh_db, retention, batch_size=10).to_review == 2
    assert states(fresh_db) == {"awaiting_review": 2}


async def test_a_purger_started_with_a_halved_policy_past_the_limit_opens_a_review(
    fresh_db: Engine, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    people = cases_under_the_default_policy(fresh_db, overdue=3)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(halved_policy(max_per_day=2))
    url = fresh_db.url.render_as_string(hide_password=False)

    def of_the_change() -> list[Any]:
        # The purger also consumes what other tests left on the lifecycle topic, and may stop
        # some of it in reviews of the sweep's own.
        return [review for review in all_reviews(fresh_db) if review.cause == "policy_change"]

    async with running_purger(url, kafka_settings, policy_file=policy_file):
        await eventually(
            lambda: any(review.state == "open" for review in of_the_change()),
            timeout=30,
            interval=0.2,
        )
        await asyncio.sleep(1)  # two sweeps more

    assert [(review.state, review.clocks) for review in of_the_change()] == [("open", 3)]
    assert not any(proofs_of(fresh_db, person) for person in people)
