"""README's dataset file for a realistic collection system (docs/examples/agent/), against that
schema on PostgreSQL, MariaDB and SQLite: it binds as written, and the erasures it describes
take exactly the rows they should, children first under the schema's own foreign keys."""

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, text

from services.agent import index
from services.agent.dataset_file import load_dataset
from services.agent.erase import SubjectScope, erase
from services.agent.schema import BoundDataset, bind
from shared.domain.contract.subject import Subject
from tests.integration.agent.conftest import PSEUDONYMISER, company_engine

EXAMPLES = Path(__file__).parents[3] / "docs" / "examples" / "agent"
SCHEMA = EXAMPLES / "collection-schema.sql"
DATASET = EXAMPLES / "collection-dataset.yaml"
STAMP = datetime(2026, 1, 1, 12, 0)
ADA, BO = "811218-9876", "199002141233"  # as the staff typed them
TABLES = (
    "case_event",
    "letter",
    "payment_plan",
    "payment",
    "debt_case",
    "party",
    "newsletter_subscription",
)


@pytest.fixture
def collection(company_url: str) -> Iterator[Engine]:
    """The documented schema, with Ada (two cases) and Bo (one), and a newsletter reader."""
    engine = company_engine(company_url)
    _drop(engine)
    with engine.begin() as connection:
        for statement in SCHEMA.read_text().split(";\n"):
            if statement.strip():
                connection.exec_driver_sql(statement)
        _seed(connection)
    index.create_index_tables(engine)
    yield engine
    _drop(engine)
    engine.dispose()


def _drop(engine: Engine) -> None:
    with engine.begin() as connection:
        index.INDEX_METADATA.drop_all(connection)
        reflected = MetaData()
        reflected.reflect(connection, only=lambda name, _: name in TABLES)
        reflected.drop_all(connection)


def _seed(connection: Any) -> None:
    def insert(table: str, **values: object) -> None:
        columns = ", ".join(values)
        connection.execute(
            text(f"INSERT INTO {table} ({columns}, modified_at) VALUES "
                 f"({', '.join(':' + name for name in values)}, :modified_at)"),
            {**values, "modified_at": STAMP},
        )  # fmt: skip

    for party, number, name in ((1, ADA, "Ada Andersson"), (2, BO, "Bo Berg")):
        insert("party", party_id=party, personal_number=number, full_name=name, street="Gatan 1")
    for case, reference, party in ((11, "C-1", 1), (12, "C-2", 1), (21, "C-3", 2)):
        insert(
            "debt_case",
            case_id=case,
            case_reference=reference,
            debtor_party_id=party,
            client_number="K-9",
            principal_ore=100_000,
            status="closed",
        )
        insert("case_event", event_id=case, case_id=case, happened_at=STAMP, kind="call")
        for letter in (10 * case, 10 * case + 1):
            insert(
                "letter",
                letter_id=letter,
                case_id=case,
                template="demand",
                sent_on=date(2025, 1, 1),
                document_path=f"/letters/{letter}.pdf",
            )
        insert(
            "payment_plan", plan_id=case, case_id=case, monthly_ore=5_000, first_due_on=STAMP.date()
        )
        insert(
            "payment",
            payment_id=case,
            case_id=case,
            amount_ore=5_000,
            paid_on=STAMP.date(),
            payer_name="A payer",
            payer_account="SE4550000000058398257466",
        )
    insert(
        "newsletter_subscription",
        subscription_id=1,
        crm_contact_id=4711,
        email="reader@example.com",
        subscribed_on=STAMP.date(),
    )


def _bound(engine: Engine) -> BoundDataset:
    """The file as README shows it, bound to the database (what ``agent check --connect`` does)."""
    with engine.connect() as connection:
        return bind(load_dataset(DATASET), connection, source=str(DATASET))


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))]
            for table in TABLES
        }


def _erase(engine: Engine, bound: BoundDataset, category: str, subject: Subject, scope: dict):
    with engine.begin() as connection:
        return erase(
            bound,
            connection,
            category=category,
            target=SubjectScope(subject.pseudonym(PSEUDONYMISER), scope),
            pseudonymiser=PSEUDONYMISER,
            alone_in_transaction=True,
        )


def test_the_documented_dataset_erases_a_case_then_the_debtor_and_nothing_else(
    collection: Engine,
) -> None:
    bound = _bound(collection)
    index.index_pass(bound, system=collection, index=collection, pseudonymiser=PSEUDONYMISER)
    before = _rows(collection)
    ada = Subject(national_id=ADA)

    case = _erase(collection, bound, "collection_case", ada, {"case_id": "C-1"})
    assert case.tables == {
        "case_event": 1,
        "letter": 2,
        "payment_plan": 1,
        "payment": 1,
        "debt_case": 1,
        "party": 0,  # no case scope reaches the debtor
    }
    after = _rows(collection)
    assert [row[0] for row in after["debt_case"]] == [12, 21]
    assert sorted(row[0] for row in after["letter"]) == [120, 121, 210, 211]
    kept = {row[0]: row for row in after["payment"]}
    assert kept[11][1] is None and kept[11][4:6] == (None, None)  # kept, unlinked, no payer
    assert after["party"] == before["party"]

    whole = _erase(collection, bound, "collection_case", ada, {})
    assert whole.tables["debt_case"] == 1 and whole.tables["party"] == 1
    after = _rows(collection)
    assert [row[0] for row in after["debt_case"]] == [21]  # Bo's case alone
    ada_row, bo_row = sorted(after["party"])
    assert ADA not in ada_row and "Ada Andersson" not in ada_row and ada_row[3] is None
    assert bo_row == next(row for row in before["party"] if row[0] == 2)

    reader = Subject(ref="crm:4711")
    assert _erase(collection, bound, "marketing", reader, {}).tables == {
        "newsletter_subscription": 1
    }
    assert _rows(collection)["newsletter_subscription"] == []
    # Applied again, each erases nothing more.
    assert _erase(collection, bound, "collection_case", ada, {}).total == 0


def test_readme_shows_the_documented_dataset_file_as_it_is() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    assert f"```yaml\n{DATASET.read_text()}```" in readme
