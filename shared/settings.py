"""Settings every service reads from the environment (``GALLRING_…``); see the README's table.

Nothing is read at import time: each process builds its settings once in its entry point, and
tests build them directly.
"""

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.policy import Policy, load_default_policy, load_policy
from shared.pseudonym import Pseudonymiser


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "gallring"
    enable_idempotence: bool = Field(
        default=True, description="On for a real cluster; the embedded Tansu broker refuses it."
    )
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)


class GallringSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GALLRING_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    pseudonym_secret: SecretStr = Field(
        description="HMAC key for subject pseudonyms: at least 32 characters, never logged. "
        "Changing it changes every pseudonym.",
    )
    policy_file: Path | None = Field(
        default=None, description="A retention policy file; the built-in default if unset."
    )
    database_url: str = "sqlite:///gallring.db"
    kafka: KafkaSettings = KafkaSettings()

    @field_validator("pseudonym_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters; generate one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        return secret

    def pseudonymiser(self) -> Pseudonymiser:
        return Pseudonymiser(self.pseudonym_secret.get_secret_value().encode())

    def policy(self) -> Policy:
        return load_policy(self.policy_file) if self.policy_file else load_default_policy()
