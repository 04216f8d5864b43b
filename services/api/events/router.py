"""``POST /v1/events`` and ``POST /v1/events/batch``."""

from collections import Counter
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from pydantic import ValidationError
from pydantic_core import from_json
from starlette import types as asgi

from services.api.api_keys import Principal, Scope
from services.api.auth import authorize
from services.api.events import service
from services.api.events.schemas import BatchResult, EventAccepted
from services.api.operation_ids import operation_id
from services.api.problems import (
    PROBLEM_RESPONSE,
    STORE_UNAVAILABLE_RESPONSES,
    Problem,
    validation_problem,
)
from shared.domain.contract import LifecycleEvent, parse_event, parse_events
from shared.domain.contract.errors import FieldError, describe
from shared.domain.contract.events import INTERNAL_EVENT_TYPES
from shared.domain.contract.examples import EXAMPLES
from shared.domain.pseudonym import Pseudonymiser


class _RequestRoute(APIRoute):
    """A route whose endpoint takes the request and answers it itself, as both intake routes
    do. FastAPI's parameter solving and per-request exit stacks, a fifth of a single event's
    cost, are skipped: errors still reach the application's exception handlers, and the OpenAPI
    document still describes the route as declared.

    A route given dependencies (its router's, or the application's: app.py) is handled as any
    route is, so that they run; decided once here, not per request.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.dependant.dependencies:
            self.handle = super().handle  # type: ignore[method-assign]

    async def handle(self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send) -> None:
        if scope["method"] not in (self.methods or ()):
            await super().handle(scope, receive, send)  # 405, as on any route
            return
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


# Its routes go into the application's own list (app.py), so they take their operation ids here.
router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    route_class=_RequestRoute,
    generate_unique_id_function=operation_id,
    responses=STORE_UNAVAILABLE_RESPONSES,
)

_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/LifecycleEvent"},
                "examples": {
                    t: {"summary": t, "value": e}
                    for t, e in EXAMPLES.items()
                    if t not in INTERNAL_EVENT_TYPES
                },
            }
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                # Any item is taken: each is answered on its own, a valid event stored, anything
                # else answered "invalid" with why. Only a body that is not a JSON array, or has
                # too many items, is refused whole (422).
                "schema": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/LifecycleEvent"},
                            {
                                "description": "Anything else: answered in its result as "
                                "`invalid`, with the errors; the other items are not affected."
                            },
                        ]
                    },
                },
                "example": list(EXAMPLES.values())[:3],
            }
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=EventAccepted,
    summary="Report one lifecycle event",
    openapi_extra=_EVENT_BODY,
    responses={
        200: {"description": "The same event was accepted before (idempotent replay)"},
        401: PROBLEM_RESPONSE,
        403: PROBLEM_RESPONSE,
        409: {"description": "The event id was used before with another body", **PROBLEM_RESPONSE},
        413: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
    },
)
async def post_event(request: Request) -> Response:
    """Stored durably and queued for Kafka before the answer: 202 means it will not be lost.

    The answer is encoded here rather than by FastAPI's response model, which would validate it
    a second time: this is the intake's hot path."""
    principal = authorize(request, Scope.EVENTS_WRITE)
    event = _parse_one(await request.body())
    _check_may_send(principal, event)
    state = request.app.state
    intake = service.Intake.of(event, state.pseudonymiser, principal)
    [outcome] = await state.intake_writer.submit([intake])
    if outcome.status == "conflict":
        raise Problem(
            409,
            "event-id-conflict",
            "The event id was used for another event",
            f"Event {event.event_id} was accepted before with a different body; "
            "give a new event a new event_id.",
        )
    if outcome.status == "accepted":
        state.metrics.events_accepted[event.type].inc()
    assert outcome.accepted_at is not None
    answer = EventAccepted(event_id=outcome.event_id, accepted_at=outcome.accepted_at)
    return Response(
        answer.model_dump_json(),
        status_code=202 if outcome.status == "accepted" else 200,
        media_type="application/json",
    )


@router.post(
    "/batch",
    response_model=BatchResult,
    summary="Report many events at once (back-fills); up to 1,000 by default",
    openapi_extra=_BATCH_BODY,
    responses={
        401: PROBLEM_RESPONSE,
        403: PROBLEM_RESPONSE,
        413: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
    },
)
async def post_event_batch(request: Request) -> Response:
    """Every event is validated first; the valid new ones are stored in one transaction. The
    answer says per event ``accepted``, ``duplicate``, ``conflict`` or ``invalid`` (with why).

    The answer is built as plain data in :class:`BatchResult`'s shape and encoded by orjson:
    a thousand response models cost more than storing their events."""
    principal = authorize(request, Scope.EVENTS_WRITE)
    body = await request.body()
    state = request.app.state
    results, intakes, positions = await run_in_threadpool(
        _validate_batch, body, state.settings.api_max_batch_events, state.pseudonymiser, principal
    )
    outcomes = await state.intake_writer.submit(intakes) if intakes else []
    accepted_types: Counter[str] = Counter()
    for index, intake, outcome in zip(positions, intakes, outcomes, strict=True):
        errors = []
        if outcome.status == "conflict":
            errors = [_problem("event_id", "used before with another body")]
        elif outcome.status == "accepted":
            accepted_types[intake.event.type] += 1
        results[index] = _item(index, outcome.event_id, outcome.status, errors)
    for event_type, count in accepted_types.items():
        state.metrics.events_accepted[event_type].inc(count)
    final = [r for r in results if r is not None]
    accepted = sum(accepted_types.values())
    duplicates = sum(1 for r in final if r["status"] == "duplicate")
    answer = {
        "accepted": accepted,
        "duplicates": duplicates,
        "rejected": len(final) - accepted - duplicates,
        "results": final,
    }
    return Response(orjson.dumps(answer), media_type="application/json")


