"""Group commit: events from concurrent requests share one transaction, so one disk flush.

Each request hands its events to the writer and waits for its own outcomes; the writer stores
whatever has queued up meanwhile in one go. Under no load a group is one request and nothing
waits longer; under load, hundreds of requests share a commit. A request is answered only after
its group committed: 202 still means durable.

Several groups may be in flight at once (``concurrent_groups``), each in its own transaction. Only
events sent concurrently can land in different groups, and those have no order between them; an
event sent after another was answered always commits after it.

On PostgreSQL each writer task keeps its own asynchronous connection and stores a group with one
statement on the event loop; a thread per group would cost more than the statement.
Elsewhere (SQLite) a group is stored in a thread.
"""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from services.api.events import service

log = logging.getLogger(__name__)
_Submission = tuple[Sequence[service.Intake], "asyncio.Future[list[service.Outcome]]"]
_STOP = None  # one per writer task on the queue: store what came before, then leave
_ATTEMPTS_ON_POSTGRESQL = 3
_CONNECT_TIMEOUT_SECONDS = 10
#: A pause before connecting again (times the attempt): a server restarting is given a moment.
_RECONNECT_PAUSE_SECONDS = 0.1


class IntakeWriter:
    def __init__(
        self, engine: Engine, *, concurrent_groups: int = 2, max_group_events: int = 2_000
    ) -> None:
        self._engine = engine
        self._concurrent_groups = concurrent_groups
        self._max_group_events = max_group_events
        self._queue: asyncio.Queue[_Submission | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"intake-writer-{n}")
            for n in range(self._concurrent_groups)
        ]

    async def stop(self) -> None:
        """Store what is queued, then stop."""
        for _ in self._tasks:
            await self._queue.put(_STOP)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, intakes: Sequence[service.Intake]) -> list[service.Outcome]:
        """Store ``intakes`` (in a group with others) and return their outcomes, in order."""
        outcome: asyncio.Future[list[service.Outcome]] = asyncio.get_running_loop().create_future()
        await self._queue.put((intakes, outcome))
        return await outcome

    async def _run(self) -> None:
        store = (
            _PostgresStore(self._engine)
            if self._engine.dialect.name == "postgresql"
            else _ThreadedStore(self._engine)
        )
        try:
            stopping = False
            while not stopping:
                first = await self._queue.get()
                if first is _STOP:
                    return
                group = [first]
                size = len(first[0])
                while not self._queue.empty() and size < self._max_group_events:
                    submission = self._queue.get_nowait()
                    if submission is _STOP:
                        stopping = True
                        break
                    group.append(submission)
                    size += len(submission[0])
                await _store(store, group)
        finally:
            await store.close()


async def _store(store: "_PostgresStore | _ThreadedStore", group: list[_Submission]) -> None:
    intakes = [intake for submitted, _ in group for intake in submitted]
    try:
        outcomes = await store.accept(intakes, now=datetime.now(UTC))
    except Exception as error:  # noqa: BLE001 - every waiting request gets the failure
        for _, outcome in group:
            if not outcome.done():
                outcome.set_exception(error)
        return
    start = 0
    for submitted, outcome in group:
        if not outcome.done():  # its request may have been cancelled (client gone)
            outcome.set_result(outcomes[start : start + len(submitted)])
        start += len(submitted)


class _PostgresStore:
    """A writer task's own autocommit connection and cursor, opened when first needed.

    A group the database rolled back (deadlock victim) is stored again. So is one whose
    connection broke, or could not be made, on a new connection: should the lost statement have
    committed, its events then answer as replays (200), which is still true.
    """

    def __init__(self, engine: Engine) -> None:
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._cursor: psycopg.AsyncCursor[Any] | None = None

    async def accept(
        self, intakes: Sequence[service.Intake], *, now: datetime
    ) -> list[service.Outcome]:
        for attempt in range(1, _ATTEMPTS_ON_POSTGRESQL + 1):
            cursor = None
            try:
                cursor = await self._connected()
                return await service.accept_on_postgresql(cursor, intakes, now=now)
            except psycopg.OperationalError as error:
                # No connection (refused, or the server not accepting them yet) or a broken
                # one: connected again on the next attempt. The last attempt's error reaches
                # the requests, which the API answers 503 (services/api/problems.py).
                rolled_back = error.sqlstate in service.ROLLED_BACK
                broken = cursor is None or cursor.connection.broken
                if not (rolled_back or broken) or attempt == _ATTEMPTS_ON_POSTGRESQL:
                    raise
                if broken:
                    await self.close()
                    await asyncio.sleep(_RECONNECT_PAUSE_SECONDS * attempt)
                log.warning("intake writer: %s; storing the group again", type(error).__name__)
        raise AssertionError("unreachable")

    async def _connected(self) -> psycopg.AsyncCursor[Any]:
        if self._cursor is None or self._cursor.connection.closed:
            connection = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_SECONDS
            )
            self._cursor = connection.cursor()
        return self._cursor

    async def close(self) -> None:
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            await cursor.connection.close()


class _ThreadedStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def accept(
        self, intakes: Sequence[service.Intake], *, now: datetime
    ) -> list[service.Outcome]:
        return await asyncio.to_thread(service.accept, self._engine, intakes, now=now)

    async def close(self) -> None:
        """Nothing to close: the engine's pool belongs to the application."""
