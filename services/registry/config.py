"""Registry settings (`REGISTRY_*`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

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
