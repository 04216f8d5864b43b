"""``gallring agent restore-check --since T`` after the company's database was restored from a
backup taken at T: the overdue case Gallring erased since then is erased again, from its proof
alone (the API over HTTP, on Gallring's own database), and nothing else changes. On PostgreSQL,
MariaDB and SQLite (restored by copying the file back)."""

import contextlib
import io
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, select

from services.agent import index
from services.agent.database import open_database
from services.agent.erase import SubjectScope, erase
from services.agent.sample import SAMPLE_DATASET, SAMPLE_METADATA, STORY, create_sample, seed
from services.cli.main import main
from shared.domain.pseudonym import Pseudonymiser, subject_hash
from shared.runtime.settings import KafkaSettings
from shared.storage.migrate import upgrade
from tests.integration.agent.conftest import bound_on
from tests.integration.agent.running import ADA, OVERDUE, Gallring
from tests.integration.agent.test_erase import everything
from tests.integration.conftest import SECRET

AGENT_PSEUDONYMISER = Pseudonymiser(SECRET.encode())
#: The tables a backup of the system's database holds: the sample's and the agent's index.
BACKED_UP = [*SAMPLE_METADATA.sorted_tables, *index.INDEX_METADATA.sorted_tables]


@pytest.fixture
def gallring(tmp_path: Path, kafka_settings: KafkaSettings) -> Iterator[Gallring]:
    """Gallring's side on a SQLite database of this test (its API starts on the session's
    broker; nothing here is published)."""
    url = f"sqlite:///{tmp_path / 'gallring.db'}"
    upgrade(url)
    side = Gallring(url, kafka_settings)
    yield side
    side.db.dispose()


def backup(engine: Engine, url: str, tmp_path: Path) -> Any:
    """SQLite: a copy of the file; a server: every row of every table the backup holds."""
    if url.startswith("sqlite"):
        engine.dispose()
        copy = tmp_path / "backup.db"
        shutil.copyfile(url.removeprefix("sqlite:///"), copy)
        return copy
    with engine.connect() as connection:
        return {table: connection.execute(select(table)).mappings().all() for table in BACKED_UP}


def restore(engine: Engine, url: str, saved: Any) -> None:
    if url.startswith("sqlite"):
        engine.dispose()
        shutil.copyfile(saved, url.removeprefix("sqlite:///"))
        return
    with engine.begin() as connection:
        for table in reversed(BACKED_UP):
            connection.execute(delete(table))
        for table in BACKED_UP:
            if saved[table]:
                connection.execute(insert(table), [dict(row) for row in saved[table]])


def restore_check(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["agent", "restore-check", *arguments])
    return status, out.getvalue(), err.getvalue()


