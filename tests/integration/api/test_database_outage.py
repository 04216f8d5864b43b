"""The database away, or out of connections: the API answers 503 with Retry-After, says so once
in its log, and takes the same events once the database answers again, storing each once."""

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from services.api.api_keys import KeyStore, Scope
from shared.domain.contract.examples import EXAMPLES
from shared.storage.database import make_engine
from shared.storage.tables.api import IdempotencyRecord
from tests.integration.conftest import relay_settings

PROBLEMS_LOGGER = "services.api.problems"


class LoopbackProxy:
    """A TCP proxy on loopback in front of PostgreSQL, on an event loop of its own (the API's
    synchronous database calls may block the test's loop): ``cut`` closes every connection
    through it and refuses new ones, as a database that went away; ``restore`` lets them in
    again; ``refuse_next`` closes that many new connections as soon as they arrive."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.refuse_next = 0

    def __enter__(self) -> "LoopbackProxy":
        self._thread.start()
        self.restore()
        return self

    def __exit__(self, *_: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def restore(self) -> None:
        self._call(self._listen())

    def cut(self) -> None:
        self._call(self._close_all())

    def _call(self, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _serve(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if self.refuse_next > 0:
            self.refuse_next -= 1
            client.transport.abort()
            return
        server_in, server = await asyncio.open_connection(*self._target)
        self._open |= {client, server}
        await asyncio.gather(self._pipe(client_in, server), self._pipe(server_in, client))

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65_536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._open.discard(sink)


@pytest.fixture
def postgres_behind_proxy(migrated_url: str) -> Iterator[tuple[str, LoopbackProxy]]:
    """The test's PostgreSQL database reached through a :class:`LoopbackProxy`."""
    if not migrated_url.startswith("postgresql"):
        pytest.skip("only a database server can be cut off; SQLite is a file in the process")
    url = make_url(migrated_url)
    with LoopbackProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield url.set(port=proxy.port).render_as_string(hide_password=False), proxy


def fresh_event() -> dict[str, Any]:
    return {**EXAMPLES["marketing.contact"], "event_id": str(uuid.uuid4())}


def stored(engine: Engine, event_id: str) -> int:
    with engine.connect() as connection:
        count = select(func.count()).where(IdempotencyRecord.event_id == uuid.UUID(event_id))
        return connection.execute(count).scalar_one()


def assert_store_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    problem = response.json()
    assert problem["type"] == "urn:gallring:problem:store-unavailable"
    assert "nothing was stored" in problem["detail"]
    assert "safe to send it again" in problem["detail"]


async def test_while_the_database_is_away_events_are_answered_503_and_accepted_after(
    make_api, postgres_behind_proxy: tuple[str, LoopbackProxy], caplog: pytest.LogCaptureFixture
) -> None:
    url, proxy = postgres_behind_proxy
    # The relay would be away too; it is not what this test is about.
    async with make_api(database_url=url, relay=relay_settings(enabled=False)) as api:
        headers = api.key(Scope.EVENTS_WRITE, Scope.ERASURES_READ)
        assert (await api.client.post("/v1/events", json=fresh_event(), headers=headers)).is_success
        event = fresh_event()
        caplog.set_level(logging.INFO)
        proxy.cut()
        try:
            for _ in range(3):
                assert_store_unavailable(
                    await api.client.post("/v1/events", json=event, headers=headers)
                )
            # Any route that needs the database: the same answer.
            assert_store_unavailable(await api.client.get("/v1/erasures", headers=headers))
        finally:
            proxy.restore()
        answer = await api.client.post("/v1/events", json=event, headers=headers)
        assert answer.status_code == 202, answer.text
        again = await api.client.post("/v1/events", json=event, headers=headers)
        assert again.status_code == 200  # a replay: it was stored once
        assert stored(api.engine, event["event_id"]) == 1

    said = [r.getMessage() for r in caplog.records if r.name == PROBLEMS_LOGGER]
    assert len(said) == 2, said  # once when it went, once when it came back
    assert said[0].startswith("database unavailable")
    assert said[1].startswith("database back after")
    assert "4 request(s) were answered 503" in said[1]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.WARNING)


async def test_the_intake_connects_again_when_its_first_reconnect_is_refused(
    make_api, postgres_behind_proxy: tuple[str, LoopbackProxy]
) -> None:
    url, proxy = postgres_behind_proxy
    # Keys trusted from the cache and no relay: the intake writer is the only one to connect.
    async with make_api(
        database_url=url, relay=relay_settings(enabled=False), api_key_cache_seconds=300
    ) as api:
        headers = api.key(Scope.EVENTS_WRITE)
        assert (await api.client.post("/v1/events", json=fresh_event(), headers=headers)).is_success
        proxy.cut()  # the writer's connection breaks…
        proxy.refuse_next = 1  # …and its first new one is refused, as by a restarting server
        proxy.restore()
        event = fresh_event()
        response = await api.client.post("/v1/events", json=event, headers=headers)
        assert response.status_code == 202, response.text
        assert proxy.refuse_next == 0
        assert stored(api.engine, event["event_id"]) == 1


async def test_a_request_that_finds_no_free_connection_is_answered_503(make_api) -> None:
    # One connection, and not long to wait for it: the test holds it.
    async with make_api(
        database_pool_size=1,
        database_max_overflow=0,
        database_pool_timeout_seconds=2,
        relay=relay_settings(enabled=False),
    ) as api:
        # The key made on an engine of its own: the API's pruner may be using the one
        # connection at start.
        keys_engine = make_engine(api.settings.database_url)
        try:
            key = KeyStore(keys_engine).create(
                "test-client", {Scope.EVENTS_WRITE, Scope.ERASURES_READ}
            )
        finally:
            keys_engine.dispose()
        headers = {"Authorization": f"Bearer {key}"}
        event = fresh_event()
        with api.engine.connect():
            assert_store_unavailable(
                await api.client.post("/v1/events", json=event, headers=headers)
            )
            assert_store_unavailable(await api.client.get("/v1/erasures", headers=headers))
        response = await api.client.post("/v1/events", json=event, headers=headers)
        assert response.status_code == 202, response.text
        assert stored(api.engine, event["event_id"]) == 1
