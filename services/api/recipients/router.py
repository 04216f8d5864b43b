"""``/v1/recipients``: who must hear of erasures, with their webhook and signing secret (scope
``admin``)."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from services.api.api_keys import Principal, Scope
from services.api.auth import require
from services.api.dependencies import DbEngine
from services.api.problems import (
    PROBLEM_RESPONSE,
    STORE_UNAVAILABLE_RESPONSES,
    Problem,
    Responses,
    validation_problem,
)
from services.api.recipients import service
from services.api.recipients.schemas import (
    CreatedRecipient,
    NewRecipient,
    RecipientChange,
    RecipientView,
    RotatedSecret,
    SecretRotation,
    UnregisteredRecipientPage,
)
from shared.domain.contract.errors import FieldError
from shared.domain.contract.vocabulary import Identifier
from shared.webhooks.url_vetting import UnsafeWebhookUrl, check_webhook_url

router = APIRouter(
    prefix="/v1/recipients", tags=["recipients"], responses=STORE_UNAVAILABLE_RESPONSES
)
# Beside /v1/recipients/{recipient_id}, where it would shadow a recipient of that name.
unregistered_router = APIRouter(
    prefix="/v1/unregistered-recipients", tags=["recipients"], responses=STORE_UNAVAILABLE_RESPONSES
)
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
_ERRORS: Responses = {401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE}
_NOT_FOUND: Responses = {**_ERRORS, 404: PROBLEM_RESPONSE}
RecipientId = Annotated[Identifier, Path(description="as it was registered")]


@router.post(
    "",
    status_code=201,
    response_model=CreatedRecipient,
    summary="Register a recipient; its signing secret is shown once",
    responses={**_ERRORS, 409: PROBLEM_RESPONSE},
)
def create_recipient(
    new: NewRecipient, request: Request, db: DbEngine, principal: Admin
) -> CreatedRecipient:
    _check_url(request, new.webhook_url)
    state = request.app.state
    try:
        return service.create(db, new, state.secret_box, actor=principal, now=datetime.now(UTC))
    except service.RecipientExists:
        raise Problem(
            409,
            "recipient-exists",
            "The recipient exists",
            f"A recipient {new.recipient_id} is registered already; change it with PATCH.",
        ) from None


@router.get("", response_model=list[RecipientView], summary="Every recipient", responses=_ERRORS)
def list_recipients(db: DbEngine, _: Admin) -> list[RecipientView]:
    return service.all_recipients(db, now=datetime.now(UTC))


@unregistered_router.get(
    "",
    response_model=UnregisteredRecipientPage,
    summary="Recipients that disclosures name but nobody registered; their notifications wait",
    responses=_ERRORS,
)
def list_unregistered_recipients(
    db: DbEngine,
    _: Admin,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> UnregisteredRecipientPage:
    try:
        after = service.decode_cursor(cursor) if cursor else None
    except service.CursorError as error:
        raise validation_problem([FieldError("cursor", str(error))]) from None
    listed, more = service.unregistered(db, after=after, limit=limit)
    return UnregisteredRecipientPage(
        unregistered_recipients=listed,
        next_cursor=service.encode_cursor(listed[-1]) if more else None,
    )


@router.get(
    "/{recipient_id}", response_model=RecipientView, summary="One recipient", responses=_NOT_FOUND
)
def get_recipient(recipient_id: RecipientId, db: DbEngine, _: Admin) -> RecipientView:
    view = service.one(db, recipient_id, now=datetime.now(UTC))
    if view is None:
        raise _not_found(recipient_id)
    return view


@router.patch(
    "/{recipient_id}",
    response_model=RecipientView,
    summary="Change a recipient (deactivate it with active: false)",
    responses=_NOT_FOUND,
)
def change_recipient(
    recipient_id: RecipientId,
    change: RecipientChange,
    request: Request,
    db: DbEngine,
    principal: Admin,
) -> RecipientView:
    if change.webhook_url is not None:
        _check_url(request, change.webhook_url)
    view = service.change(db, recipient_id, change, actor=principal, now=datetime.now(UTC))
    if view is None:
        raise _not_found(recipient_id)
    return view


@router.post(
    "/{recipient_id}/secret-rotations",
    status_code=201,
    response_model=RotatedSecret,
    summary="A new signing secret; the old one keeps signing for a grace period",
    description="While a previous rotation's grace period lasts, a rotation with a grace "
    "period is refused (409, saying until when): it would end the previous secret at once. "
    "`grace_hours: 0` ends every secret but the new one at once, at any time.",
    responses={**_NOT_FOUND, 409: PROBLEM_RESPONSE},
)
def rotate_recipient_secret(
    recipient_id: RecipientId,
    rotation: SecretRotation,
    request: Request,
    db: DbEngine,
    principal: Admin,
) -> RotatedSecret:
    try:
        rotated = service.rotate_secret(
            db,
            recipient_id,
            timedelta(hours=rotation.grace_hours),
            request.app.state.secret_box,
            actor=principal,
            now=datetime.now(UTC),
        )
    except service.RotationInGrace as rotating:
        until = rotating.previous_secret_valid_until.isoformat()
        raise Problem(
            409,
            "secret-rotation-in-grace",
            "The previous secret is still in its grace period",
            f"Recipient {recipient_id}'s previous secret still signs until {until}; a rotation "
            "with a grace period now would end it at once. Rotate again after then, or with "
            '{"grace_hours": 0} to end every secret but the new one at once.',
        ) from None
    if rotated is None:
        raise _not_found(recipient_id)
    return rotated


def _check_url(request: Request, url: str) -> None:
    """Resolves the host name: called from plain ``def`` routes, in FastAPI's thread pool."""
    allow_loopback = request.app.state.settings.webhook_allow_loopback
    try:
        check_webhook_url(url, allow_loopback=allow_loopback)
    except UnsafeWebhookUrl as error:
        raise validation_problem([FieldError("webhook_url", str(error))]) from None


def _not_found(recipient_id: str) -> Problem:
    return Problem(
        404,
        "recipient-not-found",
        "No such recipient",
        f"There is no recipient {recipient_id}; GET /v1/recipients lists them.",
    )
