"""Registry settings (`REGISTRY_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.registry.pii import DEV_PII_KEYS
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

    service: str = "registry"
    port: int = 8001
    node_kinds: tuple[str, ...] = DEFAULT_NODE_KINDS
    max_import_bytes: int = 512 * 1024 * 1024
    pii_keys: str = Field(
        DEV_PII_KEYS,
        description="AES-256-GCM key ring `kid:base64,...`; the first key encrypts",
        repr=False,
    )
    # who may see clear names, document numbers and phones (each read is logged)
    pii_readers: tuple[str, ...] = ("admin", "registrar", "grid_worker", "medic")