_Item = dict[str, Any]  # one entry of BatchResult.results, as plain data


def _item(index: int, event_id: UUID | None, status: str, errors: list[dict[str, str]]) -> _Item:
    return {"index": index, "event_id": event_id, "status": status, "errors": errors}


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _validate_batch(
    body: bytes, max_events: int, pseudonymiser: Pseudonymiser, principal: Principal
) -> tuple[list[_Item | None], list[service.Intake], list[int]]:
    """Each document's verdict if it is invalid; the valid ones as intakes, with their indexes.

    A batch of valid events (a back-fill, mostly) is parsed in one pass, twice as fast as
    document by document; only a batch with an invalid one is gone through one by one, to say
    which and why."""
    try:
        parsed = parse_events(body)
        events: list[LifecycleEvent] | None = parsed
        count = len(parsed)
    except ValidationError:
        events, documents = None, _json_array(body)
        count = len(documents)
    if count > max_events:
        raise validation_problem(
            [FieldError("", f"at most {max_events} events per batch; got {count}")]
        )
    results: list[_Item | None] = [None] * count
    intakes: list[service.Intake] = []
    positions: list[int] = []
    for index in range(count):
        try:
            event = events[index] if events is not None else _document_event(documents[index])
            _check_may_send(principal, event)
        except _InvalidDocument as invalid:
            results[index] = _invalid(index, invalid.errors, invalid.event_id)
            continue
        except Problem as problem:
            results[index] = _invalid(index, [FieldError("type", problem.detail)], event.event_id)
            continue
        intakes.append(service.Intake.of(event, pseudonymiser, principal))
        positions.append(index)
    return results, intakes, positions


class _InvalidDocument(Exception):
    def __init__(self, errors: list[FieldError], event_id: UUID | None) -> None:
        super().__init__(errors)
        self.errors, self.event_id = errors, event_id


def _document_event(document: Any) -> LifecycleEvent:
    """One document of a batch as an event, or :class:`_InvalidDocument` saying why not."""
    if not isinstance(document, dict):
        raise _InvalidDocument([FieldError("", "expected a JSON object")], None)
    try:
        return parse_event(document)
    except ValidationError as error:
        try:
            event_id = UUID(str(document["event_id"])) if "event_id" in document else None
        except ValueError:
            event_id = None
        raise _InvalidDocument(describe(error), event_id) from None


def _invalid(index: int, errors: list[FieldError], event_id: UUID | None) -> _Item:
    return _item(index, event_id, "invalid", [_problem(e.field, e.message) for e in errors])


def _parse_one(body: bytes) -> LifecycleEvent:
    try:
        return parse_event(body)
    except ValidationError as error:
        raise validation_problem(describe(error)) from None


def _json_array(body: bytes) -> list[Any]:
    """The batch as JSON documents, read by the parser :func:`parse_events` reads it with, so
    that both refuse the same bodies (a number of 5,000 digits, nesting too deep, a lone
    surrogate) with the same message, which names the line and column and never the value."""
    try:
        documents = from_json(body, allow_inf_nan=False)
    except ValueError as error:
        raise validation_problem([FieldError("", f"Invalid JSON: {error}")]) from None
    if not isinstance(documents, list):
        raise validation_problem([FieldError("", "expected a JSON array of events")])
    return documents


def _check_may_send(principal: Principal, event: LifecycleEvent) -> None:
    """Data-subject requests change what is erased at once: they need their own scope. An
    extension keeps data past its period: only Gallring's own review decisions send one (through
    the outbox, not this intake), whatever the key."""
    if event.type in INTERNAL_EVENT_TYPES:
        raise Problem(
            422,
            "gallring-internal-event",
            "The event type is Gallring's own",
            f"{event.type} is sent by Gallring alone, for a DPO's extend decision on a "
            "disposition review (POST /v1/reviews/{id}/decision); no system may send it here.",
        )
    if event.type.startswith("dsr.") and not principal.may(Scope.DSR_WRITE):
        raise Problem(
            403,
            "forbidden",
            "The API key lacks a scope",
            f"{event.type} needs the scope '{Scope.DSR_WRITE}'.",
        )
