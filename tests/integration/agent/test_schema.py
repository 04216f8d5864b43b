"""The dataset bound to the database: erasure order from the foreign keys, a cycle refused,
what the file names and the schema lacks; the index in a database of the agent's own, built
in small batches."""

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.dialects import mysql

from services.agent import index
from services.agent.dataset_file import DatasetError
from services.agent.erase import SubjectScope, erase
from services.agent.sample import CASES, SAMPLE_DATASET, SEEDED_AT, STORY, create_sample
from services.agent.schema import bind
from services.cli.main import main
from shared.domain.contract.subject import Subject
from tests.integration.agent.conftest import (
    PSEUDONYMISER,
    Agent,
    bound_on,
    company_engine,
    sample_dataset,
)

ADA = Subject(national_id=STORY.debtor_national_id).pseudonym(PSEUDONYMISER)


def test_the_order_read_from_the_foreign_keys_erases_children_first(company_db) -> None:
    parents_first = SAMPLE_DATASET.replace(
        "  collection_case:\n    tables:                       # children first\n"
        "      - {table: letters, erase: delete}\n",
        "  collection_case:\n    order: foreign_keys\n    tables:\n"
        '      - {table: debtors, erase: {"null": [phone]}}\n'
        "      - {table: cases, erase: delete}\n"
        "      - {table: letters, erase: delete}\n",
    ).replace(
        "      - {table: cases, erase: delete}\n      - table: debtors            # only by a "
        "subject-wide erasure (no case scope reaches it)\n"
        '        erase: {mask: [national_id], "null": [name, address, phone]}\n',
        "",
    )
    bound = bound_on(company_db, sample_dataset(parents_first))

    steps = [table.name for table, _ in bound.categories["collection_case"].steps]

    assert steps == ["letters", "payments", "cases", "debtors"]
    agent = Agent(bound, company_db, company_db)
    agent.index_pass()
    with company_db.begin() as connection:
        counts = erase(
            bound,
            connection,
            category="collection_case",
            target=SubjectScope(ADA, {"case_id": STORY.overdue_case}),
            pseudonymiser=PSEUDONYMISER,
        )
    assert counts.tables == {"letters": 2, "payments": 1, "cases": 1, "debtors": 0}


def test_foreign_keys_in_a_cycle_are_refused(tmp_path) -> None:
    engine = company_engine(f"sqlite:///{tmp_path / 'cycle.db'}")
    metadata = MetaData()
    Table(
        "people",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("national_id", String(13)),
        Column("latest_note_id", Integer, ForeignKey("notes.id")),
    )
    Table(
        "notes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("person_id", Integer, ForeignKey("people.id")),
    )
    metadata.create_all(engine)
    dataset = sample_dataset(
        "system: crm\n"
        "database: {url_env: CRM_DATABASE_URL}\n"
        "tables:\n"
        "  people: {identity: {column: national_id, kind: national_id}}\n"
        "  notes: {references: {column: person_id, table: people, to: id}}\n"
        "categories:\n"
        "  customer_relationship:\n"
        "    order: foreign_keys\n"
        "    tables: [{table: notes, erase: delete}, {table: people, erase: delete}]\n"
    )
    with engine.connect() as connection, pytest.raises(DatasetError) as refused:
        bind(dataset, connection)
    assert refused.value.problems == [
        "categories.customer_relationship: the foreign keys between notes, people form a "
        "cycle; give the order (order: declared)"
    ]
    engine.dispose()


def test_what_the_file_names_and_the_schema_lacks_is_listed(company_db) -> None:
    text = (
        SAMPLE_DATASET.replace("  letters:\n", "  letter:\n")
        .replace("{table: letters, erase: delete}", "{table: letter, erase: delete}")
        .replace("scope: {case_id: case_number}", "scope: {case_id: case_no}")
        .replace('"null": [case_id, payer_name]', 'mask: [amount_ore], "null": [payer]')
        .replace("mask: [national_id]", "mask: [id]")
    )
    with company_db.connect() as connection, pytest.raises(DatasetError) as refused:
        bind(sample_dataset(text), connection)
    assert refused.value.problems == [
        "letter: no such table in the database",
        "cases.case_no: no such column",
        "payments.payer: no such column",
        "payments.amount_ore: not a text column, so it cannot be masked",
        "debtors.id: part of the row's key; delete the row instead",
    ]


def test_the_index_may_live_in_a_database_of_the_agents_own(company_db, tmp_path) -> None:
    own = company_engine(f"sqlite:///{tmp_path / 'agent-index.db'}")
    index.create_index_tables(own)
    agent = Agent(bound_on(company_db), company_db, own)

    first = agent.index_pass(batch_size=2)  # streamed, two rows a batch

    assert first.read == {
        "debtors": 2,
        "cases": 3,
        "letters": 4,
        "payments": 2,
        "newsletter_subscribers": 2,
    }
    with company_db.connect() as connection:  # nothing in the system's own index table
        assert connection.scalar(select(func.count()).select_from(index.INDEX)) == 0
    with company_db.begin() as connection, own.begin() as index_connection:
        counts = erase(
            agent.bound,
            connection,
            index_connection=index_connection,
            category="collection_case",
            target=SubjectScope(ADA, {"case_id": STORY.overdue_case}),
            pseudonymiser=PSEUDONYMISER,
        )
    assert counts.tables == {"letters": 2, "payments": 1, "cases": 1, "debtors": 0}
    with own.connect() as connection:
        left = set(connection.scalars(select(index.INDEX.c.row_key).where(
            index.INDEX.c.table_name == "letters"
        )))  # fmt: skip
    assert left == {"[103]", "[201]"}
    own.dispose()


