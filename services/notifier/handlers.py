"""The notifier's handlers, one table from message type to handler, and the batch's transaction
they run in (see ``shared/messaging/dispatch.py``).

Disclosures, executed erasures and notices are stored by their handlers (``apply.py``); once all
of the batch's handlers ran, its subjects' disclosures are matched against what they owe
(``apply.notify``). The API's commands are ``commands.py``'s. Lifecycle events that concern no
recipient, and the ``erasure.confirmed`` messages on the erasures topic, are read and left alone.
"""

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, text

from services.notifier.apply import (
    NOTICES,
    HeardExecuted,
    hear_notices,
    notify,
    store_disclosures,
    store_erasures,
)
from services.notifier.batch import NotifierBatch
from services.notifier.commands import Command, apply_commands
from services.notifier.settings import NotifierSettings
from shared.domain.contract.erasure_messages import (
    ERASURE_CONFIRMED,
    ERASURE_EXECUTED,
    ErasureConfirmed,
)
from shared.domain.contract.events import EVENT_TYPES
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.notification_messages import (
    NOTIFICATION_CLOSED,
    NOTIFICATION_CONFIRMED,
    REDELIVERY_REQUESTED,
)
from shared.messaging.dispatch import Handler, dispatch, nothing_to_do

Incoming = LifecycleMessage | HeardExecuted | ErasureConfirmed | Command

HANDLERS: dict[str, Handler[NotifierBatch]] = {
    **dict.fromkeys(EVENT_TYPES, nothing_to_do),
    "data.disclosed": store_disclosures,
    **dict.fromkeys(NOTICES, hear_notices),
    ERASURE_EXECUTED: store_erasures,
    ERASURE_CONFIRMED: nothing_to_do,  # for ops; the notifier heard of the erasure when executed
    NOTIFICATION_CONFIRMED: apply_commands,
    REDELIVERY_REQUESTED: apply_commands,
    NOTIFICATION_CLOSED: apply_commands,
}
#: The handlers whose messages' subjects are matched at the end of the batch.
_MATCHED = {store_disclosures, hear_notices, store_erasures}


def handle_batch(
    db: Engine, settings: NotifierSettings, messages: Iterable[Incoming], now: datetime
) -> int:
    """Apply ``messages`` in one transaction, each by its type's handler, then make the
    notifications they owe; how many it made."""
    messages = list(messages)
    with db.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A disclosure and its erasure may be applied by two replicas at once (different
            # topics, different partitions): serialise per subject so neither misses the other.
            # All of the batch's subjects at once and in one order, so two batches cannot each
            # hold one the other waits for.
            for subject in _matched_subjects(messages):
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:subject, 0))"),
                    {"subject": subject},
                )
        batch = NotifierBatch(connection, settings, now)
        dispatch(HANDLERS, batch, messages)
        notify(batch)
    return batch.created


def _matched_subjects(messages: list[Incoming]) -> list[str]:
    return sorted(
        {
            message.subject
            for message in messages
            if isinstance(message, LifecycleMessage | HeardExecuted)
            and HANDLERS.get(message.type) in _MATCHED
        }
    )
