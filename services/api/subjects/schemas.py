"""The lookup's question and answer."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from services.api.erasures.schemas import ErasureView
from shared.domain.engine import ClockState, RetentionClock


class ClockView(BaseModel):
    category: str
    scope: dict[str, str]
    state: ClockState
    due_at: datetime | None
    rule: str
    legal_basis: str
    trigger_event_id: UUID | None
    reason: str

    @classmethod
    def of(cls, clock: RetentionClock) -> "ClockView":
        return cls(
            category=clock.category.value,
            scope=clock.scope_dict,
            state=clock.state,
            due_at=clock.due_at,
            rule=clock.rule,
            legal_basis=clock.legal_basis,
            trigger_event_id=clock.trigger_event_id,
            reason=clock.reason,
        )


class SubjectClocks(BaseModel):
    subject: str
    evaluated_at: datetime
    events: int
    clocks: list[ClockView]
    erasures: list[ErasureView] | None = Field(
        description="The subject's executed erasures, oldest first: what was erased, when, why. "
        "Only for a key that may read erasures (erasures:read); null for one that may not."
    )
