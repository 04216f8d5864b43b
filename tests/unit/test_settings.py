import pytest
from pydantic import ValidationError

from services.api.settings import ApiSettings
from services.notifier.settings import NotifierSettings
from services.purger.settings import PurgerSettings
from shared.runtime.settings import (
    DatabaseSettings,
    GallringSettings,
    SettingsInvalid,
    load_settings,
)

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


def test_secrets_come_from_files_in_the_secrets_directory_unless_the_environment_sets_them(
    tmp_path, monkeypatch
) -> None:
    """Docker's and Kubernetes' secrets: one file per setting, named as its variable."""
    (tmp_path / "gallring_pseudonym_secret").write_text(SECRET + "\n")
    (tmp_path / "gallring_database_url").write_text("postgresql+psycopg://gallring:pw@db/g\n")
    monkeypatch.setenv("GALLRING_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("GALLRING_PSEUDONYM_SECRET", raising=False)
    monkeypatch.delenv("GALLRING_DATABASE_URL", raising=False)
    settings = GallringSettings()
    assert settings.pseudonym_secret.get_secret_value() == SECRET
    assert settings.database_url == "postgresql+psycopg://gallring:pw@db/g"
    assert DatabaseSettings().database_url == settings.database_url

    monkeypatch.setenv("GALLRING_DATABASE_URL", "sqlite:///other.db")
    assert GallringSettings().database_url == "sqlite:///other.db"


def test_a_secrets_directory_that_is_not_there_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GALLRING_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(SettingsInvalid, match=r"GALLRING_SECRETS_DIR=.*missing is not a directory"):
        load_settings(GallringSettings)


def test_invalid_settings_name_each_variable_to_set_without_showing_values(monkeypatch) -> None:
    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", "short-secret")
    monkeypatch.setenv("GALLRING_API_PORT", "eighty")
    with pytest.raises(SettingsInvalid) as invalid:
        load_settings(ApiSettings)
    message = str(invalid.value)
    assert "GALLRING_PSEUDONYM_SECRET: Value error, must be at least 32 characters" in message
    assert "GALLRING_API_PORT: Input should be a valid integer" in message
    assert "short-secret" not in message

    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", SECRET)
    monkeypatch.setenv("GALLRING_KAFKA_SESSION_TIMEOUT_MS", "5")
    with pytest.raises(SettingsInvalid, match="GALLRING_KAFKA_SESSION_TIMEOUT_MS: Input should"):
        load_settings(GallringSettings)


def test_kafka_and_relay_settings_come_from_secret_files_too(tmp_path, monkeypatch) -> None:
    (tmp_path / "gallring_pseudonym_secret").write_text(SECRET)
    (tmp_path / "gallring_database_url").write_text("postgresql+psycopg://db/g")
    (tmp_path / "gallring_kafka_bootstrap").write_text("kafka-1:9093\n")
    (tmp_path / "gallring_relay_batch_size").write_text("50")
    monkeypatch.setenv("GALLRING_SECRETS_DIR", str(tmp_path))
    for name in ("PSEUDONYM_SECRET", "DATABASE_URL", "KAFKA_BOOTSTRAP", "RELAY_BATCH_SIZE"):
        monkeypatch.delenv(f"GALLRING_{name}", raising=False)
    settings = GallringSettings()
    assert (settings.kafka.bootstrap, settings.relay.batch_size) == ("kafka-1:9093", 50)


def test_a_deployment_with_secret_files_but_no_database_url_does_not_fall_back_to_sqlite(
    tmp_path, monkeypatch
) -> None:
    """A misnamed secret file must not leave a service writing a private SQLite file."""
    (tmp_path / "gallring_pseudonym_secret").write_text(SECRET)
    (tmp_path / "gallring_database-url").write_text("postgresql+psycopg://db/g")  # misnamed
    monkeypatch.setenv("GALLRING_SECRETS_DIR", str(tmp_path))
    monkeypatch.delenv("GALLRING_PSEUDONYM_SECRET", raising=False)
    monkeypatch.delenv("GALLRING_DATABASE_URL", raising=False)
    with pytest.raises(SettingsInvalid, match="GALLRING_DATABASE_URL is set neither"):
        load_settings(GallringSettings)


def test_a_rule_across_settings_is_told_by_the_variables_it_concerns(monkeypatch) -> None:
    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", SECRET)
    monkeypatch.setenv("GALLRING_NOTIFIER_RETRY_BASE_SECONDS", "100")
    monkeypatch.setenv("GALLRING_NOTIFIER_RETRY_MAX_SECONDS", "10")
    with pytest.raises(SettingsInvalid) as invalid:
        load_settings(NotifierSettings)
    assert str(invalid.value) == (
        "the settings are invalid:\n  Value error, GALLRING_NOTIFIER_RETRY_BASE_SECONDS exceeds "
        "GALLRING_NOTIFIER_RETRY_MAX_SECONDS"
    )


def test_the_purgers_dedupe_must_remember_as_long_as_the_lifecycle_topic_keeps(
    monkeypatch,
) -> None:
    monkeypatch.setenv("GALLRING_PSEUDONYM_SECRET", SECRET)
    monkeypatch.setenv("GALLRING_KAFKA_LIFECYCLE_RETENTION_HOURS", str(14 * 24))
    monkeypatch.setenv("GALLRING_PURGER_CONSUMED_EVENT_DAYS", "7")
    with pytest.raises(SettingsInvalid, match="GALLRING_PURGER_CONSUMED_EVENT_DAYS must be at"):
        load_settings(PurgerSettings)
    monkeypatch.setenv("GALLRING_PURGER_CONSUMED_EVENT_DAYS", "14")
    assert load_settings(PurgerSettings).purger_consumed_event_days == 14
