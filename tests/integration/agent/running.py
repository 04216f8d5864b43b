"""Gallring's side of the agent's tests: its database, the API served over HTTP, keys, and an
overdue case executed by the purger's sweep."""

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import select

from services.agent.sample import STORY
from services.agent.settings import AgentSettings
from services.api.api_keys import KeyStore, Scope
from services.api.settings import ApiSettings
from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.subject import Subject
from shared.domain.pseudonym import Pseudonymiser, subject_hash
from shared.messaging import topics
from shared.messaging.embedded_broker import free_loopback_port
from shared.messaging.kafka import ensure_topics
from shared.runtime.settings import KafkaSettings, RelaySettings
from shared.storage.database import make_engine
from shared.storage.tables.purger import ErasureProof
from shared.storage.tables.table import table_of
from tests.builders import event
from tests.integration.api.serving import serving
from tests.integration.conftest import SEALING_KEY, SECRET
from tests.integration.purger.helpers import RETENTION, ago
from tests.kafka_reading import _partitions

#: The debtor's pseudonym as the API computes it with Gallring's secret, which the agent holds.
ADA = Subject(national_id=STORY.debtor_national_id).pseudonym(Pseudonymiser(SECRET.encode()))
OVERDUE = {"case_id": STORY.overdue_case}


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
