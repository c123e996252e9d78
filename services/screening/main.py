"""Screening service: `uvicorn --factory services.screening.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.screening.api import ROUTERS
from services.screening.config import ScreeningSettings
from services.screening.handlers.reactions import REACTIONS
from services.screening.handlers.referrals import REFERRALS
from services.screening.handlers.scheduler import scheduler_part
from services.screening.views import REGISTRY_VIEWS
from shared import logs
from shared.contracts import checkpoint, registry, screening
from shared.http import Part, build_app
from shared.lag import lag_parts
from shared.runtime import service_parts

# background parts of this service beyond the relay and consumers (the slot scheduler, ...)
EXTRA_PARTS: list[Part] = []
EXTRA_PARTS.append(scheduler_part())  # missed follow-ups and care tasks


def create_app(settings: ScreeningSettings | None = None) -> FastAPI:
    settings = settings or ScreeningSettings()
    consumes = [
        ("registry-views", [registry.TOPIC], REGISTRY_VIEWS),
        ("reactions", [screening.TOPIC], REACTIONS),
        ("checkpoint-referrals", [checkpoint.TOPIC], REFERRALS),
    ]
    parts = [
        *service_parts(settings, publishes=screening.TOPIC, consumes=consumes),
        *lag_parts(settings, publishes=screening.TOPIC, consumes=consumes),
    ]
    return build_app(
        settings,
        title="Screening",
        routers=ROUTERS,
        parts=[*parts, *EXTRA_PARTS],
        description="Door-to-door screening, key persons, quarantine and follow-ups.",
    )


def app() -> FastAPI:
    settings = ScreeningSettings()
    logs.configure(settings.service, settings.log_level)
    return create_app(settings)
