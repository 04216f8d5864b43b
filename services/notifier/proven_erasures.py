"""Erasures the notifier knows of through the purger's proofs (read, never written).

The notifier remembers an executed erasure with its scope for
``GALLRING_NOTIFIER_LATE_DISCLOSURE_DAYS`` only. A disclosure read after that (a replay, a
consumer group reset, an upstream system posting it again) found no erasure and was kept,
waiting for one that had already happened. The proof stays: it keeps a hash of the erased
clock (pseudonym, category, scope), so a disclosure of that data hashes to it, as the purger
recognises a late event. The scope itself is not in the proof, so a disclosure finds the erasure
of its own scope, or of its whole category (subject-wide); a subject-wide disclosure does not
find an erasure of one of the subject's cases (nor could it tell the recipient which case).
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, select

from shared.domain.pseudonym import clock_hash
from shared.storage.database import one_of
from shared.storage.tables.purger import ErasureProof
from shared.storage.tables.table import table_of

_PROOFS = table_of(ErasureProof)


class ProvenErasure:
    """An executed erasure as a proof tells it, with the scope the matching disclosure named:
    the same fields as a remembered erasure (``heard_erasure``)."""

    __slots__ = ("category", "erasure_id", "executed_at", "legal_basis", "scope_key", "scope_value")

    def __init__(self, proof: Any, scope_key: str, scope_value: str) -> None:
        self.erasure_id: UUID = proof.erasure_id
        self.category: str = proof.category
        self.legal_basis: str = proof.legal_basis
        self.executed_at: datetime = proof.executed_at
        self.scope_key = scope_key
        self.scope_value = scope_value


def proven_erasures(
    connection: Connection, subjects_by_hash: Mapping[str, str], disclosures: Iterable[Any]
) -> dict[str, list[ProvenErasure]]:
    """Per subject pseudonym, the erasures whose proofs match one of ``disclosures`` (rows with
    ``subject_pseudonym``, ``category``, ``scope_key``, ``scope_value``); ``subjects_by_hash``
    maps each subject's hash to its pseudonym."""
    candidates: dict[str, tuple[str, str, str]] = {}  # clock hash -> (subject, key, value)
    for disclosure in disclosures:
        subject, category = disclosure.subject_pseudonym, disclosure.category
        for scope in {(disclosure.scope_key, disclosure.scope_value), ("", "")}:
            candidates[clock_hash(subject, category, *scope)] = (subject, *scope)
    if not candidates:
        return {}
    found: dict[str, list[ProvenErasure]] = defaultdict(list)
    # By subject hash first: the proofs' index is on it.
    rows = connection.execute(
        select(_PROOFS).where(
            one_of(connection, _PROOFS.c.subject_hash, subjects_by_hash),
            one_of(connection, _PROOFS.c.clock_hash, candidates),
        )
    )
    for proof in rows:
        subject, scope_key, scope_value = candidates[proof.clock_hash]
        found[subject].append(ProvenErasure(proof, scope_key, scope_value))
    return found
