"""What the purger and the notifier share as processes: the schema brought up to date, the
service run until SIGINT or SIGTERM on uvloop's event loop, its metrics on a port of its own, and
its tasks supervised (the first one to fail stops the rest and the process)."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine

from shared.runtime.gc_tuning import tune_garbage_collection
from shared.runtime.logs import configure_logging
from shared.runtime.settings import DatabaseSettings
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade

STOP_SECONDS = 15.0
_Result = TypeVar("_Result")


class Worker(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


def serve(database: DatabaseSettings, build: Callable[[Engine], Worker], started: str) -> None:
    """Run the worker ``build`` makes until a signal; ``started`` is logged once it runs."""
    configure_logging()
    upgrade(database.database_url)
    run_event_loop(_run(database, build, started))


def run_event_loop(main: Coroutine[Any, Any, _Result]) -> _Result:
    """Run ``main`` on uvloop where there is one, as uvicorn runs the API: the notifier delivers
    an eighth more per second on it than on asyncio's own loop (bench/notifier_bench.py).
    Elsewhere (Windows, PyPy) on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def _run(database: DatabaseSettings, build: Callable[[Engine], Worker], started: str) -> None:
    db = make_engine(database.database_url, database.pool_limits())
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
            error = None if task is waiting else task.exception()
            if error is not None:
                raise error
    finally:
        stop_tasks()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=STOP_SECONDS)
