"""What SQLite, the embedded default, leaves on disk: files only their owner reads, and erased
rows overwritten rather than left in free pages or in the write-ahead log."""

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.pool import Pool

from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from tests.integration.purger.helpers import RETENTION, Subject, ago, proofs_of


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask, under which SQLite would create its files readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_database_and_its_write_ahead_log_are_readable_by_their_owner_alone(
    tmp_path: Path, loose_umask: None
) -> None:
    database = tmp_path / "gallring.db"
    upgrade(f"sqlite:///{database}")  # `gallring migrate` alone: Alembic's engine creates it
    assert mode(database) == 0o600
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:  # the log and its index exist while it is open
            connection.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
            files = [database, tmp_path / "gallring.db-wal", tmp_path / "gallring.db-shm"]
            assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    finally:
        engine.dispose()


def test_files_an_older_release_left_readable_are_narrowed(tmp_path: Path) -> None:
    database = tmp_path / "gallring.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert mode(database) == 0o600


def test_deleted_rows_are_overwritten_even_where_sqlite_is_built_otherwise(
    tmp_path: Path,
) -> None:
    """Upstream SQLite leaves deleted rows in free pages (``secure_delete`` off); some builds
    (Debian's) turn it on. Here a build with it off is imitated by a listener that runs first."""

    def built_without_secure_delete(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA secure_delete=OFF")

    event.listen(Pool, "connect", built_without_secure_delete)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'gallring.db'}")
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA secure_delete")).scalar() == 1
        engine.dispose()
    finally:
        event.remove(Pool, "connect", built_without_secure_delete)


def test_a_sweep_that_erased_empties_the_write_ahead_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gallring.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        person = Subject()
        closed = person.message("collection_case.closed", ago(months=37), {"case_id": "C-1"})
        handle_batch(engine, RETENTION, [closed], datetime.now(UTC))
        wal = tmp_path / "gallring.db-wal"
        assert wal.stat().st_size > 0  # the subject's facts and clock, among others

        assert sweep(engine, RETENTION, datetime.now(UTC), batch_size=50) == 1

        assert len(proofs_of(engine, person)) == 1
        assert wal.stat().st_size == 0
    finally:
        engine.dispose()
