"""The v1 lifecycle events: one model per event type, told apart by ``type``.

Each type says which ``scope`` keys it takes and validates its own ``data``; every model forbids
unknown fields, so free text (a name, an address) cannot ride along in an event.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self, get_args
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.domain.contract.dates import RANGE_TEXT, ContractDate, ContractInstant
from shared.domain.contract.examples import EXAMPLES
from shared.domain.contract.scope import Scope
from shared.domain.contract.subject import Subject
from shared.domain.contract.vocabulary import (
    Category,
    HoldIdentifier,
    Identifier,
    NoNationalId,
    Role,
)

CONTRACT_VERSION = 1
MAX_CLOCK_SKEW = timedelta(minutes=5)


def _type_of(model: type[BaseModel]) -> str:
    """The ``type`` literal an event model is told apart by."""
    literal: str = get_args(model.model_fields["type"].annotation)[0]
    return literal


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class NoData(_Data):
    """Most events carry nothing in ``data``."""


class OutdatedData(_Data):
    category: Category


class NoticeData(_Data):
    category: Annotated[Category, Field(description="The category whose data this concerns.")]


class BookkeepingData(_Data):
    fiscal_year_end: Annotated[
        ContractDate,
        Field(
            description="Last day of the financial year the records belong to: YYYY-MM-DD, "
            f"{RANGE_TEXT}."
        ),
    ]


class HoldPlacedData(_Data):
    hold_id: HoldIdentifier
    case_id: Annotated[
        Identifier | None, Field(description="Narrows the hold to one collection case.")
    ] = None
    category: Annotated[Category | None, Field(description="Narrows the hold to one category.")] = (
        None
    )


class HoldReleasedData(_Data):
    hold_id: HoldIdentifier
    category: Annotated[
        Category | None,
        Field(description="Releases the hold for this category only; without it, entirely."),
    ] = None


class ExtendedData(_Data):
    category: Annotated[Category, Field(description="The category whose clock is extended.")]
    until: Annotated[
        ContractDate,
        Field(
            description="Kept until this day, in the policy's time zone: the clock falls due no "
            f"earlier than its start (00:00). YYYY-MM-DD, {RANGE_TEXT}."
        ),
    ]
    ground: Annotated[
        str,
        Field(
            min_length=1,
            max_length=300,
            description="Why it is kept longer: the retention ground the subject's lookup and "
            "an erasure request's answer give. About the data, never the person.",
        ),
        *NoNationalId,
    ]
    review_id: Annotated[
        int | None, Field(ge=1, description="The disposition review that decided it, if any.")
    ] = None


class DisclosedData(_Data):
    recipient_id: Annotated[Identifier, Field(description="Who received the data.")]
    category: Category
    recipient_ref: Annotated[
        Identifier, Field(description="The recipient's own reference for this subject's data.")
    ]


class _Event(BaseModel):
    """Fields every event has. Subclasses set ``type``, ``data`` and their scope rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    #: The scope keys this event type accepts; empty means subject-wide only.
    allowed_scope_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether one of ``allowed_scope_keys`` must be given.
    scope_required: ClassVar[bool] = False

    event_id: Annotated[UUID, Field(description="Unique per event; resending it is harmless.")]
    occurred_at: Annotated[
        ContractInstant,
        Field(
            description="When it happened: ISO 8601 with a UTC offset, at most 5 minutes in the "
            f"future and {RANGE_TEXT} (UTC)."
        ),
    ]
    subject: Subject
    role: Role | None = None
    scope: Scope = Scope()

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if value - now > MAX_CLOCK_SKEW:
            raise ValueError(
                "lies more than 5 minutes in the future; send events when they have happened"
            )
        return value

    @field_validator("scope")
    @classmethod
    def _scope_fits_type(cls, scope: Scope) -> Scope:
        key = scope.key
        allowed = cls.allowed_scope_keys
        if key in allowed or (key is None and not cls.scope_required):
            return scope
        event_type = _type_of(cls)
        expected = "scope." + " or scope.".join(allowed)
        if key is None:
            raise ValueError(f"{event_type} needs {expected}")
        if not allowed:
            raise ValueError(f"{event_type} applies to the whole subject; leave scope empty")
        raise ValueError(f"scope.{key} does not apply to {event_type}; expected {expected}")


