"""Settings every service reads from the environment (``GALLRING_…``); see the README's table.

Nothing is read at import time: each process builds its settings once in its entry point, and
tests build them directly.
"""

import os
import ssl
from pathlib import Path
from typing import Literal, TypeVar

from aiokafka.helpers import create_ssl_context
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from shared.domain.policy import Policy, load_default_policy, load_policy
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.storage.database import PoolLimits
from shared.webhooks.signing_secrets import SecretBox

DEFAULT_DATABASE_URL = "sqlite:///var/gallring.db"
#: A directory of secret files, one per setting, named as its variable in lower case
#: (``gallring_pseudonym_secret``): Docker's and Kubernetes' secrets, kept out of the environment.
SECRETS_DIR_VARIABLE = "GALLRING_SECRETS_DIR"


class GallringEnvironment(BaseSettings):
    """Settings read from ``GALLRING_…`` variables and, with ``GALLRING_SECRETS_DIR``, files."""

    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then ``GALLRING_SECRETS_DIR``'s files, if set."""
        secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
        if not secrets_dir:
            return init_settings, env_settings
        if not Path(secrets_dir).is_dir():
            # pydantic-settings would only warn, and the service then fail on a missing secret.
            raise ValueError(f"{SECRETS_DIR_VARIABLE}={secrets_dir} is not a directory")
        return init_settings, env_settings, SecretsSettingsSource(settings_cls, secrets_dir)


class KafkaSettings(GallringEnvironment):
    """``GALLRING_KAFKA_…``: how every service reaches the broker."""

    model_config = SettingsConfigDict(env_prefix="GALLRING_KAFKA_")

    bootstrap: str = Field(default="127.0.0.1:9092", description="host:port[,host:port…]")
    client_id: str = "gallring"
    enable_idempotence: bool = Field(
        default=True, description="On for a real cluster; the embedded Tansu broker refuses it."
    )
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    request_timeout_ms: int = Field(
        default=30_000, ge=1_000, description="how long a send may wait for the broker's ack"
    )
    max_batch_bytes: int = Field(
        default=512 * 1024,
        ge=16 * 1024,
        le=1_000_000,  # a batch the broker refuses would be sent again and again
        description="largest batch a producer sends to one partition; keep it below the "
        "broker's message.max.bytes (about 1 MB by default)",
    )
    consumer_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="a consumer with messages waiting that applies none for this long is not "
        "ready (/readyz)",
    )
    topic_partitions: int = Field(default=6, ge=1, description="for topics Gallring creates")
    topic_replication_factor: int = Field(default=1, ge=1, description="use 3 in production")
    # How long each topic keeps its messages (its retention.ms): the broker's default may be
    # longer, or for ever, and an erased subject's pseudonymous history would stay readable.
    lifecycle_retention_hours: int = Field(
        default=7 * 24,
        ge=1,
        description="gallring.lifecycle.v1 (read by purger and notifier) and "
        "gallring.lifecycle-immediate.v1 (by the purger)",
    )
    erasure_commands_retention_hours: int = Field(
        default=14 * 24, ge=1, description="gallring.erasure-commands.v1: other teams' systems"
    )
    erasures_retention_hours: int = Field(
        default=7 * 24, ge=1, description="gallring.erasures.v1: read by the notifier"
    )
    erasure_confirmations_retention_hours: int = Field(
        default=7 * 24, ge=1, description="gallring.erasure-confirmations.v1: by the purger"
    )
    notification_commands_retention_hours: int = Field(
        default=7 * 24, ge=1, description="gallring.notification-commands.v1: by the notifier"
    )
    dlq_retention_hours: int = Field(
        default=14 * 24, ge=1, description="gallring.dlq.v1: read by people, after an alert"
    )
    holds_retention_hours: int = Field(
        default=14 * 24, ge=1, description="gallring.holds.v1: the hold register's news, for ops"
    )
    reviews_retention_hours: int = Field(
        default=14 * 24, ge=1, description="gallring.reviews.v1: read by ops, after an alert"
    )

    # A managed or secured cluster: TLS, SASL, or both (deploy/README.md).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="SASL_SSL for a managed cluster"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, description="never logged")
    ssl_ca_file: Path | None = Field(
        default=None, description="the CA of the brokers' certificates; the system's if unset"
    )
    ssl_cert_file: Path | None = Field(default=None, description="mutual TLS: our certificate")
    ssl_key_file: Path | None = Field(default=None, description="mutual TLS: its key, unencrypted")

    @model_validator(mode="after")
    def _security_complete(self) -> "KafkaSettings":
        """Settings that the protocol would ignore, or lacks, are refused rather than left to
        fail at the first connection (or, ignored, to send in the clear)."""
        problems = _sasl_problems(self) + _tls_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """For SSL and SASL_SSL: the brokers' certificates and host names checked against the CA
        file (the system's CAs without one), and ours presented for mutual TLS."""
        if not self.security_protocol.endswith("SSL"):
            return None
        return create_ssl_context(
            cafile=self.ssl_ca_file,
            certfile=self.ssl_cert_file,
            keyfile=self.ssl_key_file,
            password=_no_key_password,
        )

    def retention_ms(self, topic: str) -> int:
        """The ``retention.ms`` Gallring gives ``topic`` (one of ``topics.ALL_TOPICS``)."""
        return getattr(self, _RETENTION_FIELDS[topic]) * 3_600_000

    def retention_variable(self, topic: str) -> str:
        """The variable that sets ``topic``'s retention, to name in a message."""
        return (self.model_config["env_prefix"] + _RETENTION_FIELDS[topic]).upper()


