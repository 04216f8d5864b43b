"""Gallring's signatures verify with the official library, also during a secret rotation."""

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.notifier.webhook import signed_headers
from shared.webhooks.signing_secrets import SecretBox, SecretUnreadable, new_signing_secret


def test_during_a_rotation_both_secrets_verify_and_no_other_does() -> None:
    old, new, stranger = new_signing_secret(), new_signing_secret(), new_signing_secret()
    body = '{"type":"erasure.requested"}'
    headers = signed_headers("n-1", body, [Webhook(new), Webhook(old)], datetime.now(UTC))
    assert headers["webhook-signature"].count("v1,") == 2
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)


def test_secrets_are_sealed_for_the_database_and_open_only_with_the_same_key() -> None:
    secret = new_signing_secret()
    assert secret.startswith("whsec_")
    box = SecretBox(b"a-settings-secret-a-settings-secret")
    sealed = box.seal(secret)
    assert secret not in sealed
    assert box.open(sealed) == secret
    with pytest.raises(SecretUnreadable, match="GALLRING_SECRET_SEALING_KEY"):
        SecretBox(b"another-settings-secret-another-one").open(sealed)
