"""Erasing one command from a company database (PostgreSQL, MariaDB, SQLite): an overdue case
in every table that holds it, children first; nobody else's rows; idempotent; dry runs."""

from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from services.agent import index
from services.agent.database import again_if_reconnected
from services.agent.erase import ErasureCounts, ErasureFailed, ProvenClock, SubjectScope, erase
from services.agent.sample import (
    CASES,
    DEBTORS,
    LETTERS,
    NEWSLETTER_SUBSCRIBERS,
    PAYMENTS,
    SAMPLE_DATASET,
    SAMPLE_METADATA,
    SEEDED_AT,
    STORY,
    with_check_digit,
)
from shared.domain.contract.subject import Subject
from shared.domain.pseudonym import clock_hash, subject_hash
from tests.integration.agent.conftest import (
    PSEUDONYMISER,
    Agent,
    bound_on,
    close_other_sessions,
    company_engine,
    sample_dataset,
)

ADA = Subject(national_id=STORY.debtor_national_id).pseudonym(PSEUDONYMISER)
BO = Subject(national_id=STORY.other_national_id).pseudonym(PSEUDONYMISER)
READER = Subject(ref=STORY.reader_ref).pseudonym(PSEUDONYMISER)
OVERDUE = {"case_id": STORY.overdue_case}


