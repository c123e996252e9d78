"""Checkpoint service: `uvicorn --factory services.checkpoint.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.checkpoint.config import CheckpointSettings
from shared import logs, places
from shared.contracts import checkpoint, registry
from shared.http import build_app
from shared.projection import Projection
from shared.runtime import service_parts


def create_app(settings: CheckpointSettings | None = None) -> FastAPI:
    settings = settings or CheckpointSettings()
    parts = service_parts(
        settings,
        publishes=checkpoint.TOPIC,
        consumes=[("places", [registry.TOPIC], Projection(places.HANDLERS))],
    )
    return build_app(
        settings,
        title="Checkpoint",
        routers=[],
        parts=parts,
        description="Gates at every level, duty shifts and the crossing ledger (卡口登记).",
    )


def app() -> FastAPI:
    settings = CheckpointSettings()
    logs.configure(settings.service, settings.log_level)
    return create_app(settings)
