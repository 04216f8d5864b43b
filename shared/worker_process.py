"""What the purger and the notifier share as processes: the schema brought up to date, the
service run until SIGINT or SIGTERM on uvloop's event loop, its metrics on a port of its own, and
its tasks supervised (the first one to fail stops the rest and the process)."""

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, Protocol, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from shared.database import make_engine
from shared.heap import tune_garbage_collection
from shared.migrate import upgrade

STOP_SECONDS = 15.0
_Result = TypeVar("_Result")


class Worker(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


def serve(database_url: str, build: Callable[[Engine], Worker], started: str) -> None:
    """Run the worker ``build`` makes until a signal; ``started`` is logged once it runs."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    upgrade(database_url)
    run_event_loop(_run(database_url, build, started))


def run_event_loop(main: Coroutine[Any, Any, _Result]) -> _Result:
    """Run ``main`` on uvloop where there is one, as uvicorn runs the API: the notifier delivers
    an eighth more per second on it than on asyncio's own loop (bench/notifier_bench.py).
    Elsewhere (Windows, PyPy) on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def _run(database_url: str, build: Callable[[Engine], Worker], started: str) -> None:
    db = make_engine(database_url)
    worker = build(db)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, worker.stop)
    logging.getLogger("gallring").info(started)
    tune_garbage_collection()
    try:
        await worker.run()
    finally:
        db.dispose()


@contextlib.contextmanager
def status_server(host: str, port: int, registry: CollectorRegistry, db: Engine) -> Iterator[None]:
    """While inside, on ``host:port`` (port 0: none): ``GET /metrics`` for Prometheus,
    ``/healthz`` (the process serves) and ``/readyz`` (its database answers) for probes, which
    must not run the metrics' counting queries every few seconds."""
    if not port:
        yield
        return
    server = make_server(host, port, _status_app(registry, db), ThreadingWSGIServer, _Quiet)
    threading.Thread(target=server.serve_forever, name="status-server", daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _status_app(registry: CollectorRegistry, db: Engine) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            status, body = "200 OK", b'{"status":"ok"}'
        elif path == "/readyz" and _database_answers(db):
            status, body = "200 OK", b'{"status":"ready"}'
        elif path == "/readyz":
            status, body = "503 Service Unavailable", b'{"status":"database unreachable"}'
        else:
            status, body = "404 Not Found", b'{"status":"no such path"}'
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return app


def _database_answers(db: Engine) -> bool:
    try:
        with db.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


class _Quiet(WSGIRequestHandler):
    """Probes every few seconds would fill the log with access lines."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def supervise(
    tasks: list[asyncio.Task[None]], stopping: asyncio.Event, stop_tasks: Callable[[], None]
) -> None:
    """Wait for ``stopping`` or for a task to fail (re-raised), then stop the tasks and give
    them ``STOP_SECONDS`` to finish what they hold."""
    try:
        waiting = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        for task in done:
            if task is not waiting and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        stop_tasks()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=STOP_SECONDS)
