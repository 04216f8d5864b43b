"""What the notifier's handlers share while they apply one batch of messages: its transaction,
settings and time, the subjects whose notifications are to be worked out once they ran, and how
many notifications that made (``handlers.py`` calls them)."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from services.notifier.settings import NotifierSettings
from shared.domain.contract.lifecycle_message import LifecycleMessage


@dataclass(slots=True)
class NotifierBatch:
    connection: Connection  # the batch's one transaction
    settings: NotifierSettings
    now: datetime
    subjects: set[str] = field(default_factory=set)  # whose disclosures are matched at the end
    notices: list[LifecycleMessage] = field(default_factory=list)  # rectified, restricted
    created: int = 0  # notifications made
