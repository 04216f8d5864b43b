"""The event intake's routes are the application's own, matched first and answered without
FastAPI's parameter solving (services/api/app.py, services/api/events/router.py). A dependency
added later, to the whole application or to the events router, must still run on them: these
tests add one as a developer would and post events."""

import inspect
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute

from services.api import app as app_module
from services.api.api_keys import Scope
from services.api.events.router import router as events_router
from shared.domain.contract.examples import EXAMPLES

_EVENT_TYPE = next(iter(EXAMPLES))


def _fresh_event() -> dict[str, Any]:
    return {**EXAMPLES[_EVENT_TYPE], "event_id": str(uuid.uuid4())}


def _on_the_application(monkeypatch: pytest.MonkeyPatch, dependency: Any) -> None:
    """As if ``create_app`` said ``FastAPI(..., dependencies=[dependency])``."""

    class WithDependency(FastAPI):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options, dependencies=[dependency])

    monkeypatch.setattr(app_module, "FastAPI", WithDependency)


def _on_the_events_router(monkeypatch: pytest.MonkeyPatch, dependency: Any) -> None:
    """As if the events router were declared ``APIRouter(..., dependencies=[dependency])``: its
    routes declared again on such a router."""
    router = APIRouter(dependencies=[dependency])
    options = [
        name
        for name, parameter in inspect.signature(APIRouter.add_api_route).parameters.items()
        if parameter.kind is parameter.KEYWORD_ONLY and name != "route_class_override"
    ]
    for route in events_router.routes:
        assert isinstance(route, APIRoute)
        router.add_api_route(
            route.path,
            route.endpoint,
            route_class_override=type(route),
            **{name: getattr(route, name) for name in options},
        )
    monkeypatch.setattr(app_module, "events_router", router)


@pytest.mark.parametrize("add", [_on_the_application, _on_the_events_router])
async def test_a_dependency_added_later_runs_on_the_intake_routes(
    make_api: Callable, monkeypatch: pytest.MonkeyPatch, add: Callable
) -> None:
    ran: list[str] = []

    async def dependency(request: Request) -> None:
        ran.append(request.url.path)

    add(monkeypatch, Depends(dependency))
    async with make_api() as api:
        headers = api.key(Scope.EVENTS_WRITE, Scope.DSR_WRITE)
        single = await api.client.post("/v1/events", json=_fresh_event(), headers=headers)
        assert single.status_code == 202, single.text
        batch = await api.client.post("/v1/events/batch", json=[_fresh_event()], headers=headers)
        assert batch.status_code == 200, batch.text
    assert ran == ["/v1/events", "/v1/events/batch"]


async def test_a_dependency_on_the_application_runs_on_every_route(
    make_api: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    async def dependency(request: Request) -> None:
        ran.append(request.url.path)

    _on_the_application(monkeypatch, Depends(dependency))
    async with make_api() as api:
        listed = await api.client.get("/v1/erasures", headers=api.key(Scope.ERASURES_READ))
        assert listed.status_code == 200, listed.text
    assert ran == ["/v1/erasures"]
