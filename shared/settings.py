"""Settings from the environment (pydantic-settings).

Each service reads its own variables with its prefix (`REGISTRY_DATABASE_URL`, ...). What is
one fact for the whole system — the time zone, the Kafka cluster, the token keys — is read
from `GRID_*` variables by every service, so it cannot differ between them.
"""

from __future__ import annotations

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

    kafka_bootstrap: str = Field("127.0.0.1:59092", validation_alias=_system("KAFKA_BOOTSTRAP"))
    topic_partitions: int = Field(6, ge=1, validation_alias=_system("TOPIC_PARTITIONS"))
    topic_prefix: str = Field("", validation_alias=_system("TOPIC_PREFIX"))
    timezone: str = Field("Asia/Shanghai", validation_alias=_system("TIMEZONE"))
    jwt_secret: str = Field(DEV_JWT_SECRET, validation_alias=_system("JWT_SECRET"))
    jwt_issuer: str = Field("grid-epi", validation_alias=_system("JWT_ISSUER"))
    jwt_audience: str = Field("grid-epi", validation_alias=_system("JWT_AUDIENCE"))
    jwks_url: str | None = Field(None, validation_alias=_system("JWKS_URL"))
    id_hmac_key: str = Field(DEV_HMAC_KEY, validation_alias=_system("ID_HMAC_KEY"))
    log_level: str = Field("INFO", validation_alias=_system("LOG_LEVEL"))

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

    def topic(self, name: str) -> str:
        """The runtime name of a published topic (`registry.events`)."""
        return f"{self.topic_prefix}{name}"
