"""What the purger publishes when it erases: the values of ``gallring.erasure-commands.v1`` and
``gallring.erasures.v1`` (executed, keyed by the subject pseudonym; later confirmed, keyed by the
erasure id: the proof keeps no pseudonym). And what the API passes on to the purger when one of
the company's systems confirms an erasure (``gallring.erasure-confirmations.v1``, keyed by the
erasure id). No personal data in any of them, only ids, categories, system names and times."""

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from shared.domain.contract.vocabulary import Category

SCHEMA_VERSION: Final = 1
ERASURE_COMMAND: Final = "erasure.command"
ERASURE_EXECUTED: Final = "erasure.executed"
ERASURE_CONFIRMED: Final = "erasure.confirmed"
CONFIRMATION_REPORTED: Final = "erasure.confirmation_reported"


class _ErasureMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    erasure_id: UUID
    category: Category
    scope: dict[str, str]  # {} for subject-wide, else one key: {"case_id": "C-1"}
    rule: str  # which rule erased it: "collection_case.retention", "marketing.immediate"…
    legal_basis: str
    due_at: AwareDatetime


class ErasureCommand(_ErasureMessage):
    """To the company's own systems: erase this category's data in this scope now, then confirm
    through ``POST /v1/erasures/{erasure_id}/confirmations``."""

    type: Literal["erasure.command"] = ERASURE_COMMAND


class ErasureExecuted(_ErasureMessage):
    """To the notifier and ops: Gallring has erased its own traces and sent the command."""

    type: Literal["erasure.executed"] = ERASURE_EXECUTED
    executed_at: datetime


class ErasureConfirmed(BaseModel):
    """To the notifier and ops: one of the company's systems confirmed it erased its copy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["erasure.confirmed"] = ERASURE_CONFIRMED
    event_id: UUID
    erasure_id: UUID
    system: str
    confirmed_at: AwareDatetime


class ConfirmationReported(BaseModel):
    """From the API to the purger: a system said, through the API, that it erased its copy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["erasure.confirmation_reported"] = CONFIRMATION_REPORTED
    event_id: UUID
    erasure_id: UUID
    system: str
    reported_at: AwareDatetime
    reported_by: str  # the API key's name


#: Any value of ``gallring.erasures.v1``.
ErasureEvent = Annotated[ErasureExecuted | ErasureConfirmed, Field(discriminator="type")]
ERASURE_EVENT: TypeAdapter[ErasureEvent] = TypeAdapter(ErasureEvent)
