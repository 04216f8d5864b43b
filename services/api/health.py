"""``/healthz`` (the process is up), ``/readyz`` (it can do its work), ``/metrics`` (Prometheus).

These three need no credentials: they say nothing about anyone.
"""

import asyncio
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, func, select

from services.api.dependencies import DbEngine
from services.api.holds.reminders import ReviewDue, review_due
from services.api.problems import PROBLEM_JSON, PROBLEM_RESPONSE
from services.api.systems.service import owed_by_system
from shared.messaging.kafka import make_client
from shared.runtime.settings import KafkaSettings
from shared.storage.database import database_answers
from shared.storage.tables.api import CompanySystem
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of

router = APIRouter(tags=["health"])
BROKER_CHECK_SECONDS = 3.0
BROKER_CHECK_TTL = 2.0
BACKLOG_TTL_SECONDS = 1.0
BACKLOG_WAIT_SECONDS = 1.0
T = TypeVar("T")


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
    state.metrics.show_system_debts(await state.system_debts.value())
    state.metrics.show_holds_review_due(await state.holds_review_due.value())
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class ScrapedFigure(Generic[T]):
    """A figure ``/metrics`` reads from the database. Anyone may scrape it, so it is read at
    most once per ``BACKLOG_TTL_SECONDS`` however many scrapes come, and a scrape waits for it
    at most ``BACKLOG_WAIT_SECONDS``: a database that cannot be reached (or answers slowly)
    makes the figure unknown (``unknown``) rather than the scrape fail or hang, when ops need
    the other figures most."""

    def __init__(self, engine: Engine, read: Callable[[Engine], T], unknown: T) -> None:
        self._engine = engine
        self._read = read
        self._unknown = unknown
        self._reading: asyncio.Future[T] | None = None
        self._read_at = -BACKLOG_TTL_SECONDS
        self._value = unknown

    async def value(self) -> T:
        if self._reading is None and time.monotonic() - self._read_at >= BACKLOG_TTL_SECONDS:
            self._reading = asyncio.ensure_future(run_in_threadpool(self._read, self._engine))
            self._reading.add_done_callback(self._done)
        if self._reading is not None:  # a read in progress: waited for, not cancelled
            done, _ = await asyncio.wait({self._reading}, timeout=BACKLOG_WAIT_SECONDS)
            if not done:
                return self._unknown
        return self._value

    def _done(self, reading: "asyncio.Future[T]") -> None:
        self._reading, self._read_at = None, time.monotonic()
        failed = reading.cancelled() or reading.exception() is not None
        self._value = self._unknown if failed else reading.result()


class OutboxBacklog(ScrapedFigure[float]):
    """The outbox's rows for ``/metrics`` (NaN: unknown)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, _outbox_rows, math.nan)

    async def count(self) -> float:
        return await self.value()


#: Per system of the register: erasures it has not confirmed, how many of them are overdue, and
#: the age in seconds of the oldest one (0: none).
SystemDebts = dict[str, tuple[int, int, float]]


def system_debts(engine: Engine) -> ScrapedFigure[SystemDebts | None]:
    """What each system of the register owes, for ``/metrics`` (None: unknown)."""
    return ScrapedFigure(engine, _system_debts, None)


def holds_review_due(engine: Engine, zone: ZoneInfo) -> ScrapedFigure[ReviewDue | None]:
    """Standing holds per review threshold, for ``/metrics`` (None: unknown)."""
    return ScrapedFigure(engine, lambda db: review_due(db, today=datetime.now(zone).date()), None)


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


def _outbox_rows(engine: Engine) -> float:
    outbox = table_of(OutboxMessage)
    with engine.connect() as connection:
        return float(connection.execute(select(func.count()).select_from(outbox)).scalar_one())


def _system_debts(engine: Engine) -> SystemDebts:
    now = datetime.now(UTC)
    systems = table_of(CompanySystem)
    with engine.connect() as connection:
        registered = list(connection.execute(select(systems.c.system_id)).scalars())
        owed = owed_by_system(connection, now)
    debts: SystemDebts = dict.fromkeys(registered, (0, 0, 0.0))
    for system, (count, overdue, oldest) in owed.items():
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)  # SQLite's MIN() comes back naive
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        debts[system] = (count, overdue, max(age, 0.0))
    return debts


def _word(ok: bool) -> str:
    return "ok" if ok else "unreachable"