def everything(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the sample, per table, in key order."""
    with engine.connect() as connection:
        return {
            table.name: [
                dict(row._mapping)
                for row in connection.execute(select(table).order_by(*table.primary_key))
            ]
            for table in SAMPLE_METADATA.sorted_tables
        }


def ids(engine: Engine, table) -> list[int]:
    with engine.connect() as connection:
        return list(connection.scalars(select(table.c.id).order_by(table.c.id)))


def run(
    agent: Agent,
    category: str,
    target: SubjectScope | ProvenClock,
    *,
    dry_run: bool = False,
) -> ErasureCounts:
    with agent.system.begin() as connection:
        return erase(
            agent.bound,
            connection,
            category=category,
            target=target,
            pseudonymiser=PSEUDONYMISER,
            dry_run=dry_run,
        )


def indexed(agent: Agent, pseudonym: str) -> set[tuple[str, str]]:
    with agent.index.connect() as connection:
        entries = index.lookup(connection, subject_hash(pseudonym), agent.bound.tables)
    return {(entry.table_name, entry.row_key) for entry in entries}


def test_an_overdue_case_goes_from_every_table_that_holds_it_and_nothing_else(agent) -> None:
    before = everything(agent.system)

    counts = run(agent, "collection_case", SubjectScope(ADA, OVERDUE))

    assert counts.tables == {"letters": 2, "payments": 1, "cases": 1, "debtors": 0}
    after = everything(agent.system)
    # The case and its letters are gone; its payment stays in the books, without case or payer.
    assert [row["id"] for row in after["cases"]] == [12, 21]
    assert [row["id"] for row in after["letters"]] == [103, 201]
    payment = next(row for row in after["payments"] if row["id"] == 1001)
    assert payment | {"updated_at": None} == {
        "id": 1001,
        "case_id": None,
        "amount_ore": 50_000,
        "payer_name": None,
        "updated_at": None,
    }
    # The debtor's other case, the debtor, another debtor and the newsletter: as they were.
    untouched = {
        name: [row for row in rows if row["id"] not in (11, 101, 102, 1001)]
        for name, rows in before.items()
    }
    assert after == untouched | {"payments": after["payments"]}
    assert [row for row in after["payments"] if row["id"] != 1001] == [
        row for row in before["payments"] if row["id"] != 1001
    ]
    # The erased rows' entries went with them; the open case's are still there to be found.
    assert indexed(agent, ADA) == {
        ("debtors", "[1]"),
        ("cases", "[12]"),
        ("letters", "[103]"),
    }


def test_a_repeated_command_erases_nothing_more(agent) -> None:
    run(agent, "collection_case", SubjectScope(ADA, OVERDUE))
    once = everything(agent.system)

    again = run(agent, "collection_case", SubjectScope(ADA, OVERDUE))

    assert again.tables == {"letters": 0, "payments": 0, "cases": 0, "debtors": 0}
    assert everything(agent.system) == once


def test_a_dry_run_counts_the_same_and_changes_nothing(agent) -> None:
    before = everything(agent.system)
    entries = indexed(agent, ADA)

    dry = run(agent, "collection_case", SubjectScope(ADA, OVERDUE), dry_run=True)

    assert dry.dry_run and dry.total == 4
    assert everything(agent.system) == before
    assert indexed(agent, ADA) == entries
    assert run(agent, "collection_case", SubjectScope(ADA, OVERDUE)).tables == dry.tables


def test_a_subject_wide_erasure_masks_and_nulls_the_debtor_the_same_each_time(agent) -> None:
    counts = run(agent, "collection_case", SubjectScope(ADA, {}))

    assert counts.tables == {"letters": 3, "payments": 1, "cases": 2, "debtors": 1}
    debtors = {row["id"]: row for row in everything(agent.system)["debtors"]}
    ada = debtors[1]
    assert (ada["name"], ada["address"], ada["phone"]) == (None, None, None)
    masked = ada["national_id"]
    assert masked != STORY.debtor_national_id and len(masked) == 13  # the column's length
    assert "1981" not in masked
    assert debtors[2]["national_id"] == STORY.other_national_id
    assert indexed(agent, ADA) == set()  # a masked identity names nobody
    assert indexed(agent, BO)  # Bo is still found

    # Once more (a re-published command found through a fresh pass): the same mask, nothing new.
    agent.index_pass(full=True)
    assert run(agent, "collection_case", SubjectScope(ADA, {})).total == 0
    assert everything(agent.system)["debtors"][0]["national_id"] == masked


def test_a_subject_wide_category_is_found_through_the_index_by_ref(agent) -> None:
    counts = run(agent, "marketing", SubjectScope(READER, {}))

    assert counts.tables == {"newsletter_subscribers": 1}
    assert ids(agent.system, NEWSLETTER_SUBSCRIBERS) == [2]  # the other reader stays
    assert ids(agent.system, DEBTORS) == [1, 2]  # marketing's erasure touched nothing else


def test_without_the_index_nothing_is_found(company_db) -> None:
    """The rows are found through the index alone: before its first pass, nothing is erased."""
    agent = Agent(bound_on(company_db), company_db, company_db)
    assert run(agent, "marketing", SubjectScope(READER, {})).total == 0
    agent.index_pass()
    assert run(agent, "marketing", SubjectScope(READER, {})).total == 1


def test_a_command_known_by_its_proof_alone_erases_the_same_rows(agent) -> None:
    """Re-applied after a backup restore: the proof's subject hash and clock hash."""
    proof = ProvenClock(
        subject_hash=subject_hash(ADA),
        clock_hash=clock_hash(ADA, "collection_case", "case_id", STORY.overdue_case),
    )

    counts = run(agent, "collection_case", proof)

    assert counts.tables == {"letters": 2, "payments": 1, "cases": 1, "debtors": 0}
    assert ids(agent.system, CASES) == [12, 21]
    assert run(agent, "collection_case", proof).total == 0
    marketing = ProvenClock(subject_hash(READER), clock_hash(READER, "marketing", "", ""))
    assert run(agent, "marketing", marketing).tables == {"newsletter_subscribers": 1}


def test_a_row_added_after_the_first_pass_is_picked_up_by_the_next(agent) -> None:
    with agent.system.begin() as connection:
        connection.execute(
            LETTERS.insert().values(
                id=104, case_id=11, kind="final", body="Dear Ada, last", updated_at=_later()
            )
        )
        connection.execute(
            NEWSLETTER_SUBSCRIBERS.insert().values(
                id=3, crm_id=4713, email="new@example.com", updated_at=_later()
            )
        )

    second = agent.index_pass()

    # Only what changed since the first pass is read, and the rows written in its last instant:
    # the new subscriber and the last one before; the new letter and the last one before, and
    # (through the last case and the last debtor, read again) Bo's letter twice more.
    assert second.read["newsletter_subscribers"] == 2
    assert second.read["letters"] == 4
    assert ("letters", "[104]") in indexed(agent, ADA)
    assert run(agent, "collection_case", SubjectScope(ADA, OVERDUE)).tables["letters"] == 3
    assert ids(agent.system, LETTERS) == [103, 201]


def test_a_corrected_identity_moves_the_rows_reached_through_it(agent) -> None:
    corrected = with_check_digit("900214125")  # a digit typed wrong, put right
    with agent.system.begin() as connection:
        connection.execute(
            DEBTORS.update()
            .where(DEBTORS.c.id == 2)
            .values(national_id=corrected, updated_at=_later())
        )
    agent.index_pass()

    assert indexed(agent, BO) == set()
    now_bo = Subject(national_id=corrected).pseudonym(PSEUDONYMISER)
    assert indexed(agent, now_bo) == {
        ("debtors", "[2]"),
        ("cases", "[21]"),
        ("letters", "[201]"),
        ("payments", "[2001]"),
    }


def test_rows_deleted_from_a_table_leave_the_index(agent) -> None:
    with agent.system.begin() as connection:
        connection.execute(LETTERS.delete().where(LETTERS.c.id == 201))
    assert index.forget_deleted_rows(agent.bound, system=agent.system, index=agent.index) == {
        "debtors": 0,
        "cases": 0,
        "letters": 1,
        "payments": 0,
        "newsletter_subscribers": 0,
    }
    assert ("letters", "[201]") not in indexed(agent, BO)


def test_a_missing_table_fails_the_command_whole_with_a_reason_naming_no_one(agent) -> None:
    with agent.system.begin() as connection:
        connection.execute(text("DROP TABLE letters"))
    before = everything_but_letters(agent.system)

    with pytest.raises(ErasureFailed) as failed:
        run(agent, "collection_case", SubjectScope(ADA, OVERDUE))

    assert failed.value.reason.startswith(
        "collection_case: erasing from table letters failed: the table or a column is not as "
        "the dataset says ("
    )
    assert STORY.overdue_case not in failed.value.reason
    assert everything_but_letters(agent.system) == before
    with agent.system.begin() as connection:
        SAMPLE_METADATA.create_all(connection)  # for the fixture to drop


def test_a_constraint_violation_fails_the_command_and_changes_nothing(company_db) -> None:
    """A dataset that forgot the letters: deleting the case would orphan them."""
    forgetful = SAMPLE_DATASET.replace("      - {table: letters, erase: delete}\n", "")
    dataset = sample_dataset(forgetful)
    agent = Agent(bound_on(company_db, dataset), company_db, company_db)
    agent.index_pass()
    before = everything(company_db)

    with pytest.raises(ErasureFailed) as failed:
        run(agent, "collection_case", SubjectScope(ADA, OVERDUE))

    assert failed.value.reason.startswith(
        "collection_case: erasing from table cases failed: a constraint refused it ("
    )
    assert everything(company_db) == before  # the payment's columns were put back too


def test_the_connection_stays_usable_after_a_failed_command(agent) -> None:
    """The consumer may apply a batch in one transaction: a failed command is rolled back to
    its savepoint, and the next one goes on."""
    with agent.system.begin() as connection:
        with pytest.raises(ErasureFailed):
            erase(
                agent.bound,
                connection,
                category="collection_case",
                target=SubjectScope(ADA, {"client_id": "K-1"}),
                pseudonymiser=PSEUDONYMISER,
            )
        counts = erase(
            agent.bound,
            connection,
            category="marketing",
            target=SubjectScope(READER, {}),
            pseudonymiser=PSEUDONYMISER,
        )
    assert counts.total == 1
    assert ids(agent.system, NEWSLETTER_SUBSCRIBERS) == [2]


def test_a_category_the_system_does_not_hold_erases_nothing(agent) -> None:
    assert run(agent, "aml", SubjectScope(ADA, {})).tables == {}
    assert not agent.bound.holds("aml") and agent.bound.holds("marketing")


def everything_but_letters(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as connection:
        return {
            table.name: [dict(row._mapping) for row in connection.execute(select(table))]
            for table in (DEBTORS, CASES, PAYMENTS, NEWSLETTER_SUBSCRIBERS)
        }


def _later():
    return SEEDED_AT.replace(year=2027)


def test_the_erasure_is_the_callers_transaction_and_goes_back_with_it(agent) -> None:
    """The consumer commits, then confirms; a transaction it rolls back erased nothing (on
    SQLite too, whose driver would otherwise let the savepoint's release commit)."""
    before = everything(agent.system)
    with agent.system.connect() as connection:
        transaction = connection.begin()
        counts = erase(
            agent.bound,
            connection,
            category="collection_case",
            target=SubjectScope(ADA, OVERDUE),
            pseudonymiser=PSEUDONYMISER,
        )
        transaction.rollback()
    assert counts.total == 4
    assert everything(agent.system) == before
    assert ("cases", "[11]") in indexed(agent, ADA)


@pytest.mark.parametrize("company_url", ["postgres", "mariadb"], indirect=True)
def test_an_erasure_whose_connection_the_database_closed_is_done_on_a_new_one(
    agent, company_url: str
) -> None:
    """As the consumer runs a command: its connection, taken from the pool, was closed by a
    database restart since it was last used."""
    assert ids(agent.system, CASES) == [11, 12, 21]  # a connection in the pool
    elsewhere = company_engine(company_url)
    try:
        close_other_sessions(elsewhere)
    finally:
        elsewhere.dispose()

    def erase_alone() -> ErasureCounts:
        with agent.system.begin() as connection:
            return erase(
                agent.bound,
                connection,
                category="collection_case",
                target=SubjectScope(ADA, OVERDUE),
                pseudonymiser=PSEUDONYMISER,
                alone_in_transaction=True,
            )

    counts = again_if_reconnected(erase_alone)
    assert counts.tables == {"letters": 2, "payments": 1, "cases": 1, "debtors": 0}
    assert ids(agent.system, CASES) == [12, 21]


def test_a_case_with_many_letters_goes_whole_with_its_entries(agent) -> None:
    """More rows a table than a statement names one by one (services.agent.schema.FEW_KEYS):
    they go all the same, and their index entries with them."""
    with agent.system.begin() as connection:
        connection.execute(
            LETTERS.insert(),
            [
                dict(
                    id=1000 + n,
                    case_id=11,
                    kind="reminder",
                    body=f"Dear Ada, {n}",
                    updated_at=_later(),
                )
                for n in range(40)
            ],
        )
    agent.index_pass()
    counts = run(agent, "collection_case", SubjectScope(ADA, OVERDUE))
    assert counts.tables == {"letters": 42, "payments": 1, "cases": 1, "debtors": 0}
    assert ids(agent.system, LETTERS) == [103, 201]
    assert {key for table, key in indexed(agent, ADA) if table == "letters"} == {"[103]"}
