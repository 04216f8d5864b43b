"""``gallring keys create|list|revoke|reseal`` against a real database."""

from datetime import UTC, datetime

from sqlalchemy import insert, select

from services.api.api_keys import KeyStore, Scope
from services.cli.keys import Resealed, reseal_signing_secrets
from services.cli.main import main
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from shared.storage.tables.api import Recipient
from shared.storage.tables.table import table_of
from shared.webhooks.signing_secrets import SecretBox, new_signing_secret
from tests.integration.conftest import SEALING_KEY, SECRET
from tests.unit.test_secret_sealing import sealed_by_an_older_release

RECIPIENTS = table_of(Recipient)


def test_a_key_is_shown_once_works_and_can_be_revoked(tmp_path, monkeypatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    monkeypatch.setenv("GALLRING_DATABASE_URL", url)
    assert main(["keys", "create", "--name", "collection-system", "--scope", "events:write"]) == 0
    key = capsys.readouterr().out.strip()
    engine = make_engine(url)
    try:
        principal = KeyStore(engine).verify(key)
        assert principal is not None
        assert (principal.name, principal.scopes) == ("collection-system", {Scope.EVENTS_WRITE})

        assert main(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert "collection-system\tevents:write" in listing and key not in listing
        # The key's id (not its secret), by which gallring.holds.v1 names the keys that acted.
        assert listing.rstrip("\n").endswith(f"\tlive\t{principal.key_id}")

        assert main(["keys", "revoke", "--name", "collection-system"]) == 0
        assert KeyStore(engine, cache_seconds=0).verify(key) is None
        assert main(["keys", "revoke", "--name", "collection-system"]) == 1
    finally:
        engine.dispose()


def test_an_unknown_scope_is_refused(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("GALLRING_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    assert main(["keys", "create", "--name", "x", "--scope", "everything"]) == 2
    assert (
        "known scopes: events:write, subjects:read, dsr:write, erasures:read, "
        "erasures:confirm, holds:read, holds:write, holds:approve, reviews:decide, admin"
        in capsys.readouterr().err
    )


def test_a_key_is_not_named_by_a_personal_number(tmp_path, monkeypatch, capsys) -> None:
    """A key's name goes into the audit log and onto the confirmations topic."""
    monkeypatch.setenv("GALLRING_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    assert main(["keys", "create", "--name", "ombud-811218-9876", "--scope", "admin"]) == 2
    told = capsys.readouterr()
    assert "must not be or contain a personal identity number" in told.err
    assert "9876" not in told.err and told.out == ""
    assert not (tmp_path / "keys.db").exists()


def _recipient(engine, recipient_id: str, secret: str, previous: str | None = None) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(RECIPIENTS).values(
                recipient_id=recipient_id,
                name="Print vendor",
                kind="processor",
                country="SE",
                webhook_url="https://93.184.215.14/hook",
                categories="collection_case",
                active=True,
                secret=secret,
                previous_secret=previous,
                previous_secret_expires_at=now if previous else None,
                created_at=now,
                updated_at=now,
            )
        )


def _stored(engine, recipient_id: str):
    with engine.connect() as connection:
        return connection.execute(
            select(RECIPIENTS.c.secret, RECIPIENTS.c.previous_secret).where(
                RECIPIENTS.c.recipient_id == recipient_id
            )
        ).one()


def test_secrets_an_older_release_sealed_are_sealed_again_under_the_sealing_key(
    fresh_db,
) -> None:
    box = SecretBox(SEALING_KEY.encode(), legacy_secret=SECRET.encode())
    current, previous, newer = (new_signing_secret() for _ in range(3))
    _recipient(
        fresh_db,
        "old",
        sealed_by_an_older_release(current, SECRET),
        sealed_by_an_older_release(previous, SECRET),
    )
    _recipient(fresh_db, "new", box.seal(newer))
    already = _stored(fresh_db, "new").secret

    assert reseal_signing_secrets(fresh_db, box) == Resealed(1, 2, [])

    sealing_key_alone = SecretBox(SEALING_KEY.encode())
    old = _stored(fresh_db, "old")
    assert sealing_key_alone.open(old.secret) == current
    assert sealing_key_alone.open(old.previous_secret) == previous
    assert _stored(fresh_db, "new").secret == already  # left as it was
    assert reseal_signing_secrets(fresh_db, box) == Resealed(0, 0, [])


def test_gallring_keys_reseal_names_what_no_key_opens(tmp_path, monkeypatch, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        _recipient(engine, "old", sealed_by_an_older_release(new_signing_secret(), SECRET))
        monkeypatch.setenv("GALLRING_DATABASE_URL", url)
        monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", SECRET)
        monkeypatch.setenv("GALLRING_SECRET_SEALING_KEY", SEALING_KEY)
        assert main(["keys", "reseal"]) == 0
        out = capsys.readouterr().out
        assert "resealed 1 signing secret(s) of 1 recipient(s)" in out
        assert "none is left sealed with the key derived from the pseudonym secret" in out

        _recipient(engine, "stranger", SecretBox(b"x" * 40).seal(new_signing_secret()))
        assert main(["keys", "reseal"]) == 1
        err = capsys.readouterr().err
        assert "1 recipient(s) have a signing secret no key opens" in err
        assert "left as they are: stranger;" in err
        assert "is GALLRING_SECRET_SEALING_KEY the key that sealed it?" in err
    finally:
        engine.dispose()
