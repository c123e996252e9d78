"""Screening service: `uvicorn --factory services.screening.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.screening.config import ScreeningSettings
from shared import logs, places
from shared.contracts import registry, screening
from shared.http import build_app
from shared.projection import Projection
from shared.runtime import service_parts


def create_app(settings: ScreeningSettings | None = None) -> FastAPI:
    settings = settings or ScreeningSettings()
    parts = service_parts(
        settings,
        publishes=screening.TOPIC,
        consumes=[("places", [registry.TOPIC], Projection(places.HANDLERS))],
    )
    return build_app(
        settings,
        title="Screening",
        routers=[],
        parts=parts,
        description="Door-to-door screening, key persons, quarantine and follow-ups.",
    )


def app() -> FastAPI:
    settings = ScreeningSettings()
    logs.configure(settings.service, settings.log_level)
    return create_app(settings)
