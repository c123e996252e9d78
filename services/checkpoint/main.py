"""Checkpoint service: `uvicorn --factory services.checkpoint.main:app`."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from services.checkpoint.api import ROUTERS
from services.checkpoint.config import CheckpointSettings
from services.checkpoint.views import REGISTRY_VIEWS, SCREENING_VIEWS
from shared import logs
from shared.consumer import Handler
from shared.contracts import checkpoint, registry, screening
from shared.http import build_app
from shared.lag import lag_parts
from shared.runtime import service_parts

# further consumers of this service: (name, contract topics, handler)
CONSUMES: list[tuple[str, list[str], Handler]] = [
    ("registry-views", [registry.TOPIC], REGISTRY_VIEWS),
    ("screening-views", [screening.TOPIC], SCREENING_VIEWS),
]


def create_app(settings: CheckpointSettings | None = None) -> FastAPI:
    settings = settings or CheckpointSettings()
    return build_app(
        settings,
        title="Checkpoint",
        routers=ROUTERS,
        parts=[
            *service_parts(settings, publishes=checkpoint.TOPIC, consumes=CONSUMES),
            *lag_parts(settings, publishes=checkpoint.TOPIC, consumes=CONSUMES),
        ],
        description="Gates at every level, duty shifts and the crossing ledger (卡口登记).",
    )


def app() -> FastAPI:
    settings = CheckpointSettings()
    logs.configure(settings.service, settings.log_level)
    built = create_app(settings)
    # modules, routes and schemas live as long as the process: out of the collector's scans,
    # so a batch upload's many short-lived objects do not make every full collection walk them
    gc.freeze()
    return built
