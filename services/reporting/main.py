"""Reporting service: `uvicorn --factory services.reporting.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.reporting.api import ROUTERS
from services.reporting.config import ReportingSettings
from services.reporting.projections import PLACES
from shared import logs
from shared.consumer import Handler
from shared.contracts import registry
from shared.http import build_app
from shared.runtime import service_parts

# each read model has its own consumer (own offsets, rebuildable on its own):
# (name, contract topics, handler)
CONSUMES: list[tuple[str, list[str], Handler]] = [
    ("places", [registry.TOPIC], PLACES),
]


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    return build_app(
        settings,
        title="Reporting",
        routers=ROUTERS,
        parts=service_parts(settings, publishes=None, consumes=CONSUMES),
        description="Live figures per place, level and responsible party.",
    )


def app() -> FastAPI:
    settings = ReportingSettings()
    logs.configure(settings.service, settings.log_level)
    return create_app(settings)
