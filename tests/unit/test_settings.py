import pytest
from pydantic import ValidationError

from shared.settings import GallringSettings

SECRET = "s" * 32


def test_settings_come_from_gallring_environment_variables(monkeypatch) -> None:
    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", SECRET)
    monkeypatch.setenv("GALLRING_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("GALLRING_KAFKA_ENABLE_IDEMPOTENCE", "false")
    settings = GallringSettings()
    assert settings.kafka.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.kafka.enable_idempotence is False
    assert settings.kafka.session_timeout_ms == 10_000


def test_a_missing_or_short_pseudonym_secret_is_refused(monkeypatch) -> None:
    monkeypatch.delenv("GALLRING_PSEUDONYM_SECRET", raising=False)
    with pytest.raises(ValidationError, match="pseudonym_secret"):
        GallringSettings()
    with pytest.raises(ValidationError, match="at least 32 characters") as refused:
        GallringSettings(pseudonym_secret="short-secret")
    assert "short-secret" not in str(refused.value)


def test_the_secret_never_shows_in_reprs() -> None:
    settings = GallringSettings(pseudonym_secret=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_the_policy_is_the_default_unless_a_file_is_named(tmp_path) -> None:
    assert GallringSettings(pseudonym_secret=SECRET).policy().timezone == "Europe/Stockholm"
    custom = tmp_path / "policy.yaml"
    custom.write_text("version: 1\n")
    with pytest.raises(ValueError, match=r"policy\.yaml:1"):
        GallringSettings(pseudonym_secret=SECRET, policy_file=custom).policy()
