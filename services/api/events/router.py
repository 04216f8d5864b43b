"""``POST /v1/events`` and ``POST /v1/events/batch``."""

import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from services.api.api_keys import Principal, Scope
from services.api.auth import require
from services.api.events import service
from services.api.events.schemas import Accepted, BatchItemResult, BatchResult, FieldProblem
from services.api.problems import PROBLEM_RESPONSE, Problem, validation_problem
from shared.contract import LifecycleEvent, parse_event
from shared.contract.errors import FieldError, describe
from shared.contract.examples import EXAMPLES
from shared.pseudonym import Pseudonymiser

router = APIRouter(prefix="/v1/events", tags=["events"])
Writer = Annotated[Principal, Depends(require(Scope.EVENTS_WRITE))]

_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/LifecycleEvent"},
                "examples": {t: {"summary": t, "value": e} for t, e in EXAMPLES.items()},
            }
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/LifecycleEvent"},
                    "maxItems": 1000,
                },
                "example": list(EXAMPLES.values())[:3],
            }
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
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
async def post_event(request: Request, response: Response, principal: Writer) -> Accepted:
    """Stored durably and queued for Kafka before the answer: 202 means it will not be lost."""
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
    if outcome.status == "duplicate":
        response.status_code = 200
    else:
        state.metrics.events_accepted.labels(event.type).inc()
    assert outcome.accepted_at is not None
    return Accepted(event_id=outcome.event_id, accepted_at=outcome.accepted_at)


@router.post(
    "/batch",
    response_model=BatchResult,
    summary="Report up to 1,000 events at once (back-fills)",
    openapi_extra=_BATCH_BODY,
    responses={
        401: PROBLEM_RESPONSE,
        403: PROBLEM_RESPONSE,
        413: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
    },
)
async def post_batch(request: Request, principal: Writer) -> BatchResult:
    """Every event is validated first; the valid new ones are stored in one transaction. The
    answer says per event ``accepted``, ``duplicate``, ``conflict`` or ``invalid`` (with why)."""
    documents = _json_array(await request.body(), request.app.state.settings.api_max_batch_events)
    state = request.app.state
    results, intakes, positions = await run_in_threadpool(
        _validate_batch, state.pseudonymiser, documents, principal
    )
    outcomes = await state.intake_writer.submit(intakes) if intakes else []
    for index, intake, outcome in zip(positions, intakes, outcomes, strict=True):
        errors = []
        if outcome.status == "conflict":
            errors = [FieldProblem(field="event_id", message="used before with another body")]
        elif outcome.status == "accepted":
            state.metrics.events_accepted.labels(intake.event.type).inc()
        results[index] = BatchItemResult(
            index=index, event_id=outcome.event_id, status=outcome.status, errors=errors
        )
    final = [r for r in results if r is not None]
    accepted = sum(1 for r in final if r.status == "accepted")
    duplicates = sum(1 for r in final if r.status == "duplicate")
    return BatchResult(
        accepted=accepted,
        duplicates=duplicates,
        rejected=len(final) - accepted - duplicates,
        results=final,
    )


def _validate_batch(
    pseudonymiser: Pseudonymiser, documents: list[Any], principal: Principal
) -> tuple[list[BatchItemResult | None], list[service.Intake], list[int]]:
    """Each document's verdict if it is invalid; the valid ones as intakes, with their indexes."""
    results: list[BatchItemResult | None] = [None] * len(documents)
    intakes: list[service.Intake] = []
    positions: list[int] = []
    for index, document in enumerate(documents):
        if not isinstance(document, dict):
            results[index] = _invalid(index, [FieldError("", "expected a JSON object")], document)
            continue
        try:
            event = parse_event(document)
            _check_may_send(principal, event)
        except ValidationError as error:
            results[index] = _invalid(index, describe(error), document)
            continue
        except Problem as problem:
            results[index] = _invalid(index, [FieldError("type", problem.detail)], document)
            continue
        intakes.append(service.Intake.of(event, pseudonymiser, principal))
        positions.append(index)
    return results, intakes, positions


def _invalid(index: int, errors: list[FieldError], document: Any) -> BatchItemResult:
    event_id = document.get("event_id") if isinstance(document, dict) else None
    try:
        parsed_id = UUID(str(event_id)) if event_id is not None else None
    except ValueError:
        parsed_id = None
    return BatchItemResult(
        index=index,
        event_id=parsed_id,
        status="invalid",
        errors=[FieldProblem(field=e.field, message=e.message) for e in errors],
    )


def _parse_one(body: bytes) -> LifecycleEvent:
    try:
        return parse_event(body)
    except ValidationError as error:
        raise validation_problem(describe(error)) from None


def _json_array(body: bytes, max_events: int) -> list[Any]:
    try:
        documents = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise validation_problem([FieldError("", f"not valid JSON: {error}")]) from None
    except RecursionError:
        raise validation_problem([FieldError("", "JSON nested too deeply")]) from None
    if not isinstance(documents, list):
        raise validation_problem([FieldError("", "expected a JSON array of events")])
    if len(documents) > max_events:
        raise validation_problem(
            [FieldError("", f"at most {max_events} events per batch; got {len(documents)}")]
        )
    return documents


def _check_may_send(principal: Principal, event: LifecycleEvent) -> None:
    """Data-subject requests change what is erased at once: they need their own scope."""
    if event.type.startswith("dsr.") and not principal.may(Scope.DSR_WRITE):
        raise Problem(
            403,
            "forbidden",
            "The API key lacks a scope",
            f"{event.type} needs the scope '{Scope.DSR_WRITE}'.",
        )
