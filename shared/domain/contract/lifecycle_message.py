"""The value of a ``gallring.lifecycle.v1`` message: a v1 event with its subject pseudonymised.

This is also what the API stores per event, and what consumers hand to the engine.
"""

from typing import Annotated, Any, Final, Literal, Self, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.domain.contract.dates import ContractInstant
from shared.domain.contract.events import EVENT_TYPES, LifecycleEvent
from shared.domain.contract.scope import Scope
from shared.domain.contract.vocabulary import WRITTEN_BY_GALLRING, Role

SCHEMA_VERSION: Final = 1
_SUBJECT = {"subject"}
Pseudonym = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA256, hex")]

#: The ``data`` model of each event type, to validate a message's data as the event's was.
_DATA_MODELS: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["type"].annotation)[0]: model.model_fields["data"].annotation
    for model in get_args(get_args(LifecycleEvent)[0])
}


class LifecycleMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    occurred_at: ContractInstant  # in the contract's range: the engine counts periods from it
    subject: Pseudonym
    role: Role | None = None
    scope: Scope = Scope()
    # Missing: empty, and validated as the type's data all the same.
    data: Any = Field(default_factory=dict, validate_default=True)

    @field_validator("data", mode="before")
    @classmethod
    def _typed_data(cls, value: Any, info: ValidationInfo) -> Any:
        """The data validated by its event type's model (``type`` is validated before it). On
        the field, not the whole message: a validator before the model made pydantic build the
        message's dict in Python first, a fifth of decoding one (issue 23)."""
        model = _DATA_MODELS.get(info.data.get("type", ""))
        if model is None or isinstance(value, model):
            return value
        return model.model_validate(value, context=info.context)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        """A message as Gallring wrote it, on ``gallring.lifecycle.v1`` or in a table: its event
        passed the intake's checks when it was accepted, which are not applied again (an event
        accepted before a check was added must still read)."""
        return cls.model_validate_json(raw, context=WRITTEN_BY_GALLRING)

    @classmethod
    def from_event(cls, event: LifecycleEvent, pseudonym: str) -> "LifecycleMessage":
        """The message of a parsed (so already valid) event: built without validating it again,
        for this is the intake's hot path."""
        return cls.model_construct(
            event_id=event.event_id,
            type=event.type,
            occurred_at=event.occurred_at,
            subject=pseudonym,
            role=event.role,
            scope=event.scope,
            data=event.data,
        )

    @staticmethod
    def fields_of(event: LifecycleEvent) -> str:
        """The event's own JSON without its subject: what :meth:`json_of` builds the message
        around."""
        return event.model_dump_json(exclude=_SUBJECT, exclude_none=True)

    @staticmethod
    def json_of(event_fields: str, pseudonym: str) -> str:
        """The message ``from_event(event, pseudonym).to_json()`` gives (the same fields and
        values; the keys in another order), at half the cost, for the intake's hot path:
        ``fields_of(event)`` behind the schema version and the pseudonym (a pseudonym is hex: it
        needs no escaping)."""
        return f'{{"schema_version":{SCHEMA_VERSION},"subject":"{pseudonym}",{event_fields[1:]}'

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)
