"""``GALLRING_API_…`` and ``GALLRING_RELAY_…``: settings only the API service reads."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import GallringSettings


class RelaySettings(BaseSettings):
    """The outbox relay that publishes accepted events to Kafka."""

    model_config = SettingsConfigDict(env_prefix="GALLRING_RELAY_", extra="ignore")

    enabled: bool = True
    batch_size: int = Field(default=500, ge=1, le=10_000)
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    lease_seconds: float = Field(default=15.0, gt=0, description="a dead relay's lease lapses")
    max_backoff_seconds: float = Field(default=10.0, gt=0)


class ApiSettings(GallringSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65_535)
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1_024)
    api_max_batch_events: int = Field(default=1_000, ge=1)
    api_key_cache_seconds: float = Field(
        default=30.0, ge=0, description="how long a verified key is trusted before re-reading it"
    )
    relay: RelaySettings = Field(default_factory=RelaySettings)
