"""The API application: routers, error shape, credentials, metrics and the outbox relay.

``create_app`` wires everything from settings; engines and clients are made in the lifespan, once
per process, and handed to the routes on ``app.state``.
"""

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from pydantic import TypeAdapter
from sqlalchemy import Engine

from services.api import access_log, health, problems, prune
from services.api.api_keys import KeyStore
from services.api.auth import SECURITY_SCHEME, Authentication
from services.api.body_limit import BodyLimitMiddleware
from services.api.erasures.router import router as erasures_router
from services.api.events.router import router as events_router
from services.api.events.writer import IntakeWriter
from services.api.holds import reminders
from services.api.holds.router import router as holds_router
from services.api.metrics import ApiMetrics, MetricsMiddleware
from services.api.notifications.router import router as notifications_router
from services.api.notifications.router import signed_router as signed_notifications_router
from services.api.operation_ids import operation_id
from services.api.recipients.router import router as recipients_router
from services.api.recipients.router import unregistered_router
from services.api.reviews.router import router as reviews_router
from services.api.settings import ApiSettings
from services.api.subjects.router import router as subjects_router
from services.api.systems.router import router as systems_router
from shared.domain.contract import LifecycleEvent
from shared.domain.engine import RetentionEngine
from shared.messaging.outbox import OutboxRelay
from shared.runtime.gc_tuning import tune_garbage_collection
from shared.runtime.settings import load_settings
from shared.storage.database import make_engine
from shared.storage.pruning import PeriodicPruner

BATCH_PATH = "/v1/events/batch"
BATCH_BODY_FACTOR = 64  # a batch may be this many times a single event's limit
RELAY_STOP_SECONDS = 15.0
# FastAPI looks for OpenTelemetry providers on every request: a tenth of a single event's request
# path, for traces nobody collects unless an operator set OpenTelemetry up (api_opentelemetry).
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: ApiSettings, *, db_engine: Engine | None = None) -> FastAPI:
    metrics = ApiMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        access_log.install()
        engine = db_engine or make_engine(settings.database_url, settings.pool_limits())
        app.state.db_engine = engine
        app.state.key_store = KeyStore(engine, cache_seconds=settings.api_key_cache_seconds)
        app.state.outbox_backlog = health.OutboxBacklog(engine)
        app.state.system_debts = health.system_debts(engine)
        app.state.holds_review_due = health.holds_review_due(engine, zone)
        app.state.intake_writer = writer = IntakeWriter(engine)
        writer.start()
        relay = OutboxRelay(engine, settings.kafka, settings.relay, metrics.outbox)
        relay_task = None
        if settings.relay.enabled:
            relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        pruner = PeriodicPruner(
            lambda halt: prune.prune(engine, settings, datetime.now(UTC), halt),
            metrics.pruned,
            service="api",
        )
        pruner_task = asyncio.create_task(pruner.run(), name="api-pruner")
        reminder_loop = reminders.ReminderLoop(
            lambda: reminders.remind(engine, now=datetime.now(UTC), zone=zone),
            every_seconds=settings.api_hold_reminder_interval_seconds,
        )
        reminder_task = asyncio.create_task(reminder_loop.run(), name="hold-reminders")
        tune_garbage_collection()
        try:
            yield
        finally:
            await writer.stop()
            pruner.stop()  # a batch under way finishes; no other starts
            reminder_loop.stop()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(pruner_task, timeout=RELAY_STOP_SECONDS)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(reminder_task, timeout=RELAY_STOP_SECONDS)
            if relay_task is not None:
                relay.stop()
                # A round in flight may wait for the broker; past the limit it is cut short.
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(relay_task, timeout=RELAY_STOP_SECONDS)
            if db_engine is None:
                engine.dispose()

    app = FastAPI(
        telemetry=None if settings.api_opentelemetry else _NO_TELEMETRY,
        title="Gallring API",
        version="1",
        summary="Lifecycle events in; retention clocks and erasure proofs out.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.pseudonymiser = settings.pseudonymiser()
    app.state.secret_box = settings.secret_box()
    app.state.retention_engine = RetentionEngine(settings.policy())
    zone = app.state.retention_engine.zone

    problems.install(app)
    _add_intake_routes(app)
    for router in (
        health.router,
        subjects_router,
        erasures_router,
        recipients_router,
        unregistered_router,
        systems_router,
        holds_router,
        reviews_router,
        notifications_router,
        signed_notifications_router,
    ):
        app.include_router(router)

    single_limit = settings.api_max_body_bytes
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=lambda path: (
            single_limit * BATCH_BODY_FACTOR if path == BATCH_PATH else single_limit
        ),
    )
    # Every route needs a key but the public ones and the API documents; each route then asks
    # for its own scope.
    app.add_middleware(
        Authentication,
        public=_public_routes(),
        public_paths=_document_paths(app),
    )
    # Outside authentication, which reads keys from the database: a request that fails for
    # want of the database, wherever, is answered 503 with Retry-After, its outage logged once.
    app.add_middleware(problems.StoreUnavailableMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory services.api.app:app_from_environment``: GALLRING_* settings."""
    return create_app(load_settings(ApiSettings))


def _add_intake_routes(app: FastAPI) -> None:
    """The event intake is the hot path: its routes are the application's own, matched directly,
    where an included router's layers cost as much as a tenth of a single event; and first,
    ahead of the API documents' routes FastAPI adds, each a regular expression to try.

    They are added as ``app.post`` would add them, not copied into the list: so they take the
    application's dependencies (``FastAPI(dependencies=...)``) and ``dependency_overrides`` as
    every other route does, where copied ones would silently go without.
    """
    start = len(app.router.routes)
    for route in events_router.routes:
        assert isinstance(route, APIRoute)
        options = {name: getattr(route, name) for name in _ROUTE_OPTIONS}
        app.router.add_api_route(
            route.path, route.endpoint, route_class_override=type(route), **options
        )
    intake = app.router.routes[start:]
    del app.router.routes[start:]
    app.router.routes[:0] = intake


# What a route was declared with, to declare it again on the application (_add_intake_routes).
_ROUTE_OPTIONS = [
    name
    for name, parameter in inspect.signature(APIRouter.add_api_route).parameters.items()
    if parameter.kind is parameter.KEYWORD_ONLY and name != "route_class_override"
]


def _public_routes() -> list[APIRoute]:
    """Routes anyone may call: health and metrics, and the confirmations recipients sign with
    their webhook secret instead of an API key."""
    routes = [*health.router.routes, *signed_notifications_router.routes]
    return [route for route in routes if isinstance(route, APIRoute)]


def _document_paths(app: FastAPI) -> list[str]:
    urls = (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
    return [url for url in urls if url]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the v1 event contract as ``LifecycleEvent`` under components,
    and the API key every operation needs but the public ones."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        contract = TypeAdapter(LifecycleEvent).json_schema(
            ref_template="#/components/schemas/{model}"
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(contract.pop("$defs", {}))
        schemas["LifecycleEvent"] = contract
        batch = document["paths"][BATCH_PATH]["post"]["requestBody"]["content"]
        batch["application/json"]["schema"]["maxItems"] = app.state.settings.api_max_batch_events
        document["components"]["securitySchemes"] = {"apiKey": SECURITY_SCHEME}
        document["security"] = [{"apiKey": []}]
        for route in _public_routes():
            for method in route.methods or ():
                if operation := document["paths"].get(route.path, {}).get(method.lower()):
                    operation["security"] = []
        app.openapi_schema = document
    return app.openapi_schema
