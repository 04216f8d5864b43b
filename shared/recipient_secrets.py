"""Recipients' webhook signing secrets: made by Gallring, shown once, kept encrypted.

A secret is a Standard Webhooks secret (``whsec_`` and 32 random bytes in base64). Gallring signs
with it, so it is stored encrypted (Fernet) under a key derived from the settings' pseudonym
secret rather than hashed; the database alone does not give it away.
"""

import base64
import secrets

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class SecretBox:
    """Encrypts and decrypts signing secrets for the database."""

    def __init__(self, settings_secret: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"gallring recipient signing secrets",
        ).derive(settings_secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()
