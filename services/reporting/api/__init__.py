"""The reporting service's HTTP routers, one module per read model."""

from __future__ import annotations

from fastapi import APIRouter

from services.reporting.api.chains import router as chains
from services.reporting.api.figures import figures_router
from services.reporting.api.ledgers import router as ledgers
from services.reporting.api.ops import router as ops
from services.reporting.api.places import summaries
from services.reporting.api.testing import router as testing
from shared.ops import router as ops_shared

ROUTERS: list[APIRouter] = [summaries, ledgers, chains, figures_router, ops, testing, ops_shared]
