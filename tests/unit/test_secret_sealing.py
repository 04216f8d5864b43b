"""Recipients' signing secrets sealed under a key of their own (GALLRING_SECRET_SEALING_KEY), not
one derived from the pseudonym secret; what older releases sealed that way still opens, and is
sealed again under the sealing key."""

import base64

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import ValidationError

from shared.runtime.settings import GallringSettings, SettingsInvalid
from shared.webhooks.signing_secrets import SecretBox, SecretUnreadable, new_signing_secret

PSEUDONYM_SECRET = "p" * 40
SEALING_KEY = "k" * 40


def sealed_by_an_older_release(secret: str, pseudonym_secret: str) -> str:
    """As releases before the sealing key sealed: Fernet under an HKDF of the pseudonym secret."""
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"gallring recipient signing secrets",
    ).derive(pseudonym_secret.encode())
    return Fernet(base64.urlsafe_b64encode(key)).encrypt(secret.encode()).decode()


def settings(**changes: object) -> GallringSettings:
    fields: dict = {"pseudonym_secret": PSEUDONYM_SECRET, "secret_sealing_key": SEALING_KEY}
    return GallringSettings(**{**fields, **changes})


def test_a_new_secret_is_sealed_with_the_sealing_key_and_not_the_pseudonym_secret() -> None:
    secret = new_signing_secret()
    sealed = settings().secret_box().seal(secret)
    assert SecretBox(SEALING_KEY.encode()).open(sealed) == secret
    with pytest.raises(SecretUnreadable):  # a stolen pseudonym secret opens nothing
        SecretBox(PSEUDONYM_SECRET.encode()).open(sealed)
    assert not settings().secret_box().needs_resealing(sealed)


def test_a_secret_an_older_release_sealed_still_opens_and_is_sealed_again() -> None:
    secret = new_signing_secret()
    old = sealed_by_an_older_release(secret, PSEUDONYM_SECRET)
    box = settings().secret_box()
    assert box.open(old) == secret
    assert box.needs_resealing(old)

    resealed = box.reseal(old)
    assert not box.needs_resealing(resealed)
    assert SecretBox(SEALING_KEY.encode()).open(resealed) == secret
    with pytest.raises(SecretUnreadable):
        SecretBox(PSEUDONYM_SECRET.encode()).open(resealed)


def test_a_secret_sealed_with_another_key_says_which_setting_to_check() -> None:
    sealed = SecretBox(b"another-sealing-key-another-sealing-key").seal(new_signing_secret())
    box = settings().secret_box()
    with pytest.raises(SecretUnreadable) as unreadable:
        box.open(sealed)
    assert "GALLRING_SECRET_SEALING_KEY the key that sealed it" in str(unreadable.value)
    with pytest.raises(SecretUnreadable):
        box.reseal(sealed)


def test_without_a_sealing_key_nothing_is_sealed_or_opened_and_the_setting_is_named() -> None:
    without = GallringSettings(pseudonym_secret=PSEUDONYM_SECRET)
    with pytest.raises(SettingsInvalid, match="GALLRING_SECRET_SEALING_KEY is not set"):
        without.secret_box()


def test_a_short_sealing_key_is_refused_without_showing_it() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters") as refused:
        settings(secret_sealing_key="short-sealing-key")
    assert "short-sealing-key" not in str(refused.value)


def test_the_pseudonym_secret_is_refused_as_the_sealing_key() -> None:
    with pytest.raises(ValidationError, match="must not be GALLRING_PSEUDONYM_SECRET") as refused:
        settings(secret_sealing_key=PSEUDONYM_SECRET)
    assert PSEUDONYM_SECRET not in str(refused.value)


def test_the_sealing_key_comes_from_its_file_in_the_secrets_directory(
    tmp_path, monkeypatch
) -> None:
    (tmp_path / "gallring_pseudonym_secret").write_text(PSEUDONYM_SECRET + "\n")
    (tmp_path / "gallring_secret_sealing_key").write_text(SEALING_KEY + "\n")
    (tmp_path / "gallring_database_url").write_text("postgresql+psycopg://gallring:pw@db/g\n")
    monkeypatch.setenv("GALLRING_SECRETS_DIR", str(tmp_path))
    for name in ("PSEUDONYM_SECRET", "SECRET_SEALING_KEY", "DATABASE_URL"):
        monkeypatch.delenv(f"GALLRING_{name}", raising=False)
    loaded = GallringSettings()
    assert loaded.secret_sealing_key is not None
    assert loaded.secret_sealing_key.get_secret_value() == SEALING_KEY
    assert SEALING_KEY not in repr(loaded)
