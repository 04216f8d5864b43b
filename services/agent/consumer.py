"""The agent's consumer: erasure commands from ``gallring.erasure-commands.v1``, in a consumer
group of its own, a batch at a time through the shared :class:`ConsumerLoop`.

Before each batch an index pass finds the rows written since the last one. Then, per command:
another system's is skipped, and so is a category the dataset does not hold (not confirmed: the
system holds none of it); the rest is erased in one transaction on the system's database, then
confirmed through the API. A command that cannot be applied as the dataset says
(:class:`ErasureFailed`), or whose confirmation the API refuses for good, is raised as
:class:`Unappliable`: it goes to the dead-letter topic with its reason, unconfirmed. The API
away is an outage: the batch is read again later, and its erasures, done already, are then
no-ops. Offsets are committed once the batch's confirmations were given.

Logs and metrics name erasure ids, categories, tables and counts, never a pseudonym or scope.
"""

import asyncio
import dataclasses
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from uuid import UUID

from aiokafka import ConsumerRecord
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from services.agent import index
from services.agent.confirm import ConfirmationRefused, Confirmer
from services.agent.database import again_if_reconnected
from services.agent.erase import (
    ErasureCounts,
    ErasureFailed,
    ProvenClock,
    SubjectScope,
    erase_in_transactions_of_its_own,
    schema_error,
    schema_reason,
)
from services.agent.metrics import AgentMetrics
from services.agent.schema import BoundDataset, CategoryPlan
from shared.domain.contract.erasure_messages import ErasureCommand
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging.consumer_loop import Unappliable

log = logging.getLogger(__name__)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
FORGET_DELETED_SECONDS = 3600.0  # how often the entries of rows deleted by others are dropped
_REMEMBERED = 10_000  # erasures confirmed lately, so a batch read again counts none twice


@dataclass(frozen=True)
class Incoming:
    """A command and its message's key: the subject pseudonym, or (a command published again,
    ``scope`` None) the subject hash."""

    command: ErasureCommand
    key: str


