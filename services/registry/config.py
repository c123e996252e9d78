"""Registry settings (`REGISTRY_*`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.registry.pii import DEV_PII_KEYS, parse_key_ring
from shared.settings import ServiceSettings

DEFAULT_NODE_KINDS = (
    "district",
    "street",
    "township",
    "community",
    "village",
    "area",
    "segment",
    "grid",
    "compound",
    "villager_group",
    "natural_village",
    "building",
    "unit",
    "floor",
    "household",
)


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")
    secret_fields: ClassVar[tuple[str, ...]] = (*ServiceSettings.secret_fields, "pii_keys")

    service: str = "registry"
    port: int = 8001
    node_kinds: tuple[str, ...] = DEFAULT_NODE_KINDS
    max_import_bytes: int = 512 * 1024 * 1024
    pii_keys: str = Field(
        DEV_PII_KEYS,
        description="AES-256-GCM key ring `kid:base64,...`; the first key encrypts",
        repr=False,
    )

    def weak_secrets(self) -> Iterator[str]:
        yield from super().weak_secrets()
        try:
            ring = parse_key_ring(self.pii_keys)
        except ValueError as exc:
            yield f"REGISTRY_PII_KEYS: {exc}"
            return
        public = set(parse_key_ring(DEV_PII_KEYS).values())
        for key_id, key in ring.items():
            if key in public:
                yield f"REGISTRY_PII_KEYS ({key_id}) is the built-in development key"
