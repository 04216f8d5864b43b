"""The demo's people in the sample collection system (``var/collection.db``, made by
``gallring up``): the rows its agent erases once their erasures come, and what is left of them.

Each debtor of the day gets a debtor row (their personal identity number as the system writes
it), their case, two letters and a payment; the newsletter reader a subscriber row under their
CRM id. The names and addresses are the demo's own inventions.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Table, func, insert, select

from services.agent.sample import CASES, DEBTORS, LETTERS, NEWSLETTER_SUBSCRIBERS, PAYMENTS
from services.cli.demo.day import Person


@dataclass(frozen=True)
class CaseRows:
    """A case's rows in the collection system: the case, its letters, and the payments still
    linked to it (an erased case's payment stays in the books, unlinked and without the payer)."""

    cases: int
    letters: int
    payments: int

    def __str__(self) -> str:
        return ", ".join(
            [
                _count(self.cases, "case"),
                _count(self.letters, "letter"),
                _count(self.payments, "linked payment"),
            ]
        )


def _count(number: int, thing: str) -> str:
    return f"1 {thing}" if number == 1 else f"{number or 'no'} {thing}s"


def write_people(engine: Engine, people: Sequence[Person], now: datetime) -> None:
    """The day's debtors and reader, as the company's collection system holds them."""
    stamp = now.replace(tzinfo=None)  # the sample's columns are naive, as many systems' are
    with engine.begin() as connection:

        def next_id(table: Table) -> int:
            return int(connection.scalar(select(func.max(table.c.id))) or 0) + 1

        for person in people:
            if person.case_id is not None:
                debtor, case = next_id(DEBTORS), next_id(CASES)
                letter, payment = next_id(LETTERS), next_id(PAYMENTS)
                name = f"Demo {person.label.replace('-', ' ').title()}"
                connection.execute(
                    insert(DEBTORS).values(
                        id=debtor,
                        national_id=person.subject["national_id"],
                        name=name,
                        address="Exempelgatan 1, 111 11 Stockholm",
                        phone=None,
                        updated_at=stamp,
                    )
                )
                connection.execute(
                    insert(CASES).values(
                        id=case,
                        case_number=person.case_id,
                        debtor_id=debtor,
                        amount_ore=125_000,
                        status="closed",
                        updated_at=stamp,
                    )
                )
                connection.execute(
                    insert(LETTERS).values(case_id=case, updated_at=stamp),
                    [
                        {"id": letter, "kind": "demand", "body": f"Dear {name}, …"},
                        {"id": letter + 1, "kind": "reminder", "body": "Again, …"},
                    ],
                )
                connection.execute(
                    insert(PAYMENTS).values(
                        id=payment,
                        case_id=case,
                        amount_ore=50_000,
                        payer_name=name,
                        updated_at=stamp,
                    )
                )
            if person.crm_id is not None:
                connection.execute(
                    insert(NEWSLETTER_SUBSCRIBERS).values(
                        id=next_id(NEWSLETTER_SUBSCRIBERS),
                        crm_id=person.crm_id,
                        email=f"reader.{person.crm_id}@example.com",
                        updated_at=stamp,
                    )
                )


def case_rows(engine: Engine, case_number: str) -> CaseRows:
    with engine.connect() as connection:
        case = connection.scalar(select(CASES.c.id).where(CASES.c.case_number == case_number))
        if case is None:
            return CaseRows(0, 0, 0)
        letters = connection.scalar(
            select(func.count()).select_from(LETTERS).where(LETTERS.c.case_id == case)
        )
        payments = connection.scalar(
            select(func.count()).select_from(PAYMENTS).where(PAYMENTS.c.case_id == case)
        )
    return CaseRows(1, int(letters or 0), int(payments or 0))


def subscribed(engine: Engine, crm_id: int) -> bool:
    with engine.connect() as connection:
        found = connection.scalar(
            select(NEWSLETTER_SUBSCRIBERS.c.id).where(NEWSLETTER_SUBSCRIBERS.c.crm_id == crm_id)
        )
    return found is not None
