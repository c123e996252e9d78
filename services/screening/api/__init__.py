"""The screening service's HTTP routers, one module per resource family."""

from __future__ import annotations

from fastapi import APIRouter

from services.screening.api.care import ROUTERS as CARE_ROUTERS
from services.screening.api.key_persons import ROUTERS as KEY_PERSON_ROUTERS
from services.screening.api.reports import ROUTERS as REPORT_ROUTERS
from services.screening.api.testing import ROUTERS as TESTING_ROUTERS
from services.screening.api.visits import ROUTERS as VISIT_ROUTERS
from services.screening.api.watch import ROUTERS as WATCH_ROUTERS
from shared.ops import router as ops

ROUTERS: list[APIRouter] = [
    *VISIT_ROUTERS,
    *REPORT_ROUTERS,
    *KEY_PERSON_ROUTERS,
    *TESTING_ROUTERS,
    *WATCH_ROUTERS,
    *CARE_ROUTERS,
    ops,
]
