"""The fixed words of the domain: purpose categories and data-subject roles (rules page)."""

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, ValidationInfo

from shared.domain.national_id import contains_national_id
from shared.domain.personal_data import personal_data_in


class Category(StrEnum):
    """Why data is kept; each category runs on its own retention clock."""

    COLLECTION_CASE = "collection_case"
    CUSTOMER_RELATIONSHIP = "customer_relationship"
    AML = "aml"
    MARKETING = "marketing"
    BOOKKEEPING = "bookkeeping"
    INVOICE_ADMINISTRATION = "invoice_administration"


class Role(StrEnum):
    """Who the data is about, as the privacy notice lists them."""

    DEBTOR = "debtor"
    DEBTOR_REPRESENTATIVE = "debtor_representative"
    OBLIGOR = "obligor"
    JOINTLY_LIABLE = "jointly_liable"
    CLIENT_CONTACT = "client_contact"
    CLIENT_PARTNER = "client_partner"
    CLIENT_GUARANTOR = "client_guarantor"
    PROSPECT_CONTACT = "prospect_contact"
    AUTHORITY_CONTACT = "authority_contact"
    SUPPLIER_CONTACT = "supplier_contact"
    NEWSLETTER_RECIPIENT = "newsletter_recipient"


class HoldReason(StrEnum):
    """Why a legal hold stands: what a debt-collection company is held to keep data for."""

    DISPUTED_CLAIM = "disputed_claim"  # the debtor disputes the claim
    ENFORCEMENT = "enforcement"  # the enforcement authority (Kronofogden) has the case
    COURT_PROCEEDINGS = "court_proceedings"
    SUPERVISORY_COMPLAINT = "supervisory_complaint"  # a complaint to the supervisor (IMY)
    POLICE_REQUEST = "police_request"
    AML_INVESTIGATION = "aml_investigation"
    OTHER = "other"  # with a text that says what, never about whom


#: The validation context for messages Gallring wrote itself, on its topics and in its tables: what
#: only the intake refuses (see :func:`refuse_national_id`) is not checked again, so that history
#: written before a check was added still reads.
WRITTEN_BY_GALLRING: dict[str, Any] = {"written_by_gallring": True}


def written_by_gallring(info: ValidationInfo) -> bool:
    """Whether what is validated is a message Gallring wrote (:data:`WRITTEN_BY_GALLRING`)."""
    return bool(info.context and info.context.get("written_by_gallring"))


NATIONAL_ID_REFUSED = (
    "must not be or contain a personal identity or coordination number: this field is published "
    "and logged, where only pseudonyms may go; the person belongs in subject, so give this an "
    "id of its own"
)


def refuse_national_id(value: str, info: ValidationInfo) -> str:
    """Refuse an id or a free text that is or contains a personnummer or samordningsnummer.

    The one check every id field and free text of the API goes through (events, recipients,
    confirmations): its message names no value."""
    if written_by_gallring(info):
        return value
    if contains_national_id(value):
        raise ValueError(NATIONAL_ID_REFUSED)
    return value


def _document_the_refusal(schema: dict[str, Any]) -> None:
    """Say it in the JSON Schema and the OpenAPI, after whatever the field itself says."""
    note = "Never a personal identity or coordination number, nor containing one."
    schema["description"] = f"{schema['description']} {note}" if "description" in schema else note


#: Add to any ``str`` field that is published or logged: ``Annotated[str, *NoNationalId]``.
NoNationalId = (AfterValidator(refuse_national_id), Field(json_schema_extra=_document_the_refusal))


def refuse_personal_data(value: str, info: ValidationInfo) -> str:
    """Refuse free text that holds personal data Gallring can tell by its shape (a personal
    identity number, an e-mail address): the message names the kind, never the value."""
    if written_by_gallring(info):
        return value
    found = personal_data_in(value)
    if found is not None:
        raise ValueError(
            f"must not contain personal data, and this holds {found}: write about the matter, "
            "never about the person (the person belongs in a subject)"
        )
    return value


def _document_free_text(schema: dict[str, Any]) -> None:
    note = (
        "Never personal data: no personal identity number, e-mail address, name or address "
        "(the first two are refused)."
    )
    schema["description"] = f"{schema['description']} {note}" if "description" in schema else note


#: Add to a free-text ``str`` field that is kept, published or logged.
NoPersonalData = (
    AfterValidator(refuse_personal_data),
    Field(json_schema_extra=_document_free_text),
)

#: An upstream system's identifier for a case, client, hold, recipient…: short, no spaces, so that
#: free text (a name, an address) cannot be smuggled in where only an id belongs, and no
#: personal identity number.
#: A shorter one is ``Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1,
#: max_length=N), *NoNationalId]``: a ``max_length`` put around ``Identifier`` would be checked
#: after the refusal, and told as "items".
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#-]*$"
Identifier = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=128),
    *NoNationalId,
]

#: The separator of the engine hold ids under which the register of legal holds places one hold
#: several times on one subject (``<hold>~<case or category>``, ``services/api/holds/coverage.py``):
#: a character :data:`IDENTIFIER_PATTERN` leaves out, so that no upstream system can send a hold id
#: that a register's placement id could be mistaken for, or that could release one.
PLACEMENT_SEPARATOR = "~"
_PLACEMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#~-]*$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def refuse_placement_separator(value: Any, info: ValidationInfo) -> Any:
    """Refuse an upstream hold id that :data:`IDENTIFIER_PATTERN` does not match (one with
    :data:`PLACEMENT_SEPARATOR`), with that pattern's message, before the laxer pattern of
    :data:`HoldIdentifier` is checked; the register's own placement ids, which Gallring writes,
    pass."""
    from_upstream = isinstance(value, str) and not written_by_gallring(info)
    if from_upstream and _IDENTIFIER.fullmatch(value) is None:
        raise ValueError(f"String should match pattern '{IDENTIFIER_PATTERN}'")
    return value


class _PublicPattern:
    """In JSON Schema (the event contract upstream systems read), a hold id's pattern is
    :data:`IDENTIFIER_PATTERN`, as it is to them: the separator is Gallring's alone."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = handler(core_schema)
        schema["pattern"] = IDENTIFIER_PATTERN
        return schema


#: ``data.hold_id`` of ``legal_hold.*`` events: an :data:`Identifier` from upstream systems; in
#: the messages Gallring writes, also a register's placement id with :data:`PLACEMENT_SEPARATOR`.
HoldIdentifier = Annotated[
    str,
    StringConstraints(pattern=_PLACEMENT_ID_PATTERN, min_length=1, max_length=128),
    *NoNationalId,
    BeforeValidator(refuse_placement_separator),  # last: it runs first
    _PublicPattern(),
]

#: One of the company's systems (``collection``, ``crm``, ``ledger``, ``newsletter``…): as the
#: register (``/v1/systems``) and confirmations name it, and as an erasure command addresses it.
#: Up to 100 characters, as the purger keeps them.
SystemId = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=100),
    *NoNationalId,
]
