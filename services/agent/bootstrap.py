"""The agent process's composition root: the dataset bound to the system's database, the index,
the consumer of erasure commands and the status server. ``gallring agent run`` runs it
(``main.py``); a test may run it in its own event loop."""

import asyncio
import logging

from sqlalchemy import Engine

from services.agent import index
from services.agent.confirm import Confirmer
from services.agent.consumer import CommandApplier, Incoming
from services.agent.database import open_database
from services.agent.dataset import Dataset
from services.agent.dataset_file import load_dataset
from services.agent.metrics import AgentMetrics
from services.agent.schema import BoundDataset, bind
from services.agent.settings import AgentSettings
from shared.messaging import topics
from shared.messaging.consumer_loop import ConsumerLoop
from shared.runtime.status_server import status_server
from shared.runtime.worker_process import supervise

log = logging.getLogger(__name__)
TOPICS = (topics.ERASURE_COMMANDS,)


class Agent:
    """One system's agent. The dataset file is read at once (refused with file:line); its
    database is first reached in :meth:`run`."""

    def __init__(self, settings: AgentSettings, *, dry_run: bool | None = None) -> None:
        self._settings = settings
        self.dry_run = settings.agent_dry_run if dry_run is None else dry_run
        self.dataset: Dataset = load_dataset(settings.agent_dataset_file)
        self.system: Engine = open_database(self.dataset.database.url())
        own = self.dataset.index_database
        self.index: Engine = open_database(own.url()) if own else self.system
        self.metrics = AgentMetrics()
        self.group_id = settings.consumer_group(self.dataset.system)
        self.confirmer = Confirmer(
            settings.agent_api_url,
            settings.agent_api_key,
            self.dataset.system,
            settings.agent_api_timeout_seconds,
        )
        self.applier = CommandApplier(
            self.dataset.system,
            system=self.system,
            index_engine=self.index,
            pseudonymiser=settings.pseudonymiser(),
            confirmer=self.confirmer,
            metrics=self.metrics,
            dry_run=self.dry_run,
        )
        self.consumer: ConsumerLoop[Incoming] = ConsumerLoop(
            "agent",
            settings.kafka,
            TOPICS,
            group_id=self.group_id,
            max_records=settings.agent_max_poll_records,
            parse=self.applier.parse,
            apply=self.applier.apply,
            on_dead_letter=self.metrics.dead_letters.inc,
        )
        self._stopping = asyncio.Event()

    def started(self) -> str:
        """The line logged once it runs: no URL, no key."""
        mode = " (dry run: nothing is erased or confirmed)" if self.dry_run else ""
        return (
            f"agent: system {self.dataset.system}, consuming {topics.ERASURE_COMMANDS} as group "
            f"{self.group_id}; Kafka at {self._settings.kafka.bootstrap}{mode}"
        )

    async def run(self) -> None:
        """Bind the dataset, build the index, then consume until :meth:`stop`."""
        self.applier.bound = await asyncio.to_thread(self._bind)
        settings = self._settings
        with status_server(
            settings.agent_status_host,
            settings.agent_status_port,
            self.metrics.registry,
            self.system,
            stalled=self.consumer.stalled,
            joined=self.consumer.joined,
        ):
            tasks = [asyncio.create_task(self.consumer.run(), name="agent-consumer")]
            try:
                await supervise(tasks, self._stopping, self.consumer.stop)
            finally:
                await self.confirmer.close()

    def _bind(self) -> BoundDataset:
        with self.system.connect() as connection:
            bound = bind(self.dataset, connection, source=str(self._settings.agent_dataset_file))
        index.create_index_tables(self.index)
        return bound

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        self.system.dispose()
        if self.index is not self.system:
            self.index.dispose()
