"""What the purger publishes when it erases: the values of ``gallring.erasure-commands.v1`` and
``gallring.erasures.v1``. Keyed by the subject pseudonym like every Gallring message; no
personal data in them, only ids, categories and times."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.contract.vocabulary import Category

SCHEMA_VERSION = 1
ERASURE_COMMAND = "erasure.command"
ERASURE_EXECUTED = "erasure.executed"


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
