"""Passing on what the API learns about something another service owns (a system confirmed an
erasure, a recipient confirmed a notification): an outbox message to the owner's topic and an
audit entry, in one transaction. The owner applies it to its own tables."""

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Engine

from services.api import audit
from services.api.api_keys import Principal
from shared.messaging.outbox import outbox_row
from shared.storage.bulk_insert import insert_rows
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of

_OUTBOX = table_of(OutboxMessage)


class Message(Protocol):
    # Read-only, as the (frozen) contract messages are: their ``type`` is a Literal.
    @property
    def event_id(self) -> UUID: ...
    @property
    def type(self) -> str: ...
    @property
    def schema_version(self) -> int: ...

    def model_dump_json(self) -> str: ...


def pass_on(
    db: Engine,
    topic: str,
    key: str,
    message: Message,
    *,
    actor: Principal,
    action: str,
    now: datetime,
    **detail: Any,
) -> None:
    row = outbox_row(
        topic,
        key=key,
        value=message.model_dump_json(),
        event_type=message.type,
        event_id=message.event_id,
        schema_version=message.schema_version,
        now=now,
    )
    with db.begin() as connection:
        insert_rows(connection, _OUTBOX, [row])
        audit.record(connection, actor=actor, action=action, at=now, **detail)
