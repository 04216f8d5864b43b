"""A small collection system's database, as a company might have one: debtors, their cases, the
letters sent and payments made on them, and a newsletter list. With its dataset file and a
seeded story, it is what the agent's tests erase from, on PostgreSQL, MariaDB and SQLite alike,
and what the embedded default can run an agent against.

Nothing here is real: the personal identity numbers are made up (valid in form only).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
)

SAMPLE_METADATA = MetaData()

DEBTORS = Table(
    "debtors",
    SAMPLE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("national_id", String(13), nullable=False, unique=True),  # as upstream writes it
    Column("name", String(100)),
    Column("address", String(200)),
    Column("phone", String(30)),
    Column("updated_at", DateTime, nullable=False),
)
CASES = Table(
    "cases",
    SAMPLE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("case_number", String(32), nullable=False, unique=True),  # Gallring's case_id
    Column("debtor_id", Integer, ForeignKey("debtors.id"), nullable=False),
    Column("amount_ore", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
LETTERS = Table(
    "letters",
    SAMPLE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
PAYMENTS = Table(
    "payments",
    SAMPLE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    # Kept for the bookkeeping once the case is erased: the link and the payer's name go.
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=True),
    Column("amount_ore", Integer, nullable=False),
    Column("payer_name", String(100)),
    Column("updated_at", DateTime, nullable=False),
)
NEWSLETTER_SUBSCRIBERS = Table(
    "newsletter_subscribers",
    SAMPLE_METADATA,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("crm_id", Integer, nullable=False, unique=True),  # events name it ref crm:<id>
    Column("email", String(200), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: The dataset file for this schema (the URL from ``COLLECTION_DATABASE_URL``).
SAMPLE_DATASET = """\
system: collection
database:
  url_env: COLLECTION_DATABASE_URL
tables:
  debtors:
    identity: {column: national_id, kind: national_id}
    changed: updated_at
  cases:
    references: {column: debtor_id, table: debtors, to: id}
    scope: {case_id: case_number}
    changed: updated_at
  letters:
    references: {column: case_id, table: cases, to: id}
    changed: updated_at
  payments:
    references: {column: case_id, table: cases, to: id}
    changed: updated_at
  newsletter_subscribers:
    identity: {column: crm_id, kind: ref, prefix: "crm:"}
    changed: updated_at
categories:
  collection_case:
    tables:                       # children first
      - {table: letters, erase: delete}
      - table: payments           # the payment stays in the books, without the case or payer
        erase: {"null": [case_id, payer_name]}
      - {table: cases, erase: delete}
      - table: debtors            # only by a subject-wide erasure (no case scope reaches it)
        erase: {mask: [national_id], "null": [name, address, phone]}
  marketing:
    tables:
      - {table: newsletter_subscribers, erase: delete}
"""


def with_check_digit(nine_digits: str) -> str:
    """``YYMMDDNNN`` and its Luhn digit, with the dash: a personnummer valid in form."""
    total = 0
    for position, digit in enumerate(nine_digits):
        doubled = int(digit) * (2 if position % 2 == 0 else 1)
        total += doubled // 10 + doubled % 10
    return f"{nine_digits[:6]}-{nine_digits[6:]}{(10 - total % 10) % 10}"


@dataclass(frozen=True)
class SampleStory:
    """Who and what :func:`seed` writes: the keys the tests and the demo refer to."""

    #: Two cases: C-2023-0001 closed long ago (overdue), C-2025-0002 still open.
    debtor_national_id: str = "19811218-9876"
    #: Another debtor, one case, written without the century as many systems do.
    other_national_id: str = with_check_digit("900214123")
    overdue_case: str = "C-2023-0001"
    open_case: str = "C-2025-0002"
    other_case: str = "C-2023-0003"
    reader_ref: str = "crm:4711"  # a newsletter reader who unsubscribed
    other_reader_ref: str = "crm:4712"


STORY = SampleStory()
SEEDED_AT = datetime(2026, 1, 1, 12, 0, 0)  # noqa: DTZ001 - a naive column, as many systems have


def create_sample(connection: Connection) -> None:
    SAMPLE_METADATA.create_all(connection)


def drop_sample(connection: Connection) -> None:
    SAMPLE_METADATA.drop_all(connection)


def seed(connection: Connection, story: SampleStory = STORY) -> None:
    """The story's rows, each ``updated_at`` as many seconds after :data:`SEEDED_AT` as its id
    (each table's rows written in the order of their ids, as a system's would be)."""
    _insert(connection, DEBTORS, [
        dict(id=1, national_id=story.debtor_national_id, name="Ada Andersson",
             address="Storgatan 1, Lund", phone="+46 70 111 11 11"),
        dict(id=2, national_id=story.other_national_id, name="Bo Berg",
             address="Lillgatan 2, Malmö", phone=None),
    ])  # fmt: skip
    _insert(connection, CASES, [
        dict(id=11, case_number=story.overdue_case, debtor_id=1, amount_ore=125_000,
             status="closed"),
        dict(id=12, case_number=story.open_case, debtor_id=1, amount_ore=49_900, status="open"),
        dict(id=21, case_number=story.other_case, debtor_id=2, amount_ore=80_000,
             status="closed"),
    ])  # fmt: skip
    _insert(connection, LETTERS, [
        dict(id=101, case_id=11, kind="demand", body="Dear Ada, ..."),
        dict(id=102, case_id=11, kind="reminder", body="Dear Ada, again"),
        dict(id=103, case_id=12, kind="demand", body="Dear Ada, a new one"),
        dict(id=201, case_id=21, kind="demand", body="Dear Bo, ..."),
    ])  # fmt: skip
    _insert(connection, PAYMENTS, [
        dict(id=1001, case_id=11, amount_ore=50_000, payer_name="Ada Andersson"),
        dict(id=2001, case_id=21, amount_ore=80_000, payer_name="Bo Berg"),
    ])  # fmt: skip
    _insert(connection, NEWSLETTER_SUBSCRIBERS, [
        dict(id=1, crm_id=4711, email="reader@example.com"),
        dict(id=2, crm_id=4712, email="other.reader@example.com"),
    ])  # fmt: skip


def _insert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    stamped = [row | {"updated_at": SEEDED_AT + timedelta(seconds=row["id"])} for row in rows]
    connection.execute(insert(table), stamped)
