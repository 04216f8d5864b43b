"""The agent's process in the test's event loop, against the real parts around it: a company
database (the sample collection system on PostgreSQL, MariaDB or SQLite), the session's broker,
a purger that sweeps and publishes the erasure commands and records confirmations, and the API
served over HTTP by uvicorn, on Gallring's own database (SQLite, or PostgreSQL)."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import Engine, select, text

from services.agent.bootstrap import Agent
from services.agent.sample import CASES, LETTERS, PAYMENTS, SAMPLE_DATASET, STORY
from services.agent.settings import AgentSettings
from shared.domain.contract.erasure_messages import ErasureCommand
from shared.messaging import topics
from shared.messaging.consumer_loop import HEADER_REASON
from shared.messaging.kafka import make_producer
from shared.runtime.settings import KafkaSettings
from shared.storage.migrate import upgrade
from tests.conftest import new_postgres_database
from tests.integration.agent.conftest import close_other_sessions
from tests.integration.agent.running import ADA, OVERDUE, Gallring, skip_to_the_end
from tests.integration.agent.test_erase import everything
from tests.integration.purger.running import running_purger
from tests.kafka_reading import read_to_the_end, read_topic
from tests.polling import eventually


@pytest.fixture(params=["sqlite"])
def gallring_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Gallring's own database, migrated, of this test alone."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(new_postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'gallring.db'}"
        upgrade(url)
        yield url


@pytest.fixture
async def gallring(gallring_url: str, kafka_settings: KafkaSettings) -> AsyncIterator[Gallring]:
    """Gallring's side, with the agent's and the purger's groups past what the session's other
    tests left on the topics (a fresh group reads from the beginning)."""
    side = Gallring(gallring_url, kafka_settings)
    await skip_to_the_end(kafka_settings, side.group, topics.ERASURE_COMMANDS)
    await skip_to_the_end(kafka_settings, side.purger_group, topics.LIFECYCLE)
    await skip_to_the_end(kafka_settings, side.purger_group, topics.ERASURE_CONFIRMATIONS)
    await skip_to_the_end(
        kafka_settings, side.purger_group + "-immediate", topics.LIFECYCLE_IMMEDIATE
    )
    yield side
    side.db.dispose()


@pytest.fixture
def dataset_file(tmp_path: Path, company_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLLECTION_DATABASE_URL", company_url)
    path = tmp_path / "collection.yaml"
    path.write_text(SAMPLE_DATASET)
    return path


@contextlib.asynccontextmanager
async def running_agent(settings: AgentSettings, **options: object) -> AsyncIterator[Agent]:
    agent = Agent(settings, **options)  # type: ignore[arg-type]
    task = asyncio.create_task(agent.run())
    try:
        await eventually(lambda: agent.consumer.joined() or task.done(), timeout=60)
        assert not task.done(), task.exception()
        yield agent
    finally:
        agent.stop()
        await task
        agent.close()


def count(agent: Agent, metric: str, **labels: str) -> float:
    return agent.metrics.registry.get_sample_value(metric, labels) or 0.0


def rows(engine: Engine, table) -> list[int]:
    with engine.connect() as connection:
        return list(connection.scalars(select(table.c.id).order_by(table.c.id)))


async def publish(kafka: KafkaSettings, key: str, command: ErasureCommand) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.ERASURE_COMMANDS, command.model_dump_json().encode(), key=key.encode()
        )
    finally:
        await producer.stop()


def dead_letters_of(records: list[ConsumerRecord], erasure_id: uuid.UUID) -> list[ConsumerRecord]:
    """The dead letters of this erasure's command (the DLQ holds other tests' poison too)."""
    found = []
    for record in records:
        with contextlib.suppress(ValueError):
            if ErasureCommand.model_validate_json(record.value).erasure_id == erasure_id:
                found.append(record)
    return found


def another_systems_command() -> ErasureCommand:
    """The debtor's open case, addressed to the CRM: not the collection system's to act on."""
    return ErasureCommand(
        event_id=uuid.uuid4(),
        erasure_id=uuid.uuid4(),
        category="collection_case",
        rule="collection_case.retention",
        legal_basis="test",
        due_at=datetime.now(UTC),
        scope={"case_id": STORY.open_case},
        system="crm",
    )


@pytest.mark.parametrize(
    ("company_url", "gallring_url"),
    [("postgres", "sqlite"), ("mariadb", "sqlite"), ("sqlite", "postgres")],
    indirect=True,
)
async def test_a_command_is_erased_from_every_table_of_its_category_and_confirmed(
    company_db: Engine, gallring: Gallring, dataset_file: Path
) -> None:
    before = everything(company_db)
    with gallring.api():
        async with running_agent(gallring.agent_settings(dataset_file)) as agent:
            # Before the purger's command, on the same partition (one key): another system's.
            await publish(gallring.kafka, ADA, another_systems_command())
            erasure_id = gallring.execute_overdue_case()
            async with running_purger(
                gallring.database_url,
                gallring.kafka,
                purger_consumer_group=gallring.purger_group,
            ):
                confirmed = await eventually(lambda: gallring.confirmed_by(erasure_id), timeout=60)
    assert confirmed == ["collection"]
    after = everything(company_db)
    assert rows(company_db, LETTERS) == [103, 201]  # the overdue case's two letters went
    assert rows(company_db, CASES) == [12, 21]  # the open case stays: the CRM's command
    assert [p for p in after["payments"] if p["id"] == 1001] == [
        {**before["payments"][0], "case_id": None, "payer_name": None}
    ]
    assert after["debtors"] == before["debtors"]  # a case's scope does not reach the debtor
    assert after["newsletter_subscribers"] == before["newsletter_subscribers"]
    assert count(agent, "gallring_agent_commands_total", outcome="erased") == 1
    assert count(agent, "gallring_agent_commands_total", outcome="skipped") == 1
    assert count(agent, "gallring_agent_commands_total", outcome="failed") == 0
    erased = {
        table: count(agent, "gallring_agent_rows_erased_total", table=table)
        for table in ("letters", "payments", "cases", "debtors")
    }
    assert erased == {"letters": 2, "payments": 1, "cases": 1, "debtors": 0}
    assert count(agent, "gallring_agent_index_pass_seconds_count") >= 1


@pytest.mark.parametrize("company_url", ["sqlite"], indirect=True)
async def test_a_table_gone_sends_the_command_to_the_dlq_with_its_reason_unconfirmed(
    company_db: Engine, gallring: Gallring, dataset_file: Path
) -> None:
    with gallring.api():
        async with running_agent(gallring.agent_settings(dataset_file)) as agent:
            with company_db.begin() as connection:  # after the agent checked its dataset
                connection.execute(text("DROP TABLE letters"))
            erasure_id = gallring.execute_overdue_case()
            async with running_purger(
                gallring.database_url,
                gallring.kafka,
                purger_consumer_group=gallring.purger_group,
            ):
                records = await read_topic(
                    gallring.kafka,
                    topics.DEAD_LETTERS,
                    until=lambda rs: bool(dead_letters_of(rs, uuid.UUID(erasure_id))),
                    timeout=60,
                )
                await asyncio.sleep(1.0)  # time for a confirmation, were one sent
                assert gallring.confirmed_by(erasure_id) == []
    [dead] = dead_letters_of(records, uuid.UUID(erasure_id))
    assert dict(dead.headers)[HEADER_REASON].decode() == (
        "collection_case: erasing from table letters failed: the table or a column is not as "
        "the dataset says (OperationalError)"
    )
    assert count(agent, "gallring_agent_commands_total", outcome="failed") == 1
    assert count(agent, "gallring_agent_commands_total", outcome="erased") == 0
    assert rows(company_db, CASES) == [11, 12, 21]  # all or nothing: nothing
    assert rows(company_db, PAYMENTS) == [1001, 2001]
    confirmations = await read_to_the_end(gallring.kafka, topics.ERASURE_CONFIRMATIONS)
    assert not [r for r in confirmations if r.key == erasure_id.encode()]


@pytest.mark.parametrize("company_url", ["postgres"], indirect=True)
async def test_an_agent_stopped_before_it_could_confirm_is_confirmed_once_by_the_next(
    company_db: Engine, gallring: Gallring, dataset_file: Path
) -> None:
    """The API away: the first agent erases and cannot confirm; it stops. The next, with the
    API back, reads the command again: nothing left to erase, one confirmation."""
    settings = gallring.agent_settings(dataset_file)
    erasure_id = gallring.execute_overdue_case()
    async with running_purger(
        gallring.database_url, gallring.kafka, purger_consumer_group=gallring.purger_group
    ):
        async with running_agent(settings) as first:
            await eventually(lambda: rows(company_db, CASES) == [12, 21], timeout=60)
            await asyncio.sleep(1.5)  # at least one more round: still unconfirmed
        assert count(first, "gallring_agent_commands_total", outcome="erased") == 0
        assert count(first, "gallring_agent_rows_erased_total", table="letters") == 2
        with gallring.api():
            assert gallring.confirmed_by(erasure_id) == []
            async with running_agent(settings) as second:
                confirmed = await eventually(lambda: gallring.confirmed_by(erasure_id), timeout=60)
                confirmations = await read_topic(
                    gallring.kafka,
                    topics.ERASURE_CONFIRMATIONS,
                    until=lambda rs: any(r.key == erasure_id.encode() for r in rs),
                )
    assert confirmed == ["collection"]
    assert count(second, "gallring_agent_commands_total", outcome="erased") == 1
    assert count(second, "gallring_agent_rows_erased_total", table="letters") == 0  # erased once
    assert count(second, "gallring_agent_rows_erased_total", table="cases") == 0
    assert len([r for r in confirmations if r.key == erasure_id.encode()]) == 1  # confirmed once


@pytest.mark.parametrize("company_url", ["sqlite"], indirect=True)
async def test_a_dry_run_changes_nothing_and_confirms_nothing(
    company_db: Engine, gallring: Gallring, dataset_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = everything(company_db)
    caplog.set_level("INFO", logger="services.agent")
    with gallring.api():
        async with running_agent(gallring.agent_settings(dataset_file), dry_run=True) as agent:
            erasure_id = gallring.execute_overdue_case()
            async with running_purger(
                gallring.database_url,
                gallring.kafka,
                purger_consumer_group=gallring.purger_group,
            ):
                await eventually(
                    lambda: count(agent, "gallring_agent_commands_total", outcome="dry_run") == 1,
                    timeout=60,
                )
                await asyncio.sleep(1.0)
                assert gallring.confirmed_by(erasure_id) == []
    assert everything(company_db) == before
    assert count(agent, "gallring_agent_commands_total", outcome="erased") == 0
    [line] = [r.getMessage() for r in caplog.records if "dry run" in r.getMessage()]
    assert erasure_id in line
    assert "'letters': 2" in line and "'cases': 1" in line
    assert ADA not in caplog.text and STORY.debtor_national_id not in caplog.text


@pytest.mark.parametrize("company_url", ["sqlite"], indirect=True)
async def test_a_confirmation_the_api_refuses_for_good_sends_the_command_to_the_dlq(
    company_db: Engine, gallring: Gallring, dataset_file: Path
) -> None:
    """An erasure the API does not know (404) will not be known later: the command goes to the
    dead-letter topic with the answer, rather than hold up the commands behind it."""
    unknown = ErasureCommand(
        event_id=uuid.uuid4(),
        erasure_id=uuid.uuid4(),
        category="collection_case",
        rule="collection_case.retention",
        legal_basis="test",
        due_at=datetime.now(UTC),
        scope=OVERDUE,
    )
    with gallring.api():
        async with running_agent(gallring.agent_settings(dataset_file)) as agent:
            await publish(gallring.kafka, ADA, unknown)
            records = await read_topic(
                gallring.kafka,
                topics.DEAD_LETTERS,
                until=lambda rs: bool(dead_letters_of(rs, unknown.erasure_id)),
                timeout=60,
            )
    [dead] = dead_letters_of(records, unknown.erasure_id)
    assert dict(dead.headers)[HEADER_REASON].decode() == (
        "collection_case: erased, but the API refused the confirmation (404)"
    )
    assert count(agent, "gallring_agent_commands_total", outcome="failed") == 1
    assert count(agent, "gallring_agent_commands_total", outcome="erased") == 0


@pytest.mark.parametrize("company_url", ["postgres", "mariadb"], indirect=True)
async def test_a_database_restart_while_the_agent_runs_costs_no_command(
    company_db: Engine, gallring: Gallring, dataset_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The connections the agent holds are closed by the database between two commands: the
    next command is erased and confirmed at its first reading, no batch read again."""
    with gallring.api():
        async with running_agent(gallring.agent_settings(dataset_file)) as agent:
            close_other_sessions(company_db)  # the agent's
            erasure_id = gallring.execute_overdue_case()
            async with running_purger(
                gallring.database_url,
                gallring.kafka,
                purger_consumer_group=gallring.purger_group,
            ):
                confirmed = await eventually(lambda: gallring.confirmed_by(erasure_id), timeout=60)
    assert confirmed == ["collection"]
    assert rows(company_db, CASES) == [12, 21]
    assert count(agent, "gallring_agent_commands_total", outcome="erased") == 1
    assert not [r for r in caplog.records if "reading them again" in r.getMessage()]