class _CaseEvent(_Event):
    allowed_scope_keys = ("case_id",)
    scope_required = True
    data: NoData = NoData()


class CollectionCaseClosed(_CaseEvent):
    type: Literal["collection_case.closed"]


class CollectionCaseReopened(_CaseEvent):
    type: Literal["collection_case.reopened"]


class _ClientEvent(_Event):
    allowed_scope_keys = ("client_id",)
    scope_required = True
    data: NoData = NoData()


class CustomerRelationshipEnded(_ClientEvent):
    type: Literal["customer_relationship.ended"]


class CustomerRelationshipSettled(_ClientEvent):
    type: Literal["customer_relationship.settled"]


class CustomerRelationshipResumed(_ClientEvent):
    type: Literal["customer_relationship.resumed"]


class InvoiceAdministrationEnded(_ClientEvent):
    """The company stopped administering this subject's invoices for the client (the controller)."""

    type: Literal["invoice_administration.ended"]


class ControllerErasureInstructed(_ClientEvent):
    """The client, as controller, instructs the company to erase what it processes for them."""

    type: Literal["controller.erasure_instructed"]


class DataOutdated(_Event):
    allowed_scope_keys = ("case_id", "client_id", "relationship_id", "measure_id")
    type: Literal["data.outdated"]
    data: OutdatedData


class AmlMeasurePerformed(_Event):
    """A KYC measure or transaction: one-off (``measure_id``) or within a relationship."""

    allowed_scope_keys = ("measure_id", "relationship_id")
    scope_required = True
    type: Literal["aml.measure_performed"]
    data: NoData = NoData()


class _AmlRelationshipEvent(_Event):
    allowed_scope_keys = ("relationship_id",)
    scope_required = True
    data: NoData = NoData()


class AmlRelationshipEstablished(_AmlRelationshipEvent):
    type: Literal["aml.relationship_established"]


class AmlRelationshipEnded(_AmlRelationshipEvent):
    type: Literal["aml.relationship_ended"]


class _SubjectWideEvent(_Event):
    data: NoData = NoData()


class MarketingContact(_SubjectWideEvent):
    type: Literal["marketing.contact"]


class NewsletterUnsubscribed(_SubjectWideEvent):
    type: Literal["newsletter.unsubscribed"]


class DsrErasureRequested(_SubjectWideEvent):
    """The data subject asks for erasure (GDPR art. 17)."""

    type: Literal["dsr.erasure_requested"]


#: Spelled once, for the purger, which lets a subject's due clocks through the review brake
#: once the subject asked for erasure.
DSR_ERASURE_REQUESTED = "dsr.erasure_requested"


class DsrObjection(_SubjectWideEvent):
    """The data subject objects to direct marketing (GDPR art. 21(3))."""

    type: Literal["dsr.objection"]


class ConsentWithdrawn(_SubjectWideEvent):
    type: Literal["consent.withdrawn"]


class BookkeepingRecorded(_Event):
    type: Literal["bookkeeping.recorded"]
    data: BookkeepingData


class _HoldEvent(_Event):
    """Holds name themselves in ``data.hold_id``; ``scope.hold_id``, if sent, must agree."""

    allowed_scope_keys = ("hold_id",)

    @model_validator(mode="after")
    def _hold_ids_agree(self) -> Self:
        data_hold_id = self.data.hold_id  # type: ignore[attr-defined]
        if self.scope.hold_id is not None and self.scope.hold_id != data_hold_id:
            raise ValueError("scope.hold_id and data.hold_id name different holds")
        return self


class LegalHoldPlaced(_HoldEvent):
    type: Literal["legal_hold.placed"]
    data: HoldPlacedData


class LegalHoldReleased(_HoldEvent):
    type: Literal["legal_hold.released"]
    data: HoldReleasedData


#: The event types of legal holds, spelled once (in the models above): the engine, the purger's
#: tables and its SQL tell holds from other events by these.
LEGAL_HOLD_PLACED = _type_of(LegalHoldPlaced)
LEGAL_HOLD_RELEASED = _type_of(LegalHoldReleased)
HOLD_EVENT_TYPES: tuple[str, str] = (LEGAL_HOLD_PLACED, LEGAL_HOLD_RELEASED)


