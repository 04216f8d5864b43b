"""The v1 event contract: the JSON that upstream systems POST, as validated Pydantic models."""

from shared.domain.contract.events import (
    CONTRACT_VERSION,
    EVENT_TYPES,
    HOLD_EVENT_TYPES,
    LEGAL_HOLD_PLACED,
    LEGAL_HOLD_RELEASED,
    LifecycleEvent,
    event_json_schema,
    parse_event,
    parse_events,
)
from shared.domain.contract.scope import Scope
from shared.domain.contract.subject import Subject
from shared.domain.contract.vocabulary import Category, Role

__all__ = [
    "CONTRACT_VERSION",
    "EVENT_TYPES",
    "HOLD_EVENT_TYPES",
    "LEGAL_HOLD_PLACED",
    "LEGAL_HOLD_RELEASED",
    "Category",
    "LifecycleEvent",
    "Role",
    "Scope",
    "Subject",
    "event_json_schema",
    "parse_event",
    "parse_events",
]
