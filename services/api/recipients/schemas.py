"""What the recipient endpoints take and answer."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.contract.vocabulary import Category, Identifier, NoNationalId

Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. SE")]
WebhookUrl = Annotated[
    str,
    Field(
        max_length=2000,
        description="https; must not resolve to a link-local or cloud metadata address",
        examples=["https://hooks.print-vendor.example/gallring"],
    ),
    *NoNationalId,
]
Name = Annotated[str, Field(min_length=1, max_length=200), *NoNationalId]
#: true or false, nothing else: Pydantic alone would read 0, 1, "no" and "off" as booleans.
Active = Annotated[bool, Field(strict=True)]


class RecipientKind(StrEnum):
    PROCESSOR = "processor"
    CONTROLLER = "controller"
    AUTHORITY = "authority"
    INTERNAL = "internal"


class NewRecipient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient_id: Annotated[
        Identifier, Field(description='as data.disclosed events name it, e.g. "print-vendor"')
    ]
    name: Name
    kind: RecipientKind
    country: Country
    webhook_url: WebhookUrl
    categories: Annotated[
        list[Category], Field(min_length=1, description="the categories it may receive")
    ]
    active: Active = True


class RecipientChange(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    kind: RecipientKind | None = None
    country: Country | None = None
    webhook_url: WebhookUrl | None = None
    categories: Annotated[list[Category] | None, Field(min_length=1)] = None
    active: Active | None = None


class RecipientHealthView(BaseModel):
    failing: bool
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None


class RecipientView(BaseModel):
    recipient_id: str
    name: str
    kind: RecipientKind
    country: str
    webhook_url: str
    categories: list[Category]
    active: bool
    previous_secret_valid_until: datetime | None
    created_at: datetime
    updated_at: datetime
    health: RecipientHealthView | None  # None until a delivery was tried


class UnregisteredRecipient(BaseModel):
    """A recipient id that disclosures or notifications name, with no registration behind it."""

    recipient_id: str
    disclosures_kept: int = Field(description="disclosures to it not yet covered by an erasure")
    first_disclosed_at: datetime | None
    notifications_waiting: int = Field(description="owed to it, sent once it is registered")


class UnregisteredRecipientPage(BaseModel):
    unregistered_recipients: list[UnregisteredRecipient]
    next_cursor: str | None  # pass as ?cursor= for the next page; None: this was the last


class CreatedRecipient(RecipientView):
    signing_secret: str = Field(description="Shown once: verify Gallring's webhooks with it.")


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: a JSON number only. Pydantic alone reads false as 0 (the old secret would end at
    # once) and "24" as 24.
    grace_hours: Annotated[
        float,
        Field(
            strict=True,
            ge=0,
            le=24 * 30,
            description="how long the previous secret still signs too: a number of hours, 0 to 720",
        ),
    ] = 24.0


class RotatedSecret(BaseModel):
    recipient_id: str
    signing_secret: str = Field(description="Shown once.")
    previous_secret_valid_until: datetime
