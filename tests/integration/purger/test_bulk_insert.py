"""insert_rows: what a batch writes by COPY reads back as given, in binary or in text."""

from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

from sqlalchemy import Engine, select

from shared.storage.bulk_insert import COPY_FROM_ROWS, insert_rows
from shared.storage.tables.purger import ConsumedEvent, SubjectFact
from shared.storage.tables.table import table_of

CONSUMED = table_of(ConsumedEvent)
FACTS = table_of(SubjectFact)
STOCKHOLM_SUMMER = timezone(timedelta(hours=2))


def test_rows_read_back_as_given_whatever_the_python_types(db: Engine) -> None:
    """Ids as UUIDs and times in any zone (binary COPY on PostgreSQL), and on PostgreSQL ids as
    strings too (which its parsing in a text COPY turns into uuids): each row reads back the
    same."""
    at = datetime(2026, 6, 1, 12, 30, 15, 123456, tzinfo=STOCKHOLM_SUMMER)
    as_uuids = [{"event_id": uuid4(), "consumed_at": at} for _ in range(COPY_FROM_ROWS)]
    as_strings = (
        [{"event_id": str(uuid4()), "consumed_at": at} for _ in range(COPY_FROM_ROWS)]
        if db.dialect.name == "postgresql"
        else []  # SQLAlchemy's uuid type takes UUIDs alone there
    )
    facts = [
        {
            "event_id": uuid4(),
            "subject_pseudonym": f"{n:064x}",
            "event_type": "collection_case.closed",
            "message": '{"quoted": "\\"", "tab": "\\t", "ö": 1}',
        }
        for n in range(COPY_FROM_ROWS)
    ]
    with db.begin() as connection:
        insert_rows(connection, CONSUMED, as_uuids)
        insert_rows(connection, CONSUMED, as_strings)  # nothing on SQLite
        insert_rows(connection, FACTS, facts)
    expected = {UUID(str(row["event_id"])): at.astimezone(UTC) for row in as_uuids + as_strings}
    with db.connect() as connection:  # the database is shared: this test's rows alone
        consumed = dict(
            connection.execute(
                select(CONSUMED.c.event_id, CONSUMED.c.consumed_at).where(
                    CONSUMED.c.event_id.in_(expected)
                )
            ).all()
        )
        stored_facts = {
            row.event_id: row
            for row in connection.execute(
                select(FACTS).where(FACTS.c.event_id.in_([fact["event_id"] for fact in facts]))
            )
        }
    assert consumed == expected
    assert {
        fact["event_id"]: (fact["subject_pseudonym"], fact["event_type"], fact["message"])
        for fact in facts
    } == {
        event_id: (row.subject_pseudonym, row.event_type, row.message)
        for event_id, row in stored_facts.items()
    }