def test_an_erasure_since_the_backup_is_erased_again_and_nothing_else(
    company_db: Engine,
    company_url: str,
    gallring: Gallring,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = tmp_path / "collection.yaml"
    dataset.write_text(SAMPLE_DATASET)
    for name, value in {
        "COLLECTION_DATABASE_URL": company_url,
        "GALLRING_AGENT_DATASET_FILE": str(dataset),
        "GALLRING_AGENT_API_URL": gallring.api_url,
        "GALLRING_AGENT_API_KEY": gallring.confirm_key,
        "GALLRING_AGENT_API_TIMEOUT_SECONDS": "5",
        "GALLRING_PSEUDONYM_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    bound = bound_on(company_db)
    # The agent ran before the backup: its index is in the backup too.
    index.index_pass(bound, system=company_db, index=company_db, pseudonymiser=AGENT_PSEUDONYMISER)
    taken_at = datetime.now(UTC)
    saved = backup(company_db, company_url, tmp_path)
    before = everything(company_db)

    # Since then: the overdue case executed, and erased by the agent as its command says.
    gallring.execute_overdue_case()
    with company_db.begin() as connection:
        counts = erase(
            bound,
            connection,
            category="collection_case",
            target=SubjectScope(ADA, OVERDUE),
            pseudonymiser=AGENT_PSEUDONYMISER,
        )
    assert counts.tables == {"letters": 2, "payments": 1, "cases": 1, "debtors": 0}
    erased = everything(company_db)
    assert erased != before

    restore(company_db, company_url, saved)
    assert everything(company_db) == before  # the case is back

    with gallring.api():
        dry = restore_check("--since", taken_at.isoformat(), "--dry-run")
        assert everything(company_db) == before  # a dry run changes nothing
        status, out, err = restore_check("--since", taken_at.isoformat())
        assert everything(company_db) == erased  # gone again; every other row as it was
        again = restore_check("--since", taken_at.isoformat())
        assert everything(company_db) == erased
        later = restore_check("--since", datetime.now(UTC).isoformat())

    assert dry[0] == 0, dry
    assert "(dry run: nothing changed)" in dry[1]
    assert "collection_case: 1 erasure, 1 would erase again" in dry[1]
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"restore check since {taken_at.isoformat()}: 1 erasure executed since then in the "
        "categories held",
        "  collection_case: 1 erasure, 1 erased again; rows per table: letters 2, payments 1, "
        "cases 1, debtors 0",
        "  marketing: 0 erasures, 0 erased again; rows per table: none",
    ]
    for printed in (out, dry[1], err):  # no pseudonym, no hash of one, no identifier
        for secret in (ADA, subject_hash(ADA), STORY.debtor_national_id, STORY.overdue_case):
            assert secret not in printed
    assert again[0] == 0
    assert "collection_case: 1 erasure, 0 erased again" in again[1]  # erased already
    assert later[0] == 0
    assert "0 erasures executed since then" in later[1]


def test_without_the_api_nothing_is_erased(
    company_db: Engine, company_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = tmp_path / "collection.yaml"
    dataset.write_text(SAMPLE_DATASET)
    monkeypatch.setenv("COLLECTION_DATABASE_URL", company_url)
    monkeypatch.setenv("GALLRING_AGENT_DATASET_FILE", str(dataset))
    monkeypatch.setenv("GALLRING_AGENT_API_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("GALLRING_AGENT_API_KEY", "gk_nothing")
    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", SECRET)
    before = everything(company_db)
    status, out, err = restore_check("--since", "2026-11-01T00:00:00Z")
    assert status == 1
    assert out == ""
    assert err.startswith("gallring: nothing erased: the API did not answer")
    assert everything(company_db) == before


def test_with_an_index_of_its_own_the_restored_rows_are_indexed_again(
    gallring: Gallring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The index in a database of the agent's own is not restored with the system's: it lost the
    # erased rows' entries, and its marks are past the restored rows. The full pass finds them.
    system_url = f"sqlite:///{tmp_path / 'collection.db'}"
    index_url = f"sqlite:///{tmp_path / 'index.db'}"
    dataset = tmp_path / "collection.yaml"
    dataset.write_text(
        SAMPLE_DATASET.replace(
            "tables:\n", "index_database:\n  url_env: AGENT_INDEX_URL\ntables:\n", 1
        )
    )
    for name, value in {
        "COLLECTION_DATABASE_URL": system_url,
        "AGENT_INDEX_URL": index_url,
        "GALLRING_AGENT_DATASET_FILE": str(dataset),
        "GALLRING_AGENT_API_URL": gallring.api_url,
        "GALLRING_AGENT_API_KEY": gallring.confirm_key,
        "GALLRING_PSEUDONYM_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    system, own_index = open_database(system_url), open_database(index_url)
    try:
        with system.begin() as connection:
            create_sample(connection)
            seed(connection)
        index.create_index_tables(own_index)
        bound = bound_on(system)
        index.index_pass(bound, system=system, index=own_index, pseudonymiser=AGENT_PSEUDONYMISER)
        taken_at = datetime.now(UTC)
        saved = backup(system, system_url, tmp_path)
        before = everything(system)
        gallring.execute_overdue_case()
        with own_index.begin() as index_connection, system.begin() as connection:
            erase(
                bound,
                connection,
                category="collection_case",
                target=SubjectScope(ADA, OVERDUE),
                pseudonymiser=AGENT_PSEUDONYMISER,
                index_connection=index_connection,
            )
        erased = everything(system)
        restore(system, system_url, saved)
        assert everything(system) == before
        with gallring.api():
            status, out, err = restore_check("--since", taken_at.isoformat())
        assert (status, err) == (0, ""), out
        assert "collection_case: 1 erasure, 1 erased again" in out
        assert everything(system) == erased
    finally:
        system.dispose()
        own_index.dispose()


def test_since_must_carry_an_offset(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agent", "restore-check", "--since", "2026-11-01T00:00:00"])
    assert exited.value.code == 2
    assert "give a UTC offset" in capsys.readouterr().err