class RetentionExtended(_Event):
    """Keep one clock's data longer than its period, on a retention ground of its own: the clock
    of ``data.category`` in this scope (subject-wide without one) falls due no earlier than
    ``data.until``. What a DPO's ``extend`` decision on a disposition review records (the API
    sends one per clock it stopped); the latest ``until`` of several wins, as does a later due
    time of the clock's own. An immediate erasure (an unsubscribe) is not held back by it.

    Gallring-internal: only Gallring's own review decisions send it, through its outbox. The
    public intake (``POST /v1/events`` and ``/v1/events/batch``) refuses it, and the purger
    ignores one that no ``extend`` decision with the same ``until`` sent: otherwise any system
    could keep data for as long as it liked."""

    allowed_scope_keys = ("case_id", "client_id", "relationship_id", "measure_id")
    type: Literal["retention.extended"]
    data: ExtendedData


#: Spelled once, for the engine and the policy, which tell extensions from other events by it.
RETENTION_EXTENDED = _type_of(RetentionExtended)
#: What only Gallring sends (through its outbox): the public intake refuses these types.
INTERNAL_EVENT_TYPES: tuple[str, ...] = (RETENTION_EXTENDED,)


class DataDisclosed(_Event):
    """The subject's data in one category went to a recipient, who must hear of its erasure."""

    allowed_scope_keys = ("case_id", "client_id", "relationship_id", "measure_id")
    type: Literal["data.disclosed"]
    data: DisclosedData


class DataRectified(_Event):
    """The subject's data in one category was rectified (GDPR art. 16): every recipient that
    received it must be told (art. 19)."""

    allowed_scope_keys = ("case_id", "client_id", "relationship_id", "measure_id")
    type: Literal["data.rectified"]
    data: NoticeData


class ProcessingRestricted(_Event):
    """Processing of the subject's data in one category was restricted (GDPR art. 18): every
    recipient that received it must be told (art. 19)."""

    allowed_scope_keys = ("case_id", "client_id", "relationship_id", "measure_id")
    type: Literal["processing.restricted"]
    data: NoticeData


LifecycleEvent = Annotated[
    CollectionCaseClosed
    | CollectionCaseReopened
    | CustomerRelationshipEnded
    | CustomerRelationshipSettled
    | CustomerRelationshipResumed
    | InvoiceAdministrationEnded
    | ControllerErasureInstructed
    | DataOutdated
    | AmlMeasurePerformed
    | AmlRelationshipEstablished
    | AmlRelationshipEnded
    | MarketingContact
    | NewsletterUnsubscribed
    | DsrErasureRequested
    | DsrObjection
    | ConsentWithdrawn
    | BookkeepingRecorded
    | LegalHoldPlaced
    | LegalHoldReleased
    | RetentionExtended
    | DataDisclosed
    | DataRectified
    | ProcessingRestricted,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[LifecycleEvent] = TypeAdapter(
    LifecycleEvent, config=ConfigDict(hide_input_in_errors=True)
)

_LIST_ADAPTER: TypeAdapter[list[LifecycleEvent]] = TypeAdapter(
    list[LifecycleEvent], config=ConfigDict(hide_input_in_errors=True)
)

EVENT_TYPES: tuple[str, ...] = tuple(
    _type_of(model) for model in get_args(get_args(LifecycleEvent)[0])
)


def parse_event(
    raw: str | bytes | dict[str, Any], *, now: datetime | None = None
) -> LifecycleEvent:
    """Validate one event; ``now`` (default: the clock) bounds ``occurred_at`` and dates ids.

    Raises :class:`pydantic.ValidationError` naming each bad field and what it expects.
    """
    context = {"now": now} if now is not None else None
    if isinstance(raw, dict):
        return _ADAPTER.validate_python(raw, context=context)
    return _ADAPTER.validate_json(raw, context=context)


def parse_events(raw: str | bytes) -> list[LifecycleEvent]:
    """Validate a JSON array of events in one pass; raises :class:`pydantic.ValidationError` if
    any is invalid (then :func:`parse_event` tells, one by one, which and why)."""
    return _LIST_ADAPTER.validate_json(raw)


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of the v1 contract, as committed under ``docs/``."""
    schema = _ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"Gallring lifecycle event v{CONTRACT_VERSION}"
    schema["examples"] = list(EXAMPLES.values())
    return schema
