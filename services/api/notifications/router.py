"""``/v1/notifications``: what each recipient was told of each erasure, and when it answered.

Operators list and inspect notifications (scope ``erasures:read``), ask for a failed one to
be tried again, or close one that waits for an inactive recipient, or failed, with a reason
(``admin``). Recipients confirm an erasure without an API key: the request is
signed with their own webhook secret, per Standard Webhooks, like the notification they got.
"""

import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.api.api_keys import Principal, Scope
from services.api.auth import require
from services.api.dependencies import DbEngine, ExistingNotification, existing_notification
from services.api.notifications import service
from services.api.notifications.schemas import (
    Closing,
    NotificationAccepted,
    NotificationPage,
    NotificationState,
    NotificationView,
)
from services.api.problems import (
    PROBLEM_RESPONSE,
    STORE_UNAVAILABLE_RESPONSES,
    Problem,
    Responses,
    validation_problem,
)
from shared.domain.contract.errors import FieldError
from shared.domain.contract.vocabulary import Identifier

router = APIRouter(
    prefix="/v1/notifications", tags=["notifications"], responses=STORE_UNAVAILABLE_RESPONSES
)
#: Routes recipients call; authenticated by signature, not by an API key.
signed_router = APIRouter(
    prefix="/v1/notifications", tags=["notifications"], responses=STORE_UNAVAILABLE_RESPONSES
)
Reader = Annotated[Principal, Depends(require(Scope.ERASURES_READ))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
_ERRORS: Responses = {401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE}


@router.get("", response_model=NotificationPage, summary="Notifications", responses=_ERRORS)
def list_notifications(
    db: DbEngine,
    _: Reader,
    state: NotificationState | None = None,
    recipient_id: Identifier | None = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> NotificationPage:
    try:
        after = service.decode_cursor(cursor) if cursor else None
    except service.CursorError as error:
        raise validation_problem([FieldError("cursor", str(error))]) from None
    views, more = service.page(db, state=state, recipient_id=recipient_id, after=after, limit=limit)
    return NotificationPage(
        notifications=views, next_cursor=service.encode_cursor(views[-1]) if more else None
    )


@router.get(
    "/{notification_id}",
    response_model=NotificationView,
    summary="One notification with every delivery attempt",
    responses={**_ERRORS, 404: PROBLEM_RESPONSE},
)
def get_notification(_: Reader, notification: ExistingNotification) -> NotificationView:
    # The path's notification_id is declared by the dependency alone, as in get_erasure.
    return notification


@router.post(
    "/{notification_id}/redeliver",
    status_code=202,
    response_model=NotificationAccepted,
    summary="Try a failed notification again, with a fresh retry horizon",
    responses={**_ERRORS, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE},
)
def redeliver_notification(
    db: DbEngine, principal: Admin, view: ExistingNotification
) -> NotificationAccepted:
    notification_id = view.notification_id  # the path's, declared by the dependency
    if view.state is not NotificationState.FAILED:
        raise Problem(
            409,
            "notification-not-failed",
            "Only a failed notification is redelivered",
            f"Notification {notification_id} is {view.state.value}; the notifier is still "
            "delivering it or it has been delivered.",
        )
    if view.particulars_erased_at is not None:
        raise Problem(
            409,
            "notification-particulars-erased",
            "This notification can no longer be redelivered",
            f"Notification {notification_id} failed longer ago than "
            "GALLRING_NOTIFIER_KEEP_PARTICULARS_DAYS: its scope and the recipient's reference "
            "are no longer kept, so there is nothing right to send.",
        )
    service.request_redelivery(db, notification_id, principal, datetime.now(UTC))
    return NotificationAccepted(notification_id=notification_id, status="redelivery requested")


@router.post(
    "/{notification_id}/close",
    status_code=202,
    response_model=NotificationAccepted,
    summary="Close a notification undelivered, with a reason: one that waits for an inactive "
    "recipient, or failed",
    description="The notifier records the close with the reason and the key's name "
    "(`closed_at`, `closed_by`, `close_reason`); if the recipient is active again before it "
    "applies it, the notification is delivered instead. 409 in any other state.",
    responses={**_ERRORS, 404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE},
)
def close_notification(
    notification_id: UUID, closing: Closing, db: DbEngine, principal: Admin
) -> NotificationAccepted:
    # Looked up here, not as a dependency: an invalid body is answered 422 before a 404.
    view = existing_notification(notification_id, db)
    if view.state not in (NotificationState.AWAITING_RECIPIENT, NotificationState.FAILED):
        raise Problem(
            409,
            "notification-not-closable",
            "Only a notification that waits for its recipient, or failed, is closed",
            f"Notification {notification_id} is {view.state.value}.",
        )
    service.request_close(db, notification_id, closing.reason, principal, datetime.now(UTC))
    return NotificationAccepted(notification_id=notification_id, status="close requested")


@signed_router.post(
    "/{notification_id}/confirm",
    status_code=202,
    response_model=NotificationAccepted,
    summary="The recipient confirms it erased the data (signed with its webhook secret)",
    description="Sign the request as Gallring signs its webhooks (Standard Webhooks headers "
    "`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the recipient's secret. The "
    'body is JSON naming the notification: `{"notification_id": "…"}`.',
    responses={401: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE},
)
async def confirm_notification(
    notification_id: UUID, request: Request, db: DbEngine
) -> NotificationAccepted:
    """``async``, unlike its neighbours: it awaits the body, which it must verify as sent."""
    state = request.app.state
    now = datetime.now(UTC)
    signers = await run_in_threadpool(service.signers, db, notification_id, now)
    body = await request.body()
    # An unknown notification gets the same 401 as a bad signature: ids are not for probing.
    secrets = [state.secret_box.open(sealed) for sealed in signers.secrets] if signers else []
    payload = _verified(body, dict(request.headers), secrets)
    assert signers is not None  # _verified passed, so some secret signed it
    if not isinstance(payload, dict) or payload.get("notification_id") != str(notification_id):
        raise validation_problem(
            [FieldError("notification_id", f"the signed body must name {notification_id}")]
        )
    if signers.confirmed:  # a repeat (or a replay within the timestamp tolerance)
        return NotificationAccepted(notification_id=notification_id, status="confirmation recorded")
    await run_in_threadpool(
        service.request_confirmation, db, notification_id, signers.recipient_id, now
    )
    return NotificationAccepted(notification_id=notification_id, status="confirmation recorded")


def _verified(body: bytes, headers: dict[str, str], secrets: list[str]) -> Any:
    """The JSON body if one of ``secrets`` signed it, within the timestamp tolerance."""
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError, binascii.Error):
            continue  # ValueError, binascii.Error: a malformed signature header
        try:
            return json.loads(body)
        except ValueError:
            raise validation_problem([FieldError("body", "must be a JSON object")]) from None
    raise Problem(
        401,
        "bad-signature",
        "The signature does not verify",
        "Sign the request with the recipient's webhook secret (Standard Webhooks: webhook-id, "
        "webhook-timestamp within 5 minutes of now, webhook-signature).",
    )
