"""Settings from the environment (pydantic-settings).

Each service reads its own variables with its prefix (`REGISTRY_DATABASE_URL`, ...). What is
one fact for the whole system — the time zone, the Kafka cluster, the token keys — is read
from `GRID_*` variables by every service, so it cannot differ between them.
"""

from __future__ import annotations

import os
import socket
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"
DEV_HMAC_KEY = "dev-only-id-hmac-key-change-me-0123456789"


def _system(name: str) -> AliasChoices:
    return AliasChoices(f"GRID_{name}")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVICE_", extra="ignore", validate_by_name=True)

    service: str = "service"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/grid"
    db_schema: str = ""
    db_pool_min: int = 1
    db_pool_max: int = 10
    host: str = "127.0.0.1"
    port: int = 8000
    run_relay: bool = True
    run_consumers: bool = True
    max_body_bytes: int = 5 * 1024 * 1024
    relay_batch_size: int = 1000
    relay_poll_interval: float = 0.05
    # one publisher per store: the lease a relay holds, renewed while it publishes; a standby
    # takes over once it has expired (PostgreSQL's clock)
    relay_lease_seconds: float = Field(10.0, gt=0.5)
    relay_standby_poll: float = Field(1.0, gt=0)
    # consumer group membership: a member that stops heartbeating loses its partitions after
    # the session timeout (the broker's group.min.session.timeout.ms must allow it)
    consumer_session_timeout_ms: int = Field(4000, ge=1000)
    consumer_heartbeat_interval_ms: int = Field(1000, ge=100)
    # supervision of background tasks (shared/supervisor.py)
    task_backoff_initial: float = Field(0.25, gt=0)
    task_backoff_max: float = Field(5.0, gt=0)
    task_stale_seconds: float = Field(
        120.0, gt=0, description="a task without a success for this long fails /healthz"
    )
    lag_refresh_seconds: float = Field(15.0, gt=0)

    kafka_bootstrap: str = Field("127.0.0.1:59092", validation_alias=_system("KAFKA_BOOTSTRAP"))
    topic_partitions: int = Field(6, ge=1, validation_alias=_system("TOPIC_PARTITIONS"))
    topic_prefix: str = Field("", validation_alias=_system("TOPIC_PREFIX"))
    timezone: str = Field("Asia/Shanghai", validation_alias=_system("TIMEZONE"))
    jwt_secret: str = Field(DEV_JWT_SECRET, validation_alias=_system("JWT_SECRET"))
    jwt_issuer: str = Field("grid-epi", validation_alias=_system("JWT_ISSUER"))
    jwt_audience: str = Field("grid-epi", validation_alias=_system("JWT_AUDIENCE"))
    jwks_url: str | None = Field(None, validation_alias=_system("JWKS_URL"))
    jwt_max_lifetime_seconds: int = Field(
        86400,
        gt=0,
        validation_alias=_system("JWT_MAX_LIFETIME_SECONDS"),
        description="a token whose exp lies further ahead is refused",
    )
    id_hmac_key: str = Field(DEV_HMAC_KEY, validation_alias=_system("ID_HMAC_KEY"))
    log_level: str = Field("INFO", validation_alias=_system("LOG_LEVEL"))
    replica_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}",
        validation_alias=_system("REPLICA_ID"),
        description="names this process in client ids, lease holders and logs",
    )
    # bounded dates (shared/horizon.py): a fact given by a caller (a visit, a reading, a
    # watch's start, a crossing, ...) is dated at most this far back and ahead of the clock
    fact_horizon_days: int = Field(30, ge=1, le=3650, validation_alias=_system("FACT_HORIZON_DAYS"))
    fact_future_seconds: int = Field(
        300, ge=0, le=86400, validation_alias=_system("FACT_FUTURE_SECONDS")
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def schema_name(self) -> str:
        return self.db_schema or self.service

    def client_id(self, role: str) -> str:
        """The Kafka client id of one of this process's clients: service, role, replica."""
        return f"{self.service}-{role}@{self.replica_id}"

    def topic(self, name: str) -> str:
        """The runtime name of a published topic (`registry.events`)."""
        return f"{self.topic_prefix}{name}"
