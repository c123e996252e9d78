"""Settings from the environment (pydantic-settings).

Each service reads its own variables with its prefix (`REGISTRY_DATABASE_URL`, ...). What is
one fact for the whole system — the time zone, the Kafka cluster, the token keys — is read
from `GRID_*` variables by every service, so it cannot differ between them.

Secrets (token keys, the ID HMAC key, the PII key ring, the Kafka password) come from their
variable or from a file named by `<VARIABLE>_FILE` (a mounted Kubernetes or Docker secret).
Their defaults are public development values: settings holding one, or an empty or short
secret, are refused unless `GRID_DEV_MODE` is on, so a process that would serve with them
stops before it starts (docs/security.md, "Secrets and keys").
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self
from zoneinfo import ZoneInfo

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shared.kafka import KafkaCluster, SaslMechanism, SecurityProtocol

log = logging.getLogger(__name__)

# Development and tests only: public values, refused outside development mode.
DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"
DEV_HMAC_KEY = "dev-only-id-hmac-key-change-me-0123456789"
# HS256 keys and the ID HMAC key: at least the hash's 256 bits (RFC 7518 §3.2)
MIN_SECRET_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _system(name: str) -> AliasChoices:
    return AliasChoices(f"GRID_{name}")


class SecretsRefused(RuntimeError):
    """The process would run with secrets unfit for production, or cannot read them."""


def weak_secret(setting: str, value: str, *development: str) -> Iterator[str]:
    """Why `value` is unfit as the secret `setting` (nothing if it is fit)."""
    if not value:
        yield f"{setting} is empty"
    elif value in development:
        yield f"{setting} is the built-in development value"
    elif len(value.encode()) < MIN_SECRET_BYTES:
        yield f"{setting} is shorter than {MIN_SECRET_BYTES} bytes"


def parse_jwt_keys(spec: str) -> dict[str, str]:
    """`"kid:secret,kid:secret"` → {kid: secret}; ValueError naming the entry, never a key."""
    ring: dict[str, str] = {}
    for position, entry in enumerate(spec.split(","), start=1):
        key_id, colon, secret = entry.strip().partition(":")
        if not colon or not KEY_ID.fullmatch(key_id):
            raise ValueError(
                f"entry {position} must look like 'kid:secret' (kid: 1-64 letters, digits, _ . -)"
            )
        if key_id in ring:
            raise ValueError(f"key id {key_id!r} appears twice")
        ring[key_id] = secret
    return ring


class SecretFiles(PydanticBaseSettingsSource):
    """`<VARIABLE>_FILE` names a file holding the value of the secret `<VARIABLE>` (a mounted
    Kubernetes or Docker secret); one trailing newline is dropped, as editors and `echo`
    add one. Setting both the variable and its file is refused: which one wins would be a
    guess."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads every secret at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        secrets: tuple[str, ...] = getattr(self.settings_cls, "secret_fields", ())
        prefix = str(self.settings_cls.model_config.get("env_prefix", ""))
        for name in secrets:
            variable = _variable(self.settings_cls.model_fields[name], name, prefix)
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if variable in os.environ:
                raise SecretsRefused(f"set {variable} or {variable}_FILE, not both")
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SecretsRefused(f"{variable}_FILE={path}: cannot read it ({exc})") from None
            values[name] = text.removesuffix("\n").removesuffix("\r")
        return values


