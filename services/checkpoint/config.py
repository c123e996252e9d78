"""Checkpoint settings (`CHECKPOINT_*`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class CheckpointSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHECKPOINT_", extra="ignore")

    service: str = "checkpoint"
    port: int = 8003
