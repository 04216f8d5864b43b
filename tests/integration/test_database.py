"""The database plumbing against both real databases."""

from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel import Field, Session, SQLModel, select

from shared.database import make_engine


class ProbeRecord(SQLModel, table=True):
    """A table that exists only in this test's metadata."""

    __tablename__ = "probe_record"
    id: int | None = Field(default=None, primary_key=True)
    label: str
    recorded_at: datetime


def test_an_engine_round_trips_a_row_on_each_database(database_url: str) -> None:
    engine = make_engine(database_url)
    SQLModel.metadata.create_all(engine, tables=[ProbeRecord.__table__])
    try:
        with Session(engine) as session:
            session.add(ProbeRecord(label="hello", recorded_at=datetime(2026, 1, 1, tzinfo=UTC)))
            session.commit()
        with Session(engine) as session:
            [row] = session.exec(select(ProbeRecord)).all()
            assert row.label == "hello"
    finally:
        SQLModel.metadata.drop_all(engine, tables=[ProbeRecord.__table__])
        engine.dispose()


def test_sqlite_enforces_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_each_session_gets_its_own_postgres_database(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.connect() as connection:
        name = connection.execute(text("SELECT current_database()")).scalar()
    engine.dispose()
    assert name.startswith("gallring_test_")
