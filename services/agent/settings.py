"""``GALLRING_AGENT_…``: the agent's settings, read from the environment and, with
``GALLRING_SECRETS_DIR``, from files. The agent runs beside one of the company's databases (its
dataset file names it); it never touches Gallring's own database, so it has no
``GALLRING_DATABASE_URL``."""

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.domain.pseudonym import Pseudonymiser
from shared.runtime.settings import GallringEnvironment, KafkaSettings


class AgentSettings(GallringEnvironment):
    model_config = SettingsConfigDict(env_prefix="GALLRING_")

    agent_dataset_file: Path = Field(
        description="the dataset file: the system, its database and the tables per category"
    )
    agent_api_url: str = Field(
        default="http://127.0.0.1:8000", description="where the agent reaches Gallring's API"
    )
    agent_api_key: SecretStr = Field(
        description="an API key with the scope erasures:confirm, never logged"
    )
    agent_api_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a confirmation answered slower is tried again later"
    )
    pseudonym_secret: SecretStr = Field(
        description="Gallring's pseudonym secret: the agent computes its rows' pseudonyms as the "
        "API does",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    agent_consumer_group: str | None = Field(
        default=None, description="the agent's consumer group; gallring-agent-<system> if unset"
    )
    agent_max_poll_records: int = Field(default=100, ge=1)
    agent_status_host: str = "127.0.0.1"
    agent_status_port: int = Field(
        default=9103, ge=0, le=65_535, description="/metrics, /healthz, /readyz; 0: none"
    )
    agent_dry_run: bool = Field(
        default=False,
        description="log what each command would erase; change nothing, confirm nothing",
    )

    @field_validator("pseudonym_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters: Gallring's pseudonym secret")
        return secret

    def consumer_group(self, system: str) -> str:
        return self.agent_consumer_group or f"gallring-agent-{system}"

    def pseudonymiser(self) -> Pseudonymiser:
        return Pseudonymiser(self.pseudonym_secret.get_secret_value().encode())
