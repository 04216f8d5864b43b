"""``gallring keys create|list|revoke`` against a real database."""

from services.api.api_keys import KeyStore, Scope
from services.cli import main
from shared.database import make_engine


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
        "erasures:confirm, admin" in capsys.readouterr().err
    )


def test_a_key_is_not_named_by_a_personal_number(tmp_path, monkeypatch, capsys) -> None:
    """A key's name goes into the audit log and onto the confirmations topic."""
    monkeypatch.setenv("GALLRING_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    assert main(["keys", "create", "--name", "ombud-811218-9876", "--scope", "admin"]) == 2
    told = capsys.readouterr()
    assert "must not be or contain a personal identity number" in told.err
    assert "9876" not in told.err and told.out == ""
    assert not (tmp_path / "keys.db").exists()
