"""``gallring keys …``: API keys for machine clients, from the command line."""

import sys
from typing import TextIO

from services.api.api_keys import KeyStore, Scope
from shared.database import make_engine
from shared.migrate import upgrade
from shared.national_id import contains_national_id


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
    engine = make_engine(database_url)
    try:
        for key in KeyStore(engine).list_keys():
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "live"
            print(f"{key.name}\t{key.scopes}\t{key.created_at:%Y-%m-%d}\t{state}", file=out)
    finally:
        engine.dispose()
    return 0
