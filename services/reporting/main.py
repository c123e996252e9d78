"""Reporting service: `uvicorn --factory services.reporting.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.reporting.api import summaries
from services.reporting.config import ReportingSettings
from services.reporting.projections import PLACES
from shared import logs
from shared.contracts import registry
from shared.http import build_app
from shared.runtime import service_parts


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    return build_app(
        settings,
        title="Reporting",
        routers=[summaries],
        parts=service_parts(
            settings, publishes=None, consumes=[("places", [registry.TOPIC], PLACES)]
        ),
        description="Live figures per place, level and responsible party.",
    )


def app() -> FastAPI:
    settings = ReportingSettings()
    logs.configure(settings.service, settings.log_level)
    return create_app(settings)