def test_a_table_keyed_by_two_columns_is_indexed_and_erased(company_db) -> None:
    notes = Table(
        "case_notes",
        MetaData(),
        Column("case_id", Integer, ForeignKey(CASES.c.id), primary_key=True),
        Column("line", Integer, primary_key=True),
        Column("note", String(40), nullable=False),
        Column("updated_at", DateTime, nullable=False),
    )
    notes.create(company_db)
    try:
        with company_db.begin() as connection:
            connection.execute(
                notes.insert(),
                [
                    {"case_id": case, "line": line, "note": f"call {line}", "updated_at": SEEDED_AT}
                    for case in (11, 12, 21)
                    for line in (1, 2)
                ],
            )
        text = SAMPLE_DATASET.replace(
            "  newsletter_subscribers:\n",
            "  case_notes:\n"
            "    references: {column: case_id, table: cases, to: id}\n"
            "    changed: updated_at\n"
            "  newsletter_subscribers:\n",
        ).replace(
            "  marketing:\n",
            "  customer_relationship:\n"  # the notes outlive the case (they keep its key)
            "    tables: [{table: case_notes, erase: {mask: [note]}}]\n"
            "  marketing:\n",
        )
        agent = Agent(bound_on(company_db, sample_dataset(text)), company_db, company_db)

        assert agent.index_pass(batch_size=1).read["case_notes"] == 6
        with company_db.begin() as connection:
            counts = erase(
                agent.bound,
                connection,
                category="customer_relationship",
                target=SubjectScope(ADA, {"case_id": STORY.overdue_case}),
                pseudonymiser=PSEUDONYMISER,
            )

        assert counts.tables == {"case_notes": 2}
        with company_db.connect() as connection:
            kept = {(row.case_id, row.line): row.note for row in connection.execute(select(notes))}
        masked = [kept[(11, 1)], kept[(11, 2)]]
        assert all(len(value) == 40 and not value.startswith("call") for value in masked)
        assert masked[0] != masked[1]
        assert {key: value for key, value in kept.items() if key[0] != 11} == {
            (12, 1): "call 1",
            (12, 2): "call 2",
            (21, 1): "call 1",
            (21, 2): "call 2",
        }
    finally:
        notes.drop(company_db)


def test_agent_check_connect_checks_the_file_against_the_database(
    tmp_path, monkeypatch, capsys
) -> None:
    url = f"sqlite:///{tmp_path / 'collection.db'}"
    engine = company_engine(url)
    with engine.begin() as connection:
        create_sample(connection)
    engine.dispose()
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(SAMPLE_DATASET)
    bad.write_text(SAMPLE_DATASET.replace("{case_id: case_number}", "{case_id: case_no}"))

    monkeypatch.delenv("COLLECTION_DATABASE_URL", raising=False)
    assert main(["agent", "check", str(good), "--connect"]) == 2
    assert capsys.readouterr().err == (
        f"gallring: {good}: database: the variable COLLECTION_DATABASE_URL is not set\n"
    )
    monkeypatch.setenv("COLLECTION_DATABASE_URL", url)
    assert main(["agent", "check", str(good), "--connect"]) == 0
    assert "valid, and as the database has it; system collection" in capsys.readouterr().out
    assert main(["agent", "check", str(bad), "--connect"]) == 2
    assert capsys.readouterr().err == f"invalid dataset {bad}:\n  cases.case_no: no such column\n"
    assert main(["agent", "check", str(bad)]) == 0  # offline, the file alone is valid


def test_a_table_only_on_the_way_to_the_person_is_not_indexed(company_db) -> None:
    text = SAMPLE_DATASET.replace(
        "      - table: debtors            # only by a subject-wide erasure (no case scope "
        "reaches it)\n"
        '        erase: {mask: [national_id], "null": [name, address, phone]}\n',
        "",
    )
    agent = Agent(bound_on(company_db, sample_dataset(text)), company_db, company_db)

    assert set(agent.index_pass().read) == {
        "cases",
        "letters",
        "payments",
        "newsletter_subscribers",
    }
    with company_db.connect() as connection:
        assert (
            connection.scalar(select(func.count()).where(index.INDEX.c.table_name == "debtors"))
            == 0
        )


def test_keys_that_differ_only_in_case_are_two_entries(company_db) -> None:
    """MariaDB compares text without case by default; the index must not (a company's table
    may well be case-sensitive)."""
    binary = String(10).with_variant(mysql.VARCHAR(10, collation="utf8mb4_bin"), "mysql")
    contacts = Table(
        "contacts",
        MetaData(),
        Column("code", binary, primary_key=True),
        Column("crm_id", Integer, nullable=False),
    )
    contacts.create(company_db)
    try:
        with company_db.begin() as connection:
            connection.execute(
                contacts.insert(), [{"code": "a", "crm_id": 4711}, {"code": "A", "crm_id": 4712}]
            )
        text = (
            "system: crm\n"
            "database: {url_env: CRM_DATABASE_URL}\n"
            "tables:\n"
            '  contacts: {identity: {column: crm_id, kind: ref, prefix: "crm:"}}\n'
            "categories:\n"
            "  marketing: {tables: [{table: contacts, erase: delete}]}\n"
        )
        agent = Agent(bound_on(company_db, sample_dataset(text)), company_db, company_db)
        agent.index_pass()
        reader = Subject(ref=STORY.reader_ref).pseudonym(PSEUDONYMISER)  # crm:4711
        with company_db.begin() as connection:
            counts = erase(
                agent.bound,
                connection,
                category="marketing",
                target=SubjectScope(reader, {}),
                pseudonymiser=PSEUDONYMISER,
            )
        assert counts.tables == {"contacts": 1}
        with company_db.connect() as connection:
            assert connection.execute(select(contacts)).all() == [("A", 4712)]
    finally:
        contacts.drop(company_db)
