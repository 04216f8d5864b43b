"""What ops see of a recipient's deliveries: failures in a row across rounds, reset by a success,
and since when it has been failing."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from services.notifier import delivery_store
from services.notifier.delivery_store import Claimed, Outcome
from services.notifier.settings import NotifierSettings
from shared.storage.database import make_engine
from shared.storage.tables.notifier import RecipientHealth
from tests.integration.conftest import SECRET

FAILING_AFTER = 3
START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def claimed(recipient_id: str) -> Claimed:
    return Claimed(
        notification_id=uuid.uuid4(),
        erasure_id=uuid.uuid4(),
        event_id=None,
        recipient_id=recipient_id,
        type="erasure.requested",
        category="collection_case",
        scope="{}",
        recipient_ref="R-1",
        legal_basis="GDPR art. 17",
        respond_by=START + timedelta(days=30),
        attempts=0,
        give_up_at=START + timedelta(days=3),
        lease_until=START + timedelta(minutes=1),
        webhook_url="https://vendor.example/hooks",
        secret="sealed",
        previous_secret=None,
        previous_secret_expires_at=None,
    )


def record_round(db: Engine, minute: int, answers: dict[str, list[int]]) -> datetime:
    """One delivery round at ``START`` + ``minute``: per recipient, its answers in order."""
    now = START + timedelta(minutes=minute)
    outcomes = [
        Outcome(claimed(recipient_id), now + timedelta(seconds=n), 5, status_code=status)
        for recipient_id, statuses in answers.items()
        for n, status in enumerate(statuses)
    ]
    settings = NotifierSettings(
        pseudonym_secret=SECRET, database_url="sqlite://", notifier_failing_after=FAILING_AFTER
    )
    delivery_store.record(db, outcomes, settings, now)
    return now


def health(db: Engine, recipient_id: str) -> tuple[int, datetime | None]:
    with db.connect() as connection:
        row = connection.execute(
            select(RecipientHealth).where(RecipientHealth.recipient_id == recipient_id)
        ).one()
    return row.consecutive_failures, row.failing_since


def test_failures_add_up_across_rounds_and_a_success_starts_the_count_again(db: Engine) -> None:
    slow, fine = f"slow-{uuid.uuid4().hex[:8]}", f"fine-{uuid.uuid4().hex[:8]}"
    record_round(db, 0, {slow: [500, 500], fine: [200]})
    assert health(db, slow) == (2, None)
    assert health(db, fine) == (0, None)

    began_failing = record_round(db, 1, {slow: [500], fine: [500]})
    assert health(db, slow) == (3, began_failing)
    assert health(db, fine) == (1, None)

    record_round(db, 2, {slow: [503]})
    assert health(db, slow) == (4, began_failing)  # still failing since then

    failing_anew = record_round(db, 3, {slow: [200, 500, 500, 500]})
    assert health(db, slow) == (3, failing_anew)  # the success ended the first spell

    record_round(db, 4, {slow: [200, 500]})
    assert health(db, slow) == (1, None)
