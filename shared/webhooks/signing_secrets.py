"""Recipients' webhook signing secrets: made by Gallring, shown once, kept encrypted.

A secret is a Standard Webhooks secret (``whsec_`` and 32 random bytes in base64). Gallring signs
with it, so it is stored encrypted (Fernet) rather than hashed, under a key of its own,
``GALLRING_SECRET_SEALING_KEY``: the database alone does not give it away, and neither does the
database with the pseudonym secret.

Releases before that setting sealed with a key derived from the pseudonym secret. Those seals
still open (the derived key is tried second), new seals use the sealing key, and
``gallring keys reseal`` (or ``gallring up`` at its start) seals the old ones again under the
sealing key: once it reports none left, the pseudonym secret opens nothing.
"""

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
#: The HKDF label of the sealing key, and of the key older releases derived from the pseudonym
#: secret (the same label: that derivation must stay as it was for their seals to open).
_SEALING_INFO = b"gallring recipient signing secrets"


class SecretUnreadable(ValueError):
    """A sealed secret that no key this process has opens: the wrong sealing key is set."""

    def __init__(self) -> None:
        super().__init__(
            "a recipient's signing secret opens neither with GALLRING_SECRET_SEALING_KEY nor "
            "with the key older releases derived from GALLRING_PSEUDONYM_SECRET: is "
            "GALLRING_SECRET_SEALING_KEY the key that sealed it?"
        )


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _fernet(key_material: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEALING_INFO).derive(
        key_material
    )
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Seals signing secrets for the database with the sealing key, and opens them; opens, too,
    those older releases sealed with the key derived from ``legacy_secret`` (the pseudonym
    secret), until :meth:`reseal` has moved them all under the sealing key."""

    def __init__(self, sealing_key: bytes, legacy_secret: bytes | None = None) -> None:
        self._sealing = _fernet(sealing_key)
        legacy = [_fernet(legacy_secret)] if legacy_secret is not None else []
        self._any = MultiFernet([self._sealing, *legacy])

    def seal(self, secret: str) -> str:
        return self._sealing.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret; :class:`SecretUnreadable` if no key of ours sealed it."""
        try:
            return self._any.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable() from None

    def needs_resealing(self, sealed: str) -> bool:
        """Whether ``sealed`` is not (yet) sealed with the sealing key."""
        try:
            self._sealing.decrypt(sealed.encode())
        except InvalidToken:
            return True
        return False

    def reseal(self, sealed: str) -> str:
        """``sealed`` sealed again with the sealing key (:class:`SecretUnreadable` if no key of
        ours opens it)."""
        return self.seal(self.open(sealed))
