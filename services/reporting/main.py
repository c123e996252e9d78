"""Reporting service: `uvicorn --factory services.reporting.main:app`."""

from __future__ import annotations

from fastapi import FastAPI

from services.reporting.api import ROUTERS
from services.reporting.config import ReportingSettings
from services.reporting.projections import PLACES
from services.reporting.projections_chains import CHAINS, LEDGERS, REPORTS
from services.reporting.projections_figures import FIGURES
from services.reporting.projections_testing import TESTING
from services.reporting.rebuild import operations
from shared import logs
from shared.consumer import Handler
from shared.contracts import checkpoint, registry, screening
from shared.http import build_app
from shared.lag import lag_parts
from shared.runtime import service_parts

# each read model has its own consumer (own offsets, rebuildable on its own):
# (name, contract topics, handler)
CONSUMES: list[tuple[str, list[str], Handler]] = [
    ("places", [registry.TOPIC], PLACES),
    ("ledgers", [registry.TOPIC, screening.TOPIC, checkpoint.TOPIC], LEDGERS),
    ("reports", [screening.TOPIC], REPORTS),
    ("chains", [registry.TOPIC, screening.TOPIC], CHAINS),
    ("figures", [registry.TOPIC, screening.TOPIC, checkpoint.TOPIC], FIGURES),
    ("testing", [registry.TOPIC, screening.TOPIC], TESTING),
]


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    return build_app(
        settings,
        title="Reporting",
        routers=ROUTERS,
        parts=[
            # read models only: no handler reads a statement's status, so runs of one
            # statement (a ledger row per crossing...) go as one executemany
            *service_parts(settings, publishes=None, consumes=CONSUMES, coalesce=True),
            *lag_parts(settings, publishes=None, consumes=CONSUMES),
            *operations(settings, CONSUMES),
        ],
        description="Live figures per place, level and responsible party.",
    )


def app() -> FastAPI:
    settings = ReportingSettings()
    logs.configure(settings.service, settings.log_level)
    return create_app(settings)