def _sasl_problems(settings: KafkaSettings) -> list[str]:
    protocol = settings.security_protocol
    given = {
        "GALLRING_KAFKA_SASL_MECHANISM": settings.sasl_mechanism,
        "GALLRING_KAFKA_SASL_USERNAME": settings.sasl_username,
        "GALLRING_KAFKA_SASL_PASSWORD": settings.sasl_password
        and settings.sasl_password.get_secret_value(),
    }
    if protocol.startswith("SASL_"):
        missing = [variable for variable, value in given.items() if not value]
        if missing:
            return [f"GALLRING_KAFKA_SECURITY_PROTOCOL={protocol} needs " + ", ".join(missing)]
    elif any(given.values()):
        named = ", ".join(variable for variable, value in given.items() if value)
        return [
            f"{named} set, but GALLRING_KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL: "
            "set it to SASL_SSL (or SASL_PLAINTEXT, which sends everything in the clear)"
        ]
    return []


def _tls_problems(settings: KafkaSettings) -> list[str]:
    protocol = settings.security_protocol
    files = {
        "GALLRING_KAFKA_SSL_CA_FILE": settings.ssl_ca_file,
        "GALLRING_KAFKA_SSL_CERT_FILE": settings.ssl_cert_file,
        "GALLRING_KAFKA_SSL_KEY_FILE": settings.ssl_key_file,
    }
    given = {variable: path for variable, path in files.items() if path is not None}
    if not protocol.endswith("SSL"):
        if given:
            return [
                f"{', '.join(given)} set, but GALLRING_KAFKA_SECURITY_PROTOCOL={protocol} uses "
                "no TLS: set it to SSL or SASL_SSL"
            ]
        return []
    problems = [
        f"{variable}: no readable file at {path}"
        for variable, path in given.items()
        if not (path.is_file() and os.access(path, os.R_OK))
    ]
    if (settings.ssl_cert_file is None) != (settings.ssl_key_file is None):
        problems.append(
            "GALLRING_KAFKA_SSL_CERT_FILE and GALLRING_KAFKA_SSL_KEY_FILE go together: a "
            "client certificate and its key, for mutual TLS"
        )
    if given and not problems:
        try:
            settings.ssl_context()
        except (ssl.SSLError, OSError, ValueError) as error:
            problems.append(
                f"no TLS context can be built from {', '.join(given)} "
                f"({getattr(error, 'reason', None) or error}): each must be a PEM file, the key "
                "unencrypted and the certificate's"
            )
    return problems


