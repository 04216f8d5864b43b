"""The purger's and the notifier's status port: ``/metrics`` for Prometheus, and ``/healthz``
and ``/readyz`` for probes, which must not run the metrics' counting queries every few seconds.

The port is served from a thread of its own, so that a busy event loop does not keep probes
waiting; for the same reason it would answer while the loop is wedged. ``/healthz`` therefore
asks the loop's own heartbeat: a task on the loop stamps the time every second, and a stamp
older than ``LIVENESS_STALE_SECONDS`` means the loop no longer turns (503, and the orchestrator
restarts the process). The services do their blocking work (database, DNS) in threads, so a
loop that stalls for that long is stuck, not busy.

Anyone who reaches the port may ask ``/readyz`` as often as they like: one database check runs
at a time, each bounded by the engine's connect timeout, and the others get the last answer.
``/readyz`` is also 503 while the worker's consumer is stalled (messages wait, none is applied):
a process that says ready while it consumes nothing hides the fault from its orchestrator.
For the same reason it is 503 until the consumer has joined its group (after a start, and after
the broker lost track of it): a worker given no partitions (more replicas than partitions) has
joined too, and is ready.
"""

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from sqlalchemy import Engine

from shared.storage.database import database_answers

READINESS_TTL = 2.0  # seconds an answer stands for the checks that arrive meanwhile
HEARTBEAT_SECONDS = 1.0  # how often the event loop stamps its heartbeat
LIVENESS_STALE_SECONDS = 10.0  # a heartbeat older than this: the loop is wedged


@contextlib.contextmanager
def status_server(
    host: str,
    port: int,
    registry: CollectorRegistry,
    db: Engine,
    stalled: Callable[[], bool] = lambda: False,
    joined: Callable[[], bool] = lambda: True,
) -> Iterator[None]:
    """Serves on ``host:port`` (IPv4 or IPv6; port 0: nothing) while inside; entered from the
    event loop whose liveness ``/healthz`` tells; ``stalled`` tells whether its consumer is,
    ``joined`` whether it has joined its group."""
    if not port:
        yield
        return

    class Server(ThreadingWSGIServer):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    heartbeat = Heartbeat()
    beating = asyncio.get_running_loop().create_task(heartbeat.beat(), name="heartbeat")
    readiness = Readiness(db, stalled, joined)
    server = make_server(host, port, status_app(registry, readiness, heartbeat), Server, _Quiet)
    threading.Thread(target=server.serve_forever, name="status-server", daemon=True).start()
    try:
        yield
    finally:
        beating.cancel()
        server.shutdown()
        server.server_close()


class Heartbeat:
    """The event loop's pulse, stamped on the loop and read from the status server's thread."""

    def __init__(self) -> None:
        self._stamp = time.monotonic()

    async def beat(self) -> None:
        while True:
            self._stamp = time.monotonic()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def alive(self) -> bool:
        return time.monotonic() - self._stamp < LIVENESS_STALE_SECONDS


class Readiness:
    """Whether the database answers, asked at most once at a time and once per TTL, and the
    consumer has joined its group and is not stalled."""

    def __init__(
        self,
        db: Engine,
        stalled: Callable[[], bool] = lambda: False,
        joined: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = db
        self._stalled = stalled
        self._joined = joined
        self._checking = threading.Lock()
        self._answer = (-READINESS_TTL, False)  # (when, ready): not ready until shown

    def problem(self) -> str | None:
        """Why the worker is not ready, or None."""
        if not self._database_answers():
            return "database unreachable"
        if not self._joined():
            return "consumer not yet in its group"
        if self._stalled():
            return "consumer stalled: messages wait and none is applied"
        return None

    def _database_answers(self) -> bool:
        checked_at, ready = self._answer
        if time.monotonic() - checked_at < READINESS_TTL:
            return ready
        if not self._checking.acquire(blocking=False):
            return ready  # a check is under way: its predecessor's answer meanwhile
        try:
            self._answer = (time.monotonic(), database_answers(self._db))
        finally:
            self._checking.release()
        return self._answer[1]


def status_app(
    registry: CollectorRegistry, readiness: Readiness, heartbeat: Heartbeat
) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz" and heartbeat.alive():
            status, body = "200 OK", b'{"status":"ok"}'
        elif path == "/healthz":
            status, body = "503 Service Unavailable", b'{"status":"event loop stalled"}'
        elif path == "/readyz":
            problem = readiness.problem()
            if problem is None:
                status, body = "200 OK", b'{"status":"ready"}'
            else:
                status, body = "503 Service Unavailable", orjson.dumps({"status": problem})
        else:
            status, body = "404 Not Found", b'{"status":"no such path"}'
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return app


class _Quiet(WSGIRequestHandler):
    """Probes every few seconds would fill the log with access lines."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
