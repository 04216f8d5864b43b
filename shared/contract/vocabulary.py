"""The fixed words of the domain: purpose categories and data-subject roles (rules page)."""

from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints


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


#: An upstream system's identifier for a case, client, hold, recipient…: short, no spaces, so that
#: free text (a name, an address) cannot be smuggled in where only an id belongs.
Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/#-]*$", min_length=1, max_length=128),
]
