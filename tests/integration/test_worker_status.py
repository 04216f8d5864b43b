"""The purger's and notifier's status port as probes and Prometheus see it: metrics for the
scrape, cheap health and readiness answers that run none of the metrics' queries, and a
liveness answer that tells whether the event loop still turns.

The status server is entered from an event loop (the one it watches); the tests ask it from
threads, as a probe asks from outside, so that the loop keeps turning meanwhile."""

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from shared.messaging.embedded_broker import free_loopback_port
from shared.runtime import status_server as status_module
from shared.runtime.status_server import status_server
from shared.storage.database import make_engine
from tests.polling import eventually


class CountingCollector:
    """Stands in for the services' collectors, which count rows at every scrape."""

    def __init__(self) -> None:
        self.collected = 0

    def collect(self):
        self.collected += 1
        yield GaugeMetricFamily("gallring_rows", "rows counted", value=1)


def get_blocking(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def get(port: int, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(get_blocking, port, path)


async def test_probes_answer_without_running_the_metrics_queries(tmp_path: Path) -> None:
    registry, collector = CollectorRegistry(), CountingCollector()
    registry.register(collector)
    collector.collected = 0  # registering collects once, to learn the names
    db = make_engine(f"sqlite:///{tmp_path / 'gallring.db'}")
    port = free_loopback_port()
    try:
        with status_server("127.0.0.1", port, registry, db):
            assert await get(port, "/healthz") == (200, '{"status":"ok"}')
            assert await get(port, "/readyz") == (200, '{"status":"ready"}')
            assert collector.collected == 0
            status, page = await get(port, "/metrics")
            assert status == 200 and "gallring_rows 1.0" in page
            assert collector.collected == 1
            assert (await get(port, "/anything"))[0] == 404
    finally:
        db.dispose()


async def test_a_worker_whose_database_is_away_is_alive_but_not_ready() -> None:
    refusing = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_loopback_port()}/x")
    port = free_loopback_port()
    try:
        with status_server("127.0.0.1", port, CollectorRegistry(), refusing):
            assert (await get(port, "/healthz"))[0] == 200
            status, body = await get(port, "/readyz")
            assert (status, json.loads(body)) == (503, {"status": "database unreachable"})
    finally:
        refusing.dispose()


async def test_a_worker_whose_consumer_is_stalled_is_not_ready_until_it_moves(
    tmp_path: Path,
) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'gallring.db'}")
    port = free_loopback_port()
    stalled = True
    try:
        with status_server("127.0.0.1", port, CollectorRegistry(), db, stalled=lambda: stalled):
            assert (await get(port, "/healthz"))[0] == 200
            status, body = await get(port, "/readyz")
            assert status == 503
            assert json.loads(body)["status"].startswith("consumer stalled")
            stalled = False
            assert await get(port, "/readyz") == (200, '{"status":"ready"}')
    finally:
        db.dispose()


async def test_a_worker_whose_consumer_has_not_joined_its_group_is_not_ready_until_it_has(
    tmp_path: Path,
) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'gallring.db'}")
    port = free_loopback_port()
    joined = False
    try:
        with status_server("127.0.0.1", port, CollectorRegistry(), db, joined=lambda: joined):
            assert (await get(port, "/healthz"))[0] == 200
            status, body = await get(port, "/readyz")
            assert (status, json.loads(body)) == (503, {"status": "consumer not yet in its group"})
            joined = True
            assert await get(port, "/readyz") == (200, '{"status":"ready"}')
    finally:
        db.dispose()


async def test_a_database_that_never_answers_costs_one_check_at_a_time_and_a_bounded_wait() -> None:
    """Probes (or anyone reaching the port) keep asking; they must not pile up connections."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks
    silent.listen(64)
    attempts: list[socket.socket] = []
    threading.Thread(
        target=lambda: [attempts.append(silent.accept()[0]) for _ in iter(int, 1)], daemon=True
    ).start()
    database = f"127.0.0.1:{silent.getsockname()[1]}/x?connect_timeout=2"
    db = make_engine(f"postgresql+psycopg://postgres@{database}")
    port = free_loopback_port()
    try:
        with status_server("127.0.0.1", port, CollectorRegistry(), db):
            started = time.monotonic()
            with ThreadPoolExecutor(8) as probes:
                answers = await asyncio.to_thread(
                    lambda: list(probes.map(lambda _: get_blocking(port, "/readyz")[0], range(8)))
                )
            took = time.monotonic() - started
            assert (await get(port, "/healthz"))[0] == 200
    finally:
        db.dispose()
        silent.close()
    # One check waited out the connect timeout; the others had the last answer at once (not
    # ready: none had been shown yet), and only that one check reached the database.
    assert answers == [503] * 8
    assert took < 5
    assert len(attempts) == 1


async def test_a_wedged_event_loop_is_not_live_and_one_that_turns_again_is(
    tmp_path: Path, monkeypatch
) -> None:
    """The status server's thread answers while the loop is blocked: /healthz must not say
    live then."""
    monkeypatch.setattr(status_module, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(status_module, "LIVENESS_STALE_SECONDS", 0.5)
    db = make_engine(f"sqlite:///{tmp_path / 'gallring.db'}")
    port = free_loopback_port()
    answers: list[int] = []

    def probe_until_refused() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answers.append(get_blocking(port, "/healthz")[0])
            if answers[-1] == 503:
                return
            time.sleep(0.05)

    try:
        with status_server("127.0.0.1", port, CollectorRegistry(), db):
            assert await get(port, "/healthz") == (200, '{"status":"ok"}')
            prober = threading.Thread(target=probe_until_refused)
            prober.start()
            prober.join()  # on the loop's thread: the loop is wedged until the prober ends
            assert answers[-1] == 503
            assert get_blocking(port, "/readyz")[0] == 200  # the database still answers

            async def live_again() -> bool:
                return (await get(port, "/healthz"))[0] == 200

            await eventually(live_again, timeout=30)
    finally:
        db.dispose()
