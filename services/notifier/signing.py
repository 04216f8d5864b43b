"""What a claimed notification is posted as: its body and its Standard Webhooks signature
headers (webhook.py), signed with the recipient's secret, and with the previous one too while a
rotation's grace period lasts.

Secrets are stored sealed (shared/webhooks/signing_secrets.py); each sealed secret is opened
once and its signer kept, so a delivery does not pay for opening it.
"""

import json
from datetime import datetime

from standardwebhooks import Webhook

from services.notifier.delivery_store import Claimed
from services.notifier.settings import NotifierSettings
from services.notifier.webhook import notification_body, signed_headers
from shared.webhooks.signing_secrets import SecretBox


class NotificationSigner:
    """Signs notifications with their recipients' secrets, opened once each."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._settings = settings
        self._box: SecretBox = settings.secret_box()
        self._signers: dict[str, Webhook] = {}  # sealed secret -> signer

    def signed(self, notification: Claimed, now: datetime) -> tuple[str, dict[str, str]]:
        """The notification's body as of ``now``, and the headers that sign it."""
        body = self._body(notification, now)
        signers = self._signers_of(notification, now)
        return body, signed_headers(str(notification.notification_id), body, signers, now)

    def _body(self, notification: Claimed, now: datetime) -> str:
        return notification_body(
            notification_type=notification.type,
            notification_id=notification.notification_id,
            erasure_id=notification.erasure_id,
            event_id=notification.event_id,
            category=notification.category,
            scope=json.loads(notification.scope),
            recipient_ref=notification.recipient_ref,
            legal_basis=notification.legal_basis,
            respond_by=notification.respond_by,
            public_api_url=self._settings.notifier_public_api_url,
            now=now,
        )

    def _signers_of(self, notification: Claimed, now: datetime) -> list[Webhook]:
        sealed = [notification.secret]
        expires = notification.previous_secret_expires_at
        if notification.previous_secret and expires is not None and expires > now:
            sealed.append(notification.previous_secret)
        signers = []
        for secret in sealed:
            if secret not in self._signers:
                self._signers[secret] = Webhook(self._box.open(secret))
            signers.append(self._signers[secret])
        return signers
