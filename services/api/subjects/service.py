"""A subject's clocks, evaluated by the engine from the events the API keeps for it."""

from datetime import datetime

from sqlalchemy import Engine, select

from shared.contract.lifecycle_message import LifecycleMessage
from shared.engine import RetentionClock, RetentionEngine
from shared.tables.api import StoredEvent


def clocks_of(
    engine: Engine, retention: RetentionEngine, pseudonym: str, now: datetime
) -> tuple[int, list[RetentionClock]]:
    """How many events the API holds for the subject, and the clocks they give as of ``now``."""
    stored = StoredEvent.__table__.c  # type: ignore[attr-defined]
    with engine.connect() as connection:
        payloads = connection.execute(
            select(stored.payload).where(stored.subject_pseudonym == pseudonym)
        ).scalars()
        messages = [LifecycleMessage.model_validate_json(payload) for payload in payloads]
    return len(messages), retention.evaluate(pseudonym, messages, now)
