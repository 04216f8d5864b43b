"""The audit log: who (an API key's name) did what, when. Ids and counts only, no personal data."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from services.api.api_keys import Principal
from shared.storage.tables.api import AuditEntry


def record(
    connection: Connection, *, actor: Principal, action: str, at: datetime, **detail: Any
) -> None:
    """Add an entry in ``connection``'s transaction: it commits with the work it describes."""
    connection.execute(
        insert(AuditEntry).values(
            at=at, actor=actor.name, action=action, detail=json.dumps(detail, default=str)
        )
    )
