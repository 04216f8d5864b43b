"""What the events endpoints answer."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel


class EventAccepted(BaseModel):
    event_id: UUID
    status: Literal["accepted"] = "accepted"
    accepted_at: datetime


class FieldProblem(BaseModel):
    field: str
    message: str


class BatchItemResult(BaseModel):
    index: int
    event_id: UUID | None = None
    status: Literal["accepted", "duplicate", "conflict", "invalid"]
    errors: list[FieldProblem] = []


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[BatchItemResult]
