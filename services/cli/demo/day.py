"""The demo's day at a debt-collection company: who the events are about and what happened to
them, back-dated where the story is old, so that erasures fall due now instead of in 36 months.

Every run makes new subjects, cases and event ids, so the demo can be run again and again.
"""

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dateutil.relativedelta import relativedelta

from services.agent.sample import with_check_digit

PRINT_VENDOR = "demo-print-vendor"
COLLECTION_AGENT = "demo-collection-agent-de"


@dataclass(frozen=True)
class Recipient:
    """A processor Gallring tells about erasures, registered by the demo."""

    recipient_id: str
    name: str
    country: str
    categories: tuple[str, ...]


RECIPIENTS = (
    Recipient(PRINT_VENDOR, "Print & Post AB (letters)", "SE", ("collection_case",)),
    Recipient(
        COLLECTION_AGENT,
        "Inkasso Partner GmbH (collection abroad)",
        "DE",
        ("collection_case", "customer_relationship"),
    ),
)


@dataclass
class Person:
    """One data subject of the story: what the demo tells about them, and their events."""

    label: str
    story: str
    #: As upstream systems name them: debtors by personal identity number, others by reference.
    subject: dict[str, str]
    due_now: tuple[str, ...]  # the categories of their data that the policy erases now
    events: list[dict[str, Any]] = field(default_factory=list)
    #: What the sample collection system holds of them: the case's number, the CRM id.
    case_id: str | None = None
    crm_id: int | None = None

    def disclosed(
        self, at: datetime, to: str, category: str, reference: str, role: str, scope: dict[str, str]
    ) -> None:
        """Its ``category`` data in ``scope`` went to recipient ``to``, who files it under
        ``reference``."""
        data = {"recipient_id": to, "category": category, "recipient_ref": reference}
        self.happened("data.disclosed", at, role=role, scope=scope, data=data)

    def happened(self, event_type: str, at: datetime, **fields: Any) -> None:
        self.events.append(
            {
                "event_id": str(uuid.uuid4()),
                "type": event_type,
                "occurred_at": at.isoformat(),
                "subject": self.subject,
                **fields,
            }
        )


def a_national_id() -> str:
    """A made-up personnummer, valid in form (``YYMMDD-NNNC``, born 1950 to 1999), new each run:
    the collection system and the events write it so; the API and the agent both read it as
    its 12-digit form."""
    born = f"{50 + secrets.randbelow(50):02d}{1 + secrets.randbelow(12):02d}"
    return with_check_digit(f"{born}{1 + secrets.randbelow(28):02d}{secrets.randbelow(1000):03d}")


def a_day(now: datetime) -> list[Person]:
    """The day's subjects with every event that matters for them, oldest first."""
    run = uuid.uuid4().hex[:6]

    def months_ago(months: int) -> datetime:
        return now - relativedelta(months=months)

    def person(label: str, story: str, *due_now: str) -> Person:
        return Person(label, story, {"ref": f"crm:demo-{run}-{label}"}, due_now)

    def debtor_with_case(
        label: str,
        story: str,
        number: int,
        told: str,
        *,
        disclosed: int,
        closed: datetime,
        erased_now: bool = False,
    ) -> tuple[Person, dict[str, str]]:
        """A debtor whose case's data went to ``told`` ``disclosed`` months ago; ``erased_now``:
        the case falls due now."""
        debtor = person(label, story, *(("collection_case",) if erased_now else ()))
        debtor.subject = {"national_id": a_national_id()}
        case = {"case_id": f"C-{run}-{number}"}
        debtor.case_id = case["case_id"]
        reference = f"{'PV' if told == PRINT_VENDOR else 'IP'}-{run}-{number}"
        debtor.disclosed(months_ago(disclosed), told, "collection_case", reference, "debtor", case)
        debtor.happened("collection_case.closed", closed, role="debtor", scope=case)
        return debtor, case

    debtor, _ = debtor_with_case(
        "debtor-1",
        "case closed 37 months ago; its letters were printed by the vendor",
        101,
        PRINT_VENDOR,
        disclosed=40,
        closed=months_ago(37),
        erased_now=True,
    )
    held, held_case = debtor_with_case(
        "debtor-2",
        "case closed 37 months ago, but a dispute put a legal hold on it",
        102,
        COLLECTION_AGENT,
        disclosed=39,
        closed=months_ago(37),
    )
    held.happened(
        "legal_hold.placed",
        months_ago(2),
        data={"hold_id": f"H-{run}-1", "case_id": held_case["case_id"]},
    )
    # Posted first: the hold was placed before the case fell due, and Gallring must have it
    # before the closure that makes the case due arrives, or the sweep erases the case first.
    held.events.insert(0, held.events.pop())
    recent, _ = debtor_with_case(
        "debtor-3",
        "case closed today: kept for 36 months",
        103,
        COLLECTION_AGENT,
        disclosed=3,
        closed=now,
    )

    guarantor = person(
        "guarantor",
        "client relationship ended 40 months ago, settled 38 months ago",
        "customer_relationship",
    )
    client = {"client_id": f"K-{run}"}
    guarantor.disclosed(
        months_ago(41),
        COLLECTION_AGENT,
        "customer_relationship",
        f"IP-{run}-K",
        "client_guarantor",
        client,
    )
    guarantor.happened(
        "customer_relationship.ended", months_ago(40), role="client_guarantor", scope=client
    )
    guarantor.happened(
        "customer_relationship.settled", months_ago(38), role="client_guarantor", scope=client
    )

    reader = person("reader", "newsletter reader who unsubscribed a minute ago", "marketing")
    reader.crm_id = secrets.randbelow(10**9)
    reader.subject = {"ref": f"crm:{reader.crm_id}"}  # as the CRM names its contacts
    reader.happened("marketing.contact", months_ago(2), role="newsletter_recipient")
    reader.happened("newsletter.unsubscribed", now, role="newsletter_recipient")

    partner = person("partner", "client's beneficial owner, AML check 6 years ago", "aml")
    partner.happened(
        "aml.measure_performed",
        months_ago(72),
        role="client_partner",
        scope={"measure_id": f"KYC-{run}"},
    )

    payer = person("payer", "paid an invoice last year: bookkeeping kept through the 7th year")
    payer.happened(
        "bookkeeping.recorded",
        months_ago(1),
        role="debtor",
        data={"fiscal_year_end": f"{now.year - 1}-12-31"},
    )
    return [debtor, held, recent, guarantor, reader, partner, payer]
