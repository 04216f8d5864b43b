"""The agent's process in the test's event loop, against the real parts around it: a company
database (the sample collection system on PostgreSQL, MariaDB or SQLite), the session's broker,
a purger that sweeps and publishes the erasure commands and records confirmations, and the API
served over HTTP by uvicorn, on Gallring's own database (SQLite, or PostgreSQL)."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import Engine, select, text

from services.agent.bootstrap import Agent
from services.agent.sample import CASES, LETTERS, PAYMENTS, SAMPLE_DATASET, STORY
from services.agent.settings import AgentSettings
from services.api.api_keys import KeyStore, Scope
from services.api.settings import ApiSettings
from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.domain.contract.erasure_messages import ErasureCommand
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.subject import Subject
from shared.domain.pseudonym import Pseudonymiser, subject_hash
from shared.messaging import topics
from shared.messaging.consumer_loop import HEADER_REASON
from shared.messaging.embedded_broker import free_loopback_port
from shared.messaging.kafka import ensure_topics, make_producer
from shared.runtime.settings import KafkaSettings, RelaySettings
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from shared.storage.tables.purger import ErasureProof
from shared.storage.tables.table import table_of
from tests.builders import event
from tests.conftest import new_postgres_database
from tests.integration.agent.test_erase import everything
from tests.integration.api.serving import serving
from tests.integration.conftest import SEALING_KEY, SECRET
from tests.integration.purger.helpers import RETENTION, ago
from tests.integration.purger.running import running_purger
from tests.kafka_reading import _partitions, read_to_the_end, read_topic
from tests.polling import eventually

#: The debtor's pseudonym as the API computes it with Gallring's secret, which the agent holds.
ADA = Subject(national_id=STORY.debtor_national_id).pseudonym(Pseudonymiser(SECRET.encode()))
OVERDUE = {"case_id": STORY.overdue_case}


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


class Gallring:
    """Gallring's side: its database, keys, and the API once served."""

    def __init__(self, database_url: str, kafka: KafkaSettings) -> None:
        self.database_url = database_url
        self.kafka = kafka
        self.db = make_engine(database_url)
        keys = KeyStore(self.db)
        self.confirm_key = keys.create("agent-collection", {Scope.ERASURES_CONFIRM})
        self.read_key = keys.create("test-reader", {Scope.ERASURES_READ})
        self.api_port = free_loopback_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.group = f"agent-test-{uuid.uuid4().hex[:8]}"
        self.purger_group = f"purger-test-{uuid.uuid4().hex[:8]}"

    def execute_overdue_case(self) -> str:
        """The debtor's overdue case closed 37 months ago, swept: its erasure executed (the
        command waits in the outbox for the purger's relay); its id."""
        built = event(
            "collection_case.closed",
            ago(months=37).isoformat(),
            OVERDUE,
            subject={"national_id": STORY.debtor_national_id},
        )
        now = datetime.now(UTC)
        handle_batch(self.db, RETENTION, [LifecycleMessage.from_event(built, ADA)], now)
        sweep(self.db, RETENTION, now, batch_size=100)
        proofs = table_of(ErasureProof)
        with self.db.connect() as connection:
            [erasure_id] = connection.scalars(
                select(proofs.c.erasure_id).where(proofs.c.subject_hash == subject_hash(ADA))
            ).all()
        return str(erasure_id)

    @contextlib.contextmanager
    def api(self) -> Iterator[str]:
        settings = ApiSettings(
            pseudonym_secret=SECRET,
            secret_sealing_key=SEALING_KEY,
            database_url=self.database_url,
            kafka=self.kafka,
            api_port=self.api_port,
            relay=RelaySettings(enabled=False),  # the purger's relay publishes for both
        )
        with serving(settings) as base:
            yield base

    def confirmed_by(self, erasure_id: str) -> list[str]:
        response = httpx.get(
            f"{self.api_url}/v1/erasures/{erasure_id}",
            headers={"Authorization": f"Bearer {self.read_key}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["confirmed_by"]

    def agent_settings(self, dataset: Path, **changes: object) -> AgentSettings:
        fields: dict = {
            "agent_dataset_file": dataset,
            "agent_api_url": self.api_url,
            "agent_api_key": self.confirm_key,
            "agent_api_timeout_seconds": 2.0,
            "pseudonym_secret": SECRET,
            "kafka": self.kafka,
            "agent_consumer_group": self.group,
            "agent_status_port": 0,
        }
        return AgentSettings(**(fields | changes))


@pytest.fixture
async def gallring(gallring_url: str, kafka_settings: KafkaSettings) -> AsyncIterator[Gallring]:
    """Gallring's side, with the agent's and the purger's groups past what the session's other
    tests left on the topics (a fresh group reads from the beginning)."""
    side = Gallring(gallring_url, kafka_settings)
    await skip_to_the_end(kafka_settings, side.group, topics.ERASURE_COMMANDS)
    await skip_to_the_end(kafka_settings, side.purger_group, topics.LIFECYCLE)
    await skip_to_the_end(kafka_settings, side.purger_group, topics.ERASURE_CONFIRMATIONS)
    yield side
    side.db.dispose()


async def skip_to_the_end(kafka: KafkaSettings, group: str, topic: str) -> None:
    """Commit ``group``'s offsets of ``topic`` at its partitions' ends."""
    await ensure_topics(kafka, topics.ALL_TOPICS)
    partitions = await _partitions(kafka, topic, time.monotonic() + 30)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, partition) for partition in partitions]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        await consumer.commit(ends)
    finally:
        await consumer.stop()


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
                    until=lambda rs: any(
                        ErasureCommand.model_validate_json(r.value).erasure_id
                        == uuid.UUID(erasure_id)
                        for r in rs
                        if r.key == ADA.encode()
                    ),
                    timeout=60,
                )
                await asyncio.sleep(1.0)  # time for a confirmation, were one sent
                assert gallring.confirmed_by(erasure_id) == []
    [dead] = [
        r
        for r in records
        if r.key == ADA.encode()
        and ErasureCommand.model_validate_json(r.value).erasure_id == uuid.UUID(erasure_id)
    ]
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
