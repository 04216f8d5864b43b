"""The purger's handlers, one table from message type to handler, and the batch's transaction
they run in (see ``shared/messaging/dispatch.py``).

Every lifecycle event type goes to ``apply.py`` (facts and clocks); a system's confirmation that
it erased its copy goes to ``confirmations.py``; an admin's request for an erasure's command
again, for one system, to ``command_requests.py``. A batch is applied in one transaction or not at
all: its consumer commits the offsets only after it.
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine

from services.purger.apply import apply_lifecycle
from services.purger.batch import PurgerBatch
from services.purger.command_requests import publish_commands_again
from services.purger.confirmations import record_confirmations
from shared.domain.contract.erasure_messages import (
    COMMAND_REQUESTED,
    CONFIRMATION_REPORTED,
    CommandRequested,
    ConfirmationReported,
)
from shared.domain.contract.events import EVENT_TYPES
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import RetentionEngine
from shared.messaging.dispatch import Handler, dispatch
from shared.storage.database import begin_deciding

Incoming = LifecycleMessage | ConfirmationReported | CommandRequested

HANDLERS: dict[str, Handler[PurgerBatch]] = {
    **dict.fromkeys(EVENT_TYPES, apply_lifecycle),
    CONFIRMATION_REPORTED: record_confirmations,
    COMMAND_REQUESTED: publish_commands_again,
}


def handle_batch(
    db: Engine, retention: RetentionEngine, messages: Iterable[Incoming], now: datetime
) -> PurgerBatch:
    """Apply ``messages`` in one transaction, each by its type's handler; what they did."""
    with begin_deciding(db) as connection:
        batch = PurgerBatch(connection, retention, now)
        dispatch(HANDLERS, batch, messages)
    return batch
