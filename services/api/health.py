"""``/healthz`` (the process is up), ``/readyz`` (it can do its work), ``/metrics`` (Prometheus).

These three need no credentials: they say nothing about anyone.
"""

import asyncio
import math
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, func, select

from services.api.dependencies import DbEngine
from services.api.problems import PROBLEM_JSON, PROBLEM_RESPONSE
from shared.messaging.kafka import make_client
from shared.runtime.settings import KafkaSettings
from shared.storage.database import database_answers
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of

router = APIRouter(tags=["health"])
BROKER_CHECK_SECONDS = 3.0
BROKER_CHECK_TTL = 2.0
BACKLOG_TTL_SECONDS = 1.0
BACKLOG_WAIT_SECONDS = 1.0


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database and broker reachable",
    responses={
        503: {"description": "The database or the broker cannot be reached", **PROBLEM_RESPONSE}
    },
)
async def readyz(request: Request, db: DbEngine) -> JSONResponse:
    state = request.app.state
    database_ok = await run_in_threadpool(database_answers, db)
    broker_ok = await _broker_reachable_cached(state)
    checks = {"database": _word(database_ok), "broker": _word(broker_ok)}
    if database_ok and broker_ok:
        return JSONResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, word in checks.items() if word != "ok")
    return JSONResponse(
        {
            "type": "urn:gallring:problem:not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": f"Cannot reach: {failing}. Accepted events wait in the outbox meanwhile.",
            "checks": checks,
        },
        status_code=503,
        media_type=PROBLEM_JSON,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "The Prometheus text format"}},
)
async def get_metrics(request: Request) -> Response:
    state = request.app.state
    state.metrics.outbox_backlog.set(await state.outbox_backlog.count())
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class OutboxBacklog:
    """The outbox's rows for ``/metrics``. Anyone may scrape it, so the table is counted at most
    once per ``BACKLOG_TTL_SECONDS`` however many scrapes come, and a scrape waits for a count at
    most ``BACKLOG_WAIT_SECONDS``: a database that cannot be reached (or answers slowly) makes
    the figure unknown (NaN) rather than the scrape fail or hang, when ops need the other
    figures most."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._counting: asyncio.Future[int] | None = None
        self._counted_at = -BACKLOG_TTL_SECONDS
        self._rows = math.nan

    async def count(self) -> float:
        if self._counting is None and time.monotonic() - self._counted_at >= BACKLOG_TTL_SECONDS:
            self._counting = asyncio.ensure_future(run_in_threadpool(_outbox_rows, self._engine))
            self._counting.add_done_callback(self._counted)
        if self._counting is not None:  # a count in progress: waited for, not cancelled
            done, _ = await asyncio.wait({self._counting}, timeout=BACKLOG_WAIT_SECONDS)
            if not done:
                return math.nan
        return self._rows

    def _counted(self, counting: "asyncio.Future[int]") -> None:
        self._counting, self._counted_at = None, time.monotonic()
        failed = counting.cancelled() or counting.exception() is not None
        self._rows = math.nan if failed else float(counting.result())


async def _broker_reachable_cached(state: Any) -> bool:
    """Anyone may call /readyz: a burst of calls must not become a burst of broker connections."""
    checked_at, reachable = getattr(state, "broker_check", (-BROKER_CHECK_TTL, False))
    if time.monotonic() - checked_at >= BROKER_CHECK_TTL:
        reachable = await _broker_reachable(state.settings.kafka)
        state.broker_check = (time.monotonic(), reachable)
    return reachable


async def _broker_reachable(settings: KafkaSettings) -> bool:
    client = make_client(settings, purpose="readyz")
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=BROKER_CHECK_SECONDS)
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    finally:
        await client.close()
    return True


def _outbox_rows(engine: Engine) -> int:
    outbox = table_of(OutboxMessage)
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(outbox)).scalar_one()


def _word(ok: bool) -> str:
    return "ok" if ok else "unreachable"
