"""A changed policy reaches the clocks stored under the old one when the purger starts, so that
data is not kept past what the privacy notice now promises."""

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine, select

from services.purger.handlers import handle_batch
from services.purger.metrics import PurgerMetrics
from services.purger.policy_refresh import refresh_stale_verdicts
from services.purger.sweep import sweep
from shared.domain.engine import RetentionEngine
from shared.domain.policy.loader import parse_policy
from shared.runtime.settings import KafkaSettings
from shared.storage.tables.purger import StoredClock
from shared.storage.tables.table import table_of
from tests.integration.purger.helpers import (
    RETENTION,
    Subject,
    ago,
    policy_with_case_period,
    proofs_of,
)
from tests.integration.purger.running import running_purger
from tests.polling import eventually

_CLOCKS = table_of(StoredClock)
CASE = {"case_id": "C-1"}


def shorter_policy() -> str:
    """The default policy file with collection-case data kept 24 months instead of 36."""
    return policy_with_case_period(24)


@pytest.fixture
def shorter_retention() -> RetentionEngine:
    return RetentionEngine(parse_policy(shorter_policy(), source="a shorter policy"))


def case_clock(db: Engine, person: Subject):
    with db.connect() as connection:
        return connection.execute(
            select(_CLOCKS).where(_CLOCKS.c.subject_pseudonym == person.pseudonym)
        ).one()


def test_a_shortened_period_makes_clocks_stored_under_the_old_one_due(
    fresh_db: Engine, shorter_retention: RetentionEngine
) -> None:
    person, closed = Subject(), ago(months=30)
    handle_batch(
        fresh_db, RETENTION, [person.message("collection_case.closed", closed, CASE)], ago()
    )
    assert case_clock(fresh_db, person).due_at == closed + relativedelta(months=36)

    refreshed = refresh_stale_verdicts(fresh_db, shorter_retention, batch_size=10)

    assert (refreshed.subjects, refreshed.erasable_clocks) == (1, 1)
    clock = case_clock(fresh_db, person)
    assert clock.due_at == closed + relativedelta(months=24)
    assert clock.policy_digest == shorter_retention.digest
    assert sweep(fresh_db, shorter_retention, datetime.now(UTC), batch_size=10) == 1
    assert len(proofs_of(fresh_db, person)) == 1


def test_every_stale_subject_is_refreshed_batch_by_batch_and_current_ones_are_left_alone(
    fresh_db: Engine, shorter_retention: RetentionEngine
) -> None:
    under_old, under_new = [Subject() for _ in range(3)], Subject()
    for person, retention in [*((p, RETENTION) for p in under_old), (under_new, shorter_retention)]:
        closing = person.message("collection_case.closed", ago(months=3), CASE)
        handle_batch(fresh_db, retention, [closing], ago())
    untouched = case_clock(fresh_db, under_new)

    refreshed = refresh_stale_verdicts(fresh_db, shorter_retention, batch_size=1)

    assert (refreshed.subjects, refreshed.erasable_clocks) == (3, 0)
    assert all(case_clock(fresh_db, p).policy_digest == shorter_retention.digest for p in under_old)
    assert case_clock(fresh_db, under_new) == untouched
    assert refresh_stale_verdicts(fresh_db, shorter_retention, batch_size=1).subjects == 0


def test_a_refresh_told_to_stop_leaves_the_rest_to_the_next_run(
    fresh_db: Engine, shorter_retention: RetentionEngine
) -> None:
    person = Subject()
    closing = person.message("collection_case.closed", ago(months=30), CASE)
    handle_batch(fresh_db, RETENTION, [closing], ago())
    stopping = threading.Event()
    stopping.set()

    assert refresh_stale_verdicts(fresh_db, shorter_retention, 10, stopping).subjects == 0
    assert case_clock(fresh_db, person).policy_digest == RETENTION.digest


async def test_a_purger_started_with_a_shortened_policy_erases_what_it_made_due(
    fresh_db: Engine, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    person = Subject()
    closing = person.message("collection_case.closed", ago(months=30), CASE)
    handle_batch(fresh_db, RETENTION, [closing], ago())  # due in six months, as stored
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(shorter_policy())
    url = fresh_db.url.render_as_string(hide_password=False)

    async with running_purger(url, kafka_settings, policy_file=policy_file):

        def the_clock_the_new_policy_made_due_erased() -> bool:
            return bool(proofs_of(fresh_db, person))

        await eventually(the_clock_the_new_policy_made_due_erased, timeout=30, interval=0.2)


def test_ops_see_how_many_clocks_wait_for_the_refresh(
    fresh_db: Engine, shorter_retention: RetentionEngine
) -> None:
    person = Subject()
    closing = person.message("collection_case.closed", ago(months=30), CASE)
    handle_batch(fresh_db, RETENTION, [closing], ago())
    registry = PurgerMetrics(fresh_db, shorter_retention.digest).registry
    waiting = "gallring_purger_clocks_under_another_policy"

    assert registry.get_sample_value(waiting) == 1
    refresh_stale_verdicts(fresh_db, shorter_retention, batch_size=10)
    assert registry.get_sample_value(waiting) == 0
