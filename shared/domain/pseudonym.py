"""Keyed pseudonyms: how Gallring names a data subject without keeping who they are.

``HMAC-SHA256(secret, kind + ":" + normalised identifier)``. The kind keeps a ``ref`` that happens
to look like a personnummer apart from the personnummer itself. Without the secret the pseudonym
cannot be linked back; with it, an auditor who is given the identifier can recompute it.
"""

import hashlib
import hmac
from typing import Literal

IdentifierKind = Literal["national_id", "ref"]


class Pseudonymiser:
    """Turns normalised subject identifiers into hex pseudonyms with one secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the pseudonym secret must be at least 32 bytes long")
        # Keyed once: a copy per message costs half as much as keying HMAC anew, and the intake
        # takes two per event. The original is never updated, so threads may share it.
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def pseudonym(self, kind: IdentifierKind, normalised_identifier: str) -> str:
        return self._hex_mac(f"{kind}:{normalised_identifier}".encode())

    def digest(self, purpose: str, data: bytes) -> str:
        """A keyed digest of ``data`` (e.g. a request body holding a personnummer): unlike a plain
        hash, it cannot be brute-forced back to the small space of identity numbers."""
        return self._hex_mac(purpose.encode() + b"\0" + data)

    def _hex_mac(self, message: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.hexdigest()

    def __repr__(self) -> str:
        return "Pseudonymiser(secret=***)"


def subject_hash(pseudonym: str) -> str:
    """What a proof keeps of a subject: it names nobody, yet given the identifier an auditor
    can recompute it (identifier -> pseudonym -> hash)."""
    return hashlib.sha256(pseudonym.encode()).hexdigest()


def clock_hash(pseudonym: str, category: str, scope_key: str, scope_value: str) -> str:
    """What a proof keeps of the clock it erased (``""`` for a subject-wide scope): it names
    neither subject nor scope, yet the purger (a late event) and the notifier (a late or
    replayed disclosure) recognise data already erased by it."""
    return hashlib.sha256(
        "\0".join((pseudonym, category, scope_key, scope_value)).encode()
    ).hexdigest()
