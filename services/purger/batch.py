"""What the purger's handlers share while they apply one batch of messages: its transaction, the
engine and the time, and what they report back (``handlers.py`` calls them)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from shared.domain.engine import RetentionEngine


@dataclass(slots=True)
class PurgerBatch:
    connection: Connection  # the batch's one transaction (begin_deciding)
    retention: RetentionEngine
    now: datetime
    new_events: int = 0  # lifecycle events stored as new facts
    erasable_clocks: int = 0  # clocks now due or to erase at once: worth a sweep right away
    confirmations: int = 0  # systems' confirmations newly recorded
    unregistered_confirmations: int = 0  # of those, from systems not in the register