def _variable(field: FieldInfo, name: str, prefix: str) -> str:
    """The environment variable a field is read from."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"{prefix}{name}".upper()


# one warning per process, however many settings it builds
_warned_development = False


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVICE_", extra="ignore", validate_by_name=True)
    # the fields `SecretFiles` may read from `<VARIABLE>_FILE`
    secret_fields: ClassVar[tuple[str, ...]] = (
        "jwt_secret",
        "jwt_verify_keys",
        "id_hmac_key",
        "kafka_sasl_username",
        "kafka_sasl_password",
    )

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
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        validation_alias=_system("KAFKA_SECURITY_PROTOCOL"),
        description="PLAINTEXT (loopback development), SASL_PLAINTEXT, SASL_SSL or SSL",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", validation_alias=_system("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str = Field("", validation_alias=_system("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: str = Field(
        "", validation_alias=_system("KAFKA_SASL_PASSWORD"), repr=False
    )
    kafka_ssl_cafile: str | None = Field(
        None,
        validation_alias=_system("KAFKA_SSL_CAFILE"),
        description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL)",
    )
    topic_partitions: int = Field(6, ge=1, validation_alias=_system("TOPIC_PARTITIONS"))
    topic_prefix: str = Field("", validation_alias=_system("TOPIC_PREFIX"))
    timezone: str = Field("Asia/Shanghai", validation_alias=_system("TIMEZONE"))
    dev_mode: bool = Field(
        False,
        validation_alias=_system("DEV_MODE"),
        description="accept the built-in development secrets (never in production)",
    )
    jwt_secret: str = Field(
        DEV_JWT_SECRET,
        validation_alias=_system("JWT_SECRET"),
        repr=False,
        description="HS256 key that signs (issue_token) and verifies, under `jwt_key_id`",
    )
    jwt_key_id: str = Field("k1", pattern=KEY_ID.pattern, validation_alias=_system("JWT_KEY_ID"))
    jwt_verify_keys: str = Field(
        "",
        validation_alias=_system("JWT_VERIFY_KEYS"),
        repr=False,
        description="`kid:secret,...` further HS256 keys that verify but never sign: the "
        "next key before it signs, the previous one until its tokens have expired",
    )
    jwt_issuer: str = Field("grid-epi", validation_alias=_system("JWT_ISSUER"))
    jwt_audience: str = Field("grid-epi", validation_alias=_system("JWT_AUDIENCE"))
    jwks_url: str | None = Field(None, validation_alias=_system("JWKS_URL"))
    jwt_max_lifetime_seconds: int = Field(
        86400,
        gt=0,
        validation_alias=_system("JWT_MAX_LIFETIME_SECONDS"),
        description="a token whose exp lies further ahead is refused",
    )
    jwks_cache_seconds: float = Field(
        300.0,
        gt=0,
        validation_alias=_system("JWKS_CACHE_SECONDS"),
        description="how long a fetched JWKS is used before it is fetched again",
    )
    id_hmac_key: str = Field(DEV_HMAC_KEY, validation_alias=_system("ID_HMAC_KEY"), repr=False)
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            SecretFiles(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @field_validator("jwt_verify_keys")
    @classmethod
    def _key_ring(cls, value: str) -> str:
        if value.strip():
            parse_jwt_keys(value)
        return value

    @model_validator(mode="after")
    def _production_secrets(self) -> Self:
        """Refuse secrets anyone can read in this repository, unless in development mode;
        there, say so loudly once."""
        global _warned_development
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise SecretsRefused(
                f"GRID_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "GRID_KAFKA_SASL_USERNAME and GRID_KAFKA_SASL_PASSWORD (or their _FILE)"
            )
        if self.jwt_key_id in self._verify_only_keys:
            raise SecretsRefused(
                f"GRID_JWT_VERIFY_KEYS holds {self.jwt_key_id!r}, the signing key's id "
                "(GRID_JWT_KEY_ID): give the new key a new id"
            )
        weak = list(self.weak_secrets())
        if not self.dev_mode:
            if weak:
                raise SecretsRefused(
                    "refusing to start with secrets unfit for production: "
                    + "; ".join(weak)
                    + ". Set them (or <VARIABLE>_FILE), or GRID_DEV_MODE=1 on a development"
                    " machine (docs/security.md, 'Secrets and keys')"
                )
        elif not _warned_development:
            _warned_development = True
            log.warning(
                "GRID_DEV_MODE is on: the built-in development secrets are accepted, so anyone "
                "can mint tokens and read the PII store%s. Never run like this in production.",
                f" ({'; '.join(weak)})" if weak else "",
            )
        return self

    def weak_secrets(self) -> Iterator[str]:
        """Why each secret this process would use is unfit for production. A service with
        secrets of its own extends it."""
        if self.jwks_url is None:  # with a JWKS, HS256 keys verify nothing
            yield from weak_secret("GRID_JWT_SECRET", self.jwt_secret, DEV_JWT_SECRET)
            for key_id, secret in self._verify_only_keys.items():
                yield from weak_secret(f"GRID_JWT_VERIFY_KEYS ({key_id})", secret, DEV_JWT_SECRET)
        yield from weak_secret("GRID_ID_HMAC_KEY", self.id_hmac_key, DEV_HMAC_KEY)

    @property
    def jwt_keys(self) -> dict[str, str]:
        """Every HS256 key that verifies, by kid; `jwt_key_id`'s is the one that signs."""
        return {self.jwt_key_id: self.jwt_secret, **self._verify_only_keys}

    @property
    def _verify_only_keys(self) -> dict[str, str]:
        return parse_jwt_keys(self.jwt_verify_keys) if self.jwt_verify_keys.strip() else {}

    @property
    def kafka(self) -> KafkaCluster:
        """Where the brokers are and how this process's Kafka clients authenticate."""
        return KafkaCluster(
            bootstrap=self.kafka_bootstrap,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password,
            ssl_cafile=self.kafka_ssl_cafile,
        )

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
