"""``gallring keys …``: API keys for machine clients, and the key that seals recipients'
signing secrets, from the command line."""

import sys
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy import Engine, select, update

from services.api.api_keys import KeyStore, Scope
from shared.domain.national_id import contains_national_id
from shared.runtime.settings import GallringSettings
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from shared.storage.tables.api import Recipient
from shared.storage.tables.table import table_of
from shared.webhooks.signing_secrets import SecretBox, SecretUnreadable

_RECIPIENTS = table_of(Recipient)


def create(database_url: str, name: str, scopes: list[str], *, out: TextIO) -> int:
    try:
        chosen = {Scope(scope) for scope in scopes}
    except ValueError:
        known = ", ".join(s.value for s in Scope)
        print(f"gallring: unknown scope among {scopes}; known scopes: {known}", file=sys.stderr)
        return 2
    if contains_national_id(name):
        print(
            "gallring: a key's name is written to the audit log and published with the "
            "confirmations it reports: it must not be or contain a personal identity number",
            file=sys.stderr,
        )
        return 2
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        key = KeyStore(engine).create(name, chosen)
    finally:
        engine.dispose()
    print(key, file=out)
    print(
        f"(key '{name}' with {', '.join(sorted(chosen))}; it is shown only this once)",
        file=sys.stderr,
    )
    return 0


def revoke(database_url: str, name: str, *, out: TextIO) -> int:
    engine = make_engine(database_url)
    try:
        count = KeyStore(engine).revoke(name)
    finally:
        engine.dispose()
    if count == 0:
        print(f"gallring: no live key named '{name}'", file=sys.stderr)
        return 1
    print(f"revoked {count} key(s) named '{name}'", file=out)
    return 0


def list_keys(database_url: str, *, out: TextIO) -> int:
    """One key a line: its name, scopes, day of creation, state, and its id (the part of the key
    before its secret), by which ``gallring.holds.v1`` names the keys that acted on a hold."""
    engine = make_engine(database_url)
    try:
        for key in KeyStore(engine).list_keys():
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "live"
            print(
                f"{key.name}\t{key.scopes}\t{key.created_at:%Y-%m-%d}\t{state}\t{key.key_id}",
                file=out,
            )
    finally:
        engine.dispose()
    return 0


def reseal(settings: GallringSettings, *, out: TextIO) -> int:
    """``gallring keys reseal``: every signing secret sealed again under
    ``GALLRING_SECRET_SEALING_KEY``; run once after setting it (running it again finds nothing)."""
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        resealed = reseal_signing_secrets(engine, settings.secret_box())
    finally:
        engine.dispose()
    print(
        f"resealed {resealed.secrets} signing secret(s) of {resealed.recipients} recipient(s) "
        "under GALLRING_SECRET_SEALING_KEY",
        file=out,
    )
    if resealed.unreadable:
        print(
            f"gallring: {len(resealed.unreadable)} recipient(s) have a signing secret no key "
            f"opens, left as they are: {', '.join(resealed.unreadable)}; {SecretUnreadable()}",
            file=sys.stderr,
        )
        return 1
    print("none is left sealed with the key derived from the pseudonym secret", file=out)
    return 0


@dataclass(frozen=True)
class Resealed:
    recipients: int
    secrets: int
    unreadable: list[str]  # recipient ids


def reseal_signing_secrets(engine: Engine, box: SecretBox) -> Resealed:
    """Seal again under the sealing key each recipient's current and previous signing secret
    that older releases sealed with the key derived from the pseudonym secret. Each row is
    written only if it still holds what was read, so that a rotation meanwhile is not undone
    (such a row is read again); the API and the notifier open either seal meanwhile."""
    recipients = secrets = 0
    while True:
        changed_meanwhile = False
        unreadable: list[str] = []
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    _RECIPIENTS.c.recipient_id, _RECIPIENTS.c.secret, _RECIPIENTS.c.previous_secret
                )
            ).all()
        for row in rows:
            try:
                changes = {
                    column: box.reseal(sealed)
                    for column in ("secret", "previous_secret")
                    if (sealed := getattr(row, column)) is not None and box.needs_resealing(sealed)
                }
            except SecretUnreadable:
                unreadable.append(row.recipient_id)
                continue
            if not changes:
                continue
            with engine.begin() as connection:
                written = connection.execute(
                    update(_RECIPIENTS)
                    .where(
                        _RECIPIENTS.c.recipient_id == row.recipient_id,
                        _RECIPIENTS.c.secret == row.secret,
                        _RECIPIENTS.c.previous_secret.is_not_distinct_from(row.previous_secret),
                    )
                    .values(changes)
                ).rowcount
            if written:
                recipients += 1
                secrets += len(changes)
            else:
                changed_meanwhile = True
        if not changed_meanwhile:
            return Resealed(recipients, secrets, unreadable)
