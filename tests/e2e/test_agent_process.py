"""``gallring agent run`` as a real process, killed with SIGKILL after it erased but before it
could confirm (the API away), and started again with the API back: the rows were erased once,
the erasure is confirmed once."""

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from sqlalchemy import func, select

from services.agent import index
from services.agent.database import open_database
from services.agent.sample import CASES, LETTERS, SAMPLE_DATASET, create_sample, seed
from shared.messaging import topics
from shared.messaging.embedded_broker import free_loopback_port
from shared.runtime.settings import KafkaSettings
from shared.storage.migrate import upgrade
from tests.integration.agent.running import Gallring, skip_to_the_end
from tests.integration.conftest import ROOT, SECRET
from tests.integration.purger.running import running_purger
from tests.kafka_reading import read_topic
from tests.polling import eventually


def agent_process(
    gallring: Gallring, dataset: Path, company_url: str, status_port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "COLLECTION_DATABASE_URL": company_url,
        "GALLRING_AGENT_DATASET_FILE": str(dataset),
        "GALLRING_AGENT_API_URL": gallring.api_url,
        "GALLRING_AGENT_API_KEY": gallring.confirm_key,
        "GALLRING_AGENT_API_TIMEOUT_SECONDS": "2",
        "GALLRING_AGENT_CONSUMER_GROUP": gallring.group,
        "GALLRING_AGENT_STATUS_PORT": str(status_port),
        "GALLRING_PSEUDONYM_SECRET": SECRET,
        "GALLRING_KAFKA_BOOTSTRAP": gallring.kafka.bootstrap,
        "GALLRING_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "GALLRING_KAFKA_SESSION_TIMEOUT_MS": "2000",
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "agent", "run"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=output,
        )


def status(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return 0, ""


async def test_an_agent_killed_before_it_could_confirm_erases_once_and_confirms_once(
    tmp_path: Path, kafka_settings: KafkaSettings
) -> None:
    company_url = f"sqlite:///{tmp_path / 'collection.db'}"
    company = open_database(company_url)
    with company.begin() as connection:
        create_sample(connection)
        seed(connection)
    index.create_index_tables(company)
    dataset = tmp_path / "collection.yaml"
    dataset.write_text(SAMPLE_DATASET)
    gallring_url = f"sqlite:///{tmp_path / 'gallring.db'}"
    upgrade(gallring_url)
    gallring = Gallring(gallring_url, kafka_settings)
    await skip_to_the_end(kafka_settings, gallring.group, topics.ERASURE_COMMANDS)
    await skip_to_the_end(kafka_settings, gallring.purger_group, topics.LIFECYCLE)
    await skip_to_the_end(kafka_settings, gallring.purger_group, topics.ERASURE_CONFIRMATIONS)
    await skip_to_the_end(
        kafka_settings, gallring.purger_group + "-immediate", topics.LIFECYCLE_IMMEDIATE
    )
    status_port = free_loopback_port()
    log = tmp_path / "agent.log"

    def erased() -> bool:
        with company.connect() as connection:
            return not connection.scalar(
                select(func.count()).select_from(LETTERS).where(LETTERS.c.case_id == 11)
            ) and connection.scalars(select(CASES.c.id).order_by(CASES.c.id)).all() == [12, 21]

    erasure_id = gallring.execute_overdue_case()
    async with running_purger(
        gallring.database_url, kafka_settings, purger_consumer_group=gallring.purger_group
    ):
        first = agent_process(gallring, dataset, company_url, status_port, log)
        try:
            await eventually(lambda: status(status_port, "/readyz")[0] == 200, timeout=60)
            await eventually(erased, timeout=60)  # erased; the API is not there to confirm
            await asyncio.sleep(1.5)
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 20)
        finally:
            first.kill()
        with gallring.api():
            assert gallring.confirmed_by(erasure_id) == []
            second = agent_process(gallring, dataset, company_url, status_port, log)
            try:
                confirmed = await eventually(lambda: gallring.confirmed_by(erasure_id), timeout=60)
                _, metrics = status(status_port, "/metrics")
                second.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(second.wait, 30) == 0
            finally:
                second.kill()
            records = await read_topic(
                kafka_settings,
                topics.ERASURE_CONFIRMATIONS,
                until=lambda rs: any(r.key == erasure_id.encode() for r in rs),
            )
    company.dispose()
    gallring.db.dispose()
    assert confirmed == ["collection"], log.read_text()
    assert len([r for r in records if r.key == erasure_id.encode()]) == 1  # confirmed once
    assert 'gallring_agent_commands_total{outcome="erased"} 1.0' in metrics
    assert 'gallring_agent_rows_erased_total{table="letters"}' not in metrics  # erased once
    text = log.read_text()
    assert gallring.confirm_key not in text and SECRET not in text  # never logged