def _no_key_password() -> str:
    """An encrypted key would make OpenSSL ask for its password on a terminal; none is given."""
    return ""


#: The KafkaSettings field that bounds how long each topic keeps its messages.
_RETENTION_FIELDS = {
    topics.LIFECYCLE: "lifecycle_retention_hours",
    topics.LIFECYCLE_IMMEDIATE: "lifecycle_retention_hours",
    topics.ERASURE_COMMANDS: "erasure_commands_retention_hours",
    topics.ERASURES: "erasures_retention_hours",
    topics.ERASURE_CONFIRMATIONS: "erasure_confirmations_retention_hours",
    topics.NOTIFICATION_COMMANDS: "notification_commands_retention_hours",
    topics.DEAD_LETTERS: "dlq_retention_hours",
    topics.HOLDS: "holds_retention_hours",
    topics.REVIEWS: "reviews_retention_hours",
}


class RelaySettings(GallringEnvironment):
    """``GALLRING_RELAY_…``: the outbox relay each service runs to publish what it stored."""

    model_config = SettingsConfigDict(env_prefix="GALLRING_RELAY_")

    enabled: bool = True
    batch_size: int = Field(default=2_000, ge=1, le=10_000)
    poll_interval_seconds: float = Field(default=0.2, gt=0)
    # The lease itself ends with its holder (shared/messaging/outbox/lease.py); this bounds a
    # round and dates the lease row, which relays of older releases go by.
    lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="a publishing round ends within half of it; the lease row, renewed every "
        "third of it, names the holder until then",
    )
    max_backoff_seconds: float = Field(default=10.0, gt=0)
    keep_published_seconds: float = Field(
        default=3_600.0,
        ge=0,
        description="how long a published message is kept, to publish it again should the broker "
        "lose it (an unclean leader election; the embedded broker's restart): longer than your "
        "consumers may lag",
    )
    loss_check_seconds: float = Field(
        default=2.0,
        gt=0,
        description="how often the relay compares the broker's partitions with what it "
        "acknowledged",
    )
    sharded: bool = Field(
        default=False,
        description="PostgreSQL: the relays of every process share the publishing, each holding "
        "the leases of some of the outbox's 64 buckets of keys, instead of one relay publishing "
        "it all (about 33,000 messages/s): for deployments whose API replicas together accept "
        "more (deploy/README.md). Ignored on SQLite",
    )


class DatabaseSettings(GallringEnvironment):
    """``GALLRING_DATABASE_…``: all that ``gallring migrate`` and ``gallring keys`` need."""

    model_config = SettingsConfigDict(env_prefix="GALLRING_")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL, description="SQLAlchemy URL; may carry a password"
    )
    # Each process may open size + overflow connections: summed over every replica, that
    # must stay under PostgreSQL's max_connections (deploy/README.md, Connection pools).
    database_pool_size: int = Field(
        default=PoolLimits.size, ge=1, description="connections a process keeps open"
    )
    database_max_overflow: int = Field(
        default=PoolLimits.overflow, ge=0, description="more it may open at a peak"
    )
    database_pool_timeout_seconds: float = Field(
        default=PoolLimits.timeout_seconds,
        gt=0,
        description="how long a request waits for a free connection before a 503",
    )

    def pool_limits(self) -> PoolLimits:
        return PoolLimits(
            self.database_pool_size,
            self.database_max_overflow,
            self.database_pool_timeout_seconds,
        )

    @model_validator(mode="after")
    def _deployed_names_its_database(self) -> "DatabaseSettings":
        """A deployment with secret files whose database URL is missing (a misnamed file, say)
        must not fall back to ``gallring up``'s SQLite file."""
        if os.environ.get(SECRETS_DIR_VARIABLE) and "database_url" not in self.model_fields_set:
            raise ValueError(
                "GALLRING_DATABASE_URL is set neither in the environment nor as the file "
                f"gallring_database_url in {SECRETS_DIR_VARIABLE}; the SQLite default is for "
                "`gallring up` only"
            )
        return self


