"""API keys for machine clients: created once, shown once, stored only as a hash.

A key reads ``gal_<key id>_<secret>``. The key id finds the row; the secret is compared with its
stored SHA-256 in constant time (the secret is random, 256 bits, so a slow hash adds nothing).
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from shared.storage.tables.api import ApiKey

KEY_PREFIX = "gal"


class Scope(StrEnum):
    EVENTS_WRITE = "events:write"
    SUBJECTS_READ = "subjects:read"
    DSR_WRITE = "dsr:write"
    ERASURES_READ = "erasures:read"
    ERASURES_CONFIRM = "erasures:confirm"
    #: The register of legal holds: read it; place holds and request their release; approve a
    #: release another key requested (the second person).
    HOLDS_READ = "holds:read"
    HOLDS_WRITE = "holds:write"
    HOLDS_APPROVE = "holds:approve"
    REVIEWS_DECIDE = "reviews:decide"  # a DPO's: decide disposition reviews (and read them)
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's name and what it may do. Names go into the audit log."""

    key_id: str
    name: str
    scopes: frozenset[Scope]

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


@dataclass(frozen=True, slots=True)
class _Cached:
    secret_hash: str
    principal: Principal | None  # None: revoked
    read_at: float


class KeyStore:
    def __init__(self, engine: Engine, *, cache_seconds: float = 30.0) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}

    def create(self, name: str, scopes: set[Scope]) -> str:
        """Store a new key and return it; it cannot be shown again."""
        if not scopes:
            raise ValueError("a key needs at least one scope")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with Session(self._engine) as session:
            session.add(
                ApiKey(
                    key_id=key_id,
                    name=name,
                    scopes=" ".join(sorted(scopes)),
                    secret_hash=_hash(secret),
                    created_at=datetime.now(UTC),
                )
            )
            session.commit()
        return f"{KEY_PREFIX}_{key_id}_{secret}"

    def revoke(self, name: str) -> int:
        """Revoke every live key with this name; returns how many."""
        with Session(self._engine) as session:
            keys = session.exec(
                select(ApiKey).where(ApiKey.name == name, col(ApiKey.revoked_at).is_(None))
            ).all()
            for key in keys:
                key.revoked_at = datetime.now(UTC)
                self._cache.pop(key.key_id, None)
            session.commit()
            return len(keys)

    def list_keys(self) -> list[ApiKey]:
        with Session(self._engine) as session:
            return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))).all())

    def verify(self, presented: str) -> Principal | None:
        """The principal a presented key stands for, or None if it is unknown or revoked."""
        parts = _parts(presented)
        if parts is None:
            return None
        key_id, secret = parts
        cached = self._fresh(key_id)
        if cached is None:
            cached = self._read(key_id)
            if cached is None:
                return None
            self._cache[key_id] = cached
        return _check(secret, cached)

    def verify_from_cache(self, presented: str) -> Principal | Literal[False] | None:
        """Like :meth:`verify` without touching the database: False when it would have to."""
        parts = _parts(presented)
        if parts is None:
            return None
        key_id, secret = parts
        cached = self._fresh(key_id)
        return False if cached is None else _check(secret, cached)

    def _fresh(self, key_id: str) -> _Cached | None:
        cached = self._cache.get(key_id)
        if cached is None or time.monotonic() - cached.read_at > self._cache_seconds:
            return None
        return cached

    def _read(self, key_id: str) -> _Cached | None:
        with Session(self._engine) as session:
            key = session.get(ApiKey, key_id)
        if key is None:
            return None
        principal = None
        if key.revoked_at is None:
            principal = Principal(
                key.key_id, key.name, frozenset(Scope(s) for s in key.scopes.split())
            )
        return _Cached(key.secret_hash, principal, time.monotonic())


def _parts(presented: str) -> tuple[str, str] | None:
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    return parts[1], parts[2]


def _check(secret: str, cached: _Cached) -> Principal | None:
    if not hmac.compare_digest(_hash(secret), cached.secret_hash):
        return None
    return cached.principal


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
