"""Checkpoint settings (`CHECKPOINT_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.checkpoint.domain.shifts import TEAM
from shared.contracts.checkpoint import DutyRole
from shared.settings import ServiceSettings


class CheckpointSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHECKPOINT_", extra="ignore")

    service: str = "checkpoint"
    port: int = 8003

    # a crossing's `occurred_at` may lie this far ahead of the server's clock (devices drift)
    clock_skew_seconds: int = Field(300, ge=0)
    # a crossing older than this is judged by residency and vehicles as they are now, and its
    # event and result carry `views_as_of`
    live_window_seconds: int = Field(300, ge=0)
    # items of `POST /v1/crossings:batch` committed per transaction
    crossing_batch_chunk: int = Field(500, ge=1, le=5000)
    # the roles a gate's day must be covered by (seed 003's four-person team)
    required_roles: list[DutyRole] = Field(default_factory=lambda: list(TEAM))
    max_shift_hours: int = Field(24, ge=1, le=72)
