"""What the purger publishes when it erases: the values of ``gallring.erasure-commands.v1`` and
``gallring.erasures.v1`` (executed, keyed by the subject pseudonym; later confirmed, keyed by the
erasure id: the proof keeps no pseudonym). A command published again for one system, after the
erasure was executed, is keyed by the subject hash: the proof keeps no pseudonym, nor a scope.
And what the API passes on to the purger (``gallring.erasure-confirmations.v1``, keyed by the
erasure id): one of the company's systems confirmed an erasure, or an admin asked for an
erasure's command again for one system. No personal data in any of them, only ids, categories,
hashes, system names and times."""

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from shared.domain.contract.vocabulary import Category, SystemId

SCHEMA_VERSION: Final = 1
ERASURE_COMMAND: Final = "erasure.command"
ERASURE_EXECUTED: Final = "erasure.executed"
ERASURE_CONFIRMED: Final = "erasure.confirmed"
CONFIRMATION_REPORTED: Final = "erasure.confirmation_reported"
COMMAND_REQUESTED: Final = "erasure.command_requested"

#: A SHA-256 in lower-case hex, as the proofs keep them (``shared.domain.pseudonym``).
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _ErasureMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    erasure_id: UUID
    category: Category
    rule: str  # which rule erased it: "collection_case.retention", "marketing.immediate"…
    legal_basis: str
    due_at: AwareDatetime


class ErasureCommand(_ErasureMessage):
    """To the company's own systems: erase this category's data in this scope now, then confirm
    through ``POST /v1/erasures/{erasure_id}/confirmations``.

    ``system`` addresses the command to one system: a system acts on the commands addressed to
    it and on unaddressed ones (``None``), never on another system's. The sweep's commands are
    unaddressed; ``POST /v1/erasures/{id}/commands/{system}`` publishes an executed erasure's
    command again for one system.

    ``subject_hash`` is ``shared.domain.pseudonym.subject_hash`` of the subject's pseudonym and
    ``clock_hash`` is ``shared.domain.pseudonym.clock_hash(pseudonym, category, scope_key,
    scope_value)``: what the proof keeps. A command published again carries no scope
    (``None``: the proof keeps none) and is keyed by the subject hash; a system that knows its
    rows' pseudonyms and scopes finds them by these hashes. The sweep sets both on every command
    (absent only from commands published before they were added)."""

    type: Literal["erasure.command"] = ERASURE_COMMAND
    # {} for subject-wide, else one key: {"case_id": "C-1"}; None: published again after the
    # erasure, whose proof keeps no scope (clock_hash finds the rows)
    scope: dict[str, str] | None
    system: SystemId | None = None
    subject_hash: Sha256Hex | None = None
    clock_hash: Sha256Hex | None = None


class ErasureExecuted(_ErasureMessage):
    """To the notifier and ops: Gallring has erased its own traces and sent the command."""

    type: Literal["erasure.executed"] = ERASURE_EXECUTED
    scope: dict[str, str]  # {} for subject-wide, else one key: {"case_id": "C-1"}
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


class CommandRequested(BaseModel):
    """From the API to the purger: an admin asked for an executed erasure's command to be
    published again, addressed to one system (``POST /v1/erasures/{id}/commands/{system}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    type: Literal["erasure.command_requested"] = COMMAND_REQUESTED
    event_id: UUID
    erasure_id: UUID
    system: str
    requested_at: AwareDatetime
    requested_by: str  # the API key's name


#: Any value of ``gallring.erasure-confirmations.v1``: what the API passes on to the purger.
ErasureRequest = Annotated[ConfirmationReported | CommandRequested, Field(discriminator="type")]
ERASURE_REQUEST: TypeAdapter[ErasureRequest] = TypeAdapter(ErasureRequest)

#: Any value of ``gallring.erasures.v1``.
ErasureEvent = Annotated[ErasureExecuted | ErasureConfirmed, Field(discriminator="type")]
ERASURE_EVENT: TypeAdapter[ErasureEvent] = TypeAdapter(ErasureEvent)