class GallringSettings(DatabaseSettings):
    """``GALLRING_…``: what every service needs."""

    pseudonym_secret: SecretStr = Field(
        description="HMAC key for subject pseudonyms: at least 32 characters, never logged. "
        "Changing it changes every pseudonym.",
    )
    policy_file: Path | None = Field(
        default=None, description="A retention policy file; the built-in default if unset."
    )
    secret_sealing_key: SecretStr | None = Field(
        default=None,
        description="Key that seals recipients' webhook signing secrets in the database: at "
        "least 32 characters, not the pseudonym secret, never logged. The API and the notifier "
        "need it.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    webhook_allow_loopback: bool = Field(
        default=False,
        description="Development only: let recipients' webhooks go to loopback, over plain http.",
    )

    @field_validator("pseudonym_secret", "secret_sealing_key")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters; generate one with "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        return secret

    @model_validator(mode="after")
    def _sealing_key_of_its_own(self) -> "GallringSettings":
        """The sealing key is there so that a stolen pseudonym secret opens no signing secret."""
        key = self.secret_sealing_key
        if key is not None and key.get_secret_value() == self.pseudonym_secret.get_secret_value():
            raise ValueError(
                "GALLRING_SECRET_SEALING_KEY must not be GALLRING_PSEUDONYM_SECRET: one stolen "
                "secret would then open the other's data too"
            )
        return self

    def pseudonymiser(self) -> Pseudonymiser:
        return Pseudonymiser(self.pseudonym_secret.get_secret_value().encode())

    def secret_box(self) -> SecretBox:
        """Seals recipients' signing secrets for the database with the sealing key, and opens
        those older releases sealed with a key derived from the pseudonym secret (until
        ``gallring keys reseal``); ``SettingsInvalid`` without a sealing key."""
        if self.secret_sealing_key is None:
            raise SettingsInvalid(
                "GALLRING_SECRET_SEALING_KEY is not set (nor the file gallring_secret_sealing_key "
                f"in {SECRETS_DIR_VARIABLE}): recipients' webhook signing secrets are sealed with "
                "it. Generate one with `python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`, keep it apart from the pseudonym secret, and "
                "run `gallring keys reseal` once (deploy/README.md)"
            )
        return SecretBox(
            self.secret_sealing_key.get_secret_value().encode(),
            legacy_secret=self.pseudonym_secret.get_secret_value().encode(),
        )

    def policy(self) -> Policy:
        return load_policy(self.policy_file) if self.policy_file else load_default_policy()


class SettingsInvalid(Exception):
    """The environment does not configure a service: what to set, by variable name."""


SettingsClass = TypeVar("SettingsClass", bound=BaseSettings)


def load_settings(settings_class: type[SettingsClass]) -> SettingsClass:
    """A service's settings from its environment, or ``SettingsInvalid`` naming each variable
    that is missing or wrong (values are never shown: some are secrets)."""
    try:
        return settings_class()
    except ValidationError as error:
        prefix = _ENV_PREFIXES.get(error.title, "GALLRING_")
        problems = [
            f"  {prefix}{'_'.join(map(str, problem['loc'])).upper()}: {problem['msg']}"
            if problem["loc"]
            else f"  {problem['msg']}"  # a rule across settings; its message names them
            for problem in error.errors(include_input=False, include_url=False)
        ]
        raise SettingsInvalid("the settings are invalid:\n" + "\n".join(problems)) from None
    except ValueError as error:  # a source's own complaint, such as the secrets directory's
        raise SettingsInvalid(str(error)) from None


_ENV_PREFIXES = {
    settings_class.__name__: settings_class.model_config["env_prefix"]
    for settings_class in (KafkaSettings, RelaySettings)
}
