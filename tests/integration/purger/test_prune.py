"""The purger's dedupe record (``consumed_event``) goes after its window, and a lifecycle message
redelivered after that is still recognised: by its fact while a clock needs it."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from services.purger import prune
from services.purger.handlers import handle_batch
from services.purger.settings import PurgerSettings
from shared.storage.tables.purger import ConsumedEvent
from shared.storage.tables.table import table_of
from tests.integration.conftest import SECRET
from tests.integration.purger.helpers import RETENTION, Subject, ago, facts_of

_CONSUMED = table_of(ConsumedEvent)
SETTINGS = PurgerSettings(pseudonym_secret=SECRET, purger_consumed_event_days=30)


def consumed(db: Engine, event_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    with db.connect() as connection:
        return set(
            connection.execute(
                select(_CONSUMED.c.event_id).where(_CONSUMED.c.event_id.in_(event_ids))
            ).scalars()
        )


def test_consumed_events_past_the_window_go_and_newer_stay(fresh_db: Engine) -> None:
    now = datetime.now(UTC)
    old, new = uuid.uuid4(), uuid.uuid4()
    with fresh_db.begin() as connection:
        connection.execute(
            insert(_CONSUMED),
            [
                {"event_id": old, "consumed_at": now - timedelta(days=31)},
                {"event_id": new, "consumed_at": now - timedelta(days=29)},
            ],
        )
    assert prune.prune(fresh_db, SETTINGS, now) == {"consumed_event": 1}
    assert consumed(fresh_db, [old, new]) == {new}


def test_a_message_redelivered_after_its_record_went_is_still_known_by_its_fact(
    db: Engine,
) -> None:
    subject = Subject()
    closed = subject.message("collection_case.closed", ago(months=1), {"case_id": "C-1"})
    now = datetime.now(UTC)
    assert handle_batch(db, RETENTION, [closed], now).new_events == 1
    with db.begin() as connection:
        connection.execute(
            update(_CONSUMED)
            .where(_CONSUMED.c.event_id == closed.event_id)
            .values(consumed_at=now - timedelta(days=31))
        )
    prune.prune(db, SETTINGS, now)
    assert consumed(db, [closed.event_id]) == set()

    again = handle_batch(db, RETENTION, [closed], now)  # a consumer group starting over

    assert again.new_events == 0
    assert facts_of(db, subject) == 1