class CommandApplier:
    """Parses and applies the commands of one system; :attr:`bound` is set once the dataset
    was bound to its database."""

    def __init__(
        self,
        system_id: str,
        *,
        system: Engine,
        index_engine: Engine,
        pseudonymiser: Pseudonymiser,
        confirmer: Confirmer,
        metrics: AgentMetrics,
        dry_run: bool,
    ) -> None:
        self.system_id = system_id
        self.bound: BoundDataset | None = None
        self._system = system
        self._index = index_engine
        self._pseudonymiser = pseudonymiser
        self._confirmer = confirmer
        self._metrics = metrics
        self._dry_run = dry_run
        self._forgot_at = time.monotonic()
        self._confirmed: OrderedDict[UUID, None] = OrderedDict()
        self._last_failed: UUID | None = None
        self._broken: dict[str, str] = {}  # table -> driver error type, as of the last check

    def parse(self, record: ConsumerRecord) -> Incoming:
        """The command; ``ValueError`` (a dead letter) for one of ours that names no subject."""
        command = ErasureCommand.model_validate_json(record.value)
        key = record.key.decode(errors="replace") if record.key is not None else ""
        if command.system not in (None, self.system_id):
            return Incoming(command, key)  # another system's: skipped, whatever its key
        if command.scope is not None and not _HEX64.match(key):
            raise ValueError("an erasure command must be keyed by the subject pseudonym")
        if command.scope is None and (command.subject_hash is None or command.clock_hash is None):
            raise ValueError("a command without a scope must carry subject_hash and clock_hash")
        return Incoming(command, key)

    async def apply(self, items: list[Incoming]) -> None:
        mine = [item for item in items if item.command.system in (None, self.system_id)]
        if len(mine) < len(items):
            self._metrics.commands.labels("skipped").inc(len(items) - len(mine))
        if not mine:
            return
        await asyncio.to_thread(self._index_pass)
        for item in mine:
            await self._apply_one(item)

    def _index_pass(self) -> None:
        """Check that every table of the dataset is still as it was bound, then bring the index
        up to date for the categories whose tables all are. A category with a table gone (or a
        column) is left out: its commands go to the dead-letter topic with the reason, never
        confirmed (its index is no longer kept, so an erasure would find nothing and confirm)."""
        assert self.bound is not None
        self._broken = again_if_reconnected(self._check_tables)
        usable = {
            category: plan
            for category, plan in self.bound.categories.items()
            if self._broken_table(plan) is None
        }
        started = time.monotonic()
        if usable:
            done = index.index_pass(
                dataclasses.replace(
                    self.bound,
                    tables={
                        name: table
                        for name, table in self.bound.tables.items()
                        if name not in self._broken
                    },
                    categories=usable,
                ),
                system=self._system,
                index=self._index,
                pseudonymiser=self._pseudonymiser,
            )
            for table, read in done.read.items():
                self._metrics.index_rows.labels(table).inc(read)
        self._metrics.index_pass_seconds.observe(time.monotonic() - started)
        if time.monotonic() - self._forgot_at > FORGET_DELETED_SECONDS and not self._broken:
            index.forget_deleted_rows(self.bound, system=self._system, index=self._index)
            self._forgot_at = time.monotonic()

    def _check_tables(self) -> dict[str, str]:
        """The tables no longer as bound (gone, or a column gone), with the driver's error type;
        the database away is raised (an outage: the batch is read again)."""
        assert self.bound is not None
        broken: dict[str, str] = {}
        with self._system.connect() as connection:
            for name, table in self.bound.tables.items():
                try:
                    with connection.begin():  # each its own: a failure aborts PostgreSQL's
                        connection.execute(select(*table.table.c).limit(0))
                except (ProgrammingError, OperationalError) as error:
                    if isinstance(error, OperationalError) and not schema_error(error):
                        raise
                    broken[name] = type(error.orig).__name__
        if broken:
            log.warning(
                "agent: tables not as the dataset says: %s; their categories' commands go to "
                "the dead-letter topic",
                ", ".join(f"{name} ({kind})" for name, kind in sorted(broken.items())),
            )
        return broken

    def _broken_table(self, plan: CategoryPlan) -> str | None:
        """The first table the category erases, or reaches the person through, that is broken."""
        for table, _ in plan.steps:
            for name in table.path:
                if name in self._broken:
                    return name
        return None

    async def _apply_one(self, item: Incoming) -> None:
        assert self.bound is not None
        command = item.command
        category = command.category.value
        if not self.bound.holds(category):
            log.info(
                "agent: erasure %s skipped: the dataset holds no %s", command.erasure_id, category
            )
            self._metrics.commands.labels("skipped").inc()
            return
        broken = self._broken_table(self.bound.categories[command.category])
        if broken is not None:
            reason = schema_reason(category, broken, self._broken[broken])
            self._failed(command.erasure_id, reason)
            raise Unappliable(reason)
        target: SubjectScope | ProvenClock
        if command.scope is None:
            assert command.subject_hash is not None and command.clock_hash is not None
            target = ProvenClock(command.subject_hash, command.clock_hash)
        else:
            target = SubjectScope(item.key, command.scope)
        try:
            counts = await asyncio.to_thread(self._erase, category, target)
        except ErasureFailed as error:
            self._failed(command.erasure_id, error.reason)
            raise Unappliable(error.reason) from None
        if self._dry_run:
            log.info(
                "agent: dry run: erasure %s (%s) would erase rows per table %s; nothing changed, "
                "nothing confirmed",
                command.erasure_id,
                category,
                counts.tables,
            )
            self._metrics.commands.labels("dry_run").inc()
            return
        for table, erased in counts.tables.items():
            if erased:
                self._metrics.rows_erased.labels(table).inc(erased)
        try:
            status = await self._confirmer.confirm(command.erasure_id)
        except ConfirmationRefused as error:
            reason = f"{category}: erased, but the API refused the confirmation ({error.status})"
            self._failed(command.erasure_id, reason)
            raise Unappliable(reason) from None
        if counts.total or command.erasure_id not in self._confirmed:
            self._metrics.commands.labels("erased").inc()
        self._remember(command.erasure_id)
        log.info(
            "agent: erasure %s (%s) erased rows per table %s; confirmed (%d)",
            command.erasure_id,
            category,
            counts.tables,
            status,
        )

    def _erase(self, category: str, target: SubjectScope | ProvenClock) -> ErasureCounts:
        """Run again once on a connection found closed (the database restarted): an erasure
        done twice erases nothing more."""
        assert self.bound is not None
        bound = self.bound
        return again_if_reconnected(
            lambda: erase_in_transactions_of_its_own(
                bound,
                self._system,
                self._index,
                category=category,
                target=target,
                pseudonymiser=self._pseudonymiser,
                dry_run=self._dry_run,
            )
        )

    def _failed(self, erasure_id: UUID, reason: str) -> None:
        # A batch that raised is applied again one command at a time: counted and logged once.
        if erasure_id == self._last_failed:
            return
        self._last_failed = erasure_id
        self._metrics.commands.labels("failed").inc()
        log.warning("agent: erasure %s not applied, not confirmed: %s", erasure_id, reason)

    def _remember(self, erasure_id: UUID) -> None:
        self._confirmed[erasure_id] = None
        self._confirmed.move_to_end(erasure_id)
        while len(self._confirmed) > _REMEMBERED:
            self._confirmed.popitem(last=False)
