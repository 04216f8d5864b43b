"""A retention clock: for one subject × category × scope, what is due when, and why."""

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple
from uuid import UUID

from shared.domain.contract.vocabulary import Category

#: ``(scope key, value)``, e.g. ``("case_id", "C-1")``; None for subject-wide.
ScopeItem = tuple[str, str] | None


class ClockState(StrEnum):
    PENDING = "pending"  # running, or waiting for its trigger; due_at says which
    DUE = "due"  # its time has come: erase at the next sweep
    HELD = "held"  # a legal hold covers it, whatever its due time
    CANCELLED = "cancelled"  # its trigger was undone (case reopened, relationship resumed)
    ERASE_NOW = "erase_now"  # an immediate trigger (unsubscribe, objection, instruction…)


class RetentionClock(NamedTuple):
    """Immutable; a NamedTuple because the engine builds one per clock per evaluation."""

    subject: str
    category: Category
    scope: ScopeItem
    state: ClockState
    due_at: datetime | None
    rule: str
    legal_basis: str
    trigger_event_id: UUID | None
    reason: str

    @property
    def scope_dict(self) -> dict[str, str]:
        return {} if self.scope is None else {self.scope[0]: self.scope[1]}
